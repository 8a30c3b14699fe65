"""What `framesieve-cloud deploy` uploads: the router Lambda zip, the SageMaker model artifact, and (with
--dashboard) the dashboard's Lambda zip (its API and ingest functions, and the pages' files they serve).

Both are byte-for-byte reproducible (fixed timestamps, sorted entries) and named by their content's sha256, so a
deploy with unchanged code or model uploads nothing and CloudFormation sees no change.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cloud.exceptions import CloudError

# The module the Lambda runtime imports (Handler: cloud.router.handler.handler), and the store it opens.
LAMBDA_ENTRY_MODULES = ("cloud.router.handler", "cloud.stores.dynamodb")
LAMBDA_HANDLER = "cloud.router.handler.handler"
# The dashboard stack's two functions (infra/cloudformation/dashboard.yaml) and the files the API serves.
DASHBOARD_ENTRY_MODULES = ("cloud.dashboard.lambda_api", "cloud.dashboard.ingest", "cloud.stores.dynamodb")
DASHBOARD_DATA = ("cloud/dashboard/static",)
# Not in the Lambda Python runtime (boto3 is): importing any of them from the router is a packaging error.
NOT_IN_LAMBDA = ("numpy", "cv2", "onnxruntime", "onnx", "pydantic", "yaml", "torch", "models", "edge_agent")
OUR_PACKAGES = ("cloud", "contracts")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

_TRACE = """
import importlib, json, sys
blocked, ours, entries = (set(a.split(",")) for a in sys.argv[1:4])
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ImportError(f"{name} is not in the Lambda runtime")
sys.meta_path.insert(0, Blocker())
for entry in sorted(entries):
    importlib.import_module(entry)
print(json.dumps(sorted(m.__file__ for n, m in list(sys.modules.items())
                        if n.partition(".")[0] in ours and getattr(m, "__file__", None))))
"""


class PackagingError(CloudError):
    """The Lambda or the model artifact cannot be built as asked."""


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    detail: str  # one line for the progress output


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_root() -> Path:
    """The folder that holds the `cloud` and `contracts` packages (the checkout, or site-packages)."""
    return Path(__file__).resolve().parents[1]


def lambda_sources(root: Path | None = None, entries: tuple[str, ...] = LAMBDA_ENTRY_MODULES) -> list[Path]:
    """The source files the router (or other `entries`) imports, found by importing it in a fresh interpreter
    where the modules the Lambda runtime lacks are blocked: the zip holds exactly what runs, and a stray numpy
    import fails here."""
    return list(_traced(root or source_root(), entries))


@functools.lru_cache(maxsize=4)  # one interpreter start per source tree, entries and process
def _traced(root: Path, entries: tuple[str, ...] = LAMBDA_ENTRY_MODULES) -> tuple[Path, ...]:
    proc = subprocess.run(
        [sys.executable, "-c", _TRACE, ",".join(NOT_IN_LAMBDA), ",".join(OUR_PACKAGES), ",".join(entries)],
        cwd=root, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PackagingError(f"{', '.join(entries)} cannot be imported with only what the Lambda runtime has: "
                             f"{last}. Keep {', '.join(NOT_IN_LAMBDA)} out of them and what they import.")
    files = [Path(f).resolve() for f in json.loads(proc.stdout)]
    outside = [f for f in files if root not in f.parents]
    if outside:
        raise PackagingError(f"router modules were imported from outside {root}: {outside[:3]}; run from one checkout")
    return tuple(sorted(files))


def package_lambda(out_dir: Path, root: Path | None = None, entries: tuple[str, ...] = LAMBDA_ENTRY_MODULES,
                   name: str = "router", data: tuple[str, ...] = ()) -> Artifact:
    """<name>-<sha16>.zip in out_dir: the modules `entries` import, the package __init__ files above them, and
    every file under the `data` folders (relative to the source root)."""
    root = root or source_root()
    files = set(lambda_sources(root, entries))
    files |= {f for folder in data for f in (root / folder).rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    for f in list(files):  # a package's __init__ is imported with it, but keep the tree whole anyway
        for parent in f.relative_to(root).parents:
            init = root / parent / "__init__.py"
            if parent != Path(".") and init.is_file():
                files.add(init)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for f in sorted(files):
            info = zipfile.ZipInfo(f.relative_to(root).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())
    blob = buf.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{sha[:16]}.zip"
    path.write_bytes(blob)
    return Artifact(path, sha, f"{name} Lambda: {len(files)} files, {len(blob) / 1024:.0f} KB, no numpy")


def package_dashboard(out_dir: Path, root: Path | None = None) -> Artifact:
    """dashboard-<sha16>.zip: the dashboard API's and ingest's modules and the pages' static files."""
    return package_lambda(out_dir, root, DASHBOARD_ENTRY_MODULES, "dashboard", DASHBOARD_DATA)


def package_model(manifest_path: Path, out_dir: Path) -> Artifact:
    """model-<name>-<version>-<sha16>.tar.gz: manifest.json and the model file at the top, as SageMaker unpacks
    it into /opt/ml/model (where `framesieve-cloud serve` looks for manifest.json)."""
    from models.manifest import load_manifest

    manifest = load_manifest(manifest_path)  # refuses a model whose sha256 differs from its manifest
    model_file = manifest.model_path
    manifest_bytes = Path(manifest_path).read_bytes()
    content_id = hashlib.sha256(manifest_bytes + bytes.fromhex(manifest.sha256)).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"model-{manifest.name}-{manifest.version}-{content_id[:16]}.tar.gz"
    if not path.is_file():  # the model is the big part (35 MB for the teacher): build once per content
        tmp = path.with_suffix(".part")
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6) as gz:
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, size, opener in (
                        ("manifest.json", len(manifest_bytes), lambda: io.BytesIO(manifest_bytes)),
                        (manifest.file, model_file.stat().st_size, lambda: open(model_file, "rb"))):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.mtime = size, 0o644, 0
                    with opener() as src:
                        tar.addfile(info, src)
        tmp.replace(path)
    size_mb = path.stat().st_size / 1e6
    return Artifact(path, _sha256(path), f"model {manifest.name}@{manifest.version} ({manifest.kind}), "
                                         f"{size_mb:.1f} MB: manifest.json + {manifest.file}")
