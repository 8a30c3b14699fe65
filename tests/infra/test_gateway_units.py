"""The gateway install units: the systemd service (checked by `systemd-analyze`) and the Greengrass component
recipe (checked against infra/greengrass/recipe.schema.json with the `jsonschema` package, and against the
stack's IoT policy, since the core device's certificate carries that policy)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.infra.iot_policy import iot_allowed, iot_arn, pseudo, resolve
from tests.infra.recipe_check import check_recipe

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "infra" / "systemd" / "framesieve-agent.service"
RECIPE = ROOT / "infra" / "greengrass" / "recipe.yaml"
AGENT = "/opt/framesieve/venv/bin/edge-agent"

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian package systemd)")


def _unit_with_agent(tmp_path: Path, text: str) -> Path:
    """The unit with its ExecStart pointed at a stand-in agent: `verify` checks that the program exists."""
    agent = tmp_path / "edge-agent"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(AGENT, str(agent)))
    return unit


def _verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30,
                          cwd=unit.parent)


@needs_systemd
def test_unit_verifies_clean(tmp_path):
    proc = _verify(_unit_with_agent(tmp_path, UNIT.read_text()))
    # verify exits 0 on unknown keys and only warns: any output at all is a finding
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


@needs_systemd
def test_verify_catches_a_misspelt_directive(tmp_path):
    """The check above has teeth: a typo in a hardening option would silently turn it off."""
    proc = _verify(_unit_with_agent(tmp_path, UNIT.read_text().replace("NoNewPrivileges=", "NoNewPriviliges=")))
    assert "Unknown key" in proc.stderr and "NoNewPriviliges" in proc.stderr


@needs_systemd
def test_unit_exposure_is_low(tmp_path):
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                           str(_unit_with_agent(tmp_path, UNIT.read_text()))],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert score, proc.stdout[-500:] + proc.stderr[-500:]
    assert float(score.group(1)) <= 2.0  # systemd rates <= 2.0 as "OK"; 1.4 when written


def test_unit_runs_the_agent_as_its_own_user_with_hardening():
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    assert settings["ExecStart"] == [f"{AGENT} run --config /etc/framesieve/agent.yaml"]
    assert settings["User"] == ["framesieve"] and settings["Restart"] == ["on-failure"]
    assert settings["RestartPreventExitStatus"] == ["2"]  # the agent's exit code for a bad config or model
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
        assert settings[key] == [value], key
    assert settings["StateDirectory"] == ["framesieve"]
    assert "/var/lib/framesieve" in settings["ReadWritePaths"][0].split()


# ------------------------------------------------------------------------------------------ Greengrass
@pytest.fixture(scope="module")
def recipe() -> dict:
    return yaml.safe_load(RECIPE.read_text())


def test_recipe_matches_the_documented_schema(recipe):
    assert check_recipe(recipe) == []


def _broken(recipe: dict, change) -> dict:
    bad = copy.deepcopy(recipe)
    change(bad)
    return bad


def _lifecycle(r: dict) -> dict:
    return r["Manifests"][0]["Lifecycle"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: r.pop("ComponentVersion"), "'componentversion' is a required property"),
    (lambda r: r.update(ComponentVersion="1.0"), "/componentversion: '1.0' does not match"),
    (lambda r: r.update(RecipeFormatVersion="2021-01-01"), "/recipeformatversion"),
    (lambda r: r.update(ComponentName="aws.greengrass.Mine"), "/componentname"),
    (lambda r: _lifecycle(r).update(startup="echo"), "/manifests/0/lifecycle"),  # startup and run are exclusive
    (lambda r: _lifecycle(r)["run"].update(Scrpt="x"), "/manifests/0/lifecycle/run"),
    (lambda r: _lifecycle(r)["install"].update(Skipif="whenever"), "/manifests/0/lifecycle/install"),
    (lambda r: _lifecycle(r)["run"].update(Script="edge-agent --config {configuration:/Nope}"),
     "{configuration:/Nope} names no key of DefaultConfiguration"),
    (lambda r: _lifecycle(r)["run"].update(Script="cd {iot:thingname}"), "is not a Greengrass recipe variable"),
    (lambda r: r["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]["aws.greengrass.ShadowManager"]
     ["com.framesieve.EdgeAgent:shadow:1"]["operations"].append("aws.greengrass#PublishToIoTCore"),
     "PublishToIoTCore is not an operation of aws.greengrass.ShadowManager"),
    (lambda r: r["ComponentDependencies"]["aws.greengrass.Nucleus"].update(DependencyType="MAYBE"),
     "/componentdependencies/aws.greengrass.Nucleus/dependencytype"),
])
def test_recipe_check_rejects(recipe, change, expected):
    errors = check_recipe(_broken(recipe, change))
    assert any(expected in e for e in errors), errors


def test_recipe_is_case_insensitive_like_greengrass(recipe):
    upper = _broken(recipe, lambda r: r["Manifests"][0].update(Lifecycle={
        k.capitalize(): v for k, v in _lifecycle(r).items()}))
    assert check_recipe(upper) == []


def test_recipe_topics_are_allowed_by_the_stack_policy(recipe, resources):
    """Nucleus relays the component's IPC traffic under the core device's thing name, so every topic the recipe
    authorises must also pass the gateway IoT policy the certificate carries (and other things' must not)."""
    policy = resolve(resources["GatewayPolicy"]["Properties"]["PolicyDocument"], pseudo())
    access = recipe["ComponentConfiguration"]["DefaultConfiguration"]["accessControl"]
    checked = 0
    for rule in access["aws.greengrass.ipc.mqttproxy"].values():
        for op in rule["operations"]:
            for resource in rule["resources"]:
                topic = resource.replace("{iot:thingName}", "core-1").replace("$aws/rules/*/",
                                                                              "$aws/rules/framesieve_dev_escalations/")
                if op.endswith("PublishToIoTCore"):
                    checks = [("iot:Publish", iot_arn("topic", topic))]
                else:
                    checks = [("iot:Subscribe", iot_arn("topicfilter", topic)),
                              ("iot:Receive", iot_arn("topic", topic))]
                for action, arn in checks:
                    assert iot_allowed(policy, action, arn, "core-1"), f"{op} {resource}: {action} {arn} denied"
                    assert not iot_allowed(policy, action, arn.replace("core-1", "core-2"), "core-1")
                    checked += 1
    assert checked >= 6
    shadow = access["aws.greengrass.ShadowManager"]["com.framesieve.EdgeAgent:shadow:1"]
    assert shadow["resources"] == ["$aws/things/{iot:thingName}/shadow"]


def test_recipe_runs_the_agent_on_the_provisioned_config(recipe):
    config = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    lifecycle = _lifecycle(recipe)
    assert config["Extras"] == "edge"
    # installed from the recipe's own artifact, the wheel this repository builds, never by name from the index
    (artifact,) = recipe["Manifests"][0]["Artifacts"]
    wheel = artifact["URI"].rsplit("/", 1)[1]
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert recipe["ComponentVersion"] == tomllib.load(f)["project"]["version"]
    assert wheel == f"framesieve_cascade-{recipe['ComponentVersion']}-py3-none-any.whl"
    assert f"'{{artifacts:path}}/{wheel}[{{configuration:/Extras}}]'" in lifecycle["install"]["Script"]
    assert "edge-agent run --config '{configuration:/ConfigPath}'" in lifecycle["run"]["Script"]
    assert lifecycle["install"]["RequiresPrivilege"] is False and lifecycle["run"]["RequiresPrivilege"] is False
