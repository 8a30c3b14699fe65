"""Landed-video mode in `edge-agent cost`: shown beside the baseline and the gateway mode, each of its figures
recomputed here by hand from the summary and the price file."""

from __future__ import annotations

import json
import math

import yaml

from edge_agent.bench.cost import run_cost_cli
from edge_agent.bench.pricing import DEFAULT_PRICING, load_pricing

HOURS = 730
SUMMARY = {"schema": "framesieve.bench/1", "fps": 1.0, "clips": {}, "total": {
    "sampled_frames": 1000, "escalation_fraction": 0.05, "escalated": 50, "messages": 50, "message_bytes_mean": 30000.0,
    "edge_cpu_s_per_frame": 0.02, "baseline_cpu_s_per_frame": 0.06, "cameras_per_core": 50.0}}


def _cost(tmp_path, capsys, cameras: int, overrides: dict | None = None, as_json: bool = True):
    bench = tmp_path / "summary.json"
    bench.write_text(json.dumps(SUMMARY))
    over = None
    if overrides:
        over = tmp_path / "over.yaml"
        over.write_text(yaml.safe_dump(overrides))
    assert run_cost_cli(bench, cameras, overrides=over, as_json=as_json) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out


def test_the_table_shows_landed_video_beside_the_gateway_mode_and_the_baseline(tmp_path, capsys):
    text = _cost(tmp_path, capsys, 1000, as_json=False)
    table = text[text.index("$ per camera-month"):].splitlines()[:6]
    names = [row[:36].strip() for row in table[1:]]
    assert names == ["baseline, measured teacher", "hybrid, cloud only", "hybrid, all-in",
                     "landed, S3 segments (Lambda)", "landed, KVS streams (Fargate)"]


def test_landed_figures_follow_from_the_inputs(tmp_path, capsys):
    cameras = 1000
    report = _cost(tmp_path, capsys, cameras)
    p = load_pricing()
    lp, frames = p.landed, cameras * 1.0 * HOURS * 3600
    escalations = frames * 0.05
    s3, kvs = report["landed"]
    assert report["hybrid"]["escalations_per_month"] == escalations == s3["escalations_per_month"]
    lines = {i["name"].split(" (")[0] + (" sieve" if "sieve" in i["name"] else ""): i for i in s3["items"]}

    # the sieve Lambda: the pipeline's CPU per frame (the bench's edge figure), the wait per escalation, the start
    segments = frames / lp.segment_s
    kind = next(b["kind"] for b in report["backends"] if b["name"] == report["backend"]["chosen"])
    wait = 0.0 if kind == "lambda" else lp.escalation_wait_s  # the teacher inside: its own line has that time
    seconds = frames * 0.02 + escalations * wait + segments * lp.init_s
    compute = next(i for i in s3["items"] if i["name"].startswith("Lambda compute (sieve"))
    assert math.isclose(compute["quantity"], seconds * lp.lambda_memory_mb / 1024)
    assert math.isclose(compute["usd_per_month"], seconds * 1769 / 1024 * p.lambda_.compute.usd)
    requests = next(i for i in s3["items"] if i["name"].startswith("Lambda requests (sieve"))
    assert math.isclose(requests["usd_per_month"], segments / 1e6 * p.lambda_.requests.usd)
    # no gateway: no IoT line, no router Lambda (the router runs inside the sieve), no data transfer
    assert not [n for n in lines if n.startswith(("IoT", "Gateway", "Data transfer", "Lambda requests (router"))]
    # the teacher backend's own lines are the gateway mode's, for the same escalations
    teacher = [i for i in report["hybrid"]["cloud_items"] if i["name"].startswith("Lambda compute (1769 MB")]
    assert teacher and teacher[0] in s3["items"] and teacher[0] in kvs["items"]
    # frame counts: a write per camera-minute, one more per segment
    counts = next(i for i in s3["items"] if i["name"].startswith("DynamoDB frame counts"))
    assert math.isclose(counts["quantity"], (frames / 60 + segments) * 4 / 1e6)

    # KVS workers: as many cameras each as keep one vCPU 70% busy at 20 ms a frame: 35
    assert kvs["workers"] == math.ceil(cameras / 35) == 29
    vcpu = next(i for i in kvs["items"] if i["name"].startswith("Fargate vCPU"))
    assert math.isclose(vcpu["usd_per_month"], 29 * HOURS * lp.fargate.vcpu.usd)
    images = next(i for i in kvs["items"] if i["name"].startswith("KVS GetImages"))
    assert math.isclose(images["quantity"], frames * lp.kvs.image_bytes / 1024**3)
    for mode in (s3, kvs):
        assert math.isclose(mode["usd_per_month"], sum(i["usd_per_month"] for i in mode["items"]))
        assert math.isclose(mode["usd_per_camera_month"], mode["usd_per_month"] / cameras)


def test_a_measured_sieve_cpu_and_a_heavier_teacher_move_it(tmp_path, capsys):
    base = _cost(tmp_path, capsys, 100)
    measured = _cost(tmp_path, capsys, 100, {"landed": {"cpu_s_per_frame": 0.04, "frame_events": False}})
    line = "Lambda compute (sieve"

    def usd(report, mode):
        return next(i["usd_per_month"] for i in report["landed"][mode]["items"] if i["name"].startswith(line))

    frames = 100 * HOURS * 3600
    assert math.isclose(usd(measured, 0) - usd(base, 0), frames * 0.02 * 1769 / 1024 * 0.0000166667, rel_tol=1e-6)
    assert not [i for i in measured["landed"][0]["items"] if "frame counts" in i["name"]]
    assert measured["landed"][1]["workers"] == math.ceil(100 / 17)  # 0.7 vCPU / 40 ms: 17 cameras a worker


def test_a_price_file_without_the_section_leaves_the_mode_out(tmp_path, capsys):
    raw = yaml.safe_load(DEFAULT_PRICING.read_text())
    del raw["landed"]
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump(raw))
    bench = tmp_path / "summary.json"
    bench.write_text(json.dumps(SUMMARY))
    assert run_cost_cli(bench, 10, pricing=prices) == 0
    assert "landed" not in capsys.readouterr().out
