"""Cascade bands chosen without the scene they are judged on.

For each left-out scene, the bands are picked on the other scenes' threshold sweeps: the fewest
escalations (pooled over those scenes) that keep every label's presence recall at the target on each of
those scenes. They are then applied to the left-out scene, whose own sweep gives its figures at them.
Pooled over the folds, that is what a camera nobody tuned for gets from bands chosen this way; the
bands to ship are the same choice made on every scene.
"""

from __future__ import annotations

from contracts.labels import PRODUCT_LABELS

RECALL_FLOOR = {"person": 0.95, "vehicle": 0.90}  # issue 12's worst-scene targets


def _key(point: dict) -> tuple[float, float]:
    return point["accept"], point["reject"]


def choose(rows: list[dict], floors: dict[str, float] = RECALL_FLOOR) -> dict | None:
    """The (accept, reject) whose recall meets `floors` on every scene with that label, with the fewest
    escalations pooled over the scenes (frame-weighted); ties to the higher accept (more conservative)."""
    by_key: dict[tuple[float, float], list[tuple[dict, dict]]] = {}
    for row in rows:
        for point in row.get("sweep", []):
            by_key.setdefault(_key(point), []).append((row, point))
    best = None
    for key, pairs in by_key.items():
        if len(pairs) != len(rows):
            continue
        ok = all((point[f"{label}_presence_recall"] or 0.0) >= floors[label]
                 for row, point in pairs for label in PRODUCT_LABELS if row["labels"][label]["reference_frames"])
        if not ok:
            continue
        frames = sum(row["frames"] for row, _ in pairs)
        escalated = sum(point["escalation_fraction"] * row["frames"] for row, point in pairs) / max(1, frames)
        candidate = {"accept": key[0], "reject": key[1], "escalation_fraction": round(escalated, 4)}
        if best is None or (candidate["escalation_fraction"], -candidate["accept"]) < (
                best["escalation_fraction"], -best["accept"]):
            best = candidate
    return best


def judged_out_of_sample(rows: list[dict], floors: dict[str, float] = RECALL_FLOOR) -> dict:
    """Per scene: the bands chosen on the others and the scene's own figures at them; pooled."""
    folds = []
    for row in rows:
        bands = choose([r for r in rows if r is not row], floors)
        point = next((p for p in row.get("sweep", []) if bands and _key(p) == (bands["accept"], bands["reject"])),
                     None)
        entry: dict = {"scene": row["scene"], "frames": row["frames"], "bands": bands}
        if point is not None:
            entry["escalation_fraction"] = point["escalation_fraction"]
            for label in PRODUCT_LABELS:
                n = row["labels"][label]["reference_frames"]
                entry[label] = {"reference_frames": n,
                                "presence_recall": point[f"{label}_presence_recall"] if n else None}
        folds.append(entry)
    judged = [f for f in folds if "escalation_fraction" in f]
    frames = sum(f["frames"] for f in judged)
    pooled: dict = {"frames": frames, "escalation_fraction":
                    round(sum(f["escalation_fraction"] * f["frames"] for f in judged) / max(1, frames), 4)}
    for label in PRODUCT_LABELS:
        have = [f for f in judged if f[label]["reference_frames"]]
        n = sum(f[label]["reference_frames"] for f in have)
        hits = sum(round(f[label]["presence_recall"] * f[label]["reference_frames"]) for f in have)
        worst = min(have, key=lambda f: f[label]["presence_recall"], default=None)
        pooled[label] = {"k": hits, "n": n, "presence_recall": round(hits / n, 4) if n else None,
                         "worst": None if worst is None else {"scene": worst["scene"],
                                                              "presence_recall": worst[label]["presence_recall"]}}
    return {"floors": floors, "folds": folds, "pooled": pooled, "ship": choose(rows, floors)}
