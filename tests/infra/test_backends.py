"""TeacherBackend: the stack deploys whichever backend `framesieve-cloud plan` chooses. Read per backend with the
conditions resolved, then the parts moto can create deployed into moto_server for the lambda and serverless ones."""

from __future__ import annotations

import pytest
import yaml

from costing.pricing import DEFAULT_PRICING
from tests.infra.conditions import stack_for
from tests.infra.iot_policy import statements
from tests.infra.test_stack_on_moto import IMAGE, PARAMS, _client, deploy

SAGEMAKER = {"TeacherModel", "TeacherEndpointConfig", "TeacherEndpoint", "EndpointRole"}
LAMBDA_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/framesieve-router-teacher:1.0.0"


def _router_sids(resources) -> set[str]:
    return {st["Sid"] for st in statements(resources["RouterRole"]["Properties"]["Policies"][0]["PolicyDocument"])}


def test_lambda_backend_runs_the_teacher_in_the_router_and_creates_no_sagemaker(raw_template):
    r = stack_for(raw_template, {"TeacherBackend": "lambda", "LambdaImageUri": LAMBDA_IMAGE})["Resources"]
    assert not SAGEMAKER & set(r) and not any(k.startswith(("Endpoint", "Async")) for k in r)
    fn = r["RouterFunction"]["Properties"]
    assert fn["PackageType"] == "Image" and fn["Code"] == {"ImageUri": {"Ref": "LambdaImageUri"}}
    assert fn["ImageConfig"]["Command"] == ["cloud.lambda_teacher.handler.handler"]
    assert "Runtime" not in fn and "Handler" not in fn and fn["Architectures"] == ["x86_64"]
    assert fn["MemorySize"] == {"Ref": "LambdaMemoryMb"}
    assert fn["Environment"]["Variables"]["FRAMESIEVE_TEACHER_THREADS"] == "1"
    assert "AskTheTeacher" not in _router_sids(r)  # no endpoint to call, so no permission to


def test_serverless_backend_has_no_instances_no_scaling_no_capture(raw_template):
    r = stack_for(raw_template, {"TeacherBackend": "serverless", "EnableDataCapture": "true"})["Resources"]
    variant = r["TeacherEndpointConfig"]["Properties"]["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": {"Ref": "ServerlessMemoryMb"},
                                           "MaxConcurrency": {"Ref": "ServerlessMaxConcurrency"}}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "DataCaptureConfig" not in r["TeacherEndpointConfig"]["Properties"]  # not supported there
    assert "EndpointScalableTarget" not in r and r["RouterFunction"]["Properties"]["PackageType"] == "Zip"


def test_async_backend_scales_to_zero_and_back(raw_template):
    r = stack_for(raw_template, {"TeacherBackend": "async"})["Resources"]
    assert r["EndpointScalableTarget"]["Properties"]["MinCapacity"] == 0
    assert "EndpointIdleAlarm" not in r and "EndpointTargetTracking" not in r  # the real-time policies
    tracking = r["AsyncBacklogTracking"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
    alarm = r["AsyncBacklogWithoutCapacityAlarm"]["Properties"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity" and alarm["AlarmActions"] == [
        {"Ref": "AsyncScaleFromZero"}]
    out = r["TeacherEndpointConfig"]["Properties"]["AsyncInferenceConfig"]["OutputConfig"]
    assert out["NotificationConfig"]["SuccessTopic"] == {"Ref": "AsyncResultTopic"}
    assert {"AsyncPayloads", "AskTheTeacher"} <= _router_sids(r)
    endpoint_sids = {st["Sid"] for st in statements(r["EndpointRole"]["Properties"]["Policies"][0]["PolicyDocument"])}
    assert {"AsyncPayloads", "AsyncNotifications"} <= endpoint_sids


def test_every_planner_option_names_parameters_the_template_accepts(raw_template):
    """What `framesieve-cloud plan` chooses can be deployed as it says (--param KEY=VALUE)."""
    import re

    params = raw_template["Parameters"]
    options = yaml.safe_load(DEFAULT_PRICING.read_text())["backends"]["options"]
    kinds = set()
    for name, option in options.items():
        for key, value in option["stack"].items():
            assert key in params, f"{name}: {key} is not a template parameter"
            spec = params[key]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], f"{name}: {key}={value}"
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), f"{name}: {key}={value}"
            if spec["Type"] == "Number":
                assert spec.get("MinValue", -1e18) <= float(value) <= spec.get("MaxValue", 1e18), f"{name}: {key}"
        kinds.add(option["stack"]["TeacherBackend"])
        if option["kind"] in ("realtime", "async"):
            assert option["stack"]["InstanceType"] == option["instance"]["type"]
    assert kinds == set(params["TeacherBackend"]["AllowedValues"])


@pytest.mark.slow
def test_lambda_and_serverless_stacks_on_moto(moto_url, raw_template):
    s3 = _client("s3", moto_url)
    s3.create_bucket(Bucket="artifacts")
    lam = deploy(moto_url, raw_template, "fs-lambda", {"TeacherBackend": "lambda", "LambdaImageUri": LAMBDA_IMAGE,
                                                       "InferenceImageUri": "", "ModelDataUrl": "",
                                                       "LambdaCodeBucket": "artifacts", "LambdaCodeKey": "unused.zip"})
    assert lam["status"] == "CREATE_COMPLETE" and not SAGEMAKER & set(lam["physical"])
    assert "EndpointName" not in lam["outputs"] and lam["outputs"]["TeacherBackend"] == "lambda"
    fn = _client("lambda", moto_url).get_function(FunctionName=lam["outputs"]["RouterFunctionName"])
    # moto's CloudFormation drops PackageType and ImageConfig (read on the template above); the image is kept
    assert fn["Code"]["ImageUri"] == LAMBDA_IMAGE and not fn["Configuration"].get("Runtime")
    assert fn["Configuration"]["MemorySize"] == 1769

    s3.put_object(Bucket="artifacts", Key="router.zip", Body=b"PK")
    s3.put_object(Bucket="artifacts", Key="model.tar.gz", Body=b"model")
    sl = deploy(moto_url, raw_template, "fs-serverless", {**PARAMS, "TeacherBackend": "serverless",
                                                          "ServerlessMemoryMb": "3072"})
    assert sl["status"] == "CREATE_COMPLETE"
    sm = _client("sagemaker", moto_url)
    endpoint = sm.describe_endpoint(EndpointName=sl["outputs"]["EndpointName"])
    variant = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 20}
    assert "InstanceType" not in variant
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE
