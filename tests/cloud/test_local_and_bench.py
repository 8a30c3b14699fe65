"""`framesieve-cloud local` as a real subprocess (moto_server, inference server, router, API on loopback),
one escalation posted to it; and `bench-endpoint` with a tiny budget (no timing asserted)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud.cli import main
from tests.cloud.conftest import escalation_event

ROOT = Path(__file__).resolve().parents[2]


def _request(url: str, method: str = "GET", body: bytes | None = None, token: str = "") -> tuple[int, dict]:
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert m, url
    conn = http.client.HTTPConnection(m[1], int(m[2]), timeout=60)
    headers = {"Content-Type": "application/json"} if body else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, m[3], body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


SERVICES = ("moto_server", "inference", "router", "results API", "mqtt broker")


def start_local(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """`framesieve-cloud local` as a child process, and the URL of every service it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "cloud.cli", "local", "--threads", "2",
                             "--state-dir", str(tmp_path), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError("framesieve-cloud local exited:\n" + "".join(lines))
        lines.append(line)
        if line.startswith("ready"):
            break
    pattern = r"^(" + "|".join(SERVICES) + r")\s+((?:http|mqtt)://\S+)"
    return proc, dict(re.findall(pattern, "".join(lines), re.M))


def stop_local(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, rest
    return rest


@pytest.mark.slow
def test_local_stack_routes_an_escalation_and_stops_on_ctrl_c(teacher_manifest, plaza_crops, tmp_path):
    # with the AWS stack's training sink: Firehose delivery streams (moto's) pack the kept records
    proc, urls = start_local(tmp_path, "--model", str(teacher_manifest), "--gateway", "gw-local=site-1:plaza,gate",
                             "--training-sink", "firehose")
    try:
        assert set(urls) == {"moto_server", "inference", "router", "results API"}, urls
        assert all("127.0.0.1" in u for u in urls.values())

        now = time.time()  # the router keeps created_s only within 5 minutes of when it received the message
        event = escalation_event(plaza_crops, created_s=now)
        for key in ("topic", "thing_name"):
            event.pop(key)
        status, out = _request(urls["router"] + "?thing=gw-local", "POST", json.dumps(event).encode())
        assert status == 200 and out["status"] == "stored", out
        assert out["published_to"] == "framesieve/gw-local/verdicts" and out["calls"]["endpoint_invocations"] == 1
        status, bad = _request(urls["router"], "POST", b"{not json")
        assert status == 422 and bad["status"] == "dead_letter"
        # a thing not given with --gateway, and a camera not registered to gw-local: refused, nothing stored
        for query, body in (("?thing=gw-other", {**event, "message_id": "m-other"}),
                            ("?thing=gw-local", {**event, "message_id": "m-yard", "camera": "yard"})):
            status, refused = _request(urls["router"] + query, "POST", json.dumps(body).encode())
            assert status == 422 and refused["reason"].startswith("unauthorized"), refused

        api = urls["results API"].rsplit("/health", 1)[0]
        path = f"{api}/cameras/plaza/detections?from={now - 1:.3f}&to={now + 1:.3f}"
        assert _request(path)[0] == 401  # the API wants the token the stack wrote for it
        token = (tmp_path / "api-token").read_text().strip()
        assert oct((tmp_path / "api-token").stat().st_mode & 0o777) == "0o600"
        status, page = _request(path, token=token)
        assert status == 200 and [i["message_id"] for i in page["items"]] == [event["message_id"]]
        # the kept record (the student reported nothing the teacher found: a disagreement) went through the
        # training stream and is read back from its packed object
        from cloud.devaws import dev_client
        from contracts.training import read_records

        s3 = dev_client("s3", urls["moto_server"])
        [bucket] = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].endswith("-training")]
        [obj] = s3.list_objects_v2(Bucket=bucket, Prefix="training-packed/training/")["Contents"]
        record = read_records(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())[0]
        assert record.message_id == event["message_id"] and record.camera == "plaza"
    finally:
        rest = stop_local(proc)
    assert "stopping" in rest


@pytest.mark.slow
def test_a_real_gateway_on_mqtt_talks_to_the_local_stack(teacher_manifest, vtest_path, tmp_path):
    """The whole system on one machine: `edge-agent run` (transport mqtt) -> Mosquitto -> the IoT rule
    bridge -> router -> teacher -> results store, and each verdict back to the gateway over the broker."""
    proc, urls = start_local(tmp_path / "cloud", "--model", str(teacher_manifest), "--mqtt",
                             "--gateway", "gw-local=site-local:plaza")
    try:
        broker_port = int(urls["mqtt broker"].rsplit(":", 1)[1])
        config = tmp_path / "gateway.yaml"
        config.write_text(json.dumps({
            "site": "site-local", "student_threads": 1,
            "cameras": [{"id": "plaza", "source": str(vtest_path), "fps": 0.25}],
            "escalation": {"transport": "mqtt", "thing_name": "gw-local", "verdict_timeout_s": 20,
                           "mqtt": {"host": "127.0.0.1", "port": broker_port},
                           "spool": {"path": str(tmp_path / "spool.sqlite")}},
            "output": {"events_db": str(tmp_path / "events.sqlite")},
            "fleet": {"telemetry_interval_s": 0, "models_dir": str(tmp_path / "models")}}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
        run = subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        summary = json.loads(run.stdout[run.stdout.index("{"):])
        total = summary["total"]
        sent = total["escalated"]  # a new camera onboards: the cloud decides every frame with motion
        assert sent >= 5 and total["cloud_failed"] == 0, total
        api = urls["results API"].rsplit("/health", 1)[0]
        token = (tmp_path / "cloud" / "api-token").read_text().strip()
        status, page = _request(f"{api}/cameras/plaza/detections?from=0&to=4102444800&limit=500", token=token)
        assert status == 200 and len(page["items"]) == sent, (len(page["items"]), total)
        assert {i["thing"] for i in page["items"]} == {"gw-local"}
        alerted = [i for i in page["items"] if i["alerts"]]
        assert len(alerted) == 1 and alerted[0]["alerts"] == ["person:person-anywhere"]  # then 300 s cooldown
        time.sleep(2.5)  # the stack reads its alert queue every second
    finally:
        rest = stop_local(proc)
    # the alert SNS delivered, shown by the stack where the user is looking
    assert re.search(r"^alert\s+\S+Z camera plaza \(site site-local, gateway gw-local\): person-anywhere", rest,
                     re.M), rest


@pytest.mark.slow
def test_bench_endpoint_prints_batch_1_and_the_best_batch_side_by_side(teacher_manifest, capsys):
    assert main(["bench-endpoint", "--model", str(teacher_manifest), "--duration", "1.5", "--clients", "2",
                 "--batches", "1,2", "--threads", "1", "--cpu"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and "p50 ms" in out and "p95 ms" in out
    assert re.search(r"^batch 1\s+1\s+1\.00\s+\d", out, re.M), out
    assert re.search(r"^best batch \(2\)\s+2\s", out, re.M), out


def test_bench_endpoint_refuses_bad_options(capsys):
    assert main(["bench-endpoint", "--batches", "1,x"]) == 2
    assert "--batches '1,x'" in capsys.readouterr().err
