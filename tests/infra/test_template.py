"""The CloudFormation template, read as data: cfn-lint, least privilege, and agreement with the code it deploys
(the router's env names, handler and AWS calls; the table layout; the topics the gateway uses).

AWS::IoT::TopicRule cannot be created by moto, so the rule is checked here, by reading it."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from cloud import constants as c
from cloud.deploy import TEMPLATE
from cloud.packaging import LAMBDA_HANDLER
from tests.infra.conditions import stack_for
from tests.infra.iot_policy import THING_VARIABLE, as_list, iot_allowed, iot_arn, matches, pseudo, resolve, statements

# Actions AWS authorises only on Resource "*" (no resource-level permission exists for them).
STAR_ONLY_ACTIONS = {"ecr:GetAuthorizationToken"}
RULE = "framesieve_dev_escalations"


@pytest.mark.slow
def test_cfn_lint_finds_no_errors_or_warnings():
    from cfnlint.api import ManualArgs, lint_file

    matches_ = lint_file(Path(TEMPLATE), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    problems = [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches_ if m.rule.id[0] in "EW"]
    assert problems == []


def _iam_policies(resources: dict[str, Any]):
    for name, res in resources.items():
        if res["Type"] == "AWS::IAM::Role":
            for pol in res["Properties"].get("Policies", []):
                yield f"{name}/{pol['PolicyName']}", pol["PolicyDocument"]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield name, res["Properties"]["PolicyDocument"]


def test_iam_policies_name_actions_and_resources(resources):
    seen = 0
    for where, doc in _iam_policies(resources):
        for st in statements(doc):
            if st["Effect"] != "Allow":
                continue
            seen += 1
            actions = as_list(st["Action"])
            assert not [a for a in actions if "*" in a], f"{where}: wildcard action in {actions}"
            if "*" in as_list(st["Resource"]):
                assert set(actions) <= STAR_ONLY_ACTIONS, f"{where}: Resource '*' for {actions}"
    assert seen >= 10


def _router_dynamodb_actions() -> set[str]:
    """The DynamoDB actions behind the store methods the router calls, read from the source (ast)."""
    router = importlib.import_module("cloud.router")
    used = set()
    for f in Path(router.__file__).parent.glob("*.py"):
        used |= set(re.findall(r"\bstore\.(\w+)\(", f.read_text()))
    tree = ast.parse(Path(importlib.import_module("cloud.stores.dynamodb").__file__).read_text())
    store = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "DynamoDBStore")
    methods = {f.name: f for f in store.body if isinstance(f, ast.FunctionDef)}

    def ops(name: str, seen: set[str]) -> set[str]:
        found: set[str] = set()
        for node in ast.walk(methods[name]):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                attr = node.func.attr
                if attr == "_call" and node.args and isinstance(node.args[0], ast.Constant):
                    found.add(node.args[0].value)
                elif isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "_client":
                    found.add(attr)  # a request made on the client itself (batch_write_item)
                elif attr in methods and attr not in seen:
                    found |= ops(attr, seen | {attr})
        return found

    names = set().union(*(ops(m, {m}) for m in used))
    assert names, f"no DynamoDB calls found behind {used}"
    return {"dynamodb:" + "".join(p.title() for p in op.split("_")) for op in names}


def test_router_role_allows_exactly_the_calls_the_router_makes(resources):
    """The role is derived from the code: every DynamoDB operation the router's store calls issue is allowed,
    and no other (DescribeTable, the results API's health check, is not the router's)."""
    wanted = _router_dynamodb_actions()
    stmts = {st["Sid"]: st for st in statements(resources["RouterRole"]["Properties"]["Policies"][0]["PolicyDocument"])}
    assert {a for a in as_list(stmts["Results"]["Action"])} == wanted
    assert stmts["Results"]["Resource"] == {"Fn::GetAtt": ["ResultsTable", "Arn"]}
    assert stmts["AskTheTeacher"] == {"Sid": "AskTheTeacher", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                                      "Resource": {"Ref": "TeacherEndpoint"}}
    assert stmts["Alerts"]["Resource"] == {"Ref": "AlertTopic"}
    env = resources["RouterFunction"]["Properties"]["Environment"]["Variables"]
    assert stmts["TrainingData"]["Resource"] == {"Fn::Sub": f"${{TrainingBucket.Arn}}/{env[c.TRAINING_PREFIX]}*"}
    verdicts = resolve(stmts["Verdicts"]["Resource"], pseudo())
    assert matches(verdicts, iot_arn("topic", c.DEFAULT_VERDICT_TOPIC.format(thing="gw-1")))
    assert not matches(verdicts, iot_arn("topic", "framesieve/gw-1/escalations"))


def test_router_function_matches_the_code(resources, template):
    props = resources["RouterFunction"]["Properties"]
    module, _, attr = props["Handler"].rpartition(".")
    assert props["Handler"] == LAMBDA_HANDLER and callable(getattr(importlib.import_module(module), attr))
    assert re.fullmatch(r"python3\.1[1-9]", props["Runtime"])
    env = props["Environment"]["Variables"]
    known = {v for k, v in vars(c).items() if k.isupper() and isinstance(v, str) and v.startswith("FRAMESIEVE_")}
    assert set(env) <= known, f"names the router does not read: {set(env) - known}"
    assert env[c.STORE_URL] == {"Fn::Sub": "dynamodb://${ResultsTable}"}
    assert env[c.VERDICT_TOPIC] == c.DEFAULT_VERDICT_TOPIC
    # the router accepts the environment the stack gives it
    from cloud.router.config import RouterConfig

    defaults = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    concrete = {k: v if isinstance(v, str) else v["Fn::Sub"].replace("${AWS::StackName}", "fs")
                if isinstance(v.get("Fn::Sub"), str) and "${AWS::StackName}" in v["Fn::Sub"]
                else defaults.get(v.get("Ref"), "stack-resource") for k, v in env.items()}
    concrete[c.STORE_URL] = "dynamodb://results"
    config = RouterConfig.from_env(concrete)  # the parameter defaults (alert rules included) are accepted
    assert config.rules and config.training_sample_rate == float(defaults["TrainingSampleRate"])
    assert config.training_sink == defaults["TrainingSink"] == "firehose"  # the stack packs records by default
    assert config.endpoint_attempts * float(env[c.ENDPOINT_TIMEOUT_S]) < props["Timeout"]


def test_rule_sql_adds_what_the_router_reads_and_targets_the_router(resources):
    payload = resources["EscalationRule"]["Properties"]["TopicRulePayload"]
    sql = " ".join(payload["Sql"].split())
    assert set(re.findall(r"\bAS (\w+)", sql)) == {*c.RULE_FIELDS, c.EVENT_PAYLOAD}
    assert "encode(*, 'base64') AS payload_b64" in sql  # the message apart from the fields IoT vouches for
    assert "topic() AS topic" in sql and "timestamp() AS received_ms" in sql
    topic_filter = re.search(r"FROM '([^']+)'", sql).group(1)
    assert topic_filter == "framesieve/+/escalations"
    # topic(2) is the thing name: IoT numbers topic levels from 1
    assert "topic(2) AS thing_name" in sql and "framesieve/gw-1/escalations".split("/")[2 - 1] == "gw-1"
    assert payload["Actions"] == [{"Lambda": {"FunctionArn": {"Fn::GetAtt": ["RouterFunction", "Arn"]}}}]
    error = payload["ErrorAction"]["Sqs"]
    assert error["QueueUrl"] == {"Ref": "DeadLetterQueue"}
    assert error["RoleArn"] == {"Fn::GetAtt": ["RuleErrorRole", "Arn"]}
    assert resolve(resources["EscalationRule"]["Properties"]["RuleName"], pseudo()) == RULE
    perm = resources["RouterInvokePermission"]["Properties"]
    assert perm["Principal"] == "iot.amazonaws.com" and perm["SourceArn"] == {"Fn::GetAtt": ["EscalationRule", "Arn"]}
    # and a failed asynchronous invocation is not lost either
    on_failure = resources["RouterInvokeConfig"]["Properties"]["DestinationConfig"]["OnFailure"]
    assert on_failure["Destination"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}


@pytest.fixture(scope="module")
def gateway_policy(resources) -> dict[str, Any]:
    return resolve(resources["GatewayPolicy"]["Properties"]["PolicyDocument"], pseudo())


def test_gateway_policy_is_scoped_to_the_thing(gateway_policy):
    for st in statements(gateway_policy):
        assert set(as_list(st["Action"])) <= {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}
        for res in as_list(st["Resource"]):
            assert THING_VARIABLE in res, f"{st['Sid']}: {res} is not scoped to the connecting thing"
            assert "+" not in res and "#" not in res
            kind = res.split(":", 5)[5].split("/", 1)[0]
            assert kind == {"iot:Connect": "client", "iot:Subscribe": "topicfilter"}.get(st["Action"], "topic")


ME, OTHER = "gw-1", "gw-2"


@pytest.mark.parametrize(("action", "kind", "name", "allowed"), [
    ("iot:Connect", "client", ME, True),
    ("iot:Connect", "client", OTHER, False),
    ("iot:Publish", "topic", f"$aws/rules/{RULE}/framesieve/{ME}/escalations", True),
    ("iot:Publish", "topic", f"framesieve/{ME}/escalations", True),
    ("iot:Publish", "topic", f"framesieve/{ME}/events", True),
    ("iot:Publish", "topic", f"framesieve/{ME}/telemetry", True),
    ("iot:Publish", "topic", f"$aws/things/{ME}/shadow/update", True),
    ("iot:Publish", "topic", f"$aws/things/{ME}/shadow/get", True),
    ("iot:Publish", "topic", f"$aws/things/{ME}/jobs/start-next", True),
    ("iot:Publish", "topic", f"$aws/things/{ME}/jobs/job-42/update", True),
    ("iot:Subscribe", "topicfilter", f"framesieve/{ME}/verdicts", True),
    ("iot:Receive", "topic", f"framesieve/{ME}/verdicts", True),
    ("iot:Subscribe", "topicfilter", f"$aws/things/{ME}/shadow/update/delta", True),
    ("iot:Subscribe", "topicfilter", f"$aws/things/{ME}/jobs/notify-next", True),
    ("iot:Receive", "topic", f"$aws/things/{ME}/jobs/job-42/update/accepted", True),
    # another gateway's topics, shadow and jobs
    ("iot:Publish", "topic", f"framesieve/{OTHER}/escalations", False),
    ("iot:Publish", "topic", f"$aws/rules/{RULE}/framesieve/{OTHER}/escalations", False),
    ("iot:Subscribe", "topicfilter", f"framesieve/{OTHER}/verdicts", False),
    ("iot:Subscribe", "topicfilter", "framesieve/+/verdicts", False),
    ("iot:Subscribe", "topicfilter", "#", False),
    ("iot:Publish", "topic", f"$aws/things/{OTHER}/shadow/update", False),
    ("iot:Receive", "topic", f"$aws/things/{OTHER}/jobs/notify-next", False),
    # what a gateway has no business doing with its own thing
    ("iot:Publish", "topic", f"framesieve/{ME}/verdicts", False),  # forging the cloud's answer
    ("iot:Publish", "topic", f"$aws/things/{ME}/shadow/delete", False),
    ("iot:Publish", "topic", f"$aws/rules/other_rule/framesieve/{ME}/escalations", False),
])
def test_gateway_policy_simulated(gateway_policy, action, kind, name, allowed):
    assert iot_allowed(gateway_policy, action, iot_arn(kind, name), ME) is allowed


def test_gateway_cannot_connect_with_a_certificate_not_attached_to_the_thing(gateway_policy):
    assert not iot_allowed(gateway_policy, "iot:Connect", iot_arn("client", ME), ME, attached=False)


def test_results_table_is_the_layout_the_store_creates(resources):
    """Compare with cloud.stores.dynamodb.create_table's own request (captured, not sent)."""
    from cloud.stores.dynamodb import create_table

    class Capture:
        calls: dict[str, dict] = {}

        def __getattr__(self, op):
            return lambda **kw: self.calls.setdefault(op, kw)

        def get_waiter(self, _name):
            return type("W", (), {"wait": staticmethod(lambda **kw: None)})()

    cap = Capture()
    create_table(cap, "t")
    want, props = cap.calls["create_table"], resources["ResultsTable"]["Properties"]
    for key in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes"):
        assert props[key] == want[key], key
    assert props["TimeToLiveSpecification"] == cap.calls["update_time_to_live"]["TimeToLiveSpecification"]
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert resources["ResultsTable"]["DeletionPolicy"] == "Retain"


def test_training_streams_deliver_where_the_router_and_the_lifecycle_rules_say(resources, raw_template):
    """One delivery stream per lifecycle, named as the router's FRAMESIEVE_TRAINING_STREAM names it, delivering
    gzip to the packed prefix the router, specialization and the dashboard read, where a lifecycle rule of its
    own moves the training set to Glacier Instant Retrieval after 30 days and expires each lifecycle."""
    from contracts.training import LIFECYCLES

    env = resources["RouterFunction"]["Properties"]["Environment"]["Variables"]
    assert env[c.TRAINING_SINK] == {"Ref": "TrainingSink"}
    template, packed = env[c.TRAINING_STREAM]["Fn::Sub"], env[c.TRAINING_PACKED_PREFIX]
    rules = {r["Id"]: r for r in resources["TrainingBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    streams = {r["Properties"]["DeliveryStreamName"]["Fn::Sub"]: r for r in resources.values()
               if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"}
    assert set(streams) == {template.replace("{lifecycle}", life) for life in LIFECYCLES}
    for life in LIFECYCLES:
        s3 = streams[template.replace("{lifecycle}", life)]["Properties"]["ExtendedS3DestinationConfiguration"]
        assert s3["Prefix"] == f"{packed}{life}/" and s3["CompressionFormat"] == "GZIP"
        assert s3["BufferingHints"]["SizeInMBs"] >= 64 and s3["BufferingHints"]["IntervalInSeconds"] == 900
        [rule] = [r for r in rules.values() if r.get("Prefix") == s3["Prefix"]]
        assert rule["ExpirationInDays"] == {"Ref": "TrainingRetentionDays" if life == "training" else "RetentionDays"}
        if life == "training":
            assert rule["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": 30}]
    role = {st["Sid"]: st for st in statements(resources["RouterRole"]["Properties"]["Policies"][0]["PolicyDocument"])}
    put = role["TrainingStreams"]
    assert put["Action"] == "firehose:PutRecordBatch"
    assert put["Resource"]["Fn::Sub"].endswith("deliverystream/${AWS::StackName}-training-*")
    # with TrainingSink s3 the stack has no streams and the router no Firehose permission
    s3_stack = stack_for(raw_template, {"TrainingSink": "s3"})["Resources"]
    assert not [r for r in s3_stack.values() if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"]
    assert "TrainingStreamRole" not in s3_stack


def test_training_bucket_is_private_encrypted_and_expires(resources):
    bucket = resources["TrainingBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    prefix = resources["RouterFunction"]["Properties"]["Environment"]["Variables"][c.TRAINING_PREFIX]
    assert rules["training-data"]["Prefix"] == prefix
    assert rules["training-data"]["Transitions"][0]["StorageClass"] == "STANDARD_IA"
    assert rules["training-data"]["ExpirationInDays"] == {"Ref": "TrainingRetentionDays"}
    assert "AbortIncompleteMultipartUpload" in rules["abort-multipart"]
    tls = statements(resources["TrainingBucketPolicy"]["Properties"]["PolicyDocument"])[0]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_endpoint_autoscales_on_invocations_and_scales_in_when_idle(resources, template, raw_template):
    variant = resources["TeacherEndpointConfig"]["Properties"]["ProductionVariants"][0]
    target = resources["EndpointScalableTarget"]["Properties"]
    assert target["ResourceId"] == {"Fn::Sub": f"endpoint/${{TeacherEndpoint.EndpointName}}/variant/"
                                               f"{variant['VariantName']}"}
    assert (target["MinCapacity"], target["MaxCapacity"]) == ({"Ref": "MinInstances"}, {"Ref": "MaxInstances"})
    assert variant["InitialInstanceCount"] == {"Ref": "MinInstances"}
    tracking = resources["EndpointTargetTracking"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert tracking["ScaleInCooldown"] > tracking["ScaleOutCooldown"]
    idle = resources["EndpointIdleAlarm"]["Properties"]
    assert idle["TreatMissingData"] == "breaching" and idle["AlarmActions"] == [{"Ref": "EndpointIdleScaleIn"}]
    step = resources["EndpointIdleScaleIn"]["Properties"]["StepScalingPolicyConfiguration"]
    assert step["AdjustmentType"] == "ExactCapacity"
    assert step["StepAdjustments"][0]["ScalingAdjustment"] == {"Ref": "MinInstances"}
    assert template["Parameters"]["MinInstances"]["MinValue"] >= 1  # real-time endpoints cannot go to zero
    assert "DataCaptureConfig" not in resources["TeacherEndpointConfig"]["Properties"]  # off by default
    on = stack_for(raw_template, {"EnableDataCapture": "true"})["Resources"]["TeacherEndpointConfig"]["Properties"]
    assert on["DataCaptureConfig"]["DestinationS3Uri"] == {"Fn::Sub": "s3://${TrainingBucket}/data-capture"}


def test_alarms_watch_the_router_the_endpoint_and_the_dead_letters(resources):
    alarms = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    by_metric = {(a["Namespace"], a["MetricName"]): a for a in alarms.values()}
    assert by_metric[("AWS/Lambda", "Errors")]["Dimensions"][0]["Value"] == {"Ref": "RouterFunction"}
    latency = by_metric[("AWS/SageMaker", "ModelLatency")]
    assert latency["ExtendedStatistic"] == "p95" and "000" in latency["Threshold"]["Fn::Sub"][0]  # ms -> us
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in by_metric
    for name, alarm in alarms.items():
        if name != "EndpointIdleAlarm":
            assert alarm["AlarmActions"] == [{"Ref": "OpsTopic"}], name


def test_outputs_give_the_gateway_and_the_dashboard_what_they_need(template):
    outputs = template["Outputs"]
    for key in ("GatewayPolicyName", "GatewayThingType", "EscalationTopic", "VerdictTopic", "EndpointName",
                "ResultsStoreUrl", "TrainingBucketName", "AlertTopicArn", "DeadLetterQueueUrl", "DashboardUrl"):
        assert key in outputs, key
    escalations = resolve(outputs["EscalationTopic"]["Value"], pseudo())
    assert escalations == f"$aws/rules/{RULE}/framesieve/{{thing}}/escalations"
    assert outputs["VerdictTopic"]["Value"] == c.DEFAULT_VERDICT_TOPIC
