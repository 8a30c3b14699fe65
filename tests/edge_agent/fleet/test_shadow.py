"""The device shadow over a real broker, answered by a responder that speaks the documented protocol:
desired config applied live without a restart, invalid desired state rejected and reported with the
last good config kept, reported state catching up so the delta empties."""

from __future__ import annotations

import threading

import pytest

from contracts.jobs import Bands
from edge_agent.app import Agent
from edge_agent.config import CascadeSettings
from edge_agent.fleet.shadow import InvalidDesired, replace_patch, resolve
from tests.edge_agent.aws_side import CloudResponder, PacedSource, ShadowService, _delta, wait_until
from tests.edge_agent.conftest import agent_config, default_student_version

BASES = {"a": {"fps": 1.0, "cascade": {"budget_per_hour": 100}}, "b": {"fps": 1.0}}


@pytest.mark.parametrize(("desired", "error"), [
    ({"cameras": {"a": {"fps": 0}}}, "desired.cameras.a.fps"),
    ({"defaults": {"cascade": {"labels": {"person": {"accept": 0.2, "reject": 0.5}}}}},
     "reject (0.5) must be below accept (0.2)"),
    ({"cameras": {"zz": {"fps": 2}}}, "unknown camera ids ['zz']"),
    ({"cameras": {"a": {"colour": "red"}}}, "desired.cameras.a.colour"),
    ({"fps": 2}, "desired.fps"),
    ({"defaults": {"motion": {"threshold": 999}}}, "desired.defaults.motion.threshold"),
])
def test_invalid_desired_states_are_named(desired, error):
    with pytest.raises(InvalidDesired, match=error.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve(BASES, desired)


def test_desired_merges_defaults_then_camera_and_null_removes():
    out = resolve(BASES, {"defaults": {"fps": 3}, "cameras": {"b": {"fps": 5}}})
    assert (out["a"].fps, out["b"].fps, out["a"].cascade.budget_per_hour) == (3, 5, 100)
    assert resolve(BASES, {"defaults": {"fps": None}})["a"].fps == 1.0
    assert replace_patch({"x": 1, "y": {"z": 1, "w": 2}}, {"y": {"z": 3}}) == {"x": None, "y": {"z": 3, "w": None}}


def test_shadow_config_applied_live_and_bad_desired_state_rejected(broker, vtest_frames, tmp_path):
    thing = "gw-shadow"
    shadow = ShadowService(broker.port, thing)
    cloud = CloudResponder(broker.port, client_id="cloud-shadow")  # answers the audit escalations at once
    shadow.set_desired({"defaults": {"fps": 2.0}})  # set while the gateway was offline: arrives through get
    cameras = [{"id": "cam", "source": "x", "cascade": {"audit_fraction": 1.0}}, {"id": "cam2", "source": "y"}]
    sources = [PacedSource("cam", vtest_frames, 10_000, 0.05), PacedSource("cam2", vtest_frames, 10_000, 0.05)]
    agent = Agent(agent_config(tmp_path, broker.port, thing=thing, cameras=cameras),
                  sources=sources)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    cam, cam2 = agent.cameras["cam"], agent.cameras["cam2"]
    try:
        wait_until(lambda: cam.config.fps == 2.0 and cam2.config.fps == 2.0, 10, "the offline change")
        assert sources[0].fps == 2.0  # the running source samples at the new rate
        wait_until(lambda: shadow.reported.get("defaults") == {"fps": 2.0}, 10, "the reported state")
        assert shadow.reported["agent_version"] and shadow.reported["model_version"] == default_student_version()
        assert shadow.reported["health"]["status"] == "ok"

        sampled = cam.counters.sampled
        shadow.set_desired({"cameras": {"cam": {"cascade": {"labels": {"person": {"accept": 0.8, "reject": 0.3}},
                                                            "budget_per_hour": 10},
                                                "motion": {"threshold": 40}}}})
        wait_until(lambda: cam.cascade.bands.get("person") == Bands(accept=0.8, reject=0.3), 10, "the live change")
        assert cam.cascade.budget.per_hour == 10 and cam.gate.config.threshold == 40
        assert cam2.cascade.bands["person"] == CascadeSettings().labels["person"]  # the other camera kept its own
        wait_until(lambda: not _delta(shadow.desired, shadow.reported), 10, "the delta to empty")
        wait_until(lambda: cam.counters.sampled > sampled, 10, "frames under the new settings")
        assert thread.is_alive()  # no restart

        for bad, reason, undo in (
                ({"cameras": {"cam": {"fps": 0}}}, "desired.cameras.cam.fps", {"cameras": {"cam": {"fps": None}}}),
                ({"defaults": {"tracker": {"iou": 5}}}, "defaults.tracker.iou", {"defaults": {"tracker": None}}),
                ({"cameras": {"ghost": {"fps": 1}}}, "unknown camera ids", {"cameras": {"ghost": None}})):
            version = shadow.set_desired(bad)
            wait_until(lambda v=version: (shadow.reported.get("config_error") or {}).get("version") == v, 10,
                       f"the rejection of {bad}")
            assert reason in shadow.reported["config_error"]["reason"]
            shadow.set_desired(undo)  # the operator takes the bad change back
        # the last good config is kept
        assert (cam.config.fps, cam.cascade.bands["person"]) == (2.0, Bands(accept=0.8, reject=0.3))

        shadow.set_desired({"defaults": {"fps": None}, "model_version": "9.9.9"})
        wait_until(lambda: cam.config.fps == 1.0, 10, "the override to go")
        # it reports "switching to model 9.9.9" first, then that a job must bring the model: wait for the latter
        wait_until(lambda: "send a model-update job" in (shadow.reported.get("model_status") or ""), 10,
                   "the model status")
        assert "send a model-update job" in shadow.reported["model_status"]
        assert shadow.reported.get("config_error") is None  # reported null: the key is gone
    finally:
        agent.stop()
        thread.join(30)
        shadow.close()
        cloud.close()
    assert agent.errors == 0
