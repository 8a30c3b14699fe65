"""docs/architecture.dot is what docs/make_diagram.py writes, and Graphviz renders it."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _script():
    spec = importlib.util.spec_from_file_location("make_diagram", DOCS / "make_diagram.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dot_is_current():
    make = _script()
    assert (DOCS / "architecture.dot").read_text() == make.build_dot(yaml.safe_load(make.PRICING.read_text())), \
        "run python docs/make_diagram.py and commit architecture.dot and architecture.png"
    assert (DOCS / "architecture.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_edge_joins_declared_nodes_and_prices_come_from_the_price_file():
    make = _script()
    assert {n for e in make.EDGES for n in e[:2]} <= set(make.NODES)
    pricing = yaml.safe_load(make.PRICING.read_text())
    rows = dict((r[0], r[2]) for r in make.cost_rows(pricing))
    gpu = pricing["backends"]["options"]["realtime-g4dn"]["instance"]
    assert rows["Teacher backend"] == f"${gpu['usd']:g} / instance-hour"


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed (Debian package graphviz)")
def test_graphviz_renders_it(tmp_path):
    out = tmp_path / "a.png"
    subprocess.run(["dot", "-Tpng", "-o", str(out), str(DOCS / "architecture.dot")], check=True, timeout=60,
                   capture_output=True)
    assert out.stat().st_size > 50_000
