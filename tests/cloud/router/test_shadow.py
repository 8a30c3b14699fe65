"""The shadow call decides nothing: with the challenger down, every escalation is still answered, alerted and
stored from the served variant, and the failed shadow is recorded in the row. Sampling by message id is
stable and near its share; the router refuses a shadow share without two variants."""

from __future__ import annotations

import uuid

import pytest

from cloud import constants as c
from cloud.ab.standin import Variant
from cloud.ab.standin import start_in_thread as start_standin
from cloud.devaws import free_port
from cloud.exceptions import ConfigError
from cloud.router.config import RouterConfig
from cloud.router.shadow import shadowed
from tests.cloud.conftest import CAMERA, escalation_event, make_stack


def test_a_failing_shadow_changes_nothing_but_its_own_record(monkeypatch, moto, aws_env, teacher_endpoint,
                                                             plaza_crops):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the challenger is down
    standin = start_standin("framesieve-teacher", [Variant("champion", teacher_endpoint, 1.0),
                                                   Variant("challenger", dead, 0.0)])
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", standin.url)
        stack = make_stack(monkeypatch, moto, aws_env, **{c.AB_VARIANTS: "champion,challenger", c.SHADOW_SHARE: "1"})
        try:
            event = escalation_event(plaza_crops, message_id=str(uuid.uuid4()))
            outcome = stack.router.process(event)
            assert outcome.status == "stored" and outcome.alerts == ["person:any-person"], outcome
            row = stack.router.store.get_result(CAMERA, event["created_s"], event["message_id"])
            assert row.variant == "champion" and {d.label for d in row.detections} >= {"person"}
            assert row.shadow is not None and row.shadow.variant == "challenger" and not row.shadow.labels
            assert "does not answer" in row.shadow.error  # the stand-in's 503, one attempt, not retried
            assert standin.targeted == {"challenger": 1} and standin.answered == {"champion": 1}
            assert [a["message_id"] for a in stack.alerts(wait_s=1)] == [event["message_id"]]
        finally:
            stack.router.store.close()
    finally:
        standin.stop()


def test_shadow_sampling_is_by_message_id_and_near_its_share():
    ids = [f"m-{k}" for k in range(4000)]
    picked = [m for m in ids if shadowed(m, 0.25)]
    assert 0.22 < len(picked) / len(ids) < 0.28
    assert picked == [m for m in ids if shadowed(m, 0.25)]  # a redelivery decides the same way
    assert not any(shadowed(m, 0) for m in ids[:100]) and all(shadowed(m, 1) for m in ids[:100])


@pytest.mark.parametrize("env, needle", [
    ({c.SHADOW_SHARE: "0.1"}, "needs two production variants"),
    ({c.AB_VARIANTS: "champion,champion"}, "distinct production variant names"),
    ({c.AB_VARIANTS: "champ ion,x"}, "distinct production variant names"),
    ({c.AB_VARIANTS: "a,b", c.SHADOW_SHARE: "2"}, "expected a number in [0, 1]"),
])
def test_bad_variant_settings_are_refused_with_the_fix(env, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        RouterConfig.from_env(env)
