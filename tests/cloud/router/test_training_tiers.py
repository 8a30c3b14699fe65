"""Only informative escalations become training records, each tagged with its lifecycle tier; every
escalation still gets its row and its verdict."""

from __future__ import annotations

import pytest

from contracts.training import informative
from contracts.wire import DetectionRecord
from tests.cloud.conftest import escalation_event

T0 = 1_764_400_000.0


def det(label: str, score: float) -> DetectionRecord:
    return DetectionRecord(label, score, (0.0, 0.0, 10.0, 10.0))


@pytest.mark.parametrize("reason, student, teacher, tier", [
    ("onboarding", [det("person", 0.9)], [det("person", 0.9)], "onboarding"),  # a new camera's training set
    ("uncertain", [], [det("person", 0.9)], "disagreement"),  # the student missed it
    ("uncertain", [det("person", 0.4), det("vehicle", 0.3)], [det("person", 0.9)], "disagreement"),
    ("uncertain", [det("person", 0.4)], [det("person", 0.45)], "low_confidence"),  # is anybody there?
    ("uncertain", [det("person", 0.4)], [det("person", 0.9), det("person", 0.3)], ""),  # a faint box beside
    ("audit", [det("person", 0.9)], [det("person", 0.8)], "audit"),
    ("uncertain", [det("person", 0.4)], [det("person", 0.9)], ""),  # agreed, the teacher sure: nothing new
    ("uncertain", [], [], ""),
])
def test_an_escalation_is_kept_only_when_it_teaches_something(reason, student, teacher, tier):
    assert informative(reason, tuple(student), tuple(teacher)) == tier


@pytest.mark.slow
def test_the_router_keeps_a_disagreement_tagged_and_no_agreement(monkeypatch, moto, aws_env, plaza_crops):
    from tests.cloud.conftest import make_stack

    stack = make_stack(monkeypatch, moto, aws_env, FRAMESIEVE_ALERT_RULES="[]")
    s3 = stack.client("s3")
    missed = stack.router.process(escalation_event(plaza_crops, created_s=T0))  # the student saw nothing
    assert missed.status == "stored" and missed.training_key
    tags = s3.get_object_tagging(Bucket=stack.resources.bucket, Key=missed.training_key)["TagSet"]
    assert tags == [{"Key": "tier", "Value": "disagreement"}]
    # the same crops with the student agreeing on the labels, sure of them, and the teacher sure: no object
    [row] = stack.router.store.query_camera("plaza", T0 - 1, T0 + 1).items
    labels = sorted({d.label for d in row.detections})
    teacher_sure = all(max(d.score for d in row.detections if d.label == lb) >= 0.5 for lb in labels)
    agreed = stack.router.process(escalation_event(plaza_crops, created_s=T0 + 5,
                                                   student=tuple(det(lb, 0.9) for lb in labels)))
    assert agreed.status == "stored" and agreed.calls["store_writes"] == 2  # its row is written all the same
    if teacher_sure:
        assert agreed.training_key == "" and agreed.calls["s3_puts"] == 0
        assert stack.training_keys() == [missed.training_key]
    else:  # the teacher unsure of one of them: a hard example, kept in its own tier
        tags = s3.get_object_tagging(Bucket=stack.resources.bucket, Key=agreed.training_key)["TagSet"]
        assert tags == [{"Key": "tier", "Value": "low_confidence"}]


def test_a_bad_keep_setting_is_refused_naming_it():
    from cloud.exceptions import ConfigError
    from cloud.router.config import RouterConfig

    with pytest.raises(ConfigError, match="FRAMESIEVE_TRAINING_KEEP='some'"):
        RouterConfig.from_env({"FRAMESIEVE_TRAINING_KEEP": "some"})
    assert RouterConfig.from_env({}).training_keep == "informative"
