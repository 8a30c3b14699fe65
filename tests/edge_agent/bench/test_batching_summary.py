"""bench-batching's figures land in a bench summary under the keys the cost model reads."""

from __future__ import annotations

import json

import pytest

from costing.summary import load_summary
from edge_agent.bench.batching import write_into_summary

SUMMARY = {"schema": "framesieve.bench/1", "fps": 1.0, "total": {
    "sampled_frames": 80, "escalation_fraction": 0.05, "escalated": 4, "messages": 4, "message_bytes_mean": 28680.0,
    "edge_cpu_s_per_frame": 0.014, "baseline_cpu_s_per_frame": 0.028, "cameras_per_core": 70.0}}


def test_the_largest_windows_images_per_message_are_written_for_the_cost_model(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY))
    rows = [{"window_ms": 0, "escalated": 120, "answered": 120, "messages": 120, "p50_ms": 137.0, "p95_ms": 186.0},
            {"window_ms": 500, "escalated": 120, "answered": 120, "messages": 54, "p50_ms": 610.0, "p95_ms": 1016.0}]
    written = write_into_summary(rows, path)
    assert written["batch_window_ms"] == 500 and written["messages"] == 54
    total = load_summary(path).total
    assert total.images_per_endpoint_call == total.images_per_router_invocation == \
        total.images_per_verdict_message == pytest.approx(2.222)
    assert total.message_bytes_mean == 28680.0  # the rest of the summary as it was


def test_nothing_answered_writes_nothing(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(SUMMARY))
    with pytest.raises(ValueError, match="batch_window_ms 250: no escalation was answered"):
        write_into_summary([{"window_ms": 250, "escalated": 3, "answered": 0, "messages": 0, "p50_ms": None,
                             "p95_ms": None}], path)
    assert json.loads(path.read_text()) == SUMMARY
