"""The dashboard in a real browser (headless Chromium from Debian, through selenium), against
`framesieve-cloud local --mqtt` fed by a real `edge-agent run` on vtest: one browser session checks that
the page loads without console errors, shows the camera and the counts the store holds, reflects a new
escalation within 5 s, shows the specialization steps the agent's loop sent (an attempt and its verdict) on
the Camera page, and that nothing is served without the token. With FRAMESIEVE_DASHBOARD_SHOTS=DIR
it leaves a PNG of every page there; with FRAMESIEVE_DASHBOARD_RUN_S=S as well, the agent plays vtest in real
time, looping, for S seconds before the checks, so the timeline spans minutes (how docs/dashboard-*.png were made:
`FRAMESIEVE_DASHBOARD_SHOTS=docs FRAMESIEVE_DASHBOARD_RUN_S=180 pytest tests/cloud/test_dashboard_browser.py`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cloud.browser import chromium, console_errors, log_in, why_not
from tests.cloud.test_local_and_bench import ROOT, _request, start_local, stop_local

pytestmark = [pytest.mark.slow, pytest.mark.skipif(why_not() is not None, reason=why_not() or "")]


def _run_agent(tmp_path: Path, vtest_path: Path, broker_port: int, run_s: float = 0) -> dict:
    config = tmp_path / "gateway.yaml"
    played = {"realtime": True, "loop": True} if run_s else {}
    config.write_text(json.dumps({
        "site": "site-local", "student_threads": 1,
        "cameras": [{"id": "plaza", "source": str(vtest_path), "fps": 0.5, **played}],
        "escalation": {"transport": "mqtt", "thing_name": "gw-local", "verdict_timeout_s": 20,
                       "mqtt": {"host": "127.0.0.1", "port": broker_port},
                       "spool": {"path": str(tmp_path / "spool.sqlite")}},
        "output": {"events_db": str(tmp_path / "events.sqlite")},
        "fleet": {"telemetry_interval_s": 2, "models_dir": str(tmp_path / "models")},
        # the camera's specialization loop, due after a few records: a real attempt whose verdict, on a few
        # minutes of one camera, is "collect" (too little evidence: nothing is trained)
        "specialization": {"enabled": True, "records_dir": str(tmp_path / "records"), "min_records": 8,
                           "retrain_after_records": 40 if run_s else 8, "check_interval_s": 1}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FRAMESIEVE_"))}
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(config)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if run_s:
        time.sleep(run_s)
        agent.send_signal(signal.SIGINT)  # asked to stop, it finishes what is on its way and prints its summary
    out, err = agent.communicate(timeout=600)
    assert agent.returncode == 0, err[-2000:]
    return json.loads(out[out.index("{"):])["total"]


def _publish_events(broker_port: int, *messages: bytes) -> None:
    """Messages on the gateway's events topic, as it publishes them."""
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-gateway-event")
    client.connect("127.0.0.1", broker_port)
    client.loop_start()
    try:
        for message in messages:
            client.publish("framesieve/gw-local/events", message, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def _publish_escalated_event(broker_port: int) -> None:
    """What a gateway publishes for a frame the cloud decided."""
    from contracts.device import FrameEventMessage

    _publish_events(broker_port, FrameEventMessage(str(uuid.uuid4()), "plaza", 999_999, 0.0, "cloud", True, (),
                                                   time.time(), site="site-local").to_bytes())


def _cell(driver, field: str) -> int:
    from selenium.webdriver.common.by import By

    text = driver.find_element(By.CSS_SELECTOR, f'#cameras tr[data-camera="plaza"] td[data-field="{field}"]').text
    return int(text.replace(",", ""))


def test_the_dashboard_in_chromium_on_a_real_agent_run(teacher_manifest, vtest_path, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("FRAMESIEVE_DASHBOARD_SHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    proc, urls = start_local(tmp_path / "cloud", "--model", str(teacher_manifest), "--mqtt",
                             "--gateway", "gw-local=site-local:plaza")
    driver = None
    try:
        broker_port = int(urls["mqtt broker"].rsplit(":", 1)[1])
        total = _run_agent(tmp_path, vtest_path, broker_port, float(os.environ.get("FRAMESIEVE_DASHBOARD_RUN_S", 0)))
        assert total["escalated"] >= 5, total
        base = urls["results API"].rsplit("/health", 1)[0]
        token = (tmp_path / "cloud" / "api-token").read_text().strip()
        deadline = time.monotonic() + 20  # the last events and telemetry on their way through the bridge
        while True:
            status, fleet = _request(base + "/dashboard/fleet", token=token)
            cams = {c["camera"]: c for c in fleet.get("cameras", [])}
            if "plaza" in cams and cams["plaza"]["hour"]["sampled"] == total["sampled"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200 and cams["plaza"]["hour"]["sampled"] == total["sampled"], (fleet, total)
        assert cams["plaza"]["hour"]["escalated"] == total["escalated"]
        assert fleet["gateways"][0]["thing"] == "gw-local"
        # what the gateway's loop did (its state.json) is what the cloud keeps: an attempt and its verdict each
        gateway_says = json.loads((tmp_path / "models" / "cameras" / "state.json").read_text())["plaza"]["history"]
        while True:
            steps = _request(base + "/dashboard/cameras/plaza", token=token)[1]["specialization"]
            if len(steps) >= 2 * len(gateway_says) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert gateway_says and [h["kind"] for h in steps] == ["collect", "attempt"] * len(gateway_says), steps
        assert [h["reason"] for h in steps[::2]] == [h["why"] for h in reversed(gateway_says)]
        print(f"specialization steps from the agent's loop: {[(h['kind'], h['reason'][:60]) for h in steps]}")

        driver = chromium()
        driver.get(base + "/")
        assert driver.current_url.endswith("/login")  # no token, no dashboard
        log_in(driver, base, token)
        wait = WebDriverWait(driver, 10)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#cameras tr[data-camera="plaza"]'))
        assert _cell(driver, "hour-sampled") == total["sampled"]
        assert _cell(driver, "hour-escalated") == total["escalated"]
        assert _cell(driver, "day-edge") == cams["plaza"]["day"]["edge"]
        driver.save_screenshot(str(shots / "dashboard-fleet.png"))

        _publish_escalated_event(broker_port)
        t0 = time.monotonic()
        WebDriverWait(driver, 5, poll_frequency=0.1).until(
            lambda d: _cell(d, "hour-escalated") == total["escalated"] + 1)
        print(f"a new escalation showed in {time.monotonic() - t0:.1f} s")

        for page, name, ready in (("#/camera/plaza", "camera", "#timeline canvas"), ("#/cost", "cost", "#cost"),
                                  ("#/alerts", "alerts", "#alerts")):
            driver.get(base + "/" + page)
            wait.until(lambda d, css=ready: d.find_elements(By.CSS_SELECTOR, css))
            if name == "camera":  # the escalated crops, drawn from the training capture in S3
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#crops canvas"))
                # the specialization history the agent's loop reported: newest first, kind in words, reason
                rows = driver.find_elements(By.CSS_SELECTOR, "#specialization tbody tr")
                assert [r.get_attribute("data-kind") for r in rows] == [h["kind"] for h in steps]
                cells = rows[0].find_elements(By.TAG_NAME, "td")
                assert cells[1].text.startswith("Collecting evidence") and cells[2].text == gateway_says[-1]["why"]
                assert driver.find_element(By.CSS_SELECTOR, "#specialization caption").text.startswith(
                    "Specialization steps")
                driver.execute_script("document.getElementById('specialization').previousElementSibling.scrollIntoView()")
                time.sleep(0.3)
                driver.save_screenshot(str(shots / "dashboard-camera-history.png"))
                driver.execute_script("window.scrollTo(0, 0)")
                time.sleep(0.5)
            if name == "alerts":  # the alert's frame, opened from the keyboard
                driver.find_element(By.CSS_SELECTOR, "#alerts button[data-key]").send_keys(Keys.ENTER)
                wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts canvas"))
                time.sleep(0.5)
            driver.save_screenshot(str(shots / f"dashboard-{name}.png"))
        assert console_errors(driver) == []

        driver.delete_all_cookies()
        status = driver.execute_async_script(
            "const done = arguments[0]; fetch('/dashboard/fleet').then(r => done(r.status));")
        assert status == 401
    finally:
        if driver is not None:
            driver.quit()
        stop_local(proc)
