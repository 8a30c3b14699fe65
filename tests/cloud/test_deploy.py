"""`framesieve-cloud deploy` against a real `moto_server` on loopback: artifacts packaged and uploaded, the stack
created, then updated without uploading anything again.

moto deploys only part of the template (see tests/infra/moto_template.py), creates stacks synchronously and
never rolls one back, so the failure path (events streamed, root cause named among cancelled resources) runs
against a scripted CloudFormation client instead: the one place here that does not talk to moto_server.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloud.deploy import TEMPLATE, DeployError, DeployOptions, main, run_deploy
from cloud.devaws import DUMMY_ENV
from cloud.stackops import first_failure, load_template, wait_for_stack
from models.paths import CENTERNET_STUDENT_MANIFEST
from tests.infra.conditions import stack_for
from tests.infra.moto_template import write_moto_template

pytestmark = pytest.mark.slow  # moto and CloudFormation: seconds per test

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/framesieve-teacher:1.0.0"


@pytest.fixture()
def aws(monkeypatch, moto, tmp_path) -> boto3.session.Session:
    for key, value in {**DUMMY_ENV, "AWS_ENDPOINT_URL": moto.url, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    return boto3.session.Session(region_name="us-east-1")


@pytest.fixture(scope="module")
def moto_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "framesieve-moto.json"
    write_moto_template(load_template(TEMPLATE), path)
    return path


def _object(session, url: str) -> bytes:
    bucket, key = url.removeprefix("s3://").split("/", 1)
    return session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_deploy_creates_then_updates_the_stack(aws, moto_template, tmp_path):
    lines: list[str] = []
    options = DeployOptions(stack="fs-deploy", image_uri=IMAGE, model=CENTERNET_STUDENT_MANIFEST,
                            template=moto_template, poll_s=0.05, work_dir=tmp_path / "build")
    first = run_deploy(options, out=lines.append, session=aws)
    assert first.status == "CREATE_COMPLETE"
    text = "\n".join(lines)
    assert "creating artifact bucket" in text and "packaged router Lambda" in text and "no numpy" in text
    assert "CREATE_COMPLETE" in text and "AWS::CloudFormation::Stack" in text  # the stack's events, streamed
    assert first.outputs["RouterFunctionName"] == "fs-deploy-router"
    code_url, model_url = first.uploaded
    assert "router-" in code_url and "model-" in model_url

    # what was uploaded is what the stack runs
    names = zipfile.ZipFile(io.BytesIO(_object(aws, code_url))).namelist()
    assert "cloud/router/handler.py" in names and not [n for n in names if n.startswith(("models/", "edge_agent/"))]
    with tarfile.open(fileobj=io.BytesIO(_object(aws, model_url)), mode="r:gz") as tar:
        assert tar.getnames()[0] == "manifest.json"
    cfn, sm = aws.client("cloudformation"), aws.client("sagemaker")
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in cfn.list_stack_resources(StackName="fs-deploy")["StackResourceSummaries"]}
    model = sm.describe_model(ModelName=resources["TeacherModel"].rsplit("/", 1)[1])
    assert model["PrimaryContainer"]["ModelDataUrl"] == model_url
    fn = aws.client("lambda").get_function(FunctionName="fs-deploy-router")["Configuration"]
    assert fn["Handler"] == "cloud.router.handler.handler"
    bucket = code_url.removeprefix("s3://").split("/", 1)[0]
    assert all(aws.client("s3").get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())

    # same code, no model given: nothing uploaded, nothing to change
    lines.clear()
    again = run_deploy(DeployOptions(stack="fs-deploy", template=moto_template, poll_s=0.05), out=lines.append,
                       session=aws)
    assert again.uploaded == [] and again.status in ("NO_CHANGE", "UPDATE_COMPLETE")
    assert "already uploaded" in "\n".join(lines)

    # a changed parameter updates the stack; the rest (image, model) keep their values
    changed = run_deploy(DeployOptions(stack="fs-deploy", template=moto_template, poll_s=0.05,
                                       parameters={"MaxInstances": "6"}), out=lines.append, session=aws)
    assert changed.status == "UPDATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName="fs-deploy")["Stacks"][0]["Parameters"]}
    assert (params["MaxInstances"], params["InferenceImageUri"], params["ModelDataUrl"]) == ("6", IMAGE, model_url)


def test_new_stack_without_an_image_is_refused_before_uploading(aws, moto_template, capsys):
    rc = main(["--stack", "fs-noimage", "--template", str(moto_template), "--region", "us-east-1"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs --image-uri" in err
    names = [s["StackName"] for s in aws.client("cloudformation").list_stacks()["StackSummaries"]]
    assert "fs-noimage" not in names


def test_lambda_backend_needs_its_image_and_uploads_no_model(aws, moto_template, capsys, tmp_path):
    rc = main(["--stack", "fs-lambda-noimage", "--template", str(moto_template), "--region", "us-east-1",
               "--param", "TeacherBackend=lambda"])
    assert rc == 2 and "needs --param LambdaImageUri=" in capsys.readouterr().err
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/framesieve-router-teacher:1.0.0"
    # moto 5.2 cannot evaluate the Lambda's Fn::If around Code: give it the lambda stack's conditions resolved
    moto_template = tmp_path / "lambda.json"
    write_moto_template(stack_for(load_template(TEMPLATE), {"TeacherBackend": "lambda"}), moto_template)
    result = run_deploy(DeployOptions(stack="fs-lambda", template=moto_template, poll_s=0.05, work_dir=tmp_path / "b",
                                      parameters={"TeacherBackend": "lambda", "LambdaImageUri": image}),
                        out=lambda _: None, session=aws)
    assert result.status == "CREATE_COMPLETE" and not [u for u in result.uploaded if "model-" in u]  # no model
    assert "EndpointName" not in result.outputs and result.outputs["TeacherBackend"] == "lambda"
    fn = aws.client("lambda").get_function(FunctionName="fs-lambda-router")
    assert fn["Code"]["ImageUri"] == image


@pytest.mark.parametrize(("argv", "message"), [
    (["--param", "Bogus=1"], "unknown template parameter(s) Bogus"),
    (["--template", "/nonexistent/framesieve.yaml"], "does not exist"),
])
def test_bad_arguments_fail_with_a_clear_message(monkeypatch, capsys, argv, message):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert main(["--stack", "fs-bad", *argv]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the failure path
class ScriptedStack:
    """describe_stacks / describe_stack_events for one stack operation, advancing one step per status poll."""

    def __init__(self, steps: list[tuple[str, list[dict[str, Any]]]]):
        self.steps, self.step, self.events = steps, 0, []

    def describe_stacks(self, StackName):  # noqa: N803 - boto3's argument name
        status, new = self.steps[min(self.step, len(self.steps) - 1)]
        self.events = new + self.events if self.step < len(self.steps) else self.events
        self.step += 1
        return {"Stacks": [{"StackId": StackName, "StackName": "fs", "StackStatus": status}]}

    def get_paginator(self, _name):
        stack = self

        class Pages:
            def paginate(self, StackName):  # noqa: N803
                yield {"StackEvents": list(stack.events)}

        return Pages()


def _event(i: int, logical: str, kind: str, status: str, reason: str = "") -> dict[str, Any]:
    return {"EventId": f"e{i}", "LogicalResourceId": logical, "ResourceType": kind, "ResourceStatus": status,
            "ResourceStatusReason": reason, "Timestamp": datetime(2026, 11, 29, tzinfo=UTC) + timedelta(seconds=i)}


def test_failed_create_names_the_first_failure_not_the_cancellations():
    why = "Failed to download model data from s3://b/model.tar.gz: AccessDenied"
    newest_first = [
        [_event(2, "TeacherModel", "AWS::SageMaker::Model", "CREATE_COMPLETE"),
         _event(1, "fs", "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated")],
        [_event(5, "fs", "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "The following resource(s) failed"),
         _event(4, "RouterFunction", "AWS::Lambda::Function", "CREATE_FAILED", "Resource creation cancelled"),
         _event(3, "TeacherEndpoint", "AWS::SageMaker::Endpoint", "CREATE_FAILED", why)],
        [_event(6, "fs", "AWS::CloudFormation::Stack", "DELETE_COMPLETE")],
    ]
    cfn = ScriptedStack([("CREATE_IN_PROGRESS", newest_first[0]), ("DELETE_IN_PROGRESS", newest_first[1]),
                         ("DELETE_COMPLETE", newest_first[2])])
    lines: list[str] = []
    with pytest.raises(DeployError) as err:
        wait_for_stack(cfn, "fs", "fs", set(), lines.append, timeout_s=60, poll_s=0, sleep=lambda s: None)
    message = str(err.value)
    assert "DELETE_COMPLETE" in message
    assert f"TeacherEndpoint (AWS::SageMaker::Endpoint) CREATE_FAILED: {why}" in message
    assert "deploy again" in message
    # every event printed once, oldest first
    assert [line.split()[2] for line in lines] == [
        "AWS::CloudFormation::Stack", "AWS::SageMaker::Model", "AWS::SageMaker::Endpoint", "AWS::Lambda::Function",
        "AWS::CloudFormation::Stack", "AWS::CloudFormation::Stack"]


def test_first_failure_prefers_a_reason_over_a_cancellation():
    cancelled = _event(1, "A", "T", "CREATE_FAILED", "Resource creation cancelled")
    real = _event(2, "B", "T", "CREATE_FAILED", "Property X is invalid")
    assert first_failure([cancelled, real]) == real
    assert first_failure([cancelled]) == cancelled
    assert first_failure([_event(3, "C", "T", "CREATE_COMPLETE")]) is None


def test_a_stack_that_does_not_settle_times_out_with_a_hint():
    cfn = ScriptedStack([("UPDATE_IN_PROGRESS", [])])
    with pytest.raises(DeployError, match="still UPDATE_IN_PROGRESS after 0 s.*describe-stack-events"):
        wait_for_stack(cfn, "fs", "fs", set(), lambda line: None, timeout_s=0, poll_s=0, sleep=lambda s: None)
