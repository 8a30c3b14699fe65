"""Checks a Greengrass component recipe against infra/greengrass/recipe.schema.json (jsonschema, from PyPI)
and the rules the schema cannot say: every recipe variable is one Greengrass defines and every
{configuration:/...} points at a default, and each IPC policy names operations of its own service.

Greengrass reads recipe keys case-insensitively, so the structural keys are lower-cased before the schema
check; configuration values, environment names and policy ids keep their case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "infra" / "greengrass" / "recipe.schema.json"

# The recipe variables of the component recipe reference; dependency-scoped forms are checked separately.
KNOWN_VARIABLES = {"iot:thingName", "work:path", "artifacts:path", "artifacts:decompressedPath", "kernel:rootPath"}
IPC_OPERATIONS = {
    "aws.greengrass.ipc.mqttproxy": {"PublishToIoTCore", "SubscribeToIoTCore"},
    "aws.greengrass.ipc.pubsub": {"PublishToTopic", "SubscribeToTopic"},
    "aws.greengrass.ShadowManager": {"GetThingShadow", "UpdateThingShadow", "DeleteThingShadow",
                                     "ListNamedShadowsForThing"},
}
_STRUCTURAL = {"manifests", "lifecycle", "platform", "artifacts", "permission", "componentconfiguration",
               "componentdependencies", "install", "run", "startup", "shutdown", "recover", "bootstrap"}
_KEEP_CASE_BELOW = {"defaultconfiguration", "setenv", "componentdependencies", "platform"}


def normalise(node: Any, parent: str = "") -> Any:
    """Lower-case the recipe's own keys, leaving user-defined names (config, env, dependency names) alone."""
    if isinstance(node, list):
        return [normalise(n, parent) for n in node]
    if not isinstance(node, dict):
        return node
    if parent in _KEEP_CASE_BELOW:
        if parent == "componentdependencies":
            return {k: normalise(v, "dependency") for k, v in node.items()}
        return node
    out = {}
    for key, value in node.items():
        low = key.lower()
        out[low] = normalise(value, low if (low in _STRUCTURAL or low in _KEEP_CASE_BELOW) else "")
    return out


def _pointer(config: Any, pointer: str) -> bool:
    for part in pointer.lstrip("/").split("/"):
        if not isinstance(config, dict) or part not in config:
            return False
        config = config[part]
    return True


def _strings(node: Any, path: str = ""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{path}/{i}")
    elif isinstance(node, str):
        yield path, node


def check_recipe(recipe: dict[str, Any]) -> list[str]:
    """Every problem found, each naming its place in the recipe (JSON pointer); empty when the recipe is good."""
    import jsonschema

    norm = normalise(recipe)
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    errors = [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:160]}" for e in validator.iter_errors(norm)]
    config = norm.get("componentconfiguration", {}).get("defaultconfiguration", {})
    deps = set(norm.get("componentdependencies", {}))
    for path, text in _strings(norm):
        for var in re.findall(r"\{([^{}\s]+)\}", text):
            if var.startswith("configuration:"):
                if not _pointer(config, var[len("configuration:"):]):
                    errors.append(f"{path}: {{{var}}} names no key of DefaultConfiguration")
            elif ":configuration:" in var or ":artifacts:" in var:  # another component's config or artifacts
                if var.split(":", 1)[0] not in deps:
                    errors.append(f"{path}: {{{var}}} reads a component that is not a dependency")
            elif var not in KNOWN_VARIABLES:
                errors.append(f"{path}: {{{var}}} is not a Greengrass recipe variable")
            if "/accessControl/" in path and var != "iot:thingName":
                errors.append(f"{path}: only {{iot:thingName}} is interpolated in authorization policies")
    for service, policies in config.get("accessControl", {}).items():
        allowed = IPC_OPERATIONS.get(service)
        for policy_id, policy in policies.items():
            for op in policy.get("operations", []):
                if allowed is not None and op != "*" and op.split("#", 1)[-1] not in allowed:
                    errors.append(f"/accessControl/{service}/{policy_id}: {op} is not an operation of {service}")
    return errors
