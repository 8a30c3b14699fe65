"""Prometheus metrics over real HTTP, from a running agent."""

import threading
import time
import urllib.request

from edge_agent.app import Agent
from edge_agent.config import AgentConfig
from edge_agent.metrics import render


def test_render_is_prometheus_text_per_camera():
    text = render({"cameras": {"a": {"sampled": 3, "escalated": 1}, "b": {"sampled": 5}}, "errors": 2})
    assert '# TYPE framesieve_sampled_total counter' in text
    assert 'framesieve_sampled_total{camera="a"} 3' in text and 'framesieve_sampled_total{camera="b"} 5' in text
    assert 'framesieve_escalated_total{camera="b"} 0' in text
    assert text.endswith("framesieve_errors_total 2\n")
    assert "framesieve_student_rollbacks_total 0" in text and "framesieve_own_student" not in text


def test_render_shows_per_camera_students_and_the_specialization_loop():
    text = render({"cameras": {"a": {}, "b": {}}, "student_rollbacks": 1,
                   "students": {"a": {"own": "1.0.0+a.1", "uncertain_fraction": 0.04},
                                "b": {"own": None, "uncertain_fraction": None, "onboarding": True}},
                   "specialization": {"runs": 3, "promotions": 1,
                                      "cameras": {"a": {"records": 250}, "b": {"records": 12}}}})
    assert 'framesieve_own_student{camera="a"} 1' in text and 'framesieve_own_student{camera="b"} 0' in text
    assert 'framesieve_onboarding{camera="a"} 0' in text and 'framesieve_onboarding{camera="b"} 1' in text
    assert 'framesieve_uncertain_fraction{camera="a"} 0.0400' in text and 'uncertain_fraction{camera="b"}' not in text
    assert "framesieve_specialization_runs_total 3" in text and "framesieve_specialization_promotions_total 1" in text
    assert 'framesieve_training_records{camera="a"} 250' in text
    assert "framesieve_student_rollbacks_total 1" in text


def test_running_agent_serves_its_counters(vtest_path, tmp_path):
    config = AgentConfig.model_validate({
        "cameras": [{"id": "plaza", "source": str(vtest_path), "fps": 10}],
        "escalation": {"transport": "none"}, "output": {"metrics_port": 0}})
    agent = Agent(config, events_db=tmp_path / "e.sqlite")
    runner = threading.Thread(target=agent.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while agent.metrics_server is None and time.monotonic() < deadline:
            time.sleep(0.05)
        port = agent.metrics_server.server_address[1]
        sampled = 0
        while sampled < 5 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                body = reply.read().decode()
            sampled = int(next(ln for ln in body.splitlines() if ln.startswith("framesieve_sampled_total")).split()[-1])
            time.sleep(0.1)
        assert sampled >= 5
    finally:
        agent.stop()
        runner.join(30)
    assert not runner.is_alive()
