"""The specialization loop on the gateway, one camera at a time:

1. collect: the agent's transport is wrapped so every answered escalation and audit becomes a training
   record under `records_dir/<camera>/` (the same record the router keeps in S3); a camera without its
   own student audits more (the warm-up) until it has `warmup_records`, so its data is not only hard cases;
2. train: after `retrain_after_records` new records, or `interval_s` with any new ones, `edge-agent models
   specialize` runs as a niced child process (PyTorch never enters the agent's process; a crash or a
   timeout there costs nothing but the attempt) from the camera's current student, the champion;
3. decide: on evidence (models/student/specialize.py): with too few held-back frames showing each label
   and its absence, over too little of the camera's time, nothing is trained and the camera keeps
   onboarding ("collecting"); else the challenger is promoted only if a lower confidence bound of its recall
   at its own bands reaches the target (decision.json says why, models/student/decision.py is its type);
4. roll out: a promoted challenger is installed under `<fleet.models_dir>/cameras/<camera>/` (verified
   against its sha256 at load), checked on that camera's live frames, swapped in for that camera alone,
   and watched (guard.py): a sequential test over its audits, sized by the decision, notices a fall of
   recall; that, or a rise of its live escalation fraction or audit disagreement, sends the camera back to
   onboarding. The active one survives restarts; a rollback deactivates it.

Every attempt and outcome is kept in `<fleet.models_dir>/cameras/state.json`, and sent to the cloud as a
specialization step (report.py: the attempt with why it was due, its verdict with the decision's why; the
agent itself reports promotions installed and rollbacks).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge_agent.config import SpecializationSettings
from edge_agent.control import AgentPort, AgentStopped, CommandFailed, EndWarmup, InstallCameraStudent, outcome
from edge_agent.specialization.report import KIND_OF_OUTCOME, StepReporter
from edge_agent.students.guard import Limits
from edge_agent.students.store import UpdateError, camera_store, load_camera_student
from models.bundle import pack_bundle
from models.exceptions import ModelError
from models.student.decision import Decision

log = logging.getLogger(__name__)
HISTORY = 20  # attempts kept per camera in state.json
KEEP_RUNS = 3  # training run folders kept per camera (the promoted one is installed apart)


def guard_limits(decision: Decision, escalation_margin: float, audit_margin: float,
                 live_escalation: float | None = None) -> Limits:
    """Everything a promoted student is watched against, from its decision."""
    plan = decision.guard
    return Limits(**decision.rollback_limits(escalation_margin, audit_margin, live_escalation),
                  audit_fraction=plan.audit_fraction if plan else None,
                  recall_threshold=plan.threshold if plan else None, recall_weight=plan.weight if plan else None,
                  recall_labels=tuple(plan.labels) if plan else ("person",))


def _version(manifest: Path) -> str:
    try:
        return str(json.loads(manifest.read_text()).get("version", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def record_files(folder: Path) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(folder) if e.name.endswith(".json") and e.is_file()]
    except FileNotFoundError:
        return []


class SpecializationLoop:
    def __init__(self, agent: AgentPort, settings: SpecializationSettings, command: list[str] | None = None,
                 report: StepReporter | None = None):
        """`report`: where steps go to the cloud (default: the agent's own reporter, if it has one)."""
        self.agent, self.settings = agent, settings
        self.report: StepReporter | None = report or getattr(agent, "steps", None)
        self.records_dir = Path(settings.records_dir).expanduser()
        self.root = Path(agent.config.fleet.models_dir).expanduser() / "cameras"
        self.state_path = self.root / "state.json"
        # The child that trains; tests and packagers may point it elsewhere.
        self.command = command or [sys.executable, "-m", "edge_agent.cli"]
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the state is written by the loop's thread and the agent's (rollbacks)
        self._child: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self.state = self._load_state()
        self.cameras = [c.id for c in agent.config.cameras]
        self.counts = {camera: len(record_files(self.records_dir / camera)) for camera in self.cameras}
        self.runs = self.promotions = 0
        self.busy: str | None = None  # the camera being specialized now

    # -- state ---------------------------------------------------------------------------------------
    def _load_state(self) -> dict:
        try:
            state = json.loads(self.state_path.read_text())
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def _camera_state(self, camera: str) -> dict:
        with self._lock:
            return self.state.setdefault(camera, {"last_run_s": 0.0, "history": []})

    def _note(self, camera: str, report: bool = True, **entry) -> None:
        """Keep an outcome in state.json and, unless the agent reports it itself (`report=False`), send it."""
        if report and self.report is not None and entry["outcome"] != "promoted":  # the agent reports installs
            self.report.report(camera, KIND_OF_OUTCOME.get(entry["outcome"], "failed"), entry["why"],
                               outcome=entry["outcome"], records=self.counts.get(camera, 0))
        with self._lock:
            cam = self._camera_state(camera)
            cam["history"] = [*cam["history"], {"t_s": round(time.time(), 3), **entry}][-HISTORY:]
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".part")
            tmp.write_text(json.dumps(self.state, indent=2) + "\n")
            os.replace(tmp, self.state_path)  # a crash never leaves half a state file

    # -- collection and warm-up ---------------------------------------------------------------------
    def in_warmup(self, camera: str) -> bool:
        return self.counts.get(camera, 0) < self.settings.warmup_records

    def record_kept(self, camera: str) -> None:
        """Called by the collector after each record it wrote: on the agent's thread for a replayed file, on an
        escalation worker for a live camera (several at once, hence the lock)."""
        with self._lock:
            self.counts[camera] = self.counts.get(camera, 0) + 1
        if self.counts[camera] >= self.settings.warmup_records and self.agent.status().cameras[camera].warming_up:
            self.agent.submit(EndWarmup(camera))
            log.info("camera %s: %d training records; warm-up over", camera, self.counts[camera])

    def prune(self, camera: str) -> int:
        """Delete all but the newest `keep_records` records of a camera; returns how many went."""
        entries = sorted(record_files(self.records_dir / camera), key=lambda e: e.stat().st_mtime)
        extra = entries[:max(0, len(entries) - self.settings.keep_records)]
        for entry in extra:
            Path(entry.path).unlink(missing_ok=True)
        if extra:
            self.counts[camera] = len(entries) - len(extra)
        return len(extra)

    # -- the loop ------------------------------------------------------------------------------------
    def start(self) -> SpecializationLoop:
        self._thread = threading.Thread(target=self._run, name="specialization", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()  # an unfinished challenger is worth nothing; the next trigger starts again
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.check_interval_s):
            for camera in self.cameras:
                if self._stop.is_set():
                    return
                try:
                    if why := self.due(camera):
                        self.run_once(camera, why=why)
                except Exception:  # the loop must outlive one bad attempt
                    log.exception("camera %s: specialization attempt failed", camera)

    def due(self, camera: str, now_s: float | None = None) -> str | None:
        """Why the camera's loop should run now, or None."""
        s = self.settings
        now_s = time.time() if now_s is None else now_s
        last = self._camera_state(camera)["last_run_s"]
        entries = record_files(self.records_dir / camera)
        self.counts[camera] = len(entries)
        if len(entries) < s.min_records:
            return None
        new = sum(e.stat().st_mtime > last for e in entries)
        if new >= s.retrain_after_records:
            return f"{new} new records"
        if s.interval_s and new and now_s - last >= s.interval_s:
            return f"{new} new records and {s.interval_s:.0f} s since the last run"
        return None

    def champion(self, camera: str) -> Path:
        status = self.agent.status()
        student = status.cameras[camera].own_student or status.student
        assert student.manifest is not None, "a loaded student always knows its manifest"
        return student.manifest

    def run_once(self, camera: str, wait_install_s: float = 600.0, why: str = "") -> dict:
        """Train, decide and (if promoted) install for one camera; returns what happened. `why`: why it was
        due (due()), reported with the attempt."""
        self.busy = camera
        try:
            return self._run_once(camera, wait_install_s, why)
        finally:
            self.busy = None

    def _run_once(self, camera: str, wait_install_s: float, why: str = "") -> dict:
        s = self.settings
        started = time.time()
        with self._lock:
            self._camera_state(camera)["last_run_s"] = started  # records newer than this are "new" next time
        self.prune(camera)
        champion = self.champion(camera)
        runs = self.root / camera / "runs"
        for old in sorted(runs.glob("*"))[:-(KEEP_RUNS - 1) or None]:
            shutil.rmtree(old, ignore_errors=True)
        out = runs / time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        band = self.agent.status().cameras[camera].settings.cascade.labels.get("person")
        (out / "rules.json").write_text(s.rules().model_dump_json(indent=2) + "\n")
        args = [*self.command, "models", "specialize", "--camera", camera, "--data", str(self.records_dir / camera),
                "--from", str(champion), "--out", str(out), "--rules", str(out / "rules.json")]
        if band is not None:
            args += ["--accept", str(band.accept), "--reject", str(band.reject)]
        self.runs += 1
        log.info("camera %s: specializing from %s (%s)", camera, champion, out)
        if self.report is not None:
            self.report.report(camera, "attempt", f"{why or 'run on request'}; training from {champion.parent.name}",
                               outcome="training", version=_version(champion), records=self.counts.get(camera, 0))
        error = self._train(args, out / "specialize.log")
        if error:
            outcome = "interrupted" if self._stop.is_set() else "failed"
            log.warning("camera %s: specialization %s: %s", camera, outcome, error)
            self._note(camera, outcome=outcome, why=error, run=str(out))
            return {"outcome": outcome, "why": error}
        try:
            decision = Decision.load(out / "decision.json")
        except ModelError as exc:
            self._note(camera, outcome="failed", why=str(exc), run=str(out))
            return {"outcome": "failed", "why": str(exc)}
        if not decision.promote:
            outcome = "collecting" if decision.verdict == "collect" else "kept"
            log.info("camera %s: %s: %s", camera, outcome, decision.why)
            self._note(camera, outcome=outcome, why=decision.why, run=str(out))
            return {"outcome": outcome, "why": decision.why}
        refused = self.install(camera, out / "manifest.json", decision, wait_s=wait_install_s)
        label = "promoted" if refused is None else "interrupted" if self.agent.stopped() else "refused"
        if refused is not None:
            log.warning("camera %s: the promoted challenger was not installed (%s): %s", camera, label, refused)
        self._note(camera, outcome=label, why=refused or decision.why, run=str(out))
        return {"outcome": label, "why": refused or decision.why}

    def _train(self, args: list[str], log_path: Path) -> str | None:
        env = {**os.environ, "OMP_NUM_THREADS": str(self.settings.train_threads), "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as out:
            try:
                self._child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                               preexec_fn=lambda: os.nice(10))  # the cameras come first
            except OSError as exc:
                return f"could not start the trainer ({args[0]}): {exc}"
            try:
                rc = self._child.wait(self.settings.timeout_s)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
                return f"training took over specialization.timeout_s = {self.settings.timeout_s:.0f} s; stopped"
            finally:
                self._child = None
        if rc != 0 and self._stop.is_set():
            return "the agent stopped during training; the next trigger starts it again"
        if rc != 0:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            if any("No module named 'torch'" in line for line in tail):
                return "training needs PyTorch: install the train extra (pip install 'framesieve-cascade[train]')"
            return f"the trainer exited with {rc}: {' | '.join(tail)} (full log: {log_path})"
        return None

    # -- roll-out ------------------------------------------------------------------------------------
    def install(self, camera: str, challenger: Path, decision: Decision, wait_s: float = 600.0) -> str | None:
        """Install a promoted challenger for `camera` and swap it in on live frames; None on success,
        else why it was refused (the camera keeps its current student)."""
        config = self.agent.config
        store = camera_store(config.fleet.models_dir, camera)
        version = json.loads(challenger.read_text())["version"]
        bundle = self.root / camera / "bundle.tar.gz"
        pack_bundle(challenger, bundle)  # the model-update install: unpacked atomically beside the others
        try:
            manifest = store.install(bundle, version)
            detector = load_camera_student(manifest, camera, config.student_threads)
            install = InstallCameraStudent(camera, detector, manifest, self.limits(camera, decision),
                                           decision.bands, note=decision.why)
            outcome(self.agent.submit(install), wait_s, f"camera {camera}'s promoted student")
        except (UpdateError, CommandFailed, AgentStopped) as exc:
            return str(exc)
        self.promotions += 1
        return None

    def limits(self, camera: str, decision: Decision) -> Limits:
        """The promoted student's rollback limits (Decision.rollback_limits), with the champion's live
        escalation fraction when the guard has seen enough frames, and its recall test as the decision sized
        it."""
        live = self.agent.status().cameras[camera].uncertain_fraction
        return guard_limits(decision, self.settings.escalation_margin, self.settings.audit_margin, live)

    def rolled_back(self, camera: str, reason: str) -> None:
        """The agent took the camera's student away: the next run trains from the agent's student."""
        self._note(camera, report=False, outcome="rolled-back", why=reason)  # the agent reported it

    def summary(self) -> dict:
        cameras: dict[str, dict] = {}
        out = {"runs": self.runs, "promotions": self.promotions, "cameras": cameras}
        for camera in self.cameras:
            history = self.state.get(camera, {}).get("history", [])
            cameras[camera] = {"records": self.counts.get(camera, 0), "warmup": self.in_warmup(camera),
                                      "last": history[-1] if history else None}
        return out
