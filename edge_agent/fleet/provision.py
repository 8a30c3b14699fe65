"""`edge-agent provision`: give a gateway its identity in AWS IoT and a config to run with.

Creates the thing, a key pair and an active certificate, attaches the fleet's IoT policy to the
certificate and the certificate to the thing, and writes the certificate, the private key (0600) and
an agent config for the iot-core transport. One policy serves the whole fleet: every resource in it
is scoped with the `${iot:Connection.Thing.ThingName}` policy variable, so a gateway can connect only
as its own thing (client id = thing name, certificate attached to it) and publish, subscribe and
receive only on its own topics, its own shadow and its own jobs.

With `registry_table`, it first records in the results table which site and cameras (those of the config)
this thing may write for (contracts/registry.py): the router refuses every other site and camera from it.
A camera another gateway owns is refused before anything is created.

boto3 honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_IOT, so the same code runs against moto_server.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts.codec import WireError
from contracts.registry import Registration, write_dynamodb
from edge_agent.config import ConfigError, parse_config

log = logging.getLogger(__name__)
THING_VAR = "${iot:Connection.Thing.ThingName}"


def policy_document(region: str, account: str, prefix: str = "framesieve",
                    basic_ingest_rule: str | None = None) -> dict[str, Any]:
    """Least privilege for one gateway, written once for all of them with the thing-name variable."""
    arn = f"arn:aws:iot:{region}:{account}"
    own, shadow, jobs = f"{prefix}/{THING_VAR}", f"$aws/things/{THING_VAR}/shadow", f"$aws/things/{THING_VAR}/jobs"
    publish = [f"{arn}:topic/{own}/{leaf}" for leaf in ("escalations", "events", "telemetry")]
    publish += [f"{arn}:topic/{shadow}/get", f"{arn}:topic/{shadow}/update", f"{arn}:topic/{jobs}/start-next",
                f"{arn}:topic/{jobs}/*/update"]
    if basic_ingest_rule:
        publish.append(f"{arn}:topic/$aws/rules/{basic_ingest_rule}/{own}/escalations")
    answers = [f"{own}/verdicts", f"{shadow}/get/*", f"{shadow}/update/*", f"{jobs}/notify-next",
               f"{jobs}/start-next/*", f"{jobs}/*/update/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/{THING_VAR}",
             "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
            {"Effect": "Allow", "Action": "iot:Publish", "Resource": publish},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [f"{arn}:topicfilter/{t}" for t in answers]},
            {"Effect": "Allow", "Action": "iot:Receive", "Resource": [f"{arn}:topic/{t}" for t in answers]},
        ],
    }


@dataclass
class Provisioned:
    thing: str
    certificate_arn: str
    policy: str
    endpoint: str
    config_path: Path
    cert_path: Path
    key_path: Path


def provision(thing: str, out_dir: Path, *, region: str = "us-east-1", prefix: str = "framesieve",
              policy_name: str = "framesieve-gateway", basic_ingest_rule: str | None = None,
              ca_file: Path | None = None, template: Path | None = None,
              registry_table: str | None = None) -> Provisioned:
    import boto3

    out_dir = Path(out_dir)
    cert_path, key_path = out_dir / f"{thing}.cert.pem", out_dir / f"{thing}.private.key"
    if key_path.exists():
        raise ConfigError(f"{key_path} exists already; provisioning again would replace this gateway's identity. "
                          "Move the old files away first (and deactivate the old certificate in IoT)")
    if registry_table:
        register(boto3.client("dynamodb", region_name=region), registry_table, registration(thing, template))
    iot = boto3.client("iot", region_name=region)
    account = boto3.client("sts", region_name=region).get_caller_identity()["Account"]
    try:
        iot.create_thing(thingName=thing, attributePayload={"attributes": {"role": "framesieve-gateway"}})
    except iot.exceptions.ResourceAlreadyExistsException:
        log.info("thing %s exists already; giving it a new certificate", thing)
    try:
        iot.get_policy(policyName=policy_name)
        log.info("policy %s exists; attaching it as it is", policy_name)
    except iot.exceptions.ResourceNotFoundException:
        document = policy_document(region, account, prefix, basic_ingest_rule)
        iot.create_policy(policyName=policy_name, policyDocument=json.dumps(document))
    keys = iot.create_keys_and_certificate(setAsActive=True)
    cert_arn = keys["certificateArn"]
    iot.attach_policy(policyName=policy_name, target=cert_arn)
    iot.attach_thing_principal(thingName=thing, principal=cert_arn)
    endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]

    out_dir.mkdir(parents=True, exist_ok=True)
    cert_path.write_text(keys["certificatePem"])
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as f:
        f.write(keys["keyPair"]["PrivateKey"])
    ca_path = None
    if ca_file:
        ca_path = out_dir / Path(ca_file).name
        shutil.copyfile(ca_file, ca_path)
    config_path = out_dir / "agent.yaml"
    config_path.write_text(_config_text(thing, endpoint, prefix, basic_ingest_rule, cert_path, key_path, ca_path,
                                        template))
    log.info("provisioned %s: certificate %s, policy %s, endpoint %s", thing, cert_arn, policy_name, endpoint)
    return Provisioned(thing, cert_arn, policy_name, endpoint, config_path, cert_path, key_path)


def _template(thing: str, template: Path | None) -> dict[str, Any]:
    return yaml.safe_load(template.read_text()) if template else {
        "site": thing, "cameras": [{"id": "camera-1", "source": "rtsp://192.0.2.10:554/stream1"}]}


def registration(thing: str, template: Path | None) -> Registration:
    """The site and cameras of the config this gateway will run: what the router lets it write for."""
    raw = {k: v for k, v in _template(thing, template).items() if k != "escalation"}
    config = parse_config(yaml.safe_dump(raw), str(template or "the default config"))
    try:
        return Registration(thing, config.site, tuple(c.id for c in config.cameras))
    except WireError as exc:
        raise ConfigError(f"cannot register gateway {thing!r}: {exc}") from exc


def register(dynamodb: Any, table: str, entry: Registration) -> None:
    """Write the registry entry (all cameras claimed for this thing, or nothing)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        taken = write_dynamodb(dynamodb, table, entry)
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot register gateway {entry.thing!r} in table {table!r}: {exc}") from exc
    if taken:
        raise ConfigError(f"camera(s) {taken} are registered to another gateway in table {table!r}; a camera "
                          "belongs to one gateway: rename them in the config, or move them first")
    log.info("registered %s for site %s, cameras %s in %s", entry.thing, entry.site, list(entry.cameras), table)


def _config_text(thing: str, endpoint: str, prefix: str, rule: str | None, cert: Path, key: Path,
                 ca: Path | None, template: Path | None) -> str:
    raw = _template(thing, template)
    escalation = raw.get("escalation") or {}
    escalation.update({
        "transport": "iot-core", "thing_name": thing, "topic_prefix": prefix, "basic_ingest_rule": rule,
        "mqtt": {"host": endpoint, "port": 8883, "cert_file": str(cert.resolve()), "key_file": str(key.resolve()),
                 "ca_file": str(ca.resolve()) if ca else None},
    })
    raw["escalation"] = escalation
    text = ("# Written by `edge-agent provision`; cameras and thresholds are yours to edit.\n"
            "# ca_file null: the system trust store (it holds Amazon Root CA 1) verifies IoT Core.\n"
            + yaml.safe_dump(raw, sort_keys=False))
    parse_config(text, "the provisioned config")  # never write a config the agent would refuse
    return text
