"""The template deployed into a real `moto_server` over HTTP on loopback, then each resource looked up through
its own service's API.

moto's CloudFormation cannot create AWS::IoT::TopicRule, Application Auto Scaling targets and policies,
CloudWatch alarms, SNS subscriptions, S3 bucket policies or Lambda event invoke configs: those (and what refers
to them) are stripped first (tests/infra/moto_template.py) and checked by test_template.py and cfn-lint.
moto also accepts but drops some properties (DynamoDB TTL and point-in-time recovery, S3 public access block,
lifecycle and ownership controls, Lambda Architectures): those too are checked on the template, not here.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from typing import Any

import boto3
import pytest

from tests.infra.conditions import stack_for
from tests.infra.iot_policy import THING_VARIABLE
from tests.infra.moto_template import strip_for_moto

pytestmark = pytest.mark.slow  # moto and CloudFormation: seconds per test

STACK = "fs-moto"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/framesieve-teacher:1.0.0"


_SESSION = boto3.session.Session()  # one session: each new one reloads the service models (~0.5 s)


def _client(service: str, url: str) -> Any:
    return _SESSION.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")


PARAMS = {"InferenceImageUri": IMAGE, "ModelDataUrl": "s3://artifacts/model.tar.gz", "LambdaCodeBucket": "artifacts",
          "LambdaCodeKey": "router.zip", "EnableDataCapture": "true"}


def deploy(moto_url: str, raw_template: dict[str, Any], name: str, params: dict[str, str]) -> dict[str, Any]:
    """The stack these parameters make, stripped of what moto cannot create. Conditions are resolved first
    (tests/infra/conditions.py): moto 5.2 mis-evaluates !Condition inside !And and Fn::If around a Lambda's Code,
    creating a resource with no logical id and a function with no configuration."""
    body, removed = strip_for_moto(stack_for(raw_template, params))
    cfn = _client("cloudformation", moto_url)
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(body), Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    described = cfn.describe_stacks(StackName=name)["Stacks"][0]
    summaries = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {"status": described["StackStatus"], "removed": removed,
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
            "physical": {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in summaries}}


@pytest.fixture(scope="module")
def stack(moto_url, raw_template) -> dict[str, Any]:
    s3 = _client("s3", moto_url)
    s3.create_bucket(Bucket="artifacts")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("cloud/__init__.py", "")
    s3.put_object(Bucket="artifacts", Key="router.zip", Body=code.getvalue())
    s3.put_object(Bucket="artifacts", Key="model.tar.gz", Body=b"model")
    return deploy(moto_url, raw_template, STACK, PARAMS)


def test_stack_creates_what_moto_supports(stack, raw_template):
    assert stack["status"] == "CREATE_COMPLETE"
    # the rule is the one part of the hot path moto cannot build; it is stripped, never silently missing
    assert {"EscalationRule", "EndpointScalableTarget", "RouterErrorsAlarm"} <= set(stack["removed"])
    created = set(stack["physical"])
    assert created == set(stack_for(raw_template, PARAMS)["Resources"]) - set(stack["removed"])


def test_router_lambda_is_configured(stack, moto_url):
    fn = _client("lambda", moto_url).get_function(FunctionName=stack["outputs"]["RouterFunctionName"])["Configuration"]
    assert fn["Handler"] == "cloud.router.handler.handler" and fn["Runtime"] == "python3.12"  # moto drops Architectures
    env = fn["Environment"]["Variables"]
    assert env["FRAMESIEVE_STORE"] == "dynamodb://" + stack["outputs"]["ResultsTableName"]
    assert env["FRAMESIEVE_TRAINING_BUCKET"] == stack["outputs"]["TrainingBucketName"]
    assert env["FRAMESIEVE_ALERT_TOPIC_ARN"] == stack["outputs"]["AlertTopicArn"]
    role = fn["Role"].rsplit("/", 1)[1]
    iam = _client("iam", moto_url)
    doc = iam.get_role_policy(RoleName=role, PolicyName="router")["PolicyDocument"]
    doc = ast.literal_eval(doc) if isinstance(doc, str) else doc  # moto returns the dict's repr
    assert {s["Sid"] for s in doc["Statement"]} >= {"AskTheTeacher", "Results", "TrainingData", "Alerts", "Verdicts"}


def test_results_table(stack, moto_url):
    ddb = _client("dynamodb", moto_url)
    name = stack["outputs"]["ResultsTableName"]
    table = ddb.describe_table(TableName=name)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_training_bucket(stack, moto_url):
    s3, bucket = _client("s3", moto_url), stack["outputs"]["TrainingBucketName"]
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_teacher_endpoint(stack, moto_url):
    sm = _client("sagemaker", moto_url)
    endpoint = sm.describe_endpoint(EndpointName=stack["outputs"]["EndpointName"])
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variant = config["ProductionVariants"][0]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == \
        ("AllTraffic", "ml.g4dn.xlarge", 1)
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://artifacts/model.tar.gz"


def _document(value):
    """A policy document as moto returns it: JSON text, a dict, or (moto 5.2.x through CloudFormation)
    the Python repr of the dict."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


def test_iot_policy_thing_type_topics_and_queue(stack, moto_url):
    iot = _client("iot", moto_url)
    policy = iot.get_policy(policyName=f"{STACK}-gateway")
    doc = _document(policy["policyDocument"])
    assert all(THING_VARIABLE in str(s["Resource"]) for s in doc["Statement"])
    assert iot.describe_thing_type(thingTypeName=f"{STACK}-gateway")["thingTypeName"] == f"{STACK}-gateway"
    sns = _client("sns", moto_url)
    alerts = sns.get_topic_attributes(TopicArn=stack["outputs"]["AlertTopicArn"])["Attributes"]
    assert alerts["KmsMasterKeyId"] == "alias/aws/sns"
    sqs = _client("sqs", moto_url)
    attrs = sqs.get_queue_attributes(QueueUrl=stack["outputs"]["DeadLetterQueueUrl"], AttributeNames=["All"])
    assert attrs["Attributes"]["MessageRetentionPeriod"] == "1209600"
    assert _client("cloudwatch", moto_url).get_dashboard(DashboardName=STACK)["DashboardName"] == STACK


def test_training_streams_as_the_template_declares_them_deliver_to_the_stacks_bucket(stack, moto_url, raw_template):
    """moto's CloudFormation has no model for AWS::KinesisFirehose::DeliveryStream (stripped above), but its
    Firehose API does: each stream is created from the template's own properties, with the stack's bucket and
    delivery role, under the name the router's FRAMESIEVE_TRAINING_STREAM gives it; a record put to it lands
    under the packed prefix, where the readers find it."""
    from contracts.training import LIFECYCLES, TrainingCrop, TrainingRecord, read_records, to_line
    from contracts.wire import Crop, DetectionRecord

    assert {"TrainingSetStream", "TrainingAuditStream"} <= set(stack["removed"])
    assert "TrainingStreamRole" in stack["physical"]  # the delivery role is created
    iam, firehose, s3 = _client("iam", moto_url), _client("firehose", moto_url), _client("s3", moto_url)
    role = iam.get_role(RoleName=stack["physical"]["TrainingStreamRole"])["Role"]
    trust = _document(role["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"Service": "firehose.amazonaws.com"}
    bucket = stack["outputs"]["TrainingBucketName"]
    refs = {"TrainingBucket.Arn": f"arn:aws:s3:::{bucket}", "TrainingStreamRole.Arn": role["Arn"]}

    def resolve(node):
        if isinstance(node, dict) and set(node) == {"Fn::GetAtt"}:
            return refs[".".join(node["Fn::GetAtt"])]
        if isinstance(node, dict) and set(node) == {"Fn::Sub"}:
            return node["Fn::Sub"].replace("${AWS::StackName}", STACK)
        if isinstance(node, dict):
            return {k: resolve(v) for k, v in node.items()}
        return node

    for res in stack_for(raw_template, PARAMS)["Resources"].values():
        if res["Type"] == "AWS::KinesisFirehose::DeliveryStream":
            firehose.create_delivery_stream(**resolve(res["Properties"]))
    fn = _client("lambda", moto_url).get_function(FunctionName=stack["outputs"]["RouterFunctionName"])
    env = fn["Configuration"]["Environment"]["Variables"]
    assert env["FRAMESIEVE_TRAINING_SINK"] == "firehose"
    names = {env["FRAMESIEVE_TRAINING_STREAM"].replace("{lifecycle}", life) for life in LIFECYCLES}
    assert names <= set(firehose.list_delivery_streams()["DeliveryStreamNames"])

    crop = TrainingCrop(Crop(0, (0.0, 0.0, 8.0, 8.0), b"\xff\xd8\xff\xe0" + bytes(20), (8, 8)),
                        (DetectionRecord("person", 0.9, (1, 1, 5, 5)),))
    record = TrainingRecord("m-1", "plaza", 1000.0, 1.0, 10, "uncertain", "teacher@1", (crop,), "site", "gw")
    stream = env["FRAMESIEVE_TRAINING_STREAM"].replace("{lifecycle}", "training")
    reply = firehose.put_record_batch(DeliveryStreamName=stream, Records=[{"Data": to_line(record)}])
    assert reply["FailedPutCount"] == 0
    prefix = env["FRAMESIEVE_TRAINING_PACKED_PREFIX"] + "training/"
    [obj] = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
    assert read_records(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()) == [record]
