"""A small evaluator for the template's IAM/IoT policy documents, enough to ask "may thing X do Y on Z?".

It resolves Fn::Sub with fixed pseudo-parameters, substitutes the IoT policy variable for a thing name and
matches resources the way IoT and IAM policies do (`*` any run of characters, `/` included; `?` one).
"""

from __future__ import annotations

import re
from typing import Any

ACCOUNT, REGION, PARTITION = "123456789012", "us-east-1", "aws"
THING_VARIABLE = "${iot:Connection.Thing.ThingName}"


def resolve(node: Any, values: dict[str, str]) -> Any:
    """Resolve Fn::Sub strings (and lists of them) with `values`; other intrinsics are left as they are."""
    if isinstance(node, list):
        return [resolve(n, values) for n in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            return _sub(node["Fn::Sub"], values)
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        return {k: resolve(v, values) for k, v in node.items()}
    return node


def _sub(text: str, values: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"  # ${!Literal} is the literal ${Literal}
        if name not in values:
            raise KeyError(f"no value for ${{{name}}} in {text!r}")
        return values[name]

    return re.sub(r"\$\{([^}]+)\}", one, text)


def pseudo(environment: str = "dev", stack: str = "framesieve-dev") -> dict[str, str]:
    return {"AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": PARTITION,
            "AWS::StackName": stack, "Environment": environment}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def iot_allowed(document: dict[str, Any], action: str, resource: str, thing: str,
                attached: bool = True) -> bool:
    """Whether a resolved IoT policy lets `thing` (connected with that client id) do `action` on `resource`."""
    allowed = False
    for st in statements(document):
        if action not in as_list(st["Action"]):
            continue
        bool_conditions = st.get("Condition", {}).get("Bool", {})
        if bool_conditions.get("iot:Connection.Thing.IsAttached") == "true" and not attached:
            continue
        for pattern in as_list(st["Resource"]):
            if matches(pattern.replace(THING_VARIABLE, thing), resource):
                if st["Effect"] == "Deny":
                    return False
                allowed = True
    return allowed


def iot_arn(kind: str, name: str) -> str:
    return f"arn:{PARTITION}:iot:{REGION}:{ACCOUNT}:{kind}/{name}"
