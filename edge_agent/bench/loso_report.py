"""report.md and loso.png for a leave-one-scene-out run: per scene, pooled and the worst, with counts
and 95% intervals; n/a where a figure has nothing behind it."""

from __future__ import annotations

from pathlib import Path

from contracts.labels import PRODUCT_LABELS


def _fmt(rate: dict | None) -> str:
    if not rate or rate["value"] is None:
        return "n/a"
    lo, hi = rate["ci95"]
    return f"{rate['value']:.3f} ({rate['k']}/{rate['n']}; {lo:.2f}-{hi:.2f})"


def _seen(row: dict) -> str:
    return " (trained on: a demonstration)" if row.get("student_trained_on_scene") else ""


def _frac(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def write_report(result: dict, out_dir: Path) -> Path:
    cascade = result["cascade"]
    bands = ", ".join(f"{k} accept {v['accept']} / reject {v['reject']}" for k, v in cascade["labels"].items())
    lines = [
        f"# Leave one scene out: {result['family']} student",
        "",
        f"Each scene is judged by a student built without it, through the whole edge pipeline at "
        f"{result['fps']:g} fps (cascade level {cascade['level']}; {bands}), against the teacher on every "
        f"sampled frame. Figures: value (count/frames; 95% Wilson interval). n/a: nothing behind the figure.",
        "",
        "| scene | frames | escalated | person frames | person recall | person precision | person false presence "
        "| vehicle frames | vehicle recall | vehicle precision | vehicle false presence "
        "| escalation for recall 0.97 (person / vehicle) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["scenes"]:
        p, v = row["labels"]["person"], row["labels"]["vehicle"]
        lines.append(
            f"| {row['scene']}{_seen(row)} | {row['frames']} | {_fmt(row['escalated'])} | {p['reference_frames']} "
            f"| {_fmt(p['presence_recall'])} | {_fmt(p['presence_precision'])} | {_fmt(p['false_presence'])} "
            f"| {v['reference_frames']} | {_fmt(v['presence_recall'])} | {_fmt(v['presence_precision'])} "
            f"| {_fmt(v['false_presence'])} "
            f"| {_frac(p['escalation_for_recall_97'])} / {_frac(v['escalation_for_recall_97'])} |")
    pooled = result["pooled"]
    pp, pv = pooled["labels"]["person"], pooled["labels"]["vehicle"]
    lines += [
        f"| **pooled** | {pooled['frames']} | {_fmt(pooled['escalated'])} | {pp['presence_recall']['n']} "
        f"| {_fmt(pp['presence_recall'])} | {_fmt(pp['presence_precision'])} | {_fmt(pp['false_presence'])} "
        f"| {pv['presence_recall']['n']} | {_fmt(pv['presence_recall'])} | {_fmt(pv['presence_precision'])} "
        f"| {_fmt(pv['false_presence'])} | |",
        "",
        "Worst scene:",
    ]
    for label in PRODUCT_LABELS:
        w = pooled["worst"][label]
        lines.append(f"- {label} recall: " + ("n/a (no scene has this label)" if w is None
                                              else f"{w['scene']}, {_fmt(w)}"))
    w = pooled["worst"]["escalated"]
    lines += [f"- escalated: {w['scene']}, {_fmt(w)}", "", "## Recall by object size (reference box height)", "",
              "| label | small (< 32 px) | medium (32-96 px) | large (>= 96 px) |", "|---|---|---|---|"]
    for label in PRODUCT_LABELS:
        s = pooled["labels"][label]["recall_by_size"]
        lines.append(f"| {label} | {_fmt(s['small'])} | {_fmt(s['medium'])} | {_fmt(s['large'])} |")
    lines += ["", "Box recall: reference boxes matched by the final boxes at IoU >= 0.5, pooled over scenes.", "",
              "## Calibration on the left-out scene", "",
              "Expected calibration error of the student's frame-level score (10 bins, whole frames), and "
              "confident misses: frames the teacher finds the label in where the student's score is <= 0.1.", "",
              "| scene | person ECE | person confident misses | vehicle ECE | vehicle confident misses |",
              "|---|---|---|---|---|"]
    for row in result["scenes"]:
        c = {label: row["labels"][label]["calibration"] for label in PRODUCT_LABELS}
        lines.append(f"| {row['scene']} | {c['person']['ece']:.3f} | {c['person']['confident_misses']}/"
                     f"{c['person']['positives']} | {c['vehicle']['ece']:.3f} | {c['vehicle']['confident_misses']}/"
                     f"{c['vehicle']['positives']} |")
    lines += _bands_section(result.get("bands"))
    if result["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in result["skipped"].items())]
    lines += ["", "![per scene](loso.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    plot(result, out_dir / "loso.png")
    return path


def _bands_section(bands: dict | None) -> list[str]:
    if not bands:
        return []
    floors = ", ".join(f"{k} >= {v}" for k, v in bands["floors"].items())
    out = ["", "## Bands chosen without the scene", "",
           f"For each scene, the cheapest bands (accept/reject, both labels) keeping presence recall {floors} on "
           "every other scene, from their sweeps (escalations answered by the teacher's own detections, no "
           "audit), applied to the left-out scene.", "",
           "| scene | frames | bands chosen on the others | escalated | person recall | vehicle recall |",
           "|---|---|---|---|---|---|"]
    for f in bands["folds"]:
        b = f["bands"]
        if "escalation_fraction" not in f:
            out.append(f"| {f['scene']} | {f['frames']} | {'none meets the floors' if b is None else b} | | | |")
            continue
        cells = [("n/a" if f[label]["presence_recall"] is None
                  else f"{f[label]['presence_recall']:.3f} of {f[label]['reference_frames']}")
                 for label in PRODUCT_LABELS]
        out.append(f"| {f['scene']} | {f['frames']} | {b['accept']} / {b['reject']} | "
                   f"{_frac(f['escalation_fraction'])} | {cells[0]} | {cells[1]} |")
    p = bands["pooled"]
    cells = []
    for label in PRODUCT_LABELS:
        w = p[label]["worst"]
        cells.append("n/a" if p[label]["presence_recall"] is None else
                     f"{p[label]['presence_recall']:.3f} ({p[label]['k']}/{p[label]['n']}); worst "
                     f"{w['presence_recall']:.3f} {w['scene']}")
    out.append(f"| **pooled** | {p['frames']} | | {_frac(p['escalation_fraction'])} | {cells[0]} | {cells[1]} |")
    ship = bands["ship"]
    out += ["", "Bands to ship, chosen on every scene: " + (
        "none meets the floors" if ship is None else
        f"accept {ship['accept']} / reject {ship['reject']} ({_frac(ship['escalation_fraction'])} escalated "
        f"pooled on these scenes).")]
    return out


def plot(result: dict, path: Path) -> None:
    """Per scene: presence recall of each label with its 95% interval, and the escalated share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["scenes"]
    names = [r["scene"].rsplit(".", 1)[0] for r in rows] + ["pooled"]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names)), 4.5))
    x = range(len(names))
    for offset, label, colour in ((-0.2, "person", "tab:blue"), (0.0, "vehicle", "tab:orange")):
        rates = [r["labels"][label]["presence_recall"] for r in rows]
        rates.append(result["pooled"]["labels"][label]["presence_recall"])
        for i, rate in enumerate(rates):
            if rate["value"] is None:
                ax.text(i + offset, 0.02, "n/a", ha="center", fontsize=7, rotation=90, color=colour)
                continue
            lo, hi = rate["ci95"]
            ax.errorbar(i + offset, rate["value"], yerr=[[rate["value"] - lo], [hi - rate["value"]]], fmt="o",
                        color=colour, capsize=3, label=f"{label} recall" if i == 0 else None)
    esc = [r["escalated"]["value"] for r in rows] + [result["pooled"]["escalated"]["value"]]
    ax.bar([i + 0.2 for i in x], esc, width=0.18, color="tab:gray", alpha=0.6, label="escalated share")
    ax.axhline(0.95, color="tab:blue", ls=":", lw=1)
    ax.axhline(0.30, color="tab:gray", ls=":", lw=1)
    ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Leave one scene out ({result['family']}): recall with 95% interval, escalated share")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))  # clear of the bars
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
