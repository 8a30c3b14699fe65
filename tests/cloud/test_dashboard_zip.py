"""The dashboard's Lambda zip carries the Cost page's cost model and its third-party packages (pydantic, PyYAML
and theirs) built for the platform its template names, so the page answers on Lambda: unpacked and run with
only the standard library and boto3 beside it (what the Lambda runtime has), the zip computes the cost figures
from a results table on moto_server."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from cloud.dashboard import views
from cloud.dashboard.ingest import ingest
from cloud.deploy_dashboard import DASHBOARD_TEMPLATE
from cloud.devaws import DUMMY_ENV, dev_client, free_port
from cloud.exceptions import PackagingError
from cloud.lambda_wheels import LambdaPlatform, WheelsUnavailable, cost_model_pins, installed_entries, lambda_wheels
from cloud.packaging import package_dashboard
from cloud.stackops import load_template
from contracts.registry import Registration
from tests.cloud.lambda_runtime import run_in_lambda, runtime_dir, stdlib_paths
from tests.cloud.test_dashboard_api import _event, _telemetry

TOKEN = "zip-token-" + "z" * 16
LAMBDA = LambdaPlatform("3.12", "arm64")

COST_PROBE = """
import base64, json, os
from cloud.dashboard import lambda_api
out = lambda_api.handler({"version": "2.0", "rawPath": "/dashboard/cost", "requestContext": {"http": {"method": "GET"}},
                          "headers": {"authorization": "Bearer " + os.environ["FRAMESIEVE_API_TOKEN"]}}, None)
files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
print(json.dumps({"status": out["statusCode"], "body": json.loads(base64.b64decode(out["body"])), "files": files}))
"""


def test_the_zips_platform_is_the_one_its_template_names():
    template = load_template(DASHBOARD_TEMPLATE)
    assert LambdaPlatform.from_template(template) == LAMBDA
    assert LAMBDA.pip_platform == "manylinux2014_aarch64" and LAMBDA.cp == "cp312"
    moved = copy.deepcopy(template)
    for res in moved["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function":
            res["Properties"].update(Runtime="python3.13", Architectures=["x86_64"])
    assert LambdaPlatform.from_template(moved) == LambdaPlatform("3.13", "x86_64")
    moved["Resources"]["IngestFunction"]["Properties"]["Architectures"] = ["arm64"]
    with pytest.raises(PackagingError, match="different platforms"):
        LambdaPlatform.from_template(moved)


def _local_wheels(folder: Path) -> Path:
    """Wheels of the installed cost-model distributions, tagged for this interpreter (what `pip download` for
    this platform would give), built from the installed files: a wheels folder with no network."""
    folder.mkdir(parents=True, exist_ok=True)
    here = LambdaPlatform.running()
    for dist, version in cost_model_pins().items():
        files = installed_entries({dist: version})
        compiled = any(name.endswith(".so") for name, _ in files)
        tags = f"{here.cp}-{here.cp}-{here.pip_platform}" if compiled else "py3-none-any"
        with zipfile.ZipFile(folder / f"{dist.replace('-', '_')}-{version}-{tags}.whl", "w") as zf:
            for name, read in files:
                zf.writestr(name, read())
    return folder


def _table_with_a_camera(moto) -> tuple[str, object]:
    """A results table on moto with half an hour of one camera: one frame every 75 s, every third escalated."""
    from cloud.stores.dynamodb import DynamoDBStore, create_table

    table = f"t{uuid.uuid4().hex[:10]}"
    client = dev_client("dynamodb", moto.url)
    create_table(client, table)
    store = DynamoDBStore(table, client)
    store.register_gateway(Registration("gw", "site-1", ("plaza",)))
    now = time.time()
    ingest(store, "gw", "telemetry", _telemetry("gw", now))
    for i in range(24):
        ingest(store, "gw", "events", _event(f"e{i}", now - 1800 + 75 * i, "cloud" if i % 3 == 0 else "edge"))
    return table, store


def _serves_the_cost_page(zip_path: Path, tmp_path: Path, moto, python: str = sys.executable) -> dict:
    """The zip unpacked and run by `python` with only the standard library and boto3 beside it: its Cost page
    answers from the table with the figures the cost model computes here, every module from the zip, the boto3
    stack or the standard library."""
    table, store = _table_with_a_camera(moto)
    task = tmp_path / "task"
    zipfile.ZipFile(zip_path).extractall(task)
    assert {"costing/pricing.py", "models/shipped.py", "config/pricing.yaml", "pydantic/__init__.py",
            "yaml/__init__.py", "typing_extensions.py"} <= {p.relative_to(task).as_posix() for p in task.rglob("*")}
    assert not (task / "models" / "student").exists() and not (task / "edge_agent").exists()
    env = {**DUMMY_ENV, "PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": moto.url, "FRAMESIEVE_API_TOKEN": TOKEN,
           "FRAMESIEVE_STORE": f"dynamodb://{table}", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    runtime = runtime_dir(tmp_path / "runtime")
    proc = run_in_lambda("import sys\n" + COST_PROBE, task, runtime, env, python)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200, out["body"]

    allowed = (str(task), str(runtime), *(p for p in stdlib_paths(python) if not p.endswith(".zip")))
    assert all(f.startswith(allowed) for f in out["files"]), [f for f in out["files"] if not f.startswith(allowed)]
    for module in ("costing/pricing.py", "models/shipped.py", "pydantic/main.py", "pydantic_core/__init__.py",
                   "yaml/__init__.py"):
        assert str(task / module) in out["files"], module

    here = views.cost(store, time.time())  # the figures the cost model computes here from the same table
    (cam,) = out["body"]["cameras"]
    (ref,) = here["cameras"]
    assert cam["camera"] == "plaza" and cam["escalated_per_day"] > 0 and cam["hybrid_usd_per_day"] > 0
    for key in ("sampled_per_day", "escalated_per_day", "hybrid_usd_per_day", "baseline_usd_per_month",
                "break_even_share", "usd_per_escalation"):
        assert cam[key] == pytest.approx(ref[key], rel=0.01), key
    assert [i["name"] for i in out["body"]["line_items"]] == [i["name"] for i in here["line_items"]]
    assert out["body"]["prices"] == here["prices"]
    return out


@pytest.mark.parametrize("source", ["installed", "wheels"])
def test_unpacked_zip_serves_the_cost_page_with_nothing_outside_it(source, moto, tmp_path):
    """Built for this interpreter's platform: from the installed distributions, or from a wheels folder."""
    wheels = _local_wheels(tmp_path / "wheels") if source == "wheels" else None
    art = package_dashboard(tmp_path / "build", platform=LambdaPlatform.running(), wheels_dir=wheels)
    assert ("installed here" if source == "installed" else f"from {wheels}") in art.detail
    _serves_the_cost_page(art.path, tmp_path, moto)


def test_wheels_that_cannot_be_had_stop_the_build_with_the_fix(tmp_path, monkeypatch):
    pins = cost_model_pins()
    empty = tmp_path / "wheels"
    empty.mkdir()
    with pytest.raises(WheelsUnavailable) as given:
        lambda_wheels(pins, LAMBDA, empty)
    assert f"--dashboard-wheels {empty} has no wheel for python3.12 arm64" in str(given.value)
    assert f"pydantic-core=={pins['pydantic-core']}" in str(given.value) and "--platform manylinux2014_aarch64" in \
        str(given.value)
    # a wheel for another platform is not taken for the Lambda's
    _local_wheels(empty)
    with pytest.raises(WheelsUnavailable, match="pydantic-core=="):
        lambda_wheels(pins, LAMBDA, empty)

    # no index to download from: named, with both ways out, and nothing packaged
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple/")  # nothing listens there
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    with pytest.raises(WheelsUnavailable) as given:
        package_dashboard(tmp_path / "build", platform=LAMBDA)
    text = str(given.value)
    assert "pip could not download them" in text and "--dashboard-wheels DIR" in text and "Retry with access" in text
    assert not list((tmp_path / "build").glob("*.zip")) if (tmp_path / "build").exists() else True


def _index_reachable() -> str | None:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/")
    try:
        with urllib.request.urlopen(f"{index}/pyyaml/", timeout=5):
            return None
    except OSError as exc:
        return f"the package index {index} is unreachable from here ({exc}); the Lambda's own wheels need it"


def test_the_lambdas_platform_is_downloaded_once_into_the_cache(tmp_path, monkeypatch):
    """The real thing: the arm64 / python3.12 wheels from the package index, cached, vendored."""
    if reason := _index_reachable():
        pytest.skip(reason)
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path / "cache"))
    lines: list[str] = []
    first = package_dashboard(tmp_path / "a", out=lines.append)  # the platform from dashboard.yaml
    assert "6 downloaded" in first.detail and "python3.12 arm64" in first.detail and len(lines) == 1
    names = zipfile.ZipFile(first.path).namelist()
    compiled = sorted(n for n in names if n.endswith(".so"))
    assert compiled and all("cpython-312-aarch64-linux-gnu" in n for n in compiled), compiled
    assert {"pydantic_core/_pydantic_core.cpython-312-aarch64-linux-gnu.so", "config/pricing.yaml",
            "costing/pricing.py"} <= set(names)
    cached = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.whl")}
    assert len(cached) == 6
    lines.clear()
    again = package_dashboard(tmp_path / "b", out=lines.append)
    assert again.sha256 == first.sha256 and "from the cache" in again.detail and lines == []
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.whl")} == cached
    folder = next((tmp_path / "cache").rglob("*.whl")).parent  # the same wheels, given as --dashboard-wheels
    assert package_dashboard(tmp_path / "c", wheels_dir=folder).sha256 == first.sha256


def _python(version: str) -> str | None:
    """A CPython `version` that runs: on PATH, or one of pyenv's (whose shim answers only when selected)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for cand in [shutil.which(f"python{version}"), *map(str, sorted(pyenv.glob(f"{version}.*/bin/python{version}")))]:
        if cand and subprocess.run([cand, "-c", "pass"], capture_output=True).returncode == 0:
            return cand
    return None


def test_downloaded_wheels_serve_the_cost_page_on_another_python(moto, tmp_path, monkeypatch):
    """The download path end to end on a platform this machine can run: python3.12 on x86_64 (the Lambda's
    Python; only its machine differs), wheels downloaded for it, the zip run by that interpreter."""
    python = _python("3.12")
    if LambdaPlatform.running().arch != "x86_64" or python is None:
        pytest.skip("no python3.12 on an x86_64 machine here to run a zip built for it (on PATH or under pyenv)")
    if reason := _index_reachable():
        pytest.skip(reason)
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path / "cache"))
    art = package_dashboard(tmp_path / "build", platform=LambdaPlatform("3.12", "x86_64"))
    assert "6 downloaded" in art.detail
    out = _serves_the_cost_page(art.path, tmp_path, moto, python)
    assert any(f.endswith("cpython-312-x86_64-linux-gnu.so") for f in out["files"])
