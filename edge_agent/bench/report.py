"""report.md and the plots people would rather look at than read."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import ConfigError
from models.metrics import presence_text
from models.student.defaults import DEFAULTS

try:
    import matplotlib
except ModuleNotFoundError as exc:  # a gateway install has no plotting; the benches do
    raise ConfigError("the bench draws its report with matplotlib, which this install lacks: "
                      "pip install 'framesieve-cascade[bench]' (or add the bench extra to your install)") from exc

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = {"person_recall": DEFAULTS.target_recall, "escalation_fraction": 0.20, "cpu_ratio": 0.20}


def plot_timeline(timelines: dict[str, list[dict]], path: Path) -> None:
    """Per clip: people and vehicles counted by the baseline and by FrameSieve over time, escalations
    marked."""
    n = len(timelines)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n + 0.6), squeeze=False)
    for ax, (clip, unordered) in zip(axes[:, 0], timelines.items(), strict=True):
        # Frames complete out of order (carried frames before those still waiting for the cloud): draw in time.
        rows = sorted(unordered, key=lambda r: r["pts_s"])
        t = [r["pts_s"] for r in rows]
        ax.step(t, [r["baseline_people"] for r in rows], where="mid", color="tab:red", label="people, teacher")
        ax.step(t, [r["hybrid_people"] for r in rows], where="mid", color="tab:green", label="people, FrameSieve")
        ax.step(t, [r.get("baseline_vehicles", 0) for r in rows], where="mid", color="tab:red", ls=":",
                label="vehicles, teacher")
        ax.step(t, [r.get("hybrid_vehicles", 0) for r in rows], where="mid", color="tab:green", ls=":",
                label="vehicles, FrameSieve")
        for r in rows:
            if r["escalated"]:
                ax.axvline(r["pts_s"], color="tab:blue", alpha=0.25, lw=3)
        carried = [r["pts_s"] for r in rows if r["decided_by"] == "carried"]
        ax.plot(carried, [0] * len(carried), "k|", ms=8, label="carried (no motion)")
        ax.set_title(f"{clip}: {sum(r['escalated'] for r in rows)} of {len(rows)} sampled frames escalated "
                     "(blue bands)", fontsize=9)
        ax.set_ylabel("objects")
    axes[-1, 0].set_xlabel("media time (s)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_specialization(summary: dict, path: Path) -> bool:
    """Per adapted clip, frame by frame over media time: the adaptation phase (generic student, warm-up),
    then the evaluation phase with the generic and with the specialized student. Blue: escalated; red
    cross: person presence differs from the teacher. False (nothing drawn) without an adaptation."""
    cams = {clip: r["new_camera"] for clip, r in summary["clips"].items() if r.get("new_camera")}
    if cams:
        from edge_agent.bench.new_camera import plot_new_camera

        plot_new_camera(cams, path)
        return True
    adapted = {clip: r["adaptation"] for clip, r in summary["clips"].items()
               if r.get("adaptation") and "specialized" in r["adaptation"]["eval"]}
    if not adapted:
        return False
    lanes = [("adapt", "generic", "adaptation: generic, warm-up"), ("eval", "generic", "evaluation: generic"),
             ("eval", "specialized", "evaluation: specialized")]
    fig, axes = plt.subplots(len(adapted), 1, figsize=(10, 1.9 * len(adapted) + 0.8), squeeze=False)
    for ax, (clip, a) in zip(axes[:, 0], adapted.items(), strict=True):
        for y, (phase, student, _) in enumerate(lanes):
            rows = [m for m in a.get("timeline", []) if m["phase"] == phase and m["student"] == student]
            ax.scatter([m["pts_s"] for m in rows], [y] * len(rows), s=18, marker="s",
                       c=["tab:blue" if m["escalated"] else "0.85" for m in rows])
            wrong = [m["pts_s"] for m in rows if not m["person_ok"]]
            ax.plot(wrong, [y] * len(wrong), "x", color="tab:red", ms=7, mew=2)
        ax.axvline(a["adapt_until_s"], color="k", ls="--", lw=1)
        ax.set_yticks(range(len(lanes)), [label for _, _, label in lanes], fontsize=8)
        ax.set_ylim(-0.7, len(lanes) - 0.3)
        ev = a["eval"]
        ax.set_title(f"{clip}: evaluation escalated {ev['generic']['escalation_fraction']:.0%} (generic) vs "
                     f"{ev['specialized']['escalation_fraction']:.0%} (specialized); person recall "
                     f"{_fmt(ev['generic']['person'].get('presence_recall'))} vs "
                     f"{_fmt(ev['specialized']['person'].get('presence_recall'))}", fontsize=9)
    axes[-1, 0].set_xlabel("media time (s)\nblue: escalated   grey: decided at the edge   red x: person presence "
                           "differs from the teacher   dashed: end of adaptation", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_tradeoff(summary: dict, path: Path) -> None:
    """Presence recall and box F1 against the escalation fraction, across cascade thresholds (person
    solid, vehicle dotted; a label is drawn only for clips where the baseline ever sees it)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for k, (clip, r) in enumerate(summary["clips"].items()):
        points = sorted(r.get("sweep", []), key=lambda p: p["escalation_fraction"])
        if not points:
            continue
        x = [100 * p["escalation_fraction"] for p in points]
        color = f"C{k % 10}"
        for label, style in (("person", "o-"), ("vehicle", "s:")):
            if r["labels"][label].get("presence_note"):  # no positives or no negatives: no curve to read
                continue
            ax1.plot(x, [p[f"{label}_presence_recall"] for p in points], style, ms=3, color=color,
                     label=f"{clip} {label}")
            ax2.plot(x, [p[f"{label}_box_f1_iou50"] for p in points], style, ms=3, color=color)
    op = (summary.get("operating_point") or {}).get("point")
    if op:
        ax1.plot(100 * op["escalation_fraction"], op["person_presence_recall"], "k*", ms=14,
                 label=f"chosen: accept {op['accept']}, reject {op['reject']}")
    ax1.axhline(TARGETS["person_recall"], color="grey", ls="--", lw=1)
    ax1.set(xlabel="sampled frames escalated (%)", ylabel="presence recall vs teacher",
            title="Presence: recall against escalations")
    ax2.set(xlabel="sampled frames escalated (%)", ylabel="box F1 @ IoU 0.5 vs teacher",
            title="Boxes: F1 against escalations")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=7, loc="lower right")
    else:  # say so, rather than leave an empty chart to puzzle over
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no threshold sweep in this bench\n(it ran with --no-sweep)", ha="center",
                    va="center", transform=ax.transAxes, color="grey")
    for ax in (ax1, ax2):
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v, pct=False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else (f"{v:.3f}" if isinstance(v, float) else str(v))


def write_report(summary: dict, out_dir: Path, cost_text: str | None = None) -> Path:
    t = summary["total"]
    lines = [
        "# FrameSieve bench",
        "",
        f"{summary['created']} - {summary['fps']} fps - teacher {summary['teacher']['name']} "
        f"(reference threshold {summary['teacher']['reference_threshold']}) - student "
        f"{summary['student']['name']} {summary['student']['version']} - cascade level "
        f"{summary['cascade']['level']}, bands (accept/reject) "
        + ", ".join(f"{k} {v['accept']}/{v['reject']}" for k, v in summary['cascade']['labels'].items()),
        "",
        "## All clips",
        "",
        "Presence figures against the baseline (the teacher on every sampled frame), with the frame counts behind "
        "them and the 95% Wilson interval of the recall; \"n/a (no negatives)\": the reference sees the label in "
        "every frame, so a detector that always says yes would score 1.000; \"n/a (no positives)\": it never does.",
        "",
        "| clip | frames | motion-skipped | escalated | person recall | person precision | person box F1 | "
        "person count error | vehicle recall | vehicle precision | edge CPU ms/frame | baseline CPU ms/frame | ratio "
        "| KB/camera-hour |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = list(summary["clips"].items()) + [("**total**", t)]
    cams = {clip: r["new_camera"] for clip, r in summary["clips"].items() if r.get("new_camera")}
    for clip, r in rows:
        p, v = r["labels"]["person"], r["labels"]["vehicle"]
        lines.append(
            f"| {clip} | {r['sampled_frames']} | {r['motion_skipped']} | {_fmt(r['escalation_fraction'], True)} | "
            f"{presence_text(p)} | {presence_text(p, 'presence_precision')} | {_fmt(p['box_f1_iou50'])} | "
            f"{_fmt(p.get('count_error_mean'))} | {presence_text(v)} | {presence_text(v, 'presence_precision')} | "
            f"{1000 * r['edge_cpu_s_per_frame']:.1f} | {1000 * r['baseline_cpu_s_per_frame']:.1f} | "
            f"{_fmt(r['cpu_ratio'])} | {r['bytes_per_camera_hour'] / 1024:.0f} |")
    for clip, reason in summary.get("skipped_clips", {}).items():
        lines.append(f"| {clip} | skipped: {reason} ||||||||||||")
    lines += ["", "## Held-back frames (never trained on)", "",
              "| clip | from (s) | frames | escalated | person recall | person precision | person box F1 |",
              "|---|---|---|---|---|---|---|"]
    for clip, r in summary["clips"].items():
        h = r.get("held_back")
        if h:
            p = h["labels"]["person"]
            lines.append(f"| {clip} | {h['from_s']} | {h['frames']} | {_fmt(h['escalation_fraction'], True)} | "
                         f"{presence_text(p)} | {presence_text(p, 'presence_precision')} | "
                         f"{_fmt(p['box_f1_iou50'])} |")
    vt = summary["clips"].get("vtest.avi", {})
    held = vt.get("held_back") or {}
    checks = []
    if held:
        checks = [
            ("person presence recall, held-back vtest", None if held["labels"]["person"].get("presence_note")
             else held["labels"]["person"]["presence_recall"], ">=", TARGETS["person_recall"]),
            ("escalation fraction, held-back vtest", held["escalation_fraction"], "<=",
             TARGETS["escalation_fraction"]),
            ("edge / baseline CPU, vtest", vt["cpu_ratio"], "<=", TARGETS["cpu_ratio"]),
        ]
    for clip, r in summary["clips"].items():  # specialization: the evaluation phase, deployed student
        a = r.get("adaptation")
        if a:
            e = a["eval"][a["deployed"]]
            checks += [
                (f"person presence recall, {clip} after specialization ({a['deployed']})",
                 e["person"].get("presence_recall"), ">=", TARGETS["person_recall"]),
                (f"escalation fraction, {clip} after specialization ({a['deployed']})", e["escalation_fraction"],
                 "<=", TARGETS["escalation_fraction"]),
                (f"escalation fraction, {clip} after specialization (the goal beyond)", e["escalation_fraction"],
                 "<=", 0.05)]
    if checks:
        lines += ["", "## Targets", "", "| target | measured | goal | met |", "|---|---|---|---|"]
        for name, value, sign, goal in checks:
            if value is None:  # no positives or no negatives: the target cannot be judged on these frames
                lines.append(f"| {name} | n/a | {sign} {goal} | not judged |")
                continue
            met = value >= goal if sign == ">=" else value <= goal
            lines.append(f"| {name} | {_fmt(value)} | {sign} {goal} | {'yes' if met else 'no'} |")
    carried = {k: sum(r["carried_wrong"][k] for r in summary["clips"].values()) for k in ("person", "vehicle")}
    lines += ["", f"Motion-carried frames whose presence differed from the baseline: {carried}.", "",
              f"Cameras one gateway core serves at {summary['fps']} fps: {t['cameras_per_core']}.", ""]
    operating = summary.get("operating_point") or {}
    op = operating.get("point")
    if operating.get("refused"):
        lines += [f"No operating point chosen: {operating['refused']}.", ""]
    elif op:
        lines += [f"Cheapest thresholds meeting person presence recall >= {operating['target_person_recall']} "
                  f"(pooled over clips by their counts): accept {op['accept']}, reject {op['reject']}, escalating "
                  f"{_fmt(op['escalation_fraction'], True)}; there person precision is "
                  f"{_fmt(op['person_presence_precision'])} and vehicle precision "
                  f"{_fmt(op['vehicle_presence_precision'])} ({op.get('person_positives', '?')} frames with a person "
                  f"of {op.get('person_frames', '?')}).", ""]
    adapted = {clip: r["adaptation"] for clip, r in summary["clips"].items() if r.get("adaptation")}
    if adapted:
        lines += ["## Per-camera specialization", "",
                  "| clip | adapt phase | adapt escalated | records | decision | eval frames | student | escalated | "
                  "person recall | person precision | vehicle recall | vehicle precision |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for clip, a in adapted.items():
            for name in ("generic", "specialized"):
                e = a["eval"][name]
                lines.append(
                    f"| {clip} | first {a['adapt']['frames']} frames (< {a['adapt_until_s']} s) | "
                    f"{_fmt(a['adapt']['escalation_fraction'], True)} | {a['adapt']['records_kept']} | "
                    f"{'promote' if a['decision']['promote'] else 'keep champion'} | {e['frames']} | "
                    f"{name}{' (deployed)' if a.get('deployed') == name else ''} | "
                    f"{_fmt(e['escalation_fraction'], True)} | {_fmt(e['person'].get('presence_recall'))} | "
                    f"{_fmt(e['person'].get('presence_precision'))} | {_fmt(e['vehicle'].get('presence_recall'))} | "
                    f"{_fmt(e['vehicle'].get('presence_precision'))} |")
            lines.append("")
            bands = a["decision"].get("bands")
            own = (f" The specialized student runs at its own bands, accept {bands['accept']} / reject "
                   f"{bands['reject']}, the cheapest on those held-back frames." if bands else "")
            lines.append(f"Decision for {clip}: {a['decision']['why']}.{own} Only the teacher's answers to the "
                         "adaptation phase's escalations were trained on; the evaluation phase's frames never were.")
        lines += ["", "![per-camera specialization, frame by frame](specialization.png)"]
        lines.append("")
    lines += ["![escalations and detections over time](timeline.png)", "",
              "![accuracy against escalations](tradeoff.png)", ""]
    if cams:
        from edge_agent.bench.new_camera import report_section

        lines += [report_section(cams), "![specialization, frame by frame](specialization.png)", ""]
    if cost_text:
        lines += ["## Cost", "", "```", cost_text, "```", "", "![cost per camera-month](cost.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
