"""`framesieve-cloud ab report | promote`: champion/challenger of the cloud model."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from cloud import constants as c
from cloud.exceptions import ConfigError


def _instances(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for text in pairs or []:
        name, sep, itype = text.partition("=")
        if not sep or not name or not itype.startswith("ml."):
            raise ConfigError(f"--instance {text!r}: expected VARIANT=ml.TYPE, e.g. challenger=ml.g4dn.xlarge")
        out[name] = itype
    return out


def _prices(types: dict[str, str], pricing: str | None) -> dict[str, tuple[str, float]]:
    """variant -> (instance type, USD per instance-hour), from the price file's SageMaker options."""
    from costing.pricing import load_pricing

    p = load_pricing(pricing)
    hourly = {o.instance.type: o.instance.usd for o in p.backends.options.values() if hasattr(o, "instance")}
    out = {}
    for variant, itype in types.items():
        if itype not in hourly:
            raise ConfigError(f"instance type {itype!r} of variant {variant!r} has no price in "
                              f"{p.sources[0]} (priced: {', '.join(sorted(hourly))}); add it under backends.options "
                              "or pass --pricing with one that has it")
        out[variant] = (itype, hourly[itype])
    return out


def _exists(url: str) -> None:
    """A report reads the store: a SQLite file that is not there is a wrong path (opening it would make an empty
    one and report nothing), not an empty store."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite" and rest and rest != ":memory:" and not Path(rest).is_file():
        raise ConfigError(f"--store {url}: no SQLite results store at {rest}; give the store the router writes "
                          f"(--store, or ${c.STORE_URL}: dynamodb://TABLE or sqlite:///path/to/results.sqlite)")


def _sagemaker():  # noqa: ANN202
    from cloud import awscalls

    return awscalls.client("sagemaker")


def _cmd_report(args: argparse.Namespace) -> int:
    from cloud.ab.report import build_report, render
    from cloud.stores import open_store

    if args.hours <= 0:
        raise ConfigError(f"--hours {args.hours}: expected a positive number of hours to look back")
    types = {}
    if args.endpoint:
        from cloud.ab.promote import instance_types

        types = instance_types(_sagemaker(), args.endpoint)
    types.update(_instances(args.instance))
    labels = tuple(lb.strip() for lb in args.labels.split(",") if lb.strip())
    if not labels:
        raise ConfigError(f"--labels {args.labels!r}: name at least one label, e.g. person,vehicle")
    t2 = time.time() + 60
    t1 = t2 - args.hours * 3600
    _exists(args.store)
    store = open_store(args.store)
    try:
        report = build_report(store.variant_results(t1, t2), prices=_prices(types, args.pricing), labels=labels,
                              window=(t1, t2))
    finally:
        store.close()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from cloud.ab.promote import promote

    if not 0 <= args.share <= 1:  # before any AWS call: a bad flag is named even where AWS is not reachable
        raise ConfigError(f"--share {args.share:g}: expected a share of the traffic in [0, 1], e.g. 1 to promote "
                          "fully or 0.1 to try it on a tenth")
    before, after = promote(_sagemaker(), args.endpoint, args.variant, args.share, args.wait_s, args.poll_s)
    fmt = lambda w: ", ".join(f"{n} {v:g}" for n, v in sorted(w.items()))  # noqa: E731
    print(f"endpoint {args.endpoint}: weights {fmt(before)} -> {fmt(after)}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    ab = sub.add_parser("ab", help="champion/challenger of the cloud model: compare the endpoint's production "
                                   "variants from the results store (report), shift their weights (promote)")
    cmds = ab.add_subparsers(dest="ab_command", required=True)
    store_default = os.environ.get(c.STORE_URL, c.DEFAULT_STORE_URL)
    p = cmds.add_parser("report", help="per variant: escalations answered, agreement with the other variant "
                                       "(shadowed pairs) and with audited edge decisions, latency p50/p95, cost "
                                       "per image; counts and 95%% intervals")
    p.add_argument("--store", default=store_default,
                   help=f"dynamodb://TABLE or sqlite:///path (default: ${c.STORE_URL} or {c.DEFAULT_STORE_URL})")
    p.add_argument("--hours", type=float, default=24 * 30, help="look back this many hours (default: 720, 30 days)")
    p.add_argument("--endpoint", help="read each variant's instance type from this SageMaker endpoint's config")
    p.add_argument("--instance", action="append", metavar="VARIANT=ml.TYPE",
                   help="a variant's instance type, for its cost per image (repeatable; overrides --endpoint)")
    p.add_argument("--pricing", help="price file (default: config/pricing.yaml)")
    p.add_argument("--labels", default="person,vehicle", help="labels compared (default: person,vehicle)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=_cmd_report)
    p = cmds.add_parser("promote", help="give VARIANT a share of the endpoint's traffic "
                                        "(UpdateEndpointWeightsAndCapacities), the others the rest")
    p.add_argument("variant", help="the production variant to promote, e.g. challenger")
    p.add_argument("--endpoint", default=os.environ.get(c.ENDPOINT_NAME, c.DEFAULT_ENDPOINT_NAME),
                   help=f"the SageMaker endpoint (default: ${c.ENDPOINT_NAME} or {c.DEFAULT_ENDPOINT_NAME})")
    p.add_argument("--share", type=float, default=1.0,
                   help="its share of the traffic, 0..1 (default: 1, all of it); the others split the rest in "
                        "proportion to their weights now")
    p.add_argument("--wait-s", type=float, default=900, help="how long to wait for InService (default: 900)")
    p.add_argument("--poll-s", type=float, default=5.0, help="seconds between status reads (default: 5)")
    p.set_defaults(func=_cmd_promote)

