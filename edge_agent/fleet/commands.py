"""The fleet's commands for `edge-agent`: `provision` and `models pack`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_provision(args: argparse.Namespace) -> int:
    from edge_agent.fleet.provision import provision

    done = provision(args.thing, Path(args.out), region=args.region, prefix=args.prefix, policy_name=args.policy,
                     basic_ingest_rule=args.basic_ingest_rule, ca_file=Path(args.ca_file) if args.ca_file else None,
                     template=Path(args.config) if args.config else None, registry_table=args.registry_table)
    print(f"thing:       {done.thing}\ncertificate: {done.certificate_arn}\npolicy:      {done.policy}\n"
          f"endpoint:    {done.endpoint}\nkey:         {done.key_path} (0600)\nconfig:      {done.config_path}\n"
          f"next: edit the cameras in {done.config_path}, then `edge-agent run --config {done.config_path}`")
    return 0


def _cmd_pack(args: argparse.Namespace) -> int:
    from models.bundle import pack_bundle
    from models.manifest import load_manifest

    manifest = load_manifest(args.manifest)  # refuses a model that does not match its manifest
    out = Path(args.out)
    sha256 = pack_bundle(Path(args.manifest), out)
    document = {"operation": "model-update", "version": manifest.version, "url": args.url or f"<URL of {out.name}>",
                "sha256": sha256}
    if args.camera:
        if manifest.specialized_for != args.camera:
            print(f"error: {args.manifest} was specialized for camera {manifest.specialized_for!r}, "
                  f"not {args.camera!r}", file=sys.stderr)
            return 2
        document["camera"] = args.camera
        decision = Path(args.manifest).parent / "decision.json"
        if decision.is_file():  # roll back above what the champion needed, watched as the local loop does
            from models.student.decision import Decision

            decided = Decision.load(decision)
            if decided.promote:
                document = decided.camera_job(manifest.version, document["url"], sha256).model_dump(exclude_none=True)
    print(json.dumps(document, indent=2))
    return 0


def add_commands(sub: argparse._SubParsersAction, models: argparse._SubParsersAction) -> None:
    p = sub.add_parser("provision", help="create this gateway's AWS IoT thing, certificate and least-privilege "
                                         "policy, and write its agent config (uses your AWS credentials)")
    p.add_argument("--thing", required=True, help="thing name: the gateway's MQTT client id and topic name")
    p.add_argument("--out", required=True, help="folder for the certificate, private key and agent.yaml")
    p.add_argument("--region", default="us-east-1", help="AWS region (default: us-east-1)")
    p.add_argument("--prefix", default="framesieve", help="topic prefix (default: framesieve)")
    p.add_argument("--policy", default="framesieve-gateway", help="IoT policy name, shared by the fleet "
                                                                  "(created if absent)")
    p.add_argument("--basic-ingest-rule", help="IoT rule that takes escalations through Basic Ingest")
    p.add_argument("--ca-file", help="CA bundle to copy beside the certificate (default: the system trust store)")
    p.add_argument("--config", help="an agent config whose cameras and settings to keep (escalation is replaced)")
    p.add_argument("--registry-table", help="the stack's results table (DynamoDB): record the config's site and "
                                            "cameras as the only ones this thing may write for (the router refuses "
                                            "a thing with no entry)")
    p.set_defaults(func=_cmd_provision)

    p = models.add_parser("pack", help="bundle a student (manifest + model) for a model-update job and print "
                                       "the job document with its sha256")
    p.add_argument("manifest", help="the student's manifest.json")
    p.add_argument("--out", required=True, help="bundle file to write (.tar.gz)")
    p.add_argument("--url", help="where the bundle will be downloadable from (e.g. a presigned S3 URL)")
    p.add_argument("--camera", help="a specialized student: the job installs it for this camera only")
    p.set_defaults(func=_cmd_pack)
