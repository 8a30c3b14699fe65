"""Model bundles for model-update jobs: a reproducible tar.gz (fixed mtimes and owners, so the same model
gives the same bytes and sha256) of a student's manifest.json, its model and its training checkpoint.
`edge-agent models pack` and `framesieve-cloud specialize` make them; the gateway unpacks them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path


def pack_bundle(manifest_path: Path, out: Path) -> str:
    """A reproducible bundle (fixed mtimes and owners) of a manifest, its model and its training checkpoint
    (when there is one); returns its sha256."""
    manifest = json.loads(Path(manifest_path).read_text())
    model = Path(manifest_path).parent / manifest["file"]
    files = [("manifest.json", Path(manifest_path).read_bytes()), (model.name, model.read_bytes())]
    # The training checkpoint, if beside it, travels too: the specialization loop fine-tunes from it next time.
    checkpoint = Path(manifest_path).parent / str(manifest.get("training", {}).get("checkpoint") or "")
    if checkpoint.is_file() and plain_name(checkpoint.name):
        files.append((checkpoint.name, checkpoint.read_bytes()))
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def plain_name(name: str) -> bool:
    """A file at the top of the bundle: no folders, no way out of the install folder."""
    name = name[2:] if name.startswith("./") else name
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")
