"""Shared fixtures: the real teacher, real footage, the CenterNet student shipped in the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from models.exceptions import FetchError
from models.paths import CENTERNET_STUDENT_MANIFEST, shared_footage_dir

# `./dev.sh test` runs the suite on every core (pytest-xdist), then these alone: each checks a real-time bound (a
# camera's sampling rate while a fault lasts, a deadline, a live stream's pace) that a neighbour test hogging the
# CPU would break, not the code.
SERIAL = (
    "tests/cloud/test_chaos.py",
    "tests/cloud/test_dashboard_browser.py",
    "tests/cloud/test_server_limits.py",
    "tests/edge_agent/app/test_concurrent_escalation.py",
    "tests/edge_agent/escalation/test_agent_over_mqtt.py",
    "tests/edge_agent/escalation/test_error_verdict.py",
    "tests/edge_agent/pipeline/test_decode.py",
    "tests/edge_agent/pipeline/test_stream_source.py",
    "tests/edge_agent/test_cloud_hang.py",
    "tests/edge_agent/test_in_flight_slow_cloud.py",
    "tests/landed/test_kvs_sieve.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("framesieve")
    group.addoption("--skip-serial", action="store_true",
                    help="leave out the real-time tests (tests/conftest.py SERIAL): the parallel pass of ./dev.sh test")
    group.addoption("--serial-only", action="store_true",
                    help="only the real-time tests, alone on the machine: the second pass of ./dev.sh test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip, only = config.getoption("--skip-serial"), config.getoption("--serial-only")
    if not (skip or only):
        return
    root = Path(str(config.rootpath))
    keep, drop = [], []
    for item in items:
        serial = Path(str(item.path)).relative_to(root).as_posix() in SERIAL
        (keep if serial == bool(only) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def teacher_manifest() -> Path:
    from models.teacher.build import ensure_teacher

    try:
        return ensure_teacher()
    except FetchError as exc:
        pytest.skip(f"teacher weights cannot be fetched here: {exc}")


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    from models.fetch import fetch_vtest

    try:
        return fetch_vtest()
    except FetchError as exc:
        pytest.skip(f"vtest.avi cannot be fetched here: {exc}")


@pytest.fixture(scope="session")
def vtest_frames(vtest_path):
    """Six real frames spread over the clip."""
    cap = cv2.VideoCapture(str(vtest_path))
    frames = []
    for index in (0, 150, 300, 450, 600, 750):
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        assert ok, f"cannot read frame {index} of {vtest_path}"
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="session")
def vtest_every_2s(vtest_path):
    """40 real consecutive samples, 2 s apart (every 20th frame): a camera's stream at 0.5 fps."""
    cap = cv2.VideoCapture(str(vtest_path))
    frames, k = [], 0
    while len(frames) < 40:
        ok, frame = cap.read()
        assert ok, f"vtest.avi ended after {k} frames"
        if k % 20 == 0:
            frames.append(frame)
        k += 1
    cap.release()
    return frames


@pytest.fixture(scope="session")
def shared_footage() -> Path:
    path = shared_footage_dir()
    if not path.is_dir():
        pytest.skip(f"shared footage folder {path} is absent (set FRAMESIEVE_SHARED_FOOTAGE)")
    return path


@pytest.fixture()
def student_copy(tmp_path) -> Path:
    """A private copy of the packaged CenterNet student (manifests, ONNX files, checkpoint) safe to tamper with."""
    src = CENTERNET_STUDENT_MANIFEST.parent
    dest = tmp_path / "student"
    shutil.copytree(src, dest)
    return dest / "manifest.json"


@pytest.fixture(scope="session")
def teacher_server_url(teacher_manifest):
    """The project's own SageMaker-compatible server over real HTTP on loopback, serving the teacher."""
    from cloud.inference.server import start_in_thread

    server, port = start_in_thread(teacher_manifest, threads=2)
    yield f"http://127.0.0.1:{port}/invocations"
    server.stop()
