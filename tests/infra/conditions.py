"""The template as CloudFormation would create it for given parameters: Conditions evaluated, Fn::If resolved,
AWS::NoValue dropped, resources and outputs whose condition is false removed. So the tests read what a
realtime, serverless, async or lambda stack really holds, not the union of all four."""

from __future__ import annotations

import copy
from typing import Any

_DROP = object()


def parameters(template: dict[str, Any], given: dict[str, str] | None = None) -> dict[str, str]:
    values = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    values.update(given or {})
    return values


def _value(node: Any, params: dict[str, str]) -> Any:
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in params:
        return params[node["Ref"]]
    return node


def evaluate(cond: Any, conditions: dict[str, Any], params: dict[str, str]) -> bool:
    if isinstance(cond, dict) and len(cond) == 1:
        (fn, args), = cond.items()
        if fn == "Fn::Equals":
            a, b = (_value(x, params) for x in args)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not evaluate(args[0], conditions, params)
        if fn == "Fn::And":
            return all(evaluate(a, conditions, params) for a in args)
        if fn == "Fn::Or":
            return any(evaluate(a, conditions, params) for a in args)
        if fn in ("Condition", "Fn::Condition"):  # the YAML loader spells !Condition either way
            return evaluate(conditions[args], conditions, params)
    raise ValueError(f"cannot evaluate condition {cond!r}")


def _resolve(node: Any, truth: dict[str, bool]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] == "AWS::NoValue":
            return _DROP
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return _resolve(yes if truth[name] else no, truth)
        out = {k: _resolve(v, truth) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(node, list):
        return [x for x in (_resolve(v, truth) for v in node) if x is not _DROP]
    return node


def stack_for(template: dict[str, Any], given: dict[str, str] | None = None) -> dict[str, Any]:
    params = parameters(template, given)
    conditions = template.get("Conditions", {})
    truth = {name: evaluate(cond, conditions, params) for name, cond in conditions.items()}
    out = copy.deepcopy(template)
    for section in ("Resources", "Outputs"):
        out[section] = {k: _resolve(v, truth) for k, v in out.get(section, {}).items()
                        if truth.get(v.get("Condition", ""), True)}
        for v in out[section].values():
            v.pop("Condition", None)
    out.pop("Conditions", None)
    out.pop("Rules", None)
    return out
