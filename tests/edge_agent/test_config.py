import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "agent.example.yaml"


def test_example_config_is_valid_and_documents_every_option():
    config = load_config(EXAMPLE)
    assert config.cameras[0].id == "plaza"
    text = EXAMPLE.read_text()
    sections = (config.cameras[0], config.escalation, config.escalation.mqtt, config.escalation.spool,
                config.escalation.breaker, config.output, config.fleet, config.specialization,
                config.student_settings, config.student_settings.calibration, config.student_settings.gate)
    for section in sections:
        for name in type(section).model_fields:
            assert f"{name}:" in text, f"option {name} is not documented in {EXAMPLE.name}"
    for sub in ("motion", "regions", "cascade", "tracker", "onboarding", "decode"):
        for name in type(getattr(config.cameras[0], sub)).model_fields:
            assert f"{name}:" in text, f"option {sub}.{name} is not documented in {EXAMPLE.name}"


def test_defaults_merge_under_per_camera_overrides():
    config = parse_config("""
defaults:
  fps: 2
  cascade: {audit_fraction: 0.1, labels: {person: {accept: 0.7, reject: 0.3}}}
cameras:
  - {id: a, source: a.mp4}
  - id: b
    source: b.mp4
    fps: 5
    cascade: {labels: {person: {accept: 0.9, reject: 0.1}}}
""")
    a, b = config.cameras
    assert (a.fps, b.fps) == (2, 5)
    assert a.cascade.audit_fraction == b.cascade.audit_fraction == 0.1
    assert (a.cascade.labels["person"].accept, b.cascade.labels["person"].accept) == (0.7, 0.9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras: []", "cameras"),
        ("cameras:\n  - {id: a, source: x}\n  - {id: a, source: y}\n", "repeated: ['a']"),
        ("cameras:\n  - {id: 'bad id', source: x}\n", "cameras[0] (id bad id).id (line 2)"),
        ("cameras:\n  - id: a\n    source: x\n    fps: 0\n", "cameras[0] (id a).fps (line 4)"),
        ("cameras:\n  - id: a\n    source: x\n    cascade: {labels: {person: {accept: 0.2, reject: 0.5}}}\n",
         "reject (0.5) must be below accept (0.2)"),
        ("cameras:\n  - id: a\n    source: x\n    cascade: {labels: {dog: {accept: 0.5, reject: 0.2}}}\n",
         "unknown labels ['dog']"),
        ("cameras:\n  - {id: a, source: x}\nescalation: {transport: carrier-pigeon}\n", "escalation.transport"),
        ("cameras:\n  - {id: a, source: x}\nfrobnicate: 1\n", "frobnicate"),
        ("cameras:\n  - {id: a, source: x}\n    motion: [\n", "not valid YAML"),
        ("- a list", "top level must be a mapping"),
        ("cameras:\n  - {id: a, source: x}\nescalation: {transport: iot-core}\n", "needs mqtt.cert_file"),
        ("cameras:\n  - {id: a, source: x}\nescalation: {thing_name: 'gw/1'}\n", "escalation.thing_name"),
        ("cameras:\n  - {id: a, source: x}\nescalation: {topic_prefix: 'fs/#'}\n", "escalation.topic_prefix"),
        ("cameras:\n  - {id: a, source: x}\nescalation: {spool: {max_bytes: 10}}\n", "escalation.spool.max_bytes"),
        ("defaults: {motion: {threshold: 999}}\ncameras:\n  - {id: a, source: x}\n", "threshold"),
    ],
)
def test_bad_config_names_the_key_the_value_and_the_line(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yaml")
    assert expected in str(info.value)
    assert "agent.yaml" in str(info.value)


@pytest.mark.parametrize(("text", "where", "shown"), [
    ("site: a\ncameras:\n  - id: x\n    source: [unclosed\n", "line 5, column 1", "source: [unclosed"),
    ("site: a\ncameras:\n  - id: x\n   source: y\n", "line 4, column 4", "source: y"),
])
def test_a_yaml_syntax_error_is_told_by_line_and_column_in_the_named_file(text, where, shown):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yaml")
    message = str(info.value)
    assert message.startswith(f"agent.yaml: not valid YAML at {where}: ")
    assert shown in message and "^" in message  # the offending line, with a caret under the column
    assert "<unicode string>" not in message


@pytest.mark.slow
def test_validate_config_command_exits_2_with_the_message(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text("cameras:\n  - id: a\n    source: x\n    fps: -1\n")
    cli = [sys.executable, "-m", "edge_agent.cli", "validate-config"]
    result = subprocess.run([*cli, str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "cameras[0] (id a).fps (line 4)" in result.stderr and "Traceback" not in result.stderr
    ok = subprocess.run([*cli, str(EXAMPLE)], capture_output=True, text=True)
    assert ok.returncode == 0 and "plaza" in ok.stdout
    missing = subprocess.run([*cli, str(tmp_path / "nope.yaml")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    no_clip = tmp_path / "no-clip.yaml"
    no_clip.write_text(f"cameras:\n  - id: gate\n    source: {tmp_path / 'gone.mp4'}\n")
    gone = subprocess.run([*cli, str(no_clip)], capture_output=True, text=True)
    assert gone.returncode == 2 and f"camera gate: source {tmp_path / 'gone.mp4'} does not exist" in gone.stderr


def test_a_problem_in_defaults_is_reported_once_where_it_is_written():
    text = ("defaults:\n  fps: -1\n  cascade:\n    labels:\n      person: {accept: 2}\n"
            "cameras:\n  - {id: a, source: x}\n  - id: b\n    source: y\n    fps: abc\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yaml")
    lines = str(info.value).splitlines()[1:]
    assert lines[0].strip() == "defaults.fps (line 2): Input should be greater than 0; got -1"
    assert any(ln.strip().startswith("defaults.cascade.labels.person.reject (line 5): Field required") for ln in lines)
    assert any("cameras[1] (id b).fps (line 10)" in ln and ln.endswith("got abc") for ln in lines)
    assert len(lines) == 4  # not once more for every camera that inherits them
    assert "{" not in str(info.value) and "'" not in lines[-1]  # values as written, not Python reprs


def test_a_new_camera_onboards_by_default_and_may_opt_out():
    config = parse_config("""
defaults:
  onboarding: {still_check_s: 60}
cameras:
  - {id: a, source: a.mp4}
  - {id: b, source: b.mp4, onboarding: {enabled: false}}
""")
    a, b = config.cameras
    assert a.onboarding.enabled and a.onboarding.still_check_s == 60
    assert not b.onboarding.enabled and b.onboarding.still_check_s == 60


def test_specialization_knobs_are_defined_once():
    from models.student.defaults import DEFAULTS

    rules = parse_config("cameras: [{id: a, source: a.mp4}]").specialization.rules()
    assert rules == DEFAULTS
    from edge_agent.config import CascadeSettings

    shipped = CascadeSettings().labels["person"]  # `models specialize` without --accept judges at the agent's bands
    assert (DEFAULTS.accept, DEFAULTS.reject) == (shipped.accept, shipped.reject)
    tuned = parse_config("cameras: [{id: a, source: a.mp4}]\nspecialization: {min_present: 50, bound: clopper-pearson,"
                         " promotion_labels: [person, vehicle]}").specialization.rules()
    assert (tuned.min_present, tuned.bound, tuned.promotion_labels) == (50, "clopper-pearson", ("person", "vehicle"))


def test_validate_config_on_the_sieve_config_points_at_its_own_check(capsys):
    from edge_agent.cli import main

    sieve = EXAMPLE.parent / "sieve.example.yaml"
    assert main(["validate-config", str(sieve)]) == 2
    err = capsys.readouterr().err
    assert "looks like a sieve config" in err and f"framesieve-cloud sieve --config {sieve} --check" in err


def test_an_unknown_key_is_called_one():
    with pytest.raises(ConfigError) as info:
        parse_config("cameras:\n  - {id: a, source: x, fsp: 2}\n", "agent.yaml")
    assert "cameras[0] (id a).fsp (line 2): unknown key" in str(info.value)
    assert "Extra inputs" not in str(info.value)


def test_validate_config_checks_the_escalation_source_file_too(tmp_path, capsys):
    from edge_agent.cli import main

    config = tmp_path / "agent.yaml"
    config.write_text(f"cameras:\n  - id: gate\n    source: {tmp_path}\n"
                      f"    escalation_source: {tmp_path / 'main.mp4'}\n")
    assert main(["validate-config", str(config)]) == 2
    assert f"camera gate: escalation_source {tmp_path / 'main.mp4'} does not exist" in capsys.readouterr().err
    (tmp_path / "main.mp4").write_bytes(b"")  # there now (its content is the pipeline's business)
    assert main(["validate-config", str(config)]) == 0
