"""The operator dashboard's stack (infra/cloudformation/dashboard.yaml), deployed by `framesieve-cloud deploy`
right after the main stack: `--dashboard` creates or updates it; without the flag an existing one is updated
(its Lambdas run the same code zip as the router, so they move together); `--no-dashboard` leaves it alone.

Its parameters come from the main stack: the results table and training bucket (outputs), the environment
(a parameter: the topic rules are named after it); its code is its own zip (cloud/packaging.py
package_dashboard: the API and ingest modules, the pages' files, and the Cost page's cost model with pydantic
and PyYAML built for the platform the template's functions run on: Runtime python3.12, Architectures arm64,
their wheels downloaded once into the FrameSieve cache, or taken from --dashboard-wheels DIR), uploaded beside
the router's under a content-addressed key; the API token from
`--api-token-file` or $FRAMESIEVE_API_TOKEN (needed to create it; an update without one keeps the stack's).
Then the pages' static files go to its bucket under `static/` (CloudFront serves them from there), each with
its content type, uploaded only when its content changed; browsers and CloudFront keep them at most 5 minutes
(their Cache-Control), so a changed file is live within that.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cloud.api import TOKEN_ENV
from cloud.exceptions import PackagingError
from cloud.lambda_wheels import LambdaPlatform, cost_model_pins, lambda_wheels
from cloud.stackops import (
    DeployError,
    Printer,
    StackRun,
    apply_stack,
    check_settled,
    describe_stack,
    load_template,
)

DASHBOARD_TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "cloudformation" / "dashboard.yaml"
MIN_TOKEN = 16
STATIC_PREFIX = "static/"


class Options(Protocol):
    """The part of DeployOptions (cloud/deploy.py) this step reads."""

    stack: str
    dashboard: bool | None
    dashboard_stack: str | None
    dashboard_template: Path
    api_token: str | None
    wait: bool
    work_dir: Path | None
    dashboard_wheels: Path | None


@dataclass
class DashboardResult:
    stack: str
    stack_id: str
    status: str  # CREATE_COMPLETE, UPDATE_COMPLETE or NO_CHANGE
    outputs: dict[str, str]
    uploaded: list[str]  # s3:// URLs of its code and static files written (empty when all were there already)


def stack_name(options: Options) -> str:
    return options.dashboard_stack or f"{options.stack}-dashboard"


def read_token(token_file: Path | str | None) -> str | None:
    """The API token for the dashboard: the file's first line, else $FRAMESIEVE_API_TOKEN, else None."""
    if token_file:
        try:
            text = Path(token_file).read_text().strip()
        except OSError as exc:
            raise DeployError(f"--api-token-file {token_file}: {exc.strerror or exc}") from exc
        token = text.splitlines()[0].strip() if text else ""
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < MIN_TOKEN:
        raise DeployError(f"the dashboard's API token is {len(token)} characters; it needs at least {MIN_TOKEN} "
                          "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > token`)")
    return token or None


def wanted(cfn: Any, options: Options) -> bool:
    """Whether this deploy does the dashboard stack; checked before anything is uploaded (DeployError when it
    cannot be done: busy, failed, no token to create it, --no-wait)."""
    if options.dashboard is False:
        return False
    name = stack_name(options)
    existing = describe_stack(cfn, name)
    if existing is None and options.dashboard is None:
        return False  # never asked for
    check_settled(existing, name)
    if not options.wait:
        raise DeployError(f"the dashboard stack {name} is deployed from the main stack's outputs, so it needs the "
                          "main stack settled: drop --no-wait (or pass --no-dashboard)")
    if existing is None and not options.api_token:
        raise DeployError(f"creating the dashboard stack {name} needs the API token its login form checks: "
                          f"--api-token-file FILE or ${TOKEN_ENV} (at least {MIN_TOKEN} characters)")
    prepare_code(options)  # the cost model's wheels for the Lambda's platform, before anything is uploaded
    return True


def code_platform(options: Options) -> LambdaPlatform:
    """The platform the dashboard's functions run on, from its template (Runtime, Architectures)."""
    try:
        return LambdaPlatform.from_template(load_template(options.dashboard_template),
                                            str(options.dashboard_template))
    except PackagingError as exc:
        raise DeployError(str(exc)) from exc


def prepare_code(options: Options) -> LambdaPlatform:
    """The Lambda's platform, with the cost model's wheels for it in the cache or --dashboard-wheels (downloaded
    when missing): WheelsUnavailable, naming what to do, when they cannot be had."""
    platform = code_platform(options)
    wheels = options.dashboard_wheels
    if wheels is not None and not wheels.is_dir():
        raise DeployError(f"--dashboard-wheels {wheels} is not a folder; fetch the cost model's wheels into one "
                          "(see the README, dashboard on AWS)")
    if wheels is not None or not platform.is_running():
        lambda_wheels(cost_model_pins(), platform, wheels)
    return platform


def parameters(cfn: Any, main_stack: str, main_outputs: dict[str, str], code: dict[str, str],
               token: str | None) -> dict[str, str]:
    """The dashboard stack's parameters from the main stack (outputs and its Environment) and its code zip."""
    missing = [k for k in ("ResultsTableName", "TrainingBucketName") if not main_outputs.get(k)]
    if missing:
        raise DeployError(f"the main stack {main_stack} has no output {', '.join(missing)}; the dashboard reads "
                          "its results table and training bucket: deploy the main stack from "
                          "infra/cloudformation/framesieve.yaml")
    main = describe_stack(cfn, main_stack) or {}
    environment = {p["ParameterKey"]: p.get("ParameterValue") for p in main.get("Parameters", [])}.get("Environment")
    params = {"ResultsTableName": main_outputs["ResultsTableName"],
              "TrainingBucketName": main_outputs["TrainingBucketName"],
              "LambdaCodeBucket": code["LambdaCodeBucket"], "LambdaCodeKey": code["LambdaCodeKey"]}
    if environment:
        params["Environment"] = environment
    if token:
        params["ApiToken"] = token
    return params


def static_files() -> dict[str, tuple[bytes, str]]:
    """The files the pages load from /static/ (the vendored chart library too), with their content types; the
    pages themselves (/ and /login) come from the function, with their security headers."""
    from cloud.dashboard import web

    return {name: (web.static_bytes(name), kind) for name, kind in web.STATIC_TYPES.items()
            if not name.endswith(".html")}


def sync_static(s3: Any, bucket: str, out: Printer) -> list[str]:
    """Upload every static file whose content changed; returns the s3:// URLs written."""
    from botocore.exceptions import ClientError

    written = []
    for name, (body, kind) in sorted(static_files().items()):
        key, digest = STATIC_PREFIX + name, hashlib.sha256(body).hexdigest()
        try:
            if s3.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get("sha256") == digest:
                continue
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=kind, Metadata={"sha256": digest},
                      CacheControl="max-age=300")
        written.append(f"s3://{bucket}/{key}")
    out(f"dashboard static files: {len(written)} uploaded to s3://{bucket}/{STATIC_PREFIX}, "
        f"{len(static_files()) - len(written)} unchanged")
    return written


def upload_code(s3: Any, bucket: str, work_dir: Path | None, out: Printer, platform: LambdaPlatform | None = None,
                wheels: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The dashboard's Lambda zip, built for `platform` and uploaded unless the same content is there: (its code
    parameters, the s3:// URLs written)."""
    from cloud.packaging import package_dashboard
    from cloud.stackops import upload

    with tempfile.TemporaryDirectory(prefix="framesieve-dashboard-") as tmp:
        code = package_dashboard(work_dir or Path(tmp), platform=platform, wheels_dir=wheels, out=out)
        out(f"packaged {code.detail}")
        key = f"lambda/{code.path.name}"
        written = [f"s3://{bucket}/{key}"] if upload(s3, code, bucket, key, out) else []
    return {"LambdaCodeBucket": bucket, "LambdaCodeKey": key}, written


def deploy(cfn: Any, s3: Any, options: Options, main_outputs: dict[str, str], run: StackRun,
           out: Printer) -> DashboardResult:
    """Create or update the dashboard stack (its code uploaded first), then its static files."""
    name = stack_name(options)
    existing = describe_stack(cfn, name)
    check_settled(existing, name)
    code, uploaded = upload_code(s3, run.bucket, options.work_dir, out, prepare_code(options),
                                 options.dashboard_wheels)
    params = parameters(cfn, options.stack, main_outputs, code, options.api_token)
    out(f"deploying the dashboard stack {name} ({'update' if existing else 'create'}) on results table "
        f"{params['ResultsTableName']}")
    template = load_template(options.dashboard_template)
    stack_id, status, outputs = apply_stack(cfn, s3, name, options.dashboard_template, template, params, existing,
                                            run, out)
    if "StaticBucketName" not in outputs:
        raise DeployError(f"the dashboard stack {name} has no output StaticBucketName; deploy it from "
                          f"{DASHBOARD_TEMPLATE}")
    uploaded += sync_static(s3, outputs["StaticBucketName"], out)
    out(f"stack {name}: {status}")
    for key, value in sorted(outputs.items()):
        out(f"  {key:<24} {value}")
    if "DashboardUrl" in outputs:
        out(f"dashboard: open {outputs['DashboardUrl']} and log in with the API token")
    return DashboardResult(name, stack_id, status, outputs, uploaded)
