"""The cost model's gateway line at the cameras per core measured for a named stream kind."""

from __future__ import annotations

import json

from edge_agent.cli import main


def _bench(tmp_path, per_core: float):
    t = {"sampled_frames": 1000, "escalation_fraction": 0.05, "escalated": 50, "messages": 50,
         "message_bytes_mean": 60000.0, "edge_cpu_s_per_frame": 0.013, "baseline_cpu_s_per_frame": 0.06,
         "cameras_per_core": per_core, "bytes_sent": 3_000_000, "labels": {}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"schema": "framesieve.bench/1", "fps": 1.0, "total": t, "clips": {}}))
    return path


def test_stream_kind_sets_the_gateway_line(tmp_path, capsys):
    streams = tmp_path / "streams.json"
    streams.write_text(json.dumps({"kinds": {"1080p25-gop4": {"best": {"cameras_per_core": 10.0}}}}))
    bench = _bench(tmp_path, 75.0)
    assert main(["cost", "--bench", str(bench), "--cameras", "1000", "--json"]) == 0
    clips = json.loads(capsys.readouterr().out)
    assert main(["cost", "--bench", str(bench), "--cameras", "1000", "--json", "--stream-kind", "1080p25-gop4",
                 "--gateway-streams", str(streams)]) == 0
    kind = json.loads(capsys.readouterr().out)
    text = json.dumps(kind)
    assert clips != kind and '"cameras_per_gateway": 28' in text  # 10 per core x 4 cores x 0.7
    assert main(["cost", "--bench", str(bench), "--stream-kind", "720p15-gop1", "--gateway-streams",
                 str(streams)]) == 2
    assert "no stream kind '720p15-gop1'" in capsys.readouterr().err
    assert main(["cost", "--bench", str(bench), "--stream-kind", "x", "--gateway-streams",
                 str(tmp_path / "absent.json")]) == 2
    assert "run `edge-agent gateway-capacity` first" in capsys.readouterr().err


def test_stream_kind_takes_the_n_camera_figure_and_says_so(tmp_path, capsys):
    streams = tmp_path / "streams.json"
    many = {"cameras": 8, "cameras_per_core": 20.0, "mean_student_batch": 8.4}
    streams.write_text(json.dumps({"kinds": {"1080p25-gop1": {"best": {"cameras_per_core": 10.0, "mode": "auto"},
                                                              "gateway": {"many": many}}}}))
    bench = _bench(tmp_path, 75.0)
    assert main(["cost", "--bench", str(bench), "--cameras", "1000", "--json", "--stream-kind", "1080p25-gop1",
                 "--gateway-streams", str(streams)]) == 0
    out = capsys.readouterr()
    assert '"cameras_per_gateway": 56' in json.dumps(json.loads(out.out))  # 20 per core x 4 cores x 0.7
    assert "20 cameras per core for 1080p25-gop1, measured with 8 camera(s) in one agent" in out.err
