"""Champion/challenger on loopback: two real `framesieve-cloud serve` processes (the teacher at 416 and at 320
input pixels) as the endpoint's production variants, the local stack's router routing real vtest frames to them
by weight through the endpoint stand-in, a share shadowed to the other variant; then `framesieve-cloud ab report`
checked figure by figure against the store's rows (recomputed here from the SQLite file with sqlite3), and
`ab promote` shifting the weights on moto's sagemaker so that the stand-in sends everything to the challenger."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import cv2
import pytest

from cloud.cli import main
from cloud.devaws import free_port
from cloud.local import LocalCloud, LocalOptions
from contracts.wire import Crop, DetectionRecord, EscalationRequest
from models.metrics import wilson_interval

ROOT = Path(__file__).resolve().parents[2]
THING, SITE, CAMERA = "gw-ab", "site-ab", "plaza"
EDGE_LABELS = [(), ("person",), ("person", "vehicle")]  # what the edge decided on its audited frames, in turn


def _serve(variant: str, port: int, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
    return subprocess.Popen([sys.executable, "-m", "cloud.cli", "serve", "--port", str(port), "--threads", "1",
                             "--variant-name", variant, *extra], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _ready(proc: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"serve on {port} did not answer /ping")


@pytest.fixture(scope="module")
def variants(teacher_manifest):
    """The champion (the teacher at its own 416) and the challenger (the same weights at 320), each its own
    `framesieve-cloud serve` process."""
    ports = free_port(), free_port()
    procs = [_serve("champion", ports[0]), _serve("challenger", ports[1], "--input-size", "320")]
    try:
        for proc, port in zip(procs, ports, strict=True):
            _ready(proc, port)
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture()
def ab_stack(variants, tmp_path):
    saved = dict(os.environ)
    options = LocalOptions(store_url=f"sqlite://{tmp_path / 'results.sqlite'}", state_dir=str(tmp_path / "state"),
                           endpoint_url=variants[0], challenger_url=variants[1], challenger_weight=0.5,
                           shadow_share=0.5, champion_instance="ml.g4dn.xlarge", challenger_instance="ml.g4dn.xlarge",
                           gateways=[f"{THING}={SITE}:{CAMERA}"])
    try:
        with LocalCloud(options) as cloud:
            yield cloud, tmp_path / "results.sqlite"
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _escalate(cloud: LocalCloud, frame, k: int) -> dict:
    jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    audit = k % 3 == 0
    edge = EDGE_LABELS[(k // 3) % 3] if audit else ()
    request = EscalationRequest(
        message_id=str(uuid.uuid4()), camera=CAMERA, frame_index=k * 20, pts_s=k * 2.0,
        reason="audit" if audit else "uncertain", crops=(Crop(0, (0.0, 0.0, 768.0, 576.0), jpeg, (768, 576)),),
        site=SITE, created_s=time.time(), student=tuple(DetectionRecord(lb, 0.9, (10.0, 10.0, 60.0, 160.0))
                                                        for lb in edge))
    router = cloud.lines[2].split()[1]
    post = urllib.request.Request(f"{router}?thing={THING}", data=request.to_bytes(), method="POST",
                                  headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(post, timeout=60) as reply:
        return json.loads(reply.read())


def _rows(db: Path) -> list[tuple[str, dict]]:
    with sqlite3.connect(db) as conn:
        return [(v, json.loads(d)) for v, d in conn.execute("SELECT variant, data FROM results")]


def _prop(k: int, n: int) -> dict:
    if n == 0:
        return {"k": 0, "n": 0, "value": None, "ci95": None}
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "value": round(k / n, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def _nearest_rank(values: list[float], q: float) -> float:
    xs = sorted(values)
    return round(xs[math.ceil(len(xs) * q) - 1], 2)


def test_ab_run_on_loopback_report_matches_the_store_and_promote_shifts_the_traffic(
        ab_stack, vtest_every_2s, capsys):
    cloud, db = ab_stack
    frames = vtest_every_2s[:24]
    outcomes = [_escalate(cloud, f, k) for k, f in enumerate(frames)]
    assert [o["status"] for o in outcomes] == ["stored"] * len(frames), outcomes

    rows = _rows(db)
    assert len(rows) == len(frames)
    by_variant = Counter(v for v, _ in rows)
    assert set(by_variant) == {"champion", "challenger"}, by_variant  # both answered at weight 0.5 each
    for column, data in rows:
        assert column == data["variant"]  # the SQLite column and the row's JSON agree
        # each variant is its own server: the model name says which (the challenger is the 320 conversion)
        assert data["model"].startswith("yolov3-tiny-coco-320@" if column == "challenger" else "yolov3-tiny-coco@")
        assert data["endpoint_ms"] > 0
    shadowed = [d for _, d in rows if d["shadow"]]
    assert 0 < len(shadowed) < len(rows)  # share 0.5 by message id
    assert all(d["shadow"]["variant"] != d["variant"] and not d["shadow"]["error"] for d in shadowed)
    for d in shadowed:  # the shadow decides nothing: the row's own detections are the served variant's
        assert d["calls"]["endpoint_invocations"] == 2

    # instance types from the endpoint's config on moto (both ml.g4dn.xlarge), the challenger's overridden: the
    # case of a challenger on CPU instances (moto's sagemaker knows no ml.c6i, so the stack on moto cannot say it)
    assert main(["ab", "report", "--store", f"sqlite://{db}", "--json", "--endpoint", "framesieve-teacher",
                 "--instance", "challenger=ml.c6i.large"]) == 0
    report = json.loads(capsys.readouterr().out)

    # every figure again, independently, from the rows
    assert report["answered"] == len(rows)
    labels = ("person", "vehicle")
    for name in ("champion", "challenger"):
        mine = [d for v, d in rows if v == name]
        got = report["variants"][name]
        assert got["answered"] == len(mine)
        assert got["share"] == _prop(len(mine), len(rows))
        lat = [d["endpoint_ms"] for d in mine]
        assert got["latency_ms"]["p50"]["value"] == _nearest_rank(lat, 0.5)
        assert got["latency_ms"]["p95"]["value"] == _nearest_rank(lat, 0.95)
        assert got["latency_ms"]["p50"]["n"] == len(mine)
        lo, hi = got["latency_ms"]["p50"]["ci95"]
        assert lo <= got["latency_ms"]["p50"]["value"] <= hi
        busy = sum(d["endpoint_ms"] / 1000 / d["call_images"] for d in mine) / len(mine)
        assert all(d["call_images"] == d["crops"] == 1 for d in mine)  # one escalation per call here
        usd_h = {"champion": 0.736, "challenger": 0.119}[name]  # config/pricing.yaml
        assert got["cost_per_image_usd"]["value"] == pytest.approx(busy * usd_h / 3600, rel=1e-4)
        # agreement with audited edge decisions: the served answer, and the shadow's where this variant shadowed
        answers = [({x["label"] for x in d["detections"]}, set(d["edge_labels"])) for d in mine
                   if d["reason"] == "audit"]
        answers += [(set(d["shadow"]["labels"]), set(d["edge_labels"])) for _, d in rows
                    if d["reason"] == "audit" and d["shadow"] and d["shadow"]["variant"] == name]
        assert got["audit"]["rows"] == len(answers)
        assert got["audit"]["all_labels_agree"] == _prop(
            sum(all((lb in s) == (lb in e) for lb in labels) for s, e in answers), len(answers))
        for lb in labels:
            cell = got["audit"]["labels"][lb]
            assert cell["presence_agreement"] == _prop(sum((lb in s) == (lb in e) for s, e in answers), len(answers))
            positives = [s for s, e in answers if lb in e]
            assert cell["edge_confirmed"] == _prop(sum(lb in s for s in positives), len(positives))
        assert got["shadow_answers"] == sum(1 for d in shadowed if d["shadow"]["variant"] == name)
    pairs = report["shadow_pairs"]
    assert pairs["n"] == len(shadowed)
    for lb in labels:
        served = [Counter(x["label"] for x in d["detections"])[lb] for d in shadowed]
        shadow = [d["shadow"]["counts"].get(lb, 0) for d in shadowed]
        assert pairs["labels"][lb]["presence_agreement"] == _prop(
            sum((a > 0) == (b > 0) for a, b in zip(served, shadow, strict=True)), len(shadowed))
        assert pairs["labels"][lb]["count_agreement"] == _prop(
            sum(a == b for a, b in zip(served, shadow, strict=True)), len(shadowed))

    # the text report says the same, with n/a where a denominator is empty
    assert main(["ab", "report", "--store", f"sqlite://{db}", "--instance", "champion=ml.g4dn.xlarge"]) == 0
    text = capsys.readouterr().out
    assert f"answered             {by_variant['champion']} = " in text
    assert "n/a (instance type unknown" in text  # the challenger's type was not given this time

    # a variant the endpoint does not have: named with the ones it has, exit 2, the weights untouched
    assert main(["ab", "promote", "challenjer", "--endpoint", "framesieve-teacher", "--poll-s", "0.1"]) == 2
    assert "variant 'challenjer' is not on the endpoint; its variants: ['challenger', 'champion']" in \
        capsys.readouterr().err
    # promote: the challenger takes all the traffic (UpdateEndpointWeightsAndCapacities on moto's sagemaker)
    assert main(["ab", "promote", "challenger", "--endpoint", "framesieve-teacher", "--poll-s", "0.1"]) == 0
    assert "weights challenger 0.5, champion 0.5 -> challenger 1, champion 0" in capsys.readouterr().out
    from cloud.devaws import dev_client

    described = dev_client("sagemaker", cloud.moto.url).describe_endpoint(EndpointName="framesieve-teacher")
    assert {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]} == \
        {"champion": 0.0, "challenger": 1.0}
    time.sleep(1.1)  # the stand-in re-reads the endpoint's weights at most once a second
    before = {d["message_id"] for _, d in rows}
    for k, frame in enumerate(vtest_every_2s[24:30]):
        _escalate(cloud, frame, 1 + 3 * k)  # not audits
    after = [(v, d) for v, d in _rows(db) if d["message_id"] not in before]
    assert len(after) == 6 and {v for v, _ in after} == {"challenger"}


def test_empty_denominators_are_na_not_zero():
    from cloud.ab.report import build_report, render
    from cloud.stores import ResultRecord, StoredDetection

    rows = [ResultRecord(f"m{k}", CAMERA, 1_764_400_000.0 + k, variant="champion", endpoint_ms=40.0 + k, crops=1,
                         detections=(StoredDetection("person", 0.9, (0.0, 0.0, 9.0, 9.0), 0),)) for k in range(5)]
    report = build_report(rows)  # no audit rows, no shadowed pairs, no price
    got = report["variants"]["champion"]
    assert got["answered"] == 5 and got["share"] == _prop(5, 5)
    assert got["audit"]["rows"] == 0 and got["audit"]["labels"]["person"]["presence_agreement"]["value"] is None
    assert got["cost_per_image_usd"]["value"] is None and report["shadow_pairs"]["n"] == 0
    assert got["latency_ms"]["p50"]["value"] == 42.0
    text = render(report)
    assert "all labels agree     n/a (0/0)" in text and "person               presence n/a (0/0)" in text
    assert "n/a (instance type unknown" in text
