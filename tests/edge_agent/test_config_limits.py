"""Hostile or careless config files and secrets in URLs: each a named error (exit 2 from the command line),
fast, and no password or query secret in any line the agent writes."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from edge_agent.cli import main
from edge_agent.config import ConfigError, load_config, parse_config
from edge_agent.logs import JsonFormatter, TextFormatter
from edge_agent.redact import redact_text, redact_url

CAMERA = "cameras:\n  - {id: a, source: a.mp4}\n"


def _bomb(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for k in range(1, levels + 1):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * width) + "]")
    return "\n".join(lines) + "\n" + CAMERA


@pytest.mark.parametrize(("text", "expected"), [
    (_bomb(levels=9, width=12), "more than 100 aliases"),
    (_bomb(levels=6, width=8), "aliases are expanded"),  # 48 aliases, 8**6 = 262 144 values
    ("x: " + "[" * 200 + "]" * 200 + "\n" + CAMERA, "nested deeper than 32 levels"),
    ("x: " + "[" * 5000 + "]" * 5000 + "\n" + CAMERA, "nested deeper than 32 levels"),  # the composer's recursion
    ("a: &x [*x]\n" + CAMERA, "contains itself"),
    (CAMERA + "cameras:\n  - {id: b, source: b.mp4}\n", "duplicate key 'cameras' at line 3 (first at line 1)"),
    ("cameras:\n  - id: a\n    source: a.mp4\n    fps: 1\n    fps: 2\n", "duplicate key 'fps' at line 5"),
])
def test_a_hostile_yaml_fails_fast_with_a_named_error(text, expected):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yaml")
    assert time.perf_counter() - started < 2.0  # the alias bomb took minutes and 3 GB before
    assert expected in str(info.value) and "agent.yaml" in str(info.value)


def test_merge_keys_may_still_be_overridden():
    config = parse_config("cameras:\n  - &c {id: a, source: a.mp4, fps: 2}\n  - {<<: *c, id: b, fps: 3}\n")
    assert [(c.id, c.fps) for c in config.cameras] == [("a", 2), ("b", 3)]


@pytest.mark.parametrize(("data", "expected"), [
    (b"cameras: []\n\x00\x01\x02", "NUL bytes: a binary file"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\xfd", "is not UTF-8 text"),
    (b"# " + b"x" * (1024 * 1024 + 1), "over the 1048576-byte limit"),
])
def test_a_binary_or_huge_file_is_refused_before_parsing(tmp_path, data, expected):
    path = tmp_path / "agent.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value) and str(path) in str(info.value)


def test_a_password_without_tls_is_refused_unless_allowed():
    base = CAMERA + "escalation:\n  transport: mqtt\n  mqtt: {username: gw, password: hunter2%s}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(base % "", "agent.yaml")
    assert "mqtt.tls: true" in str(info.value) and "allow_plaintext_password" in str(info.value)
    assert "hunter2" not in str(info.value)  # the value echoed back has the password masked
    assert parse_config(base % ", allow_plaintext_password: true").escalation.mqtt.password == "hunter2"
    assert parse_config(base % ", tls: true").escalation.mqtt.tls


def test_a_stream_url_with_a_bad_port_is_a_config_error_that_keeps_the_password_out():
    with pytest.raises(ConfigError) as info:
        parse_config("cameras:\n  - {id: a, source: 'rtsp://admin:S3cretPass@10.0.0.9:99999/s?password=p4ss'}\n",
                     "agent.yaml")
    text = str(info.value)
    assert "cameras[0] (id a).source (line 2)" in text and "port from 1 to 65535" in text
    assert "S3cretPass" not in text and "p4ss" not in text


@pytest.mark.parametrize(("url", "safe"), [
    ("rtsp://admin:S3cret@10.0.0.9:554/stream1", "rtsp://***@10.0.0.9:554/stream1"),
    ("rtsp://10.0.0.9/live?user=admin&password=S3cret&channel=1",
     "rtsp://10.0.0.9/live?user=admin&password=***&channel=1"),
    ("https://b.s3.amazonaws.com/m.tgz?X-Amz-Credential=AK%2F1&X-Amz-Signature=abc&X-Amz-Security-Token=t",
     "https://b.s3.amazonaws.com/m.tgz?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Security-Token=***"),
    ("http://cam/snap.jpg?token=abc;key=def", "http://cam/snap.jpg?token=***;key=***"),
    ("rtsp://u:p@host:99999/x", "rtsp://***@host:99999/x"),  # a bad port does not stop the redaction
    ("http://127.0.0.1:8080/invocations", "http://127.0.0.1:8080/invocations"),
])
def test_redact_url(url, safe):
    assert redact_url(url) == safe


def test_every_log_line_is_redacted_text_and_json():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "cannot open %s (%r)", (
        "rtsp://admin:S3cret@10.0.0.9/s", {"url": "http://h/?apikey=K3y"}), None)
    for formatter in (TextFormatter("%(message)s"), JsonFormatter()):
        line = formatter.format(record)
        assert "S3cret" not in line and "K3y" not in line and "rtsp://***@10.0.0.9/s" in line
    assert json.loads(JsonFormatter().format(record))["msg"].startswith("cannot open rtsp://***@")
    assert redact_text("no url here") == "no url here"


def test_validate_config_prints_no_secret(tmp_path, capsys, monkeypatch):
    path = tmp_path / "agent.yaml"
    path.write_text("cameras:\n  - {id: a, source: 'rtsp://admin:S3cretPass@10.0.0.9/s?password=p4ss'}\n")
    monkeypatch.setattr("sys.stderr", io.StringIO())  # main() sets up logging on stderr
    assert main(["validate-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rtsp://***@10.0.0.9/s?password=***" in out and "S3cretPass" not in out and "p4ss" not in out
