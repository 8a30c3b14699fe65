"""Champion/challenger in the stack: with ChallengerModelDataUrl the endpoint has two production variants by weight,
the router is told their names and the shadow share, the endpoint role may read the challenger's artifact; without
it the stack is as before (one AllTraffic variant, no variant settings for the router). Then the challenger stack
deployed into moto_server and `framesieve-cloud ab promote` run against the endpoint CloudFormation made."""

from __future__ import annotations

import pytest

from cloud import constants as c
from cloud.cli import main
from tests.infra.conditions import stack_for
from tests.infra.iot_policy import statements
from tests.infra.test_stack_on_moto import IMAGE, PARAMS, _client, deploy

CHALLENGER = {"ChallengerModelDataUrl": "s3://artifacts/challenger.tar.gz", "ChallengerInstanceType": "ml.c5.xlarge",
              "ChallengerWeight": "0.25", "ShadowShare": "0.05"}


def _endpoint_sids(resources) -> dict:
    document = resources["EndpointRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    return {st["Sid"]: st for st in statements(document)}


def test_a_challenger_makes_two_weighted_variants_and_tells_the_router(raw_template):
    r = stack_for(raw_template, {**PARAMS, **CHALLENGER})["Resources"]
    champion, challenger = r["TeacherEndpointConfig"]["Properties"]["ProductionVariants"]
    assert (champion["VariantName"], champion["InitialVariantWeight"]) == ("champion", 1)
    assert champion["ModelName"] == {"Fn::GetAtt": ["TeacherModel", "ModelName"]}
    assert challenger == {"VariantName": "challenger", "ModelName": {"Fn::GetAtt": ["ChallengerModel", "ModelName"]},
                          "InstanceType": {"Ref": "ChallengerInstanceType"}, "InitialInstanceCount": 1,
                          "InitialVariantWeight": {"Ref": "ChallengerWeight"}}
    assert r["ChallengerModel"]["Properties"]["PrimaryContainer"] == {
        "Image": {"Ref": "InferenceImageUri"}, "ModelDataUrl": {"Fn::Sub": "${ChallengerModelDataUrl}"}}
    env = r["RouterFunction"]["Properties"]["Environment"]["Variables"]
    assert env[c.AB_VARIANTS] == "champion,challenger" and env[c.SHADOW_SHARE] == {"Ref": "ShadowShare"}
    from cloud.router.config import RouterConfig

    config = RouterConfig.from_env({c.AB_VARIANTS: env[c.AB_VARIANTS], c.SHADOW_SHARE: CHALLENGER["ShadowShare"]})
    assert config.ab_variants == ("champion", "challenger") and config.shadow_share == 0.05
    assert "ChallengerArtifact" in _endpoint_sids(r) and "PullChallengerImage" not in _endpoint_sids(r)
    # each variant scales on its own; the champion's target, alarms and dashboard name it
    assert r["EndpointScalableTarget"]["Properties"]["ResourceId"]["Fn::Sub"].endswith("/variant/champion")
    assert r["ChallengerScalableTarget"]["Properties"]["ResourceId"]["Fn::Sub"].endswith("/variant/challenger")
    assert {"Name": "VariantName", "Value": "champion"} in r["EndpointLatencyAlarm"]["Properties"]["Dimensions"]

    own = stack_for(raw_template, {**PARAMS, **CHALLENGER, "ChallengerImageUri": IMAGE.replace(":1.0.0", ":2.0.0"),
                                   "ChallengerInstanceType": ""})["Resources"]
    assert own["ChallengerModel"]["Properties"]["PrimaryContainer"]["Image"] == {"Fn::Sub": "${ChallengerImageUri}"}
    assert own["TeacherEndpointConfig"]["Properties"]["ProductionVariants"][1]["InstanceType"] == {
        "Ref": "InstanceType"}
    assert "PullChallengerImage" in _endpoint_sids(own)


def test_without_a_challenger_the_stack_is_one_variant_and_other_backends_ignore_it(raw_template):
    r = stack_for(raw_template, PARAMS)["Resources"]
    [variant] = r["TeacherEndpointConfig"]["Properties"]["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and "ChallengerModel" not in r
    assert c.AB_VARIANTS not in r["RouterFunction"]["Properties"]["Environment"]["Variables"]
    serverless = stack_for(raw_template, {**PARAMS, **CHALLENGER, "TeacherBackend": "serverless"})["Resources"]
    variants = serverless["TeacherEndpointConfig"]["Properties"]["ProductionVariants"]
    assert [v["VariantName"] for v in variants] == ["champion", "challenger"]
    assert all("InstanceType" not in v and "ServerlessConfig" in v for v in variants)
    assert "ChallengerScalableTarget" not in serverless  # serverless scales itself
    # the async and lambda backends have no second variant (the stack's Rules refuse the combination)
    for backend in ("async", "lambda"):
        got = stack_for(raw_template, {**PARAMS, **CHALLENGER, "TeacherBackend": backend})["Resources"]
        assert "ChallengerModel" not in got
    rule = raw_template["Rules"]["ChallengerNeedsSyncEndpoint"]
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ChallengerModelDataUrl"}, ""]}]}


@pytest.mark.slow
def test_challenger_stack_on_moto_and_ab_promote_shifts_its_weights(moto_url, raw_template, monkeypatch, capsys):
    s3 = _client("s3", moto_url)
    s3.create_bucket(Bucket="artifacts")
    for key in ("router.zip", "model.tar.gz", "challenger.tar.gz"):
        s3.put_object(Bucket="artifacts", Key=key, Body=b"x")
    made = deploy(moto_url, raw_template, "fs-ab", {**PARAMS, **CHALLENGER})
    assert made["status"] == "CREATE_COMPLETE"
    assert made["outputs"]["ProductionVariants"] == "champion,challenger"
    endpoint = made["outputs"]["EndpointName"]
    sm = _client("sagemaker", moto_url)
    config = sm.describe_endpoint_config(EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)[
        "EndpointConfigName"])
    assert {v["VariantName"]: (v["InstanceType"], v["InitialVariantWeight"]) for v in config["ProductionVariants"]} \
        == {"champion": ("ml.g4dn.xlarge", 1.0), "challenger": ("ml.c5.xlarge", 0.25)}

    for key, value in {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    assert main(["ab", "promote", "challenger", "--endpoint", endpoint, "--share", "0.5", "--poll-s", "0.1"]) == 0
    # the champion held 1 of 1.25: the challenger now gets half, the champion the other half
    assert "weights challenger 0.25, champion 1 -> challenger 0.5, champion 0.5" in capsys.readouterr().out
    weights = {v["VariantName"]: v["CurrentWeight"] for v in sm.describe_endpoint(EndpointName=endpoint)[
        "ProductionVariants"]}
    assert weights == {"champion": 0.5, "challenger": 0.5}
    assert main(["ab", "promote", "nobody", "--endpoint", endpoint]) == 2  # named, refused, nothing changed
    assert "variant 'nobody' is not on the endpoint" in capsys.readouterr().err
