"""`edge-agent provision` against moto_server on loopback (boto3 pointed at it with AWS_ENDPOINT_URL):
the thing, an active certificate attached to it, the fleet policy attached to the certificate and
scoped to the thing's own topics, the key written 0600, and a config the agent accepts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from edge_agent.cli import main
from edge_agent.config import load_config
from edge_agent.fleet.provision import THING_VAR

DUMMY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
         "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(exe).exists():
        pytest.skip("moto_server is not installed: pip install 'moto[server]' (the dev extra)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log.read_text()[-500:]}")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture()
def aws(moto_url, monkeypatch, tmp_path):
    for key, value in {**DUMMY, "AWS_ENDPOINT_URL": moto_url, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    return boto3.client("iot", region_name="us-east-1")


@pytest.mark.slow
def test_provision_creates_a_least_privilege_identity_and_a_config(aws, tmp_path, capsys):
    out = tmp_path / "gw-7"
    assert main(["provision", "--thing", "gw-7", "--out", str(out), "--basic-ingest-rule", "fs_escalations",
                 "--policy", "fs-gateway-test"]) == 0
    assert "gw-7" in capsys.readouterr().out

    principals = aws.list_thing_principals(thingName="gw-7")["principals"]
    assert len(principals) == 1
    cert_id = principals[0].rsplit("/", 1)[1]
    assert aws.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"
    attached = aws.list_attached_policies(target=principals[0])["policies"]
    assert [p["policyName"] for p in attached] == ["fs-gateway-test"]

    document = json.loads(aws.get_policy(policyName="fs-gateway-test")["policyDocument"])
    by_action = {s["Action"]: s for s in document["Statement"]}
    assert set(by_action) == {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}
    assert by_action["iot:Connect"]["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    resources = [r for s in document["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str)
                                                             else s["Resource"])]
    for resource in resources:  # every grant names the connecting thing: a gateway only uses its own topics
        assert THING_VAR in resource and resource.startswith("arn:aws:iot:us-east-1:"), resource
        assert "#" not in resource and not resource.endswith(("topic/*", "topicfilter/*", "client/*")), resource
    published, subscribed = by_action["iot:Publish"]["Resource"], by_action["iot:Subscribe"]["Resource"]
    assert any(r.endswith(f"topic/$aws/rules/fs_escalations/framesieve/{THING_VAR}/escalations") for r in published)
    assert any(r.endswith(f"topicfilter/framesieve/{THING_VAR}/verdicts") for r in subscribed)

    key, cert = out / "gw-7.private.key", out / "gw-7.cert.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and "PRIVATE KEY" in key.read_text()
    assert "BEGIN CERTIFICATE" in cert.read_text()
    config = load_config(out / "agent.yaml")
    esc = config.escalation
    assert (esc.transport, esc.thing_name, esc.mqtt.port, esc.basic_ingest_rule) == ("iot-core", "gw-7", 8883,
                                                                                      "fs_escalations")
    assert esc.mqtt.host.endswith("-ats.iot.us-east-1.amazonaws.com")  # describe_endpoint (moto makes one up)
    assert Path(esc.mqtt.cert_file) == cert.resolve() and Path(esc.mqtt.key_file) == key.resolve()


def test_a_second_gateway_shares_the_policy_and_a_template_keeps_its_cameras(aws, tmp_path):
    template = tmp_path / "site.yaml"
    template.write_text("site: depot\ncameras:\n  - {id: gate, source: 'rtsp://10.0.0.5/s1', fps: 2}\n")
    assert main(["provision", "--thing", "gw-8", "--out", str(tmp_path / "gw-8"), "--config", str(template),
                 "--policy", "fs-gateway-test"]) == 0
    config = load_config(tmp_path / "gw-8" / "agent.yaml")
    assert (config.site, config.cameras[0].id, config.cameras[0].fps) == ("depot", "gate", 2)
    cert = aws.list_thing_principals(thingName="gw-8")["principals"][0]
    assert [p["policyName"] for p in aws.list_attached_policies(target=cert)["policies"]] == ["fs-gateway-test"]
    assert [p["policyName"] for p in aws.list_policies()["policies"]].count("fs-gateway-test") == 1
    # Provisioning into a folder that already holds a key would replace the gateway's identity: refused.
    assert main(["provision", "--thing", "gw-8", "--out", str(tmp_path / "gw-8")]) == 2


def test_provision_registers_the_sites_cameras_and_refuses_another_gateways(aws, tmp_path, moto_url):
    """The router's registry (contracts/registry.py) in the results table: the cameras of the config, each
    owned by one thing; a second gateway claiming one of them is refused before its identity is made."""
    from cloud.stores.dynamodb import DynamoDBStore, create_table
    from contracts.registry import Registration

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    create_table(dynamodb, "fs-results")
    template = tmp_path / "site.yaml"
    template.write_text("site: depot\ncameras:\n  - {id: gate, source: 'rtsp://10.0.0.5/s1'}\n"
                        "  - {id: yard, source: 'rtsp://10.0.0.6/s1'}\n")
    assert main(["provision", "--thing", "gw-9", "--out", str(tmp_path / "gw-9"), "--config", str(template),
                 "--policy", "fs-gateway-test", "--registry-table", "fs-results"]) == 0
    store = DynamoDBStore("fs-results", dynamodb)
    assert store.gateway("gw-9") == Registration("gw-9", "depot", ("gate", "yard"))
    assert main(["provision", "--thing", "gw-10", "--out", str(tmp_path / "gw-10"), "--config", str(template),
                 "--policy", "fs-gateway-test", "--registry-table", "fs-results"]) == 2
    assert store.gateway("gw-10") is None and not (tmp_path / "gw-10").exists()
    assert "gw-10" not in [t["thingName"] for t in aws.list_things()["things"]]
