"""Alert rules: which teacher detections notify a person (through SNS), and how often.

A rule matches a detection by label, camera (glob patterns), site, zone (a polygon in source-frame
pixels that the box's foot point, the bottom centre, must fall in), a daily time window in a named time
zone and a minimum score. Cooldown is per camera and label and is held in the results store (the
router runs as many concurrent Lambdas), so one person in view sends one alert, not sixty.

Rules are JSON (FRAMESIEVE_ALERT_RULES, or a file named by FRAMESIEVE_ALERT_RULES_FILE):
  [{"name": "night-person", "labels": ["person"], "cameras": ["plaza", "gate-*"], "sites": ["site-1"],
    "zone": [[0, 300], [768, 300], [768, 576], [0, 576]], "hours": "22:00-06:00", "tz": "Europe/Paris",
    "days": ["mon", "tue"], "min_score": 0.6, "cooldown_s": 300}]
Every key but "name" is optional; unknown keys are refused, naming the rule and the key.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud import constants
from cloud.exceptions import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_KEYS = {"name", "labels", "cameras", "sites", "zone", "hours", "tz", "days", "min_score", "cooldown_s"}


@dataclass(frozen=True)
class AlertRule:
    name: str
    labels: tuple[str, ...] = ()  # empty: any label
    cameras: tuple[str, ...] = ()  # glob patterns; empty: any camera
    sites: tuple[str, ...] = ()
    zone: tuple[tuple[float, float], ...] = ()  # polygon in source pixels; empty: the whole frame
    hours: tuple[int, int] | None = None  # minutes after midnight [start, end); end < start spans midnight
    tz: str = "UTC"
    days: tuple[str, ...] = ()  # empty: every day
    min_score: float = 0.0
    cooldown_s: float = constants.DEFAULT_ALERT_COOLDOWN_S

    def matches(self, camera: str, site: str, label: str, score: float, box: tuple[float, float, float, float],
                t_s: float) -> bool:
        if self.labels and label not in self.labels:
            return False
        if score < self.min_score:
            return False
        if self.cameras and not any(fnmatch.fnmatchcase(camera, p) for p in self.cameras):
            return False
        if self.sites and site not in self.sites:
            return False
        if self.zone and not point_in_polygon(((box[0] + box[2]) / 2, box[3]), self.zone):
            return False
        if self.hours is not None or self.days:
            local = datetime.fromtimestamp(t_s, _zone(self.tz))
            if self.days and DAYS[local.weekday()] not in self.days:
                return False
            if self.hours is not None:
                minute, (start, end) = local.hour * 60 + local.minute, self.hours
                inside = start <= minute < end if start <= end else (minute >= start or minute < end)
                if not inside:
                    return False
        return True


def _zone(name: str) -> tzinfo:
    """UTC without the tz database (a minimal Lambda image may lack it); other zones through zoneinfo."""
    return UTC if name == "UTC" else ZoneInfo(name)


def point_in_polygon(point: tuple[float, float], polygon: tuple[tuple[float, float], ...]) -> bool:
    """Ray casting; a point on the boundary may fall either way."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _strings(rule: dict, key: str, where: str) -> tuple[str, ...]:
    value = rule.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key}: expected a list of names, got {value!r:.60}")
    return tuple(value)


def _hours(value: Any, where: str) -> tuple[int, int]:
    try:
        start, end = (int(h) * 60 + int(m) for h, m in (part.split(":") for part in value.split("-")))
        if not (0 <= start < 1440 and 0 <= end <= 1440):
            raise ValueError
    except (AttributeError, ValueError) as exc:
        raise ConfigError(f"{where}.hours: expected \"HH:MM-HH:MM\" (e.g. \"22:00-06:00\"), got {value!r}") from exc
    return start, end


def _number(rule: dict, key: str, default: float, lo: float, hi: float, where: str) -> float:
    value = rule.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f"{where}.{key}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def parse_rule(rule: Any, index: int) -> AlertRule:
    where = f"alert rule [{index}]"
    if not isinstance(rule, dict):
        raise ConfigError(f"{where}: expected an object, got {rule!r:.60}")
    if unknown := sorted(set(rule) - _KEYS):
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_KEYS)}")
    name = rule.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: every rule needs a non-empty name")
    where = f"alert rule {name!r}"
    zone = rule.get("zone", [])
    try:
        polygon = tuple((float(x), float(y)) for x, y in zone)
        if polygon and (len(polygon) < 3 or not all(math.isfinite(v) for p in polygon for v in p)):
            raise ValueError
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.zone: expected at least 3 [x, y] points in source pixels, "
                          f"got {zone!r:.80}") from exc
    tz = rule.get("tz", "UTC")
    try:
        _zone(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.tz: {tz!r} is not a known time zone (e.g. \"UTC\", \"Europe/Paris\")") from exc
    days = _strings(rule, "days", where)
    if bad := [d for d in days if d not in DAYS]:
        raise ConfigError(f"{where}.days: {bad} are not days; use {list(DAYS)}")
    return AlertRule(
        name=name, labels=_strings(rule, "labels", where), cameras=_strings(rule, "cameras", where),
        sites=_strings(rule, "sites", where), zone=polygon,
        hours=_hours(rule["hours"], where) if "hours" in rule else None, tz=tz, days=days,
        min_score=_number(rule, "min_score", 0.0, 0.0, 1.0, where),
        cooldown_s=_number(rule, "cooldown_s", constants.DEFAULT_ALERT_COOLDOWN_S, 0.0, 7 * 86400, where),
    )


def parse_rules(text: str, source: str = constants.ALERT_RULES) -> tuple[AlertRule, ...]:
    try:
        raw = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: the alert rules are not valid JSON ({exc})") from exc
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: expected a JSON list of rules, got {type(raw).__name__}")
    rules = tuple(parse_rule(r, i) for i, r in enumerate(raw))
    names = [r.name for r in rules]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"{source}: rule names must be unique; repeated: {dupes}")
    return rules


def rules_from_env(env: dict[str, str] | None = None) -> tuple[AlertRule, ...]:
    env = dict(os.environ) if env is None else env
    if path := env.get(constants.ALERT_RULES_FILE):
        try:
            return parse_rules(Path(path).read_text(), path)
        except OSError as exc:
            raise ConfigError(f"{constants.ALERT_RULES_FILE}={path}: cannot read it ({exc})") from exc
    return parse_rules(env.get(constants.ALERT_RULES, ""))


@dataclass(frozen=True)
class AlertMatch:
    label: str
    rule: AlertRule
    score: float
    box: tuple[float, float, float, float]


def evaluate(rules: tuple[AlertRule, ...], camera: str, site: str, t_s: float,
             detections: list[tuple[str, float, tuple[float, float, float, float]]]) -> list[AlertMatch]:
    """At most one match per label: its best-scoring detection that some rule matches (first rule wins)."""
    best: dict[str, AlertMatch] = {}
    for label, score, box in sorted(detections, key=lambda d: -d[1]):
        if label in best:
            continue
        for rule in rules:
            if rule.matches(camera, site, label, score, box, t_s):
                best[label] = AlertMatch(label, rule, score, box)
                break
    return list(best.values())
