"""The part of the stack moto can create through CloudFormation, for the tests that deploy into `moto_server`.

moto's CloudFormation has no model for some resource types the stack uses (AWS::IoT::TopicRule,
Application Auto Scaling, CloudWatch alarms, SNS subscriptions, S3 bucket policies, Lambda event invoke
configs). Given one, it leaves the stack in CREATE_IN_PROGRESS forever and fails every Fn::GetAtt on it. So
the tests drop those resources, and everything that refers to them, and check them by reading the template
(tests/infra/test_template.py) and with cfn-lint instead. The set is asked of moto itself, so a moto release
that learns a type makes the tests deploy it without a change here.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any


def moto_supported_types() -> set[str]:
    import moto.cloudformation.parsing  # noqa: F401 - registers every service's CloudFormation models
    from moto.core.common_models import CloudFormationModel

    found, todo = set(), [CloudFormationModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.cloudformation_type():
                found.add(sub.cloudformation_type())
    return found


def references(node: Any) -> set[str]:
    """Logical ids a piece of template refers to (Ref, Fn::GetAtt, ${X} and ${X.Attr} in Fn::Sub)."""
    out: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out.add(value)
            elif key == "Fn::GetAtt":
                out.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text, extra = (value, {}) if isinstance(value, str) else (value[0], value[1])
                out |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)} - set(extra)
                out |= references(extra)
            else:
                out |= references(value)
    elif isinstance(node, list):
        for item in node:
            out |= references(item)
    return out


def strip_for_moto(template: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(template moto can create, logical ids removed), removing unsupported resources and their dependents."""
    supported = moto_supported_types()
    out = copy.deepcopy(template)
    resources = out["Resources"]
    removed: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, res in list(resources.items()):
            depends = res.get("DependsOn", [])
            depends = {depends} if isinstance(depends, str) else set(depends)
            if res["Type"] not in supported or (references(res) | depends) & removed:
                removed.add(name)
                del resources[name]
                changed = True
    out["Outputs"] = {k: v for k, v in out.get("Outputs", {}).items() if not references(v) & removed}
    return out, sorted(removed)


def write_moto_template(template: dict[str, Any], path: Path) -> list[str]:
    stripped, removed = strip_for_moto(template)
    path.write_text(json.dumps(stripped, indent=1))
    return removed
