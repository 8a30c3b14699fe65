"""A slow cloud and the in-flight limit, against the project's own inference server (`framesieve-cloud serve`, a
real process on loopback, held with SIGSTOP as in test_cloud_hang.py while a gateway's escalations pile up).

Small scale: a gateway of 10 live cameras sampling at 2 fps each looks at one frame per camera while the endpoint
does not answer, so 10 escalations are awaited at once: what such a gateway awaits, by Little's law, at 20
frames/s x a 30% escalated share x 1.7 s in the path, inside the design (30%, 2 s). The old fixed limit of 8
decides 2 of them at the edge without asking (cloud_busy); `max_in_flight: auto` (12 for these cameras) awaits all
10, and all 10 are answered by the teacher once the endpoint is back."""

from __future__ import annotations

import logging
import signal
import threading
import time

from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from tests.edge_agent.aws_side import PacedSource, wait_until
from tests.edge_agent.test_cloud_hang import endpoint  # noqa: F401 - the fixture: the real server, its URL

CAMERAS = 10
FPS = 2.0  # declared sampling rate: what auto sizes from (10 x 2 fps x 0.3 x 2 s = 12)


def _run(url: str, proc, frames, tmp_path, max_in_flight: int | str) -> tuple[dict, int]:
    """One gateway run while the endpoint is held: (its summary, the most escalations it awaited at once)."""
    config = AgentConfig.model_validate({
        "cameras": [{"id": f"c{i}", "source": "injected", "fps": FPS} for i in range(CAMERAS)],  # onboarding
        "escalation": {"transport": "url", "url": url, "timeout_s": 30.0, "retries": 1,
                       "breaker": {"enabled": False}, "max_in_flight": max_in_flight},
        "output": {"events_db": str(tmp_path / f"events-{max_in_flight}.sqlite"), "log_frames": False}})
    # one frame per camera, handed out at once, as a live camera's (the loop never waits for the cloud)
    sources = [PacedSource(f"c{i}", frames[3 * i:] + frames[:3 * i], 1, 0.01) for i in range(CAMERAS)]
    agent = Agent(config, sources=sources)
    proc.send_signal(signal.SIGSTOP)  # the endpoint stops answering before the first frame is looked at
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(agent.run()), daemon=True)
    runner.start()
    most = 0

    def all_looked_at() -> bool:
        nonlocal most
        s = agent.summary()
        most = max(most, s["cloud"]["in_flight"])
        return s["cloud"]["in_flight"] + s["total"]["cloud_busy"] >= CAMERAS

    try:
        wait_until(all_looked_at, 60, f"the {CAMERAS} cameras' frames to be escalated or refused")
        time.sleep(0.3)  # nothing more arrives while the endpoint is still held
        most = max(most, agent.summary()["cloud"]["in_flight"])
    finally:
        proc.send_signal(signal.SIGCONT)
    runner.join(60)
    assert not runner.is_alive(), "the agent did not finish once the endpoint answered"
    return result, most


def test_auto_awaits_what_the_old_fixed_8_decided_at_the_edge(endpoint, vtest_frames, tmp_path,  # noqa: F811
                                                                caplog):
    proc, url = endpoint
    caplog.set_level(logging.INFO, logger="edge_agent.app.wiring")
    fixed, fixed_most = _run(url, proc, vtest_frames, tmp_path, 8)
    auto, auto_most = _run(url, proc, vtest_frames, tmp_path, "auto")
    f, a = fixed["total"], auto["total"]
    print(f"\nmax_in_flight 8: awaited {fixed_most} at once, cloud_busy {f['cloud_busy']}, escalated {f['escalated']}"
          f"\nmax_in_flight auto ({auto['cloud']['max_in_flight']}): awaited {auto_most} at once, cloud_busy "
          f"{a['cloud_busy']}, escalated {a['escalated']}")
    assert f["sampled"] == a["sampled"] == CAMERAS
    assert fixed["cloud"]["max_in_flight"] == 8 and not fixed["cloud"]["max_in_flight_auto"]
    assert fixed_most == 8 and f["cloud_busy"] == CAMERAS - 8 and f["escalated"] == 8
    assert auto["cloud"]["max_in_flight"] == 12 and auto["cloud"]["max_in_flight_auto"]
    said = [r.getMessage() for r in caplog.records if "max_in_flight" in r.getMessage()]
    assert said[0].startswith("escalation.max_in_flight 8 for 10 camera(s) at 20 fps in all (set explicitly)")
    assert said[1].startswith("escalation.max_in_flight 12 for 10 camera(s) at 20 fps in all (auto: 12.0 awaited")
    assert auto_most == CAMERAS and a["cloud_busy"] == 0
    assert a["escalated"] == CAMERAS and a["cloud_failed"] == 0  # every one answered by the teacher once back
