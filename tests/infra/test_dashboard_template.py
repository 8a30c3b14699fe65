"""The optional dashboard stack (infra/cloudformation/dashboard.yaml), read as data: cfn-lint clean, the rules
feed the ingest handler what it reads, the handlers exist, and the API can only read."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from cloud.stackops import load_template

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "cloudformation" / "dashboard.yaml"


@pytest.fixture(scope="module")
def resources() -> dict:
    return load_template(TEMPLATE)["Resources"]


@pytest.mark.slow
def test_cfn_lint_finds_no_errors_or_warnings():
    from cfnlint.api import ManualArgs, lint_file

    found = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [f"{m.rule.id} line {m.linenumber}: {m.message}" for m in found if m.rule.id[0] in "EW"] == []


def test_handlers_are_the_codes_functions(resources):
    for name in ("IngestFunction", "ApiFunction"):
        module, _, function = resources[name]["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_rules_send_every_gateways_events_and_telemetry_with_thing_and_kind(resources):
    for name, kind in (("EventsRule", "events"), ("TelemetryRule", "telemetry")):
        sql = resources[name]["Properties"]["TopicRulePayload"]["Sql"]
        assert re.fullmatch(rf"SELECT \*, topic\(2\) AS thing_name, topic\(3\) AS kind FROM 'framesieve/\+/{kind}'",
                            sql), sql


def test_the_api_role_only_reads(resources):
    actions = [a for s in resources["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
               for a in s["Action"] if isinstance(s["Action"], list)] + \
        [s["Action"] for s in resources["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
         if isinstance(s["Action"], str)]
    assert actions and all(a.split(":")[1].startswith(("Get", "Query", "Describe", "List")) for a in actions), actions
    # listing is for the packed training records only (the Firehose sink's hour folders)
    [listing] = [s for s in resources["ApiRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                 if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "training-packed/*"}}
