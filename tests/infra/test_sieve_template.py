"""The sieve for landed video in the stack (infra/cloudformation/framesieve.yaml, optional by SieveS3/SieveKvs),
read as data: absent by default; when on, the handler, command and environment are the code's, and each role
allows exactly what the sieve calls, on this stack's resources and the landed video alone."""

from __future__ import annotations

import argparse
import importlib

import pytest

from cloud import constants as c
from cloud.router.config import RouterConfig
from landed import constants as k
from landed.cli import add_parser
from tests.infra.conditions import stack_for
from tests.infra.iot_policy import as_list, statements
from tests.infra.test_template import _router_dynamodb_actions

SIEVE = {"SieveS3": "true", "SieveKvs": "true", "LandedBucket": "landed-video", "LandedPrefix": "cams/",
         "SieveImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sieve:1", "SieveKvsGroup": "plaza",
         "SieveSubnets": "subnet-0123abcd", "SieveKvsStreamPrefix": "plaza-"}


@pytest.fixture(scope="module")
def sieve(raw_template):
    return stack_for(raw_template, SIEVE)["Resources"]


def _statements(resource) -> dict[str, dict]:
    docs = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])] or \
        [resource["Properties"]["PolicyDocument"]]
    return {st["Sid"]: st for doc in docs for st in statements(doc)}


def test_off_by_default(template):
    assert not [name for name in template["Resources"] if name.startswith("Sieve")]
    assert not [name for name in template["Outputs"] if name.startswith("Sieve")]


def test_the_lambda_runs_the_handler_on_object_created_events(sieve):
    fn = sieve["SieveFunction"]["Properties"]
    module, attr = fn["ImageConfig"]["Command"][0].rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), attr))
    assert fn["PackageType"] == "Image" and fn["Timeout"] == 900 and fn["MemorySize"] == {"Ref": "SieveMemoryMb"}
    env = fn["Environment"]["Variables"]
    known = {v for v in vars(c).values() if isinstance(v, str) and v.startswith("FRAMESIEVE_")} | \
        {v for v in vars(k).values() if isinstance(v, str) and v.startswith("FRAMESIEVE_")}
    known.add("FRAMESIEVE_TEACHER_THREADS")  # read by the in-process teacher (landed/transport.py)
    assert set(env) <= known, f"names the sieve does not read: {set(env) - known}"
    assert env[k.CONFIG] == {"Fn::Sub": "s3://${LandedBucket}/${SieveConfigKey}"}
    assert env[c.VERDICT_TOPIC] == ""  # the verdict goes back in process: nothing is published
    plain = {name: value for name, value in env.items() if isinstance(value, str)}
    assert RouterConfig.from_env(plain).verdict_topic == ""
    pattern = sieve["SieveObjectRule"]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"] and pattern["detail"] == {
        "bucket": {"name": [{"Ref": "LandedBucket"}]}, "object": {"key": [{"prefix": {"Ref": "LandedPrefix"}}]}}
    assert sieve["SieveObjectRule"]["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": ["SieveFunction", "Arn"]}
    assert sieve["SieveInvokePermission"]["Properties"]["Principal"] == "events.amazonaws.com"


def test_the_fargate_task_runs_the_cli_with_the_same_environment(sieve):
    task = sieve["SieveTaskDefinition"]["Properties"]
    container = task["ContainerDefinitions"][0]
    assert container["Name"] == k.DEFAULT_CONTAINER and task["RequiresCompatibilities"] == ["FARGATE"]
    command = container["Command"]
    assert command[:2] == ["framesieve-cloud", "sieve"]
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args([*command[1:3], "plaza"])
    assert args.group == "plaza" and command[3] == {"Ref": "SieveKvsGroup"}
    names = {e["Name"] for e in container["Environment"]}
    lambda_env = set(sieve["SieveFunction"]["Properties"]["Environment"]["Variables"])
    assert names == lambda_env - {k.CLUSTER, k.TASK_DEFINITION, k.SUBNETS, k.SECURITY_GROUPS, k.CONTAINER}
    assert sieve["SieveKvsService"]["Properties"]["TaskDefinition"] == {"Ref": "SieveTaskDefinition"}


def test_the_roles_allow_what_the_sieve_calls_and_no_more(sieve, raw_template):
    role = _statements(sieve["SieveRole"])
    # the router's calls, in process; BatchWriteItem writes a gateway batch's rows: the sieve sends no batch
    assert set(as_list(role["Results"]["Action"])) >= _router_dynamodb_actions() - {"dynamodb:BatchWriteItem"}
    assert "dynamodb:ConditionCheckItem" in as_list(role["Results"]["Action"])
    assert role["Results"]["Resource"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert as_list(role["LandedVideo"]["Action"]) == ["s3:GetObject"]
    assert role["LandedVideo"]["Resource"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LandedBucket}/${LandedPrefix}*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::${LandedBucket}/${SieveConfigKey}"}]
    assert set(as_list(role["StreamImages"]["Action"])) == {"kinesisvideo:GetDataEndpoint", "kinesisvideo:GetImages"}
    assert "${SieveKvsStreamPrefix}*" in role["StreamImages"]["Resource"]["Fn::Sub"]
    assert role["AskTheTeacher"]["Resource"] == {"Ref": "TeacherEndpoint"}
    assert not [s for s in role if s in ("Verdicts",)]  # no IoT: nothing is published to a gateway
    run = _statements(sieve["SieveRunTaskPolicy"])
    assert run["LongSegmentsToFargate"]["Resource"] == {"Ref": "SieveTaskDefinition"}
    only_s3 = stack_for(raw_template, {**SIEVE, "SieveKvs": "false"})["Resources"]
    assert "StreamImages" not in _statements(only_s3["SieveRole"]) and "SieveKvsService" not in only_s3


def test_rules_refuse_a_sieve_without_its_inputs(raw_template):
    rule = raw_template["Rules"]["SieveNeedsImageBucketAndEndpoint"]
    said = " ".join(a["AssertDescription"] for a in rule["Assertions"])
    for name in ("SieveImageUri", "LandedBucket", "SieveSubnets"):
        assert name in said


def test_the_sieve_image_runs_what_the_stack_names(sieve):
    """infra/container/Dockerfile.sieve: its build context exists, and its command is the Lambda's handler."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "infra" / "container" / "Dockerfile.sieve").read_text()
    assert re.findall(r"^FROM (\S+)$", text, flags=re.M)[0].startswith("public.ecr.aws/lambda/python:")
    for sources in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for src in sources.split():
            assert src == "build/lambda-model" or (root / src).exists(), f"COPY {src}: not in the build context"
    assert "COPY landed " in text and "COPY edge_agent " in text
    (command,) = re.findall(r'^CMD \["([^"]+)"\]$', text, flags=re.M)
    assert sieve["SieveFunction"]["Properties"]["ImageConfig"] == {"Command": [command]}
