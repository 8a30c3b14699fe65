"""Every way `edge-agent run` can fail to start is a named error and exit code 2, with no traceback and no
secret: the real command in a child process."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a child process each


def _run(tmp_path, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "agent.yaml"
    path.write_text(body)
    return subprocess.run([sys.executable, "-m", "edge_agent.cli", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("case", "expected"), [
    ("events_db", "output.events_db: cannot write the event log"),
    ("metrics_port", "output.metrics_port: cannot serve metrics on 127.0.0.1:"),
    ("rtsp_port", "port from 1 to 65535"),
    ("model", "does not exist"),
    ("alias_bomb", "aliases"),
])
def test_a_failed_start_is_a_named_error_with_exit_2(tmp_path, vtest_path, case, expected):
    events = tmp_path / "events.sqlite"
    source = str(vtest_path)
    extra = ""
    holder = None
    if case == "events_db":
        (tmp_path / "plain-file").write_text("")
        events = tmp_path / "plain-file" / "events.sqlite"  # a folder that is a file: unwritable, even as root
    elif case == "metrics_port":
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        extra = f"  metrics_port: {holder.getsockname()[1]}\n"
    elif case == "rtsp_port":
        source = "rtsp://admin:S3cretPass@127.0.0.1:99999/stream?password=p4ss"
    body = (f"cameras:\n  - {{id: a, source: '{source}'}}\nescalation: {{transport: none}}\n"
            f"output:\n  events_db: '{events}'\n{extra}")
    if case == "model":
        body += f"student: '{tmp_path / 'nope' / 'manifest.json'}'\n"
    elif case == "alias_bomb":
        body += 'x0: &x0 ["lol"]\n' + "".join(f"x{k}: &x{k} [" + ", ".join([f"*x{k - 1}"] * 12) + "]\n"
                                              for k in range(1, 10))
    try:
        result = _run(tmp_path, body)
    finally:
        if holder is not None:
            holder.close()
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "S3cretPass" not in result.stderr + result.stdout and "p4ss" not in result.stderr + result.stdout
