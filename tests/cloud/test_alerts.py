"""Alert rules: parsing with errors that name the rule and key, and matching by label, camera, site,
zone, time window and score."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.alerts import evaluate, parse_rules, point_in_polygon, rules_from_env
from cloud.exceptions import ConfigError
from cloud.router.config import RouterConfig

T_NOON_UTC = 1_764_417_600.0  # 2025-11-29 12:00 UTC, a Saturday
BOX = (100.0, 100.0, 140.0, 200.0)  # foot point (120, 200)

BAD_RULES = [
    ("not a list", '{"name": "a"}', "expected a JSON list"),
    ("not json", "[{", "not valid JSON"),
    ("no name", '[{"labels": ["person"]}]', "every rule needs a non-empty name"),
    ("unknown key", '[{"name": "a", "label": "person"}]', "unknown key(s) ['label']"),
    ("bad hours", '[{"name": "a", "hours": "22-6"}]', "alert rule 'a'.hours"),
    ("bad zone", '[{"name": "a", "zone": [[0, 0], [1, 1]]}]', "at least 3 [x, y] points"),
    ("bad tz", '[{"name": "a", "tz": "Mars/Olympus"}]', "not a known time zone"),
    ("bad day", '[{"name": "a", "days": ["monday"]}]', "['monday'] are not days"),
    ("score > 1", '[{"name": "a", "min_score": 1.5}]', "min_score: expected a number in [0.0, 1.0]"),
    ("repeated name", '[{"name": "a"}, {"name": "a"}]', "repeated: ['a']"),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD_RULES], ids=[b[0] for b in BAD_RULES])
def test_bad_rules_are_refused_naming_the_rule_and_key(text, message):
    with pytest.raises(ConfigError) as err:
        parse_rules(text)
    assert message in str(err.value)


def _match(rule: dict, camera="plaza", site="site-1", label="person", score=0.8, box=BOX, t_s=T_NOON_UTC) -> bool:
    [parsed] = parse_rules(json.dumps([{"name": "r", **rule}]))
    return parsed.matches(camera, site, label, score, box, t_s)


@pytest.mark.parametrize(("rule", "kwargs", "expected"), [
    ({}, {}, True),
    ({"labels": ["vehicle"]}, {}, False),
    ({"min_score": 0.9}, {}, False),
    ({"cameras": ["gate-*", "pla*"]}, {}, True),
    ({"cameras": ["gate-*"]}, {}, False),
    ({"sites": ["site-2"]}, {}, False),
    ({"zone": [[0, 150], [300, 150], [300, 300], [0, 300]]}, {}, True),  # the feet are in the zone
    ({"zone": [[0, 0], [300, 0], [300, 150], [0, 150]]}, {}, False),  # only the head is
    ({"hours": "11:00-13:00"}, {}, True),
    ({"hours": "22:00-06:00"}, {}, False),
    ({"hours": "22:00-06:00"}, {"t_s": T_NOON_UTC + 11 * 3600}, True),  # 23:00 UTC, across midnight
    ({"hours": "12:30-14:00", "tz": "Europe/Paris"}, {}, True),  # 13:00 in Paris
    ({"days": ["sat"]}, {}, True),
    ({"days": ["mon", "tue"]}, {}, False),
])
def test_rule_matching(rule, kwargs, expected):
    assert _match(rule, **kwargs) is expected


def test_evaluate_keeps_the_best_detection_per_label_and_the_first_matching_rule():
    rules = parse_rules(json.dumps([{"name": "strict", "labels": ["person"], "min_score": 0.9},
                                    {"name": "loose", "min_score": 0.5}]))
    dets = [("person", 0.6, BOX), ("person", 0.95, BOX), ("vehicle", 0.4, BOX), ("vehicle", 0.7, BOX)]
    got = {(m.label, m.rule.name, m.score) for m in evaluate(rules, "plaza", "", T_NOON_UTC, dets)}
    assert got == {("person", "strict", 0.95), ("vehicle", "loose", 0.7)}


def test_point_in_polygon():
    square = ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))
    assert point_in_polygon((5, 5), square) and not point_in_polygon((15, 5), square)


def test_rules_from_a_file_and_router_settings_are_checked(tmp_path: Path):
    path = tmp_path / "rules.json"
    path.write_text('[{"name": "p", "labels": ["person"]}]')
    assert [r.name for r in rules_from_env({"FRAMESIEVE_ALERT_RULES_FILE": str(path)})] == ["p"]
    with pytest.raises(ConfigError, match="cannot read it"):
        rules_from_env({"FRAMESIEVE_ALERT_RULES_FILE": str(tmp_path / "missing.json")})
    with pytest.raises(ConfigError, match=r"FRAMESIEVE_TRAINING_SAMPLE_RATE='2': expected a number in \[0, 1\]"):
        RouterConfig.from_env({"FRAMESIEVE_TRAINING_SAMPLE_RATE": "2"})
    with pytest.raises(ConfigError, match="must contain {thing}"):
        RouterConfig.from_env({"FRAMESIEVE_VERDICT_TOPIC": "verdicts"})
    assert RouterConfig.from_env({"FRAMESIEVE_TRAINING_PREFIX": "td"}).training_prefix == "td/"


def test_the_lambda_path_imports_no_numpy_onnxruntime_or_opencv():
    code = ("import sys, cloud.router.handler, cloud.stores.dynamodb, cloud.stores.sqlite, cloud.alerts; "
            "bad = [m for m in ('numpy', 'onnxruntime', 'cv2') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
