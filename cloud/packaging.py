"""What `framesieve-cloud deploy` uploads: the router Lambda zip, the SageMaker model artifact, and (with
--dashboard) the dashboard's Lambda zip (its API and ingest functions, the pages' files they serve, and the cost
model behind the Cost page with its third-party packages, pydantic and PyYAML, built for the Lambda's platform).

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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloud.exceptions import PackagingError
from cloud.lambda_wheels import (
    LambdaPlatform,
    cost_model_pins,
    dist_top_levels,
    installed_entries,
    lambda_wheels,
    wheel_entries,
)

# The module the Lambda runtime imports (Handler: cloud.router.handler.handler), and the store it opens.
LAMBDA_ENTRY_MODULES = ("cloud.router.handler", "cloud.stores.dynamodb")
LAMBDA_HANDLER = "cloud.router.handler.handler"
# The dashboard stack's two functions (infra/cloudformation/dashboard.yaml), the Cost page's cost model (imported
# when the page is asked for) and the files the API serves: the pages', and the price file costing reads
# (models/shipped.py finds it as config/pricing.yaml beside the models package, in the zip as in a checkout).
DASHBOARD_ENTRY_MODULES = ("cloud.dashboard.lambda_api", "cloud.dashboard.ingest", "cloud.dashboard.cost",
                           "cloud.stores.dynamodb")
DASHBOARD_DATA = ("cloud/dashboard/static", "config/pricing.yaml")
# Not in the Lambda Python runtime (boto3 is): importing any of them from the router is a packaging error.
NOT_IN_LAMBDA = ("numpy", "cv2", "onnxruntime", "onnx", "pydantic", "yaml", "torch", "models", "edge_agent")
OUR_PACKAGES = ("cloud", "contracts")
# The cost model's own packages (its third-party distributions: lambda_wheels.COST_MODEL_DISTS).
COST_MODEL_PACKAGES = ("costing", "models")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_LAMBDA_ZIP_MAX = 50 * 2**20  # a zip given to Lambda directly; unzipped, at most 250 MB
_LAMBDA_UNZIPPED_MAX = 250 * 2**20

_TRACE = """
import importlib, json, sys
blocked, ours, entries = (set(a.split(",")) - {""} for a in sys.argv[1:4])
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


def lambda_sources(root: Path | None = None, entries: tuple[str, ...] = LAMBDA_ENTRY_MODULES,
                   vendored: tuple[str, ...] = ()) -> list[Path]:
    """The source files the router (or other `entries`) imports, found by importing it in a fresh interpreter
    where the modules the Lambda runtime lacks are blocked: the zip holds exactly what runs, and a stray numpy
    import fails here. `vendored`: top-level packages the zip brings along (ours, like costing, or third-party
    ones, like pydantic), so they are not blocked."""
    return list(_traced(root or source_root(), entries, vendored))


@functools.lru_cache(maxsize=4)  # one interpreter start per source tree, entries and process
def _traced(root: Path, entries: tuple[str, ...] = LAMBDA_ENTRY_MODULES,
            vendored: tuple[str, ...] = ()) -> tuple[Path, ...]:
    blocked = [m for m in NOT_IN_LAMBDA if m not in vendored]
    ours = (*OUR_PACKAGES, *(m for m in vendored if m in COST_MODEL_PACKAGES))
    proc = subprocess.run([sys.executable, "-c", _TRACE, ",".join(blocked), ",".join(ours), ",".join(entries)],
                          cwd=root, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PackagingError(f"{', '.join(entries)} cannot be imported with only what the Lambda runtime has: "
                             f"{last}. Keep {', '.join(blocked)} out of them and what they import.")
    files = [Path(f).resolve() for f in json.loads(proc.stdout)]
    outside = [f for f in files if root not in f.parents]
    if outside:
        raise PackagingError(f"router modules were imported from outside {root}: {outside[:3]}; run from one checkout")
    return tuple(sorted(files))


def _zip_files(entries: list[tuple[str, Callable[[], bytes]]], out_dir: Path, name: str) -> tuple[Path, str, int, int]:
    """A reproducible zip of (name in the zip, reader) pairs: (its path, sha256, bytes zipped, bytes unzipped)."""
    buf, unzipped = io.BytesIO(), 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for arcname, read in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(arcname, date_time=_ZIP_TIME)
            info.external_attr = (0o755 if arcname.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            body = read()
            unzipped += len(body)
            zf.writestr(info, body)
    blob = buf.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{sha[:16]}.zip"
    path.write_bytes(blob)
    if len(blob) > _LAMBDA_ZIP_MAX or unzipped > _LAMBDA_UNZIPPED_MAX:
        raise PackagingError(f"{path.name} is {len(blob) / 2**20:.1f} MB zipped, {unzipped / 2**20:.1f} MB unzipped; "
                             "Lambda takes at most 50 MB zipped and 250 MB unzipped")
    return path, sha, len(blob), unzipped


def _source_entries(root: Path, entries: tuple[str, ...], data: tuple[str, ...],
                    vendored: tuple[str, ...] = ()) -> list[tuple[str, Callable[[], bytes]]]:
    files = set(lambda_sources(root, entries, vendored))
    for item in data:
        where = root / item
        files |= {where} if where.is_file() else \
            {f for f in where.rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    for f in list(files):  # a package's __init__ is imported with it, but keep the tree whole anyway
        for parent in f.relative_to(root).parents:
            init = root / parent / "__init__.py"
            if parent != Path(".") and init.is_file():
                files.add(init)
    return [(f.relative_to(root).as_posix(), f.read_bytes) for f in files]


def package_lambda(out_dir: Path, root: Path | None = None, entries: tuple[str, ...] = LAMBDA_ENTRY_MODULES,
                   name: str = "router", data: tuple[str, ...] = ()) -> Artifact:
    """<name>-<sha16>.zip in out_dir: the modules `entries` import, the package __init__ files above them, and
    every file under the `data` folders or files (relative to the source root)."""
    files = _source_entries(root or source_root(), entries, data)
    path, sha, size, _ = _zip_files(files, out_dir, name)
    return Artifact(path, sha, f"{name} Lambda: {len(files)} files, {size / 1024:.0f} KB, no numpy")


# ------------------------------------------------------------------------------------------ the dashboard's zip
def package_dashboard(out_dir: Path, root: Path | None = None, platform: LambdaPlatform | None = None,
                      wheels_dir: Path | None = None, out: Callable[[str], None] | None = None) -> Artifact:
    """dashboard-<sha16>.zip: the dashboard API's and ingest's modules, the pages' static files, and the Cost
    page's cost model (costing/, models/shipped.py, config/pricing.yaml) with its third-party packages for
    `platform` (default: the one infra/cloudformation/dashboard.yaml's functions run on). Those are the installed
    ones when `platform` is this interpreter's and no `wheels_dir` is given; else wheels from `wheels_dir`, or
    from the cache, downloaded once (WheelsUnavailable when they cannot be)."""
    if platform is None:
        from cloud.stackops import load_template

        template = source_root() / "infra" / "cloudformation" / "dashboard.yaml"
        platform = LambdaPlatform.from_template(load_template(template), str(template))
    pins = cost_model_pins()
    vendored = (*COST_MODEL_PACKAGES, *dist_top_levels(pins))
    files = _source_entries(root or source_root(), DASHBOARD_ENTRY_MODULES, DASHBOARD_DATA, vendored)
    if wheels_dir is None and platform.is_running():
        files += installed_entries(pins)
        source = "installed here"
    else:
        wheels, downloaded = lambda_wheels(pins, platform, wheels_dir, out)
        for whl in wheels:
            files += wheel_entries(whl)
        source = f"{downloaded} downloaded" if downloaded else f"from {wheels_dir or 'the cache'}"
    dupes = [name for name, n in Counter(a for a, _ in files).items() if n > 1]
    if dupes:
        raise PackagingError(f"two sources for {sorted(dupes)[:3]} in the dashboard's zip")
    path, sha, size, unzipped = _zip_files(files, out_dir, "dashboard")
    versions = ", ".join(f"{d} {v}" for d, v in pins.items())
    return Artifact(path, sha, f"dashboard Lambda for {platform}: {len(files)} files, {size / 2**20:.2f} MB "
                               f"({unzipped / 2**20:.1f} MB unzipped), cost model with {versions} ({source})")


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
