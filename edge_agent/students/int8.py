"""`student.precision: auto`: the agent's student quantised to INT8 on the agent's own cameras, in the background.

The agent starts on the fp32 student. Every camera that runs it offers its sampled frames; one per camera per
`calibration.every_s` is kept, at the student's input size, until `calibration.frames` are held. A thread then
runs the quantiser (models/student/self_int8.py) as a child process at nice 19, so its Python never holds
the loop's GIL and its CPU is counted exactly; the decision loop goes on with fp32 meanwhile. The child
quantises on all but the held-out share of the frames and compares INT8 with fp32 on the rest, at the cascade's
bands. The loop swaps INT8 in (the agent's model-update swap: a few live batches of probation, the fp32 back if
INT8 fails one) only if the figures pass `student.gate` (`precision: int8` swaps whatever they say).

The INT8 student is kept in `<cache_dir>/<fp32 sha256[:16]>-<settings key>/`: its ONNX file, its manifest
(with its sha256) and check.json (the gate's figures, naming both sha256s). A restart with the same fp32
student and settings judges the kept figures against the gate and starts on INT8 at once; a file that does not
match its manifest is refused, deleted and made again from new frames. Cameras with a student of their own
(specialization) keep theirs and offer nothing; they run the INT8 student only if rolled back to the agent's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_agent.config import AgentConfig
from edge_agent.pipeline.sources import SampledFrame
from models.exceptions import ModelError
from models.runtime import Detector, load_detector
from models.student.self_int8 import gate_reason, to_input_size

log = logging.getLogger(__name__)


class Students(Protocol):
    """What the quantiser needs of the agent's students (app/detect.py): the shared one, and its model-update swap."""

    @property
    def shared(self) -> _Shared: ...

    def install(self, detector: Detector, probation_batches: int, done: Callable[[str | None], None]) -> None: ...


class _Shared(Protocol):
    detector: Detector


class SelfQuantizer:
    def __init__(self, config: AgentConfig, fp32: Detector):
        self.settings = config.student_settings
        self.precision = self.settings.precision
        self.threads = config.student_threads
        self.fp32 = fp32
        calib = self.settings.calibration
        root = Path(calib.cache_dir or Path(config.fleet.models_dir) / "int8-self").expanduser()
        key = hashlib.sha256(json.dumps(calib.model_dump(include={"frames", "every_s", "held_out"}),
                                        sort_keys=True).encode()).hexdigest()[:8]
        self.dir = root / f"{fp32.manifest.sha256[:16]}-{key}"
        cam = config.cameras[0].cascade.labels  # the bands the check decides at (the first camera's)
        self.bands = {label: (b.accept, b.reject) for label, b in cam.items()}
        self.state = "collecting"  # collecting, quantising, checking, swapping, int8, fp32
        self.reason = ""
        self.check: dict | None = None
        self.cached = False
        self.cpu_s: float | None = None
        self.wall_s: float | None = None
        self._kept: list[tuple[str, float, np.ndarray]] = []
        self._last: dict[str, float] = {}
        self._ready: Detector | None = None
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- at start ---------------------------------------------------------------------------------------------
    def from_cache(self) -> Detector | None:
        """The kept INT8 student for this fp32, if intact and (precision auto) passing the gate; a tampered one is
        refused and deleted (it is made again)."""
        manifest, check_path = self.dir / "manifest.json", self.dir / "check.json"
        if not manifest.is_file():
            return None
        try:
            detector = load_detector(manifest, threads=self.threads)
            check = json.loads(check_path.read_text())
            if (check.get("int8_sha256"), check.get("fp32_sha256")) != (detector.manifest.sha256,
                                                                        self.fp32.manifest.sha256):
                raise ModelError(f"{check_path} does not name this INT8 file and fp32 student")
        except (ModelError, OSError, ValueError) as exc:
            log.error("the kept INT8 student in %s is refused (%s); it is deleted and made again from new "
                      "frames", self.dir, exc)
            shutil.rmtree(self.dir, ignore_errors=True)
            return None
        self.cached, self.check, self.cpu_s = True, check, check.get("child_cpu_s")
        if self._judge(check):
            self.state = "int8"
            log.info("student: INT8 kept from an earlier calibration (%s; %s)", self.dir, self._figures())
            return detector
        return None

    def refuse_kept(self, reason: str) -> None:
        """The kept INT8 student failed its self-test: deleted, made again from new frames."""
        log.error("the kept INT8 student in %s is refused (%s); it is deleted and made again", self.dir, reason)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.state, self.cached, self.check = "collecting", False, None

    # -- on the loop's thread -------------------------------------------------------------------------------
    def tick(self, frames: list[SampledFrame], students: Students, probation_batches: int) -> None:
        """Once a batch: a ready INT8 student swapped in as a model update is (on probation), then this batch's
        frames of the cameras that run the agent's student offered for the calibration."""
        if (ready := self.take_ready(students.shared.detector)) is not None:
            students.install(ready, probation_batches, self.swapped)
        self.offer(frames)

    def offer(self, frames: list[SampledFrame]) -> None:
        """This batch's frames of cameras running the agent's student; keeps one per camera per every_s."""
        if self.state != "collecting":
            return
        calib = self.settings.calibration
        for frame in frames:
            last = self._last.get(frame.camera)
            if last is not None and 0 <= frame.pts_s - last < calib.every_s:  # (a stream's restart: time anew)
                continue
            self._last[frame.camera] = frame.pts_s
            self._kept.append((frame.camera, frame.pts_s, to_input_size(frame.image, self.fp32.input_wh)))
            if len(self._kept) >= calib.frames:
                self.state = "quantising"
                self._thread = threading.Thread(target=self._build, name="int8-quantiser", daemon=True)
                self._thread.start()
                return

    def take_ready(self, current: Detector) -> Detector | None:
        """The INT8 student to swap in now, once; None while there is none (or the agent's student changed)."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is None:
            return None
        if current is not self.fp32:
            self._fp32_stays("the agent's student changed (a model update) while it was being quantised; restart the "
                             "agent to quantise the new one")
            return None
        return ready

    def swapped(self, failure: str | None) -> None:
        """The probation's outcome of the swap."""
        if failure is None:
            self.state = "int8"
            log.info("student: now INT8 (%s)", self._figures())
        else:
            self._fp32_stays(f"INT8 was rolled back on a live batch: {failure}")

    # -- in the background ----------------------------------------------------------------------------------
    def _build(self) -> None:
        kept, self._kept = self._kept, []
        every = max(2, round(1 / self.settings.calibration.held_out))
        held = [f for k, (_, _, f) in enumerate(kept) if k % every == every - 1]
        calibration = [f for k, (_, _, f) in enumerate(kept) if k % every != every - 1]
        note = {"cameras": sorted({c for c, _, _ in kept}), "span_s": round(kept[-1][1] - kept[0][1], 1),
                "held_out": len(held)}
        started = time.monotonic()
        try:
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".int8-", dir=self.dir.parent) as tmp:
                work = Path(tmp)
                np.savez(work / "frames.npz", calibration=np.stack(calibration), held_out=np.stack(held),
                         note=json.dumps(note))
                cpu_s, error = self._run_child(work)
                self.wall_s = round(time.monotonic() - started, 1)
                self.cpu_s = round(cpu_s, 2)
                if error:
                    raise RuntimeError(error)
                check = json.loads((work / "out" / "check.json").read_text())
                check.update(child_cpu_s=self.cpu_s, wall_s=self.wall_s, **note)
                (work / "out" / "check.json").write_text(json.dumps(check, indent=2) + "\n")
                shutil.rmtree(self.dir, ignore_errors=True)
                os.replace(work / "out", self.dir)
            detector = load_detector(self.dir / "manifest.json", threads=self.threads)
        except Exception as exc:  # a failed quantisation leaves the agent on fp32, never stopped
            self._fp32_stays(f"quantising failed: {exc}")
            return
        self.check = check
        if self._judge(check):
            self.state = "swapping"
            with self._lock:
                self._ready = detector

    def _run_child(self, work: Path) -> tuple[float, str | None]:
        """The quantiser as a child at nice 19; its CPU seconds (user + system) and an error, if any."""
        args = [sys.executable, "-m", "models.student.self_int8", str(self.fp32.manifest.path),
                str(work / "frames.npz"), str(work / "out"), json.dumps(self.bands)]
        with open(work / "stderr.txt", "wb") as err, self._lock:
            if self._closed:
                return 0.0, "the agent stopped"
            self._child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=lambda: os.nice(19))
        timer = threading.Timer(self.settings.calibration.timeout_s, self._child.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(self._child.pid, 0)
            with self._lock:  # reaped: close() must not signal its pid any more
                self._child.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
        cpu = usage.ru_utime + usage.ru_stime
        if self._closed:
            return cpu, "the agent stopped before it finished (the next start collects frames again)"
        if self._child.returncode != 0:
            tail = (work / "stderr.txt").read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
            why = "it was stopped" if self._child.returncode < 0 else tail[0]
            return cpu, f"the quantiser exited with {self._child.returncode}: {why}"
        return cpu, None

    # -- the decision ---------------------------------------------------------------------------------------
    def _judge(self, check: dict) -> bool:
        """Whether INT8 goes in; else the agent stays on fp32 and says why."""
        gate = self.settings.gate
        reason = gate_reason(check, gate.min_agreement, gate.max_lost_share, gate.max_score_diff_mean,
                          gate.max_extra_escalation)
        if reason is None:
            return True
        if self.precision == "int8":
            log.warning("student: INT8 fails the gate (%s) but student.precision is int8: it is swapped in", reason)
            self.reason = f"gate failed, swapped anyway (precision int8): {reason}"
            return True
        self._fp32_stays(f"INT8 failed the gate: {reason}")
        return False

    def _fp32_stays(self, reason: str) -> None:
        self.state, self.reason = "fp32", reason
        log.warning("student: stays fp32: %s", reason)

    def _figures(self) -> str:
        c = self.check or {}
        return (f"agreement {c.get('agreement')} on {c.get('frames')} held-out frames, lost {c.get('lost')} of "
                f"{c.get('fp32_kept')}, score difference {c.get('score_diff_mean')}, calibrated on "
                f"{c.get('calibration_frames')} frames in {self.cpu_s} CPU s")

    def summary(self) -> dict:
        c = self.check or {}
        return {"precision": self.precision, "state": self.state, "reason": self.reason, "cached": self.cached,
                "frames_kept": len(self._kept), "frames_wanted": self.settings.calibration.frames,
                "cpu_s": self.cpu_s, "wall_s": self.wall_s, "dir": str(self.dir),
                "check": {k: c.get(k) for k in ("frames", "pairs", "agreement", "fp32_kept", "lost", "lost_share",
                                                "score_diff_mean", "score_diff_max", "calibration_frames")}
                if c else None}

    def close(self) -> None:
        """A quantiser still running is stopped (the agent's own child)."""
        with self._lock:
            self._closed = True
            child = self._child
        if child is not None and child.returncode is None:
            child.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
