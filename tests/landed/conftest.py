"""The sieve's tests use the cloud tests' real parts (moto_server, the teacher's inference server) and a 30 s
cut of real footage from the shared folder, made at test time (never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from models.paths import shared_footage_dir
from tests.cloud.conftest import aws_env, moto, stack, teacher_endpoint  # noqa: F401  (fixtures, shared)

CLIP = "car-detection.mp4"  # road from above, cars pass now and then (ATTRIBUTION.md there): 768x432, 12.5 fps


def cut(source: Path, out: Path, seconds: float) -> Path:
    """The first `seconds` of a clip, re-encoded (mp4v) into `out`."""
    cap = cv2.VideoCapture(str(source))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    try:
        for _ in range(int(round(seconds * fps))):
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(frame)
    finally:
        writer.release()
        cap.release()
    return out


@pytest.fixture(scope="session")
def clip30(tmp_path_factory) -> Path:
    source = shared_footage_dir() / CLIP
    if not source.is_file():
        pytest.skip(f"{source} is not here (the shared footage folder)")
    return cut(source, tmp_path_factory.mktemp("footage") / "roadcam.mp4", 30.0)


BANDS = {"person": {"accept": 0.6, "reject": 0.1}, "vehicle": {"accept": 0.6, "reject": 0.1}}  # wide: more to ask
# and audits, so a 30 s clip surely asks the cloud (the tests passed at 2% only because every camera's audit
# draws were seeded 0, which audits the 4th confident frame; they are seeded by camera id now)
AUDIT = 0.2


def sieve_yaml(tmp_path: Path, camera: str, max_s: float = 600, stream: str = "") -> Path:
    """A sieve config with one camera of site road-1: objects under landed/road/, and `stream` if given."""
    lines = ["thing: sieve-test", "student: default", f"lambda_max_segment_s: {max_s}",
             "defaults:", "  fps: 1.0", "  onboarding: {enabled: false}", "  cascade:", "    labels:",
             *(f"      {k}: {{accept: {v['accept']}, reject: {v['reject']}}}" for k, v in BANDS.items()),
             f"    audit_fraction: {AUDIT}",
             "cameras:", f"  - id: {camera}", "    site: road-1", "    s3_prefix: landed/road/",
             *([f"    stream: {stream}"] if stream else [])]
    path = tmp_path / "sieve.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
