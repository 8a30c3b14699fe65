import json

import pytest

from models.exceptions import ChecksumMismatch, ManifestError
from models.manifest import load_manifest
from models.runtime import load_detector


def test_shipped_student_verifies(student_copy):
    manifest = load_manifest(student_copy)
    assert manifest.kind == "student"
    assert manifest.model_path.stat().st_size < 2 * 1024 * 1024
    assert set(manifest.label_groups) == {"person", "vehicle"}
    assert set(manifest.thresholds) == {"person", "vehicle"}


def test_tampered_model_is_refused_naming_the_file(student_copy):
    manifest = load_manifest(student_copy)
    model = manifest.model_path
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=model.name) as info:
        load_detector(student_copy)
    assert "Refusing to load" in str(info.value)


def test_truncated_model_is_refused(student_copy):
    model = load_manifest(student_copy).model_path
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(ChecksumMismatch):
        load_detector(student_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(unexpected_key=1), "unexpected_key"),
        (lambda m: m["input"].update(width=-3), "width"),
        (lambda m: m.update(file="missing.onnx"), "does not exist"),
        (lambda m: m.update(sha256="abc"), "sha256"),
    ],
)
def test_invalid_manifest_is_a_clear_error(student_copy, edit, message):
    raw = json.loads(student_copy.read_text())
    edit(raw)
    student_copy.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=message):
        load_manifest(student_copy)


def test_missing_and_unparseable_manifest(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ManifestError, match="bad.json"):
        load_manifest(bad)
