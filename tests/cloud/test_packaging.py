"""The router Lambda zip and the SageMaker model artifact `framesieve-cloud deploy` uploads."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import sysconfig
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from cloud.devaws import DUMMY_ENV, dev_client, free_port
from cloud.exceptions import CloudError
from cloud.packaging import NOT_IN_LAMBDA, PackagingError, lambda_sources, package_lambda, package_model
from models.paths import CENTERNET_STUDENT_MANIFEST

EVENT = Path(__file__).resolve().parents[1] / "contracts" / "events" / "escalation_v1.json"

# Runs the handler from the unpacked zip in an interpreter that sees only the zip and site-packages (boto3 is
# in the Lambda runtime; no .pth files, so the editable install cannot fill in what the zip lacks), with the
# modules the Lambda runtime does not have blocked.
_RUN_HANDLER = """
import json, sys
zipdir, site, blocked = sys.argv[1], sys.argv[2], set(sys.argv[3].split(","))
sys.path[:] = [zipdir] + [p for p in sys.path if "site-packages" not in p] + [site]
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ImportError("not in the Lambda runtime: " + name)
sys.meta_path.insert(0, Blocker())
from cloud.router.handler import handler
out = handler(json.loads(sys.stdin.read()), None)
mods = sorted({m.__file__ for n, m in sys.modules.items() if n.partition(".")[0] in ("cloud", "contracts")})
print(json.dumps({"outcome": out, "modules": mods}))
"""


@pytest.fixture(scope="module")
def router_zip(tmp_path_factory):
    return package_lambda(tmp_path_factory.mktemp("lambda"))


def test_zip_holds_the_router_and_nothing_heavy(router_zip):
    names = zipfile.ZipFile(router_zip.path).namelist()
    assert {"cloud/__init__.py", "cloud/router/handler.py", "cloud/stores/dynamodb.py", "contracts/wire.py"} <= {*names}
    assert all(n.split("/")[0] in ("cloud", "contracts") and n.endswith(".py") for n in names)
    assert not [n for n in names if n.startswith(("cloud/inference", "contracts/detections"))]
    assert router_zip.path.name == f"router-{router_zip.sha256[:16]}.zip"
    assert router_zip.path.stat().st_size < 200_000


def test_zip_is_reproducible(router_zip, tmp_path):
    again = package_lambda(tmp_path)
    assert again.sha256 == router_zip.sha256 and again.path.read_bytes() == router_zip.path.read_bytes()


@pytest.mark.slow
def test_unpacked_zip_runs_the_handler_without_numpy(router_zip, tmp_path, moto):
    """Lambda's view: only the zip and boto3. A real escalation goes through parsing, the DynamoDB store on
    moto_server and the endpoint call; with no endpoint listening it ends as a dead letter in the table."""
    from cloud.stores.dynamodb import create_table

    zipdir = tmp_path / "task"
    zipfile.ZipFile(router_zip.path).extractall(zipdir)
    table = f"t{uuid.uuid4().hex[:10]}"
    create_table(dev_client("dynamodb", moto.url), table)
    env = {**DUMMY_ENV, "PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": moto.url,
           "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{free_port()}",  # nothing listens there
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "FRAMESIEVE_STORE": f"dynamodb://{table}", "FRAMESIEVE_ENDPOINT_ATTEMPTS": "1",
           "FRAMESIEVE_ALERT_RULES": "[]", "FRAMESIEVE_VERDICT_TOPIC": ""}
    from cloud.stores.dynamodb import DynamoDBStore
    from contracts.registry import Registration
    from tests.cloud.conftest import rule_event

    DynamoDBStore(table, dev_client("dynamodb", moto.url)).register_gateway(Registration("gw-1", "site-1", ("plaza",)))
    event = rule_event(EVENT.read_bytes(), "gw-1", json.loads(EVENT.read_text())["created_s"] + 0.25)
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", _RUN_HANDLER, str(zipdir),
                           sysconfig.get_paths()["purelib"], ",".join(NOT_IN_LAMBDA)],
                          input=json.dumps(event), capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcome"]["status"] == "dead_letter" and "endpoint" in result["outcome"]["reason"]
    assert all(m.startswith(str(zipdir)) for m in result["modules"]), "imported from outside the zip"
    items = dev_client("dynamodb", moto.url).scan(TableName=table)["Items"]
    assert sorted(i["pk"]["S"][:4] for i in items if not i["pk"]["S"].startswith(("GW#", "OWNER#"))) == [
        "DLQ#", "MSG#"]  # no result row


def test_a_router_that_imports_numpy_is_refused(tmp_path):
    for pkg in ("cloud", "cloud/router", "cloud/stores", "contracts"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "cloud/stores/dynamodb.py").write_text("")
    (tmp_path / "cloud/router/handler.py").write_text("import numpy\n\ndef handler(event, context):\n    pass\n")
    with pytest.raises(PackagingError, match="numpy is not in the Lambda runtime"):
        lambda_sources(tmp_path)
    assert issubclass(PackagingError, CloudError)


def test_model_artifact_is_what_sagemaker_unpacks(tmp_path):
    art = package_model(CENTERNET_STUDENT_MANIFEST, tmp_path)
    manifest = json.loads(CENTERNET_STUDENT_MANIFEST.read_text())
    with tarfile.open(art.path, "r:gz") as tar:
        assert tar.getnames() == ["manifest.json", manifest["file"]]
        model = tar.extractfile(manifest["file"]).read()
        assert json.loads(tar.extractfile("manifest.json").read()) == manifest
    assert hashlib.sha256(model).hexdigest() == manifest["sha256"]
    assert package_model(CENTERNET_STUDENT_MANIFEST, tmp_path).sha256 == art.sha256  # same bytes: same key


def test_tampered_model_is_not_packaged(student_copy, tmp_path):
    from models.exceptions import ChecksumMismatch

    manifest = json.loads(student_copy.read_text())
    with open(student_copy.parent / manifest["file"], "ab") as f:
        f.write(b"\0")
    with pytest.raises(ChecksumMismatch):
        package_model(student_copy, tmp_path)


@pytest.mark.slow
def test_teacher_artifact_is_served_from_sagemakers_model_dir(teacher_manifest, tmp_path, monkeypatch):
    """Unpacked where SageMaker puts it, the teacher artifact is what `framesieve-cloud serve` finds and loads."""
    import urllib.request

    from cloud.inference.server import resolve_model, start_in_thread

    art = package_model(teacher_manifest, tmp_path / "build")
    model_dir = tmp_path / "opt-ml-model"
    with tarfile.open(art.path, "r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    assert resolve_model() == model_dir / "manifest.json"
    server, port = start_in_thread(resolve_model(), threads=1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=10) as reply:
            assert reply.status == 200
    finally:
        server.stop()
