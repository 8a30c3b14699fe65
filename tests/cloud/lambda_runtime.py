"""What a Lambda Python runtime gives a function's zip, for running an unpacked zip in a subprocess as Lambda
would: the standard library and boto3 (with what it imports), nothing else. The zip's folder comes first on
sys.path; site-packages, .pth files and the editable install are left out (`python -I -S`)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

# boto3 and the packages it imports, as the Lambda runtime has them
BOTO3_STACK = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def runtime_dir(where: Path) -> Path:
    """A folder holding only the boto3 stack (links to this environment's copies): the runtime's part of sys.path."""
    where.mkdir(parents=True, exist_ok=True)
    for name in BOTO3_STACK:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} is not installed here"
        origin = Path(spec.origin)
        src = origin.parent if origin.name == "__init__.py" else origin
        (where / src.name).symlink_to(src, target_is_directory=src.is_dir())
    return where


def stdlib_paths(python: str = sys.executable) -> list[str]:
    """The standard library's folders on an interpreter's path (its zip, lib/python3.N, lib-dynload)."""
    if python == sys.executable:
        base = (sys.base_prefix, sys.base_exec_prefix)
        return [p for p in sys.path if p.startswith(base) and "-packages" not in p]
    out = subprocess.run([python, "-I", "-S", "-c", "import json, sys; print(json.dumps(sys.path))"],
                         capture_output=True, text=True, timeout=30, check=True)
    return [p for p in json.loads(out.stdout) if p and "-packages" not in p]


def run_in_lambda(code: str, task: Path, runtime: Path, env: dict[str, str], python: str = sys.executable,
                  timeout: float = 60) -> subprocess.CompletedProcess:
    """`code` run by `python` with sys.path = [the unpacked zip, the boto3 stack, the standard library]."""
    prelude = (f"import sys\nsys.path[:] = {[str(task), str(runtime), *stdlib_paths(python)]!r}\n")
    env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([python, "-I", "-S", "-c", prelude + code], cwd=task, env=env,
                          capture_output=True, text=True, timeout=timeout)
