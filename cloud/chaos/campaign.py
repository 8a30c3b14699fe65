"""The campaign in order, and its table."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2

from cloud.chaos.inputs import run_bombs, run_mixed_clients, run_router_corpus
from cloud.chaos.rig import Rig
from cloud.chaos.stream import Row, run_stream_faults


@dataclass(frozen=True)
class CampaignOptions:
    clip: Path
    workdir: Path
    teacher_manifest: Path | None = None
    cameras: int = 2
    fps: float = 1.0
    hang_s: float = 30.0  # the endpoint hung (SIGSTOP) this long
    outage_s: float = 10.0  # the endpoint, then the broker, then the broker again under a gateway crash
    warmup_s: float = 8.0
    verdict_timeout_s: float = 10.0
    streams: bool = True
    inputs: bool = True


def _sample_jpeg(clip: Path) -> bytes:
    cap = cv2.VideoCapture(str(clip))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"cannot read a frame of {clip}")
    return cv2.imencode(".jpg", cv2.resize(frame, (320, 240)), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def run_campaign(options: CampaignOptions, progress: Callable[[str], None] = print) -> list[Row]:
    rows: list[Row] = []
    jpeg = _sample_jpeg(options.clip)
    with Rig(options.workdir, options.clip, options.teacher_manifest, cameras=options.cameras, fps=options.fps,
             verdict_timeout_s=options.verdict_timeout_s) as rig:
        assert rig.cloud is not None and rig.cloud.router is not None and rig.teacher is not None
        if options.streams:
            rows += run_stream_faults(rig, options.hang_s, options.outage_s, options.warmup_s, progress)
        if options.inputs:
            progress("router fed the malformed corpus")
            rows.append(run_router_corpus(rig.cloud.router, jpeg))
            progress("inference server fed pixel bombs")
            rows.append(run_bombs(rig.teacher.ready_port, rig.teacher.pid, jpeg))
            progress("8 clients mixing good and bad input")
            rows.append(run_mixed_clients(rig.teacher.ready_port, jpeg))
    return rows


def format_table(rows: list[Row]) -> str:
    """One line per fault (ok, lost, duplicated), then what was checked and what was found, in full."""
    def cell(v: object) -> str:
        return "-" if v is None else str(v)

    width = max(len(r.fault) for r in rows) + 2
    lines = [f"{'fault':<{width}}{'ok':<5}{'lost':<6}{'dup':<5}", "-" * (width + 16)]
    for r in rows:
        lines.append(f"{r.fault:<{width}}{'yes' if r.ok else 'NO':<5}{cell(r.lost):<6}{cell(r.duplicated):<5}")
        lines.append(f"    checked: {r.checked}")
        found = "; ".join(x for x in (r.stalled if r.stalled != "-" else "", r.detail) if x)
        if found:
            lines.append(f"    found:   {found}")
    failed = sum(not r.ok for r in rows)
    lines.append(f"{len(rows) - failed}/{len(rows)} checks passed" + (f"; {failed} FAILED" if failed else ""))
    return "\n".join(lines)


def save(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in rows], indent=1))
