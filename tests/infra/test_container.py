"""The inference image's entry point and build context (the image itself is not built: no Docker here)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = ROOT / "infra" / "container"


def _entry(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run the entry script with a stand-in `framesieve-cloud` that records its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "framesieve-cloud"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    proc = subprocess.run(["sh", str(CONTAINER / "sagemaker-entry.sh"), *args], capture_output=True, text=True,
                          timeout=10, env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_sagemaker_serve_listens_on_every_interface_of_the_container(tmp_path):
    assert _entry(tmp_path, "serve") == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert _entry(tmp_path) == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert _entry(tmp_path, "serve", "--max-batch", "16", env={"SAGEMAKER_BIND_TO_PORT": "9000"}) == \
        ["serve", "--host", "0.0.0.0", "--port", "9000", "--max-batch", "16"]
    assert _entry(tmp_path, "bench-endpoint", "--cpu") == ["bench-endpoint", "--cpu"]


def test_dockerfile_copies_what_exists_and_installs_the_cloud_extra():
    text = (CONTAINER / "Dockerfile").read_text()
    for sources in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for src in sources.split():
            assert (ROOT / src).exists(), f"COPY {src}: not in the build context"
    assert "'/src[cloud]'" in text and "onnxruntime-gpu" in text
    copied = " ".join(re.findall(r"^COPY (.+) \S+$", text, flags=re.M)).split()
    assert {"pyproject.toml", "setup.py", "config"} <= set(copied)  # what `pip install /src` needs to build
    assert 'ENTRYPOINT ["/usr/local/bin/sagemaker-entry"]' in text


def test_lambda_image_runs_the_handler_the_stack_names():
    """infra/container/Dockerfile.lambda: the build context exists (the model folder is made before the build), the
    command is the function the stack's ImageConfig names and that the local awslambdaric tests run."""
    import importlib.util

    from cloud.stackops import load_template

    text = (CONTAINER / "Dockerfile.lambda").read_text()
    (base,) = re.findall(r"^FROM (\S+)$", text, flags=re.M)
    assert base.startswith("public.ecr.aws/lambda/python:")  # the AWS base image carries the runtime client
    for sources in re.findall(r"^COPY (.+) \S+$", text, flags=re.M):
        for src in sources.split():
            assert src == "build/lambda-model" or (ROOT / src).exists(), f"COPY {src}: not in the build context"
    (command,) = re.findall(r'^CMD \["([^"]+)"\]$', text, flags=re.M)
    module, _, attr = command.rpartition(".")
    assert module == "cloud.lambda_teacher.handler" and attr == "handler"
    source = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert f"def {attr}(event" in source and importlib.util.find_spec(module) is not None
    template = load_template(ROOT / "infra" / "cloudformation" / "framesieve.yaml")
    image_config = template["Resources"]["RouterFunction"]["Properties"]["ImageConfig"]["Fn::If"][1]
    assert image_config == {"Command": [command]}
    assert "${LAMBDA_TASK_ROOT}/model" in text  # where teacher_manifest() looks
