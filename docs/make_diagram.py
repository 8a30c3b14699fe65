"""Draw the FrameSieve architecture: writes docs/architecture.dot and renders docs/architecture.png with
Graphviz `dot` (Debian package graphviz).

    python docs/make_diagram.py            # both files
    python docs/make_diagram.py --check    # exit 1 when architecture.dot is not what this script writes

The picture is data below (nodes, clusters, edges), not hand-drawn, so a renamed topic or resource is one edit
here. Unit prices on the cost table come from config/pricing.yaml (dated, sourced), not from this file.
"""

from __future__ import annotations

import argparse
import html
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
PRICING = ROOT / "config" / "pricing.yaml"

# Cost weight of each box, from the price file's structure: the endpoint bills every hour whatever the load;
# the rest bills per escalation; the edge is the customer's own hardware.
COST_COLOURS = {"high": "#f4cccc", "per-use": "#fff2cc", "low": "#d9ead3", "none": "#ffffff"}

NODES = {
    # id: (label, cluster, cost class, shape)
    "cameras": ("Cameras\nRTSP / HTTP / files", "site", "none", "box3d"),
    "agent": ("edge-agent run\nsampler 1 fps -> motion gate -> regions\n-> student (distilled, onnxruntime)"
              "\n-> tracker -> cascade\nspool (SQLite) | events (SQLite)", "site", "low", "box"),
    "ingest": ("Basic Ingest\n$aws/rules/framesieve_<env>_escalations/\nframesieve/{thing}/escalations",
               "iot", "per-use", "box"),
    "broker": ("Message broker\nframesieve/{thing}/verdicts | events | telemetry", "iot", "per-use", "box"),
    "rule": ("Topic rule framesieve_<env>_escalations\nSELECT encode(*, 'base64') AS payload_b64, topic() AS topic,\n"
             "topic(2) AS thing_name, timestamp() AS received_ms, clientid() AS client_id", "iot", "per-use", "box"),
    "events_rules": ("Topic rules: events, telemetry\n(dashboard stack)", "iot", "per-use", "box"),
    "shadow": ("Device shadow\n$aws/things/{thing}/shadow", "iot", "per-use", "box"),
    "jobs": ("Jobs\n$aws/things/{thing}/jobs", "iot", "per-use", "box"),
    "policy": ("IoT policy: own client id,\nown topics only\n(${iot:Connection.Thing.ThingName})", "iot", "none",
               "note"),
    "lambda": ("Router Lambda (arm64, 512 MB)\ncloud.router.handler.handler\nauthorize (registry) -> validate -> "
               "invoke\n-> store -> capture -> alert -> reply\n(a gateway's batch: one call, one write, one reply)",
               "cloud", "per-use", "box"),
    "dlq": ("SQS dead-letter queue\n(rule errors, failed invocations)", "cloud", "low", "box"),
    "endpoint": ("Teacher backend (TeacherBackend, chosen by plan)\nSageMaker real-time GPU/CPU, serverless,\n"
                 "async (scale to zero), or inside the\nrouter Lambda (container image)\n"
                 "real-time: champion + optional challenger variant", "cloud", "high", "box"),
    "dynamodb": ("DynamoDB results (on demand)\npk CAM#camera | GSI site/day | TTL\nrows (variant), frame counts,"
                 "\ntelemetry, specialization steps, registry", "cloud", "per-use", "box"),
    "s3": ("S3 training data\ninformative crops + teacher labels\n(one object per batch, tier tags)\n"
           "-> Standard-IA -> expiry by tier", "cloud", "per-use", "box"),
    "sns": ("SNS -> e-mail\nalerts topic (rules, cooldown per camera/label)\nops topic (alarms)", "cloud",
            "per-use", "box"),
    "cloudwatch": ("CloudWatch alarms + dashboard\nrouter errors, p95 latency, DLQ depth", "cloud", "low", "box"),
    "ingest_fn": ("Ingest Lambda\ncloud.dashboard.ingest", "dash", "per-use", "box"),
    "dash_api": ("Dashboard + results API Lambda\n(function URL, bearer token)", "dash", "per-use", "box"),
    "cdn": ("CloudFront\nstatic pages from S3 (OAC)", "dash", "low", "box"),
    "landed_s3": ("S3 landed video\n(ObjectCreated via EventBridge)", "landed", "per-use", "box"),
    "kvs": ("Kinesis Video Streams\nGetImages at the sampling rate", "landed", "per-use", "box"),
    "sieve": ("Sieve Lambda (container image)\nthe gateway pipeline on a segment;\nlong segments -> Fargate task",
              "landed", "per-use", "box"),
    "sieve_workers": ("Fargate sieve workers\none per stream group", "landed", "high", "box"),
    "api": ("Operator / integrators\nbrowser, JSON API", "", "none", "oval"),
    "operator": ("Fleet operator\nconfig, model rollout,\nframesieve-cloud ab report / promote", "", "none", "oval"),
    "train": ("Per-camera specialisation\n(champion / challenger)", "", "low", "box"),
}

CLUSTERS = {
    "site": ("Site gateway (customer hardware)", "#eef5ff"),
    "iot": ("AWS IoT Core", "#f3f3f3"),
    "cloud": ("AWS: the escalation API (one CloudFormation stack)", "#f3f3f3"),
    "dash": ("AWS: the operator dashboard (its own stack, framesieve-cloud deploy --dashboard)", "#f7f7f7"),
    "landed": ("AWS: the sieve for landed video (optional: SieveS3, SieveKvs)", "#f7f7f7"),
}

# (from, to, label, style): style "hot" is the escalation path, "fleet" the device management paths. Edges back
# towards the gateway (verdicts, shadow deltas, jobs) do not set the left-to-right order: BACK lists them.
BACK = {("lambda", "broker"), ("broker", "agent"), ("shadow", "agent"), ("jobs", "agent"), ("train", "jobs"),
        ("cloudwatch", "sns"), ("operator", "endpoint")}
EDGES = [
    ("cameras", "agent", "frames", "plain"),
    ("agent", "ingest", "escalation: JPEG crops <= 128 KB\nonly uncertain + audit frames;\n"
                        "a gateway's batch per 250 ms window", "hot"),
    ("ingest", "rule", "", "hot"),
    ("rule", "lambda", "async invoke", "hot"),
    ("rule", "dlq", "error action", "error"),
    ("lambda", "dlq", "on failure (after 2 retries)", "error"),
    ("lambda", "endpoint", "InvokeEndpoint\n(all crops of a batch in one call;\nvariant recorded, shadow share)",
     "hot"),
    ("lambda", "dynamodb", "BatchWriteItem / PutItem\n(idempotent by thing + message id)", "hot"),
    ("lambda", "s3", "PutObject (informative records)", "plain"),
    ("lambda", "sns", "Publish (rule matched)", "plain"),
    ("lambda", "broker", "verdict", "hot"),
    ("broker", "agent", "verdict", "hot"),
    ("agent", "broker", "events, telemetry,\nspecialization steps", "plain"),
    ("broker", "events_rules", "", "plain"),
    ("events_rules", "ingest_fn", "", "plain"),
    ("ingest_fn", "dynamodb", "", "plain"),
    ("dynamodb", "dash_api", "Query", "plain"),
    ("cdn", "dash_api", "", "plain"),
    ("dash_api", "api", "pages, JSON", "plain"),
    ("landed_s3", "sieve", "", "hot"),
    ("kvs", "sieve_workers", "", "hot"),
    ("sieve", "endpoint", "router in process", "hot"),
    ("sieve_workers", "endpoint", "", "hot"),
    ("sieve", "dynamodb", "rows, counts per minute", "plain"),
    ("operator", "endpoint", "UpdateEndpointWeightsAndCapacities", "fleet"),
    ("operator", "shadow", "desired config", "fleet"),
    ("shadow", "agent", "delta / reported", "fleet"),
    ("operator", "jobs", "model update (URL, sha256)", "fleet"),
    ("jobs", "agent", "download, verify, swap", "fleet"),
    ("s3", "train", "teacher-labelled crops", "fleet"),
    ("train", "jobs", "promoted student", "fleet"),
    ("lambda", "cloudwatch", "metrics", "error"),
    ("endpoint", "cloudwatch", "", "error"),
    ("cloudwatch", "sns", "alarms (ops topic)", "error"),
    ("policy", "ingest", "", "invisible"),
]
EDGE_STYLES = {
    "hot": 'color="#cc0000", penwidth=2.2, fontcolor="#990000"',
    "fleet": 'color="#1155cc", style=dashed, fontcolor="#1155cc"',
    "error": 'color="#777777", style=dotted',
    "plain": 'color="#444444"',
    "invisible": "style=invis",
}


def _usd(line: dict) -> str:
    usd = line["usd"]
    text = f"{usd:.10f}".rstrip("0").rstrip(".") if usd < 0.01 else f"{usd:g}"
    return f"${text} / {line['unit']}"


def cost_rows(pricing: dict) -> list[tuple[str, str, str]]:
    """(where, what it is billed on, unit price) from the price file, largest fixed cost first."""
    iot, lam, ddb = pricing["iot_core"], pricing["lambda"], pricing["dynamodb"]
    gpu = pricing["backends"]["options"]["realtime-g4dn"]
    return [
        ("Teacher backend", f"cheapest for the fleet (framesieve-cloud plan): instance-hours, at least "
                            f"{gpu['min_instances']} on ({gpu['instance']['type']}), or GB-seconds in the router",
         _usd(gpu["instance"])),
        ("IoT Core", "rules + actions per escalation; Basic Ingest skips messaging",
         f"{_usd(iot['rules_triggered'])} + {_usd(iot['rule_actions'])}"),
        ("IoT Core (verdicts)", f"messaging, per {iot['message_unit_bytes'] // 1024} KB", _usd(iot["messaging"])),
        ("Router Lambda", f"requests + GB-seconds ({lam['memory_mb']} MB)",
         f"{_usd(lam['requests'])} + {_usd(lam['compute'])}"),
        ("DynamoDB", "one write per escalation", _usd(ddb["writes"])),
        ("S3", "PUTs of sampled crops, storage", f"{_usd(pricing['s3']['puts'])}, {_usd(pricing['s3']['storage'])}"),
        ("Gateway", f"hardware over {pricing['gateway']['amortisation_months']} months + power",
         _usd(pricing["gateway"]["hardware"])),
    ]


def _node(node_id: str, label: str, cost: str, shape: str) -> str:
    text = html.escape(label).replace("\n", "<br/>")
    return (f'    {node_id} [label=<{text}>, shape={shape}, style="filled,rounded", '
            f'fillcolor="{COST_COLOURS[cost]}"];')


def build_dot(pricing: dict) -> str:
    out = ["// Generated by docs/make_diagram.py; edit that script, not this file.",
           "digraph framesieve {",
           '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.35, ranksep=0.55, newrank=true,',
           f'         label=<FrameSieve on AWS: red = escalation hot path, blue dashed = fleet paths; '
           f'box colour = cost (pink: hourly, yellow: per escalation, green: small)<br/>prices: '
           f'{html.escape(str(PRICING.relative_to(ROOT)))}, {pricing["region"]}, as of {pricing["as_of"]}>, '
           'labelloc=b];',
           '  node [fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];']
    for cluster, (title, colour) in CLUSTERS.items():
        out.append(f"  subgraph cluster_{cluster} {{")
        out.append(f'    label="{title}"; style="rounded,filled"; fillcolor="{colour}"; color="#999999";')
        for node_id, (label, where, cost, shape) in NODES.items():
            if where == cluster:
                out.append(_node(node_id, label, cost, shape))
        out.append("  }")
    for node_id, (label, where, cost, shape) in NODES.items():
        if not where:
            out.append(_node(node_id, label, cost, shape).replace("    ", "  ", 1))
    rows = "".join(f"<tr><td align='left'>{html.escape(a)}</td><td align='left'>{html.escape(b)}</td>"
                   f"<td align='left'>{html.escape(c)}</td></tr>" for a, b, c in cost_rows(pricing))
    out.append("  costs [shape=plain, label=<<table border='0' cellborder='1' cellspacing='0' cellpadding='3'>"
               "<tr><td colspan='3' bgcolor='#eeeeee'><b>Where the money goes</b></td></tr>"
               f"<tr><td><b>where</b></td><td><b>billed on</b></td><td><b>list price</b></td></tr>{rows}</table>>];")
    for src, dst, label, style in EDGES:
        text = f', label=<{html.escape(label).replace(chr(10), "<br/>")}>' if label else ""
        back = ", constraint=false" if (src, dst) in BACK else ""
        out.append(f"  {src} -> {dst} [{EDGE_STYLES[style]}{text}{back}];")
    out.append("  { rank=same; cameras; operator; costs; }")
    out.append("  { rank=same; train; }")
    out.append("}")
    return "\n".join(out) + "\n"


def render(dot_path: Path, png_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise SystemExit("graphviz `dot` is not installed: apt-get install graphviz")
    subprocess.run([dot, "-Tpng", "-Gdpi=110", "-o", str(png_path), str(dot_path)], check=True, timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that architecture.dot is current")
    parser.add_argument("--out", type=Path, default=DOCS, help="output folder (default: docs/)")
    args = parser.parse_args(argv)
    text = build_dot(yaml.safe_load(PRICING.read_text()))
    dot_path = args.out / "architecture.dot"
    if args.check:
        current = dot_path.read_text() if dot_path.is_file() else ""
        if current != text:
            print(f"{dot_path} is out of date: run python docs/make_diagram.py", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    dot_path.write_text(text)
    render(dot_path, args.out / "architecture.png")
    print(f"wrote {dot_path} and {args.out / 'architecture.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
