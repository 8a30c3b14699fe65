"""`framesieve-cloud deploy` against a real `moto_server` on loopback: artifacts packaged and uploaded, the stack
created, then updated without uploading anything again; with --dashboard, the dashboard's stack from the main
stack's outputs and its static files.

moto deploys only part of the template (see tests/infra/moto_template.py), creates stacks synchronously and
never rolls one back, so the failure path (events streamed, root cause named among cancelled resources) runs
against a scripted CloudFormation client instead: the one place here that does not talk to moto_server.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from cloud.dashboard.web import static_bytes
from cloud.deploy import TEMPLATE, DeployError, DeployOptions, main, run_deploy
from cloud.deploy_dashboard import DASHBOARD_TEMPLATE
from cloud.devaws import DUMMY_ENV
from cloud.lambda_wheels import LambdaPlatform
from cloud.stackops import first_failure, load_template, wait_for_stack
from models.paths import CENTERNET_STUDENT_MANIFEST
from tests.cloud.lambda_runtime import run_in_lambda, runtime_dir
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
    # conditions resolved at the defaults: moto 5.2 passes an Fn::If of AWS::NoValue (the challenger's production
    # variant when there is none) on as a null variant and fails the create
    write_moto_template(stack_for(load_template(TEMPLATE), {}), path)
    return path


@pytest.fixture(scope="module")
def moto_dashboard_template(tmp_path_factory) -> Path:
    """The dashboard stack less what moto cannot create (topic rules, function URL, CloudFront), its functions on
    this interpreter's platform: the zip's compiled packages follow the template, so they are the installed ones
    here and the unpacked zip runs in this interpreter, with no download (the template's own arm64/python3.12
    build: tests/cloud/test_dashboard_zip.py)."""
    path = tmp_path_factory.mktemp("tpl") / "dashboard-moto.json"
    template = load_template(DASHBOARD_TEMPLATE)
    here = LambdaPlatform.running()
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            res["Properties"].update(Runtime=f"python{here.python}", Architectures=[here.arch])
    write_moto_template(template, path)
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


TOKEN = "dashboard-token-" + "x" * 16


def _parameters(cfn, stack: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def _answers_from_the_zip(code: bytes, task: Path, table: str) -> None:
    """The dashboard's zip, unpacked as Lambda does into its task folder, imports and answers function URL events
    with nothing of the checkout and only what the Lambda runtime has beside it (the standard library, boto3): its
    login page, the fleet read from the deployed results table (on moto), and the Cost page from the cost model
    and the price file the zip carries."""
    zipfile.ZipFile(io.BytesIO(code)).extractall(task)
    names = {p.relative_to(task).as_posix() for p in task.rglob("*") if p.is_file()}
    assert {"cloud/dashboard/lambda_api.py", "cloud/dashboard/ingest.py", "cloud/stores/dynamodb.py",
            "cloud/dashboard/static/login.html", "cloud/dashboard/static/index.html", "costing/pricing.py",
            "config/pricing.yaml", "pydantic/__init__.py", "yaml/__init__.py"} <= names
    assert not [n for n in names if n.startswith(("edge_agent/", "landed/", "numpy/", "cv2/"))]
    assert sorted(n for n in names if n.startswith("models/")) == ["models/__init__.py", "models/shipped.py"]
    probe = f"""
import base64, json
from cloud.dashboard import ingest, lambda_api
assert lambda_api.__file__.startswith({str(task)!r}), lambda_api.__file__
def get(path, headers):
    out = lambda_api.handler({{"version": "2.0", "rawPath": path, "headers": headers,
                              "requestContext": {{"http": {{"method": "GET"}}}}}}, None)
    return [out["statusCode"], out["headers"]["Content-Type"], base64.b64decode(out["body"]).decode()]
login = get("/login", {{}})
fleet = get("/dashboard/fleet", {{"authorization": "Bearer {TOKEN}"}})
cost = get("/dashboard/cost", {{"authorization": "Bearer {TOKEN}"}})
import pydantic, yaml
assert pydantic.__file__.startswith({str(task)!r}) and yaml.__file__.startswith({str(task)!r})
print(json.dumps([login[0], login[1], 'name="token"' in login[2], fleet[0], json.loads(fleet[2])["cameras"],
                  cost[0], json.loads(cost[2])]))
"""
    env = {**os.environ, "FRAMESIEVE_API_TOKEN": TOKEN, "FRAMESIEVE_STORE": f"dynamodb://{table}"}
    proc = run_in_lambda(probe, task, runtime_dir(task.parent / "runtime"), env)
    assert proc.returncode == 0, proc.stderr[-1500:]
    *pages, cost_status, cost = json.loads(proc.stdout)
    assert pages == [200, "text/html; charset=utf-8", True, 200, []]
    assert cost_status == 200 and cost["cameras"] == [], cost  # an empty table: no camera yet, the prices there
    assert cost["prices"]["teacher"] and {"Gateway power", "SNS publishes (alerts)"} <= \
        {i["name"] for i in cost["line_items"]}


def test_deploy_with_dashboard_creates_its_stack_from_the_main_stacks_outputs(aws, moto_template,
                                                                              moto_dashboard_template, tmp_path):
    lines: list[str] = []
    result = run_deploy(DeployOptions(stack="fs-dash", image_uri=IMAGE, model_data_url="s3://models/teacher.tar.gz",
                                      template=moto_template, poll_s=0.05, work_dir=tmp_path / "build",
                                      parameters={"Environment": "qa"}, dashboard=True,
                                      dashboard_template=moto_dashboard_template, api_token=TOKEN),
                        out=lines.append, session=aws)
    dash = result.dashboard
    assert result.status == "CREATE_COMPLETE" and dash is not None and dash.status == "CREATE_COMPLETE"
    assert dash.stack == "fs-dash-dashboard"
    cfn, s3 = aws.client("cloudformation"), aws.client("s3")
    params = _parameters(cfn, "fs-dash-dashboard")
    assert (params["ResultsTableName"], params["TrainingBucketName"], params["Environment"]) == (
        result.outputs["ResultsTableName"], result.outputs["TrainingBucketName"], "qa")
    code_url = f"s3://{params['LambdaCodeBucket']}/{params['LambdaCodeKey']}"
    assert params["LambdaCodeKey"].startswith("lambda/dashboard-") and code_url in dash.uploaded
    _answers_from_the_zip(_object(aws, code_url), tmp_path / "task", result.outputs["ResultsTableName"])
    fn = aws.client("lambda").get_function(FunctionName="fs-dash-dashboard-api")["Configuration"]
    assert fn["Handler"] == "cloud.dashboard.lambda_api.handler"
    assert fn["Environment"]["Variables"]["FRAMESIEVE_API_TOKEN"] == TOKEN
    assert fn["Environment"]["Variables"]["FRAMESIEVE_STORE"] == f"dynamodb://{result.outputs['ResultsTableName']}"

    # the pages' files in its bucket, as CloudFront serves them from /static/
    bucket = dash.outputs["StaticBucketName"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {"static/app.js", "static/style.css", "static/vendor/uplot/uPlot.iife.min.js"} <= keys
    assert not [k for k in keys if k.endswith(".html")]  # the pages come from the function, with their headers
    app = s3.get_object(Bucket=bucket, Key="static/app.js")
    assert app["Body"].read() == static_bytes("app.js") and app["ContentType"].startswith("text/javascript")
    assert sorted(dash.uploaded) == sorted([code_url, *(f"s3://{bucket}/{k}" for k in keys)])
    assert "deploying the dashboard stack fs-dash-dashboard (create)" in "\n".join(lines)

    # a later deploy without the flag or a token: the existing dashboard follows, its token and files kept
    lines.clear()
    again = run_deploy(DeployOptions(stack="fs-dash", template=moto_template, poll_s=0.05, work_dir=tmp_path / "b2",
                                     dashboard_template=moto_dashboard_template), out=lines.append, session=aws)
    assert again.dashboard is not None and again.dashboard.uploaded == [] and again.uploaded == []
    assert "(update)" in "\n".join(lines) and "0 uploaded" in "\n".join(lines)
    fn = aws.client("lambda").get_function(FunctionName="fs-dash-dashboard-api")["Configuration"]
    assert fn["Environment"]["Variables"]["FRAMESIEVE_API_TOKEN"] == TOKEN
    # --no-dashboard leaves it alone
    alone = run_deploy(DeployOptions(stack="fs-dash", template=moto_template, poll_s=0.05, work_dir=tmp_path / "b3",
                                     dashboard=False), out=lambda _: None, session=aws)
    assert alone.dashboard is None


def test_creating_the_dashboard_needs_a_token_and_is_refused_before_uploading(aws, moto_template,
                                                                             moto_dashboard_template, capsys,
                                                                             monkeypatch, tmp_path):
    monkeypatch.delenv("FRAMESIEVE_API_TOKEN", raising=False)
    rc = main(["--stack", "fs-dash-notoken", "--template", str(moto_template), "--region", "us-east-1",
               "--image-uri", IMAGE, "--dashboard", "--dashboard-template", str(moto_dashboard_template)])
    err = capsys.readouterr().err
    assert rc == 2 and "creating the dashboard stack fs-dash-notoken-dashboard needs the API token" in err
    assert "--api-token-file" in err
    names = [s["StackName"] for s in aws.client("cloudformation").list_stacks()["StackSummaries"]]
    assert "fs-dash-notoken" not in names
    rc = main(["--stack", "fs-dash-nowait", "--template", str(moto_template), "--region", "us-east-1",
               "--image-uri", IMAGE, "--dashboard", "--no-wait"])
    assert rc == 2 and "drop --no-wait" in capsys.readouterr().err
    # the cost model's wheels missing from --dashboard-wheels: named, with the command that fetches them, and
    # nothing deployed (no dashboard whose Cost page would answer 501)
    monkeypatch.setenv("FRAMESIEVE_API_TOKEN", TOKEN)
    empty = tmp_path / "wheels"
    empty.mkdir()
    rc = main(["--stack", "fs-dash-nowheels", "--template", str(moto_template), "--region", "us-east-1",
               "--image-uri", IMAGE, "--dashboard", "--dashboard-template", str(moto_dashboard_template),
               "--dashboard-wheels", str(empty)])
    err = capsys.readouterr().err
    assert rc == 2 and f"--dashboard-wheels {empty} has no wheel for python" in err and "pip download" in err
    names = [s["StackName"] for s in aws.client("cloudformation").list_stacks()["StackSummaries"]]
    assert "fs-dash-nowheels" not in names


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
    (["--dashboard", "--api-token-file", "/nonexistent/token"], "--api-token-file /nonexistent/token: No such file"),
    (["--dashboard", "--dashboard-wheels", "/nonexistent/wheels"], "--dashboard-wheels /nonexistent/wheels is not a "
                                                                   "folder"),
    (["--no-dashboard", "--api-token-file", "/nonexistent/token"], "so --api-token-file would do nothing"),
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
