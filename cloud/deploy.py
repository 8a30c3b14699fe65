"""`framesieve-cloud deploy`: package the router Lambda and the teacher, upload both, create or update the stack
(infra/cloudformation/framesieve.yaml) and stream its events until it settles.

    framesieve-cloud deploy --stack framesieve-dev --image-uri ACCOUNT.dkr.ecr.REGION.amazonaws.com/framesieve:1

With --dashboard (and whenever the dashboard stack exists already) the operator dashboard's stack follows,
its parameters from the main stack's outputs, its static files to its bucket (cloud/deploy_dashboard.py).

Artifacts go to --artifact-bucket (default framesieve-artifacts-ACCOUNT-REGION, created private and encrypted
when missing) under content-addressed keys, so an unchanged model is not uploaded again. A first create that
fails is deleted (CloudFormation's OnFailure=DELETE) so the next deploy starts clean; the error names the first
resource that failed and why, not the cascade of "creation cancelled" after it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud import deploy_dashboard
from cloud.deploy_dashboard import DASHBOARD_TEMPLATE, DashboardResult
from cloud.exceptions import CloudError
from cloud.packaging import Artifact, package_lambda, package_model
from cloud.stackops import (
    DeployError,
    Printer,
    StackRun,
    apply_stack,
    check_settled,
    describe_stack,
    ensure_bucket,
    load_template,
    stack_parameters,
    upload,
)

__all__ = ["DeployError", "DeployOptions", "DeployResult", "TEMPLATE", "add_arguments", "main", "run_deploy",
           "run_from_args"]

TEMPLATE = Path(__file__).resolve().parents[1] / "infra" / "cloudformation" / "framesieve.yaml"


# ------------------------------------------------------------------------------------------ options
@dataclass
class DeployOptions:
    stack: str
    image_uri: str | None = None  # required on create; kept from the stack on update
    model: Path | None = None  # manifest.json; default: the FrameSieve teacher
    model_data_url: str | None = None  # an artifact already in S3 (skips packaging the model)
    artifact_bucket: str | None = None
    region: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)  # any other template parameter
    template: Path = TEMPLATE
    wait: bool = True
    keep_failed: bool = False  # a failed first create is kept (ROLLBACK_COMPLETE) for inspection
    timeout_s: float = 3600.0  # an endpoint takes ~10 minutes to come up
    poll_s: float = 5.0
    work_dir: Path | None = None  # where the zip and tarball are built (default: a temp folder)
    dashboard: bool | None = None  # True: create or update its stack; None: update it if it exists; False: leave it
    dashboard_stack: str | None = None  # default: STACK-dashboard
    dashboard_template: Path = DASHBOARD_TEMPLATE
    api_token: str | None = None  # the dashboard's login token (needed to create its stack)
    dashboard_wheels: Path | None = None  # the cost model's wheels for the dashboard's Lambda (default: downloaded)


@dataclass
class DeployResult:
    stack_id: str
    status: str  # CREATE_COMPLETE, UPDATE_COMPLETE, NO_CHANGE, or *_IN_PROGRESS with wait=False
    outputs: dict[str, str]
    uploaded: list[str]  # s3:// URLs written by this run (empty when everything was already there)
    dashboard: DashboardResult | None = None  # the dashboard stack, when this deploy did it


# ------------------------------------------------------------------------------------------ the whole deploy
def run_deploy(options: DeployOptions, out: Printer = print, session: Any = None) -> DeployResult:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    session = session or boto3.session.Session(region_name=options.region)
    region = session.region_name
    if not region:
        raise DeployError("no AWS region: pass --region, or set AWS_DEFAULT_REGION (boto3 does not read AWS_REGION), "
                          "or a region in the AWS profile (aws configure)")
    template = load_template(options.template)
    stack_parameters(template, options.parameters, {})  # unknown names fail before anything is uploaded
    try:
        cfn, s3 = session.client("cloudformation"), session.client("s3")
        existing = describe_stack(cfn, options.stack)
        check_settled(existing, options.stack)
        dashboard = deploy_dashboard.wanted(cfn, options)  # checked before anything is uploaded
        in_lambda = options.parameters.get("TeacherBackend") == "lambda"  # the teacher inside the router's image
        if in_lambda and not options.parameters.get("LambdaImageUri") and existing is None:
            raise DeployError("TeacherBackend=lambda needs --param LambdaImageUri=ACCOUNT.dkr.ecr.REGION.amazonaws.com/"
                              "REPO:TAG, the router image with the teacher inside")
        needs_image = existing is None and not in_lambda
        if needs_image and not (options.image_uri or options.parameters.get("InferenceImageUri")):
            raise DeployError(f"stack {options.stack} does not exist yet: creating it needs --image-uri, the ECR "
                              "image of the inference container (infra/container/Dockerfile)")
        bucket = options.artifact_bucket or (
            f"framesieve-artifacts-{session.client('sts').get_caller_identity()['Account']}-{region}")
        out(f"deploying stack {options.stack} in {region} ({'update' if existing else 'create'}); "
            f"artifacts in s3://{bucket}")
        ensure_bucket(s3, bucket, region, out)
        params, uploaded = _upload_artifacts(options, s3, bucket, existing is None and not in_lambda, out)
        if in_lambda:  # no SageMaker resource: the image and model parameters stay empty
            params.setdefault("InferenceImageUri", "")
            params.setdefault("ModelDataUrl", "")
        if options.image_uri:
            params["InferenceImageUri"] = options.image_uri
        run = StackRun(bucket, region, options.wait, options.keep_failed, options.timeout_s, options.poll_s)
        stack_id, status, outputs = apply_stack(cfn, s3, options.stack, options.template, template, params, existing,
                                                run, out)
        if status == "NO_CHANGE":
            dash = deploy_dashboard.deploy(cfn, s3, options, outputs, run, out) if dashboard else None
            return DeployResult(stack_id, status, outputs, uploaded + (dash.uploaded if dash else []), dash)
        if not options.wait:
            return DeployResult(stack_id, status, {}, uploaded)
    except NoCredentialsError as exc:
        raise DeployError("no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                          ) from exc
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(f"AWS refused the deploy of {options.stack}: {exc}") from exc
    out(f"stack {options.stack}: {status}")
    for key, value in sorted(outputs.items()):
        out(f"  {key:<24} {value}")
    _print_gateway_hint(session, outputs, out)
    try:
        dash = deploy_dashboard.deploy(cfn, s3, options, outputs, run, out) if dashboard else None
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(f"AWS refused the deploy of the dashboard stack (the main stack {options.stack} is "
                          f"{status}): {exc}") from exc
    return DeployResult(stack_id, status, outputs, uploaded + (dash.uploaded if dash else []), dash)


def _upload_artifacts(options: DeployOptions, s3: Any, bucket: str, creating: bool, out: Printer
                      ) -> tuple[dict[str, str], list[str]]:
    """Package and upload the Lambda (always: it is cheap and content-addressed) and the model (on create, or
    when one is given: an update keeps the stack's model, which may be a customer's own teacher)."""
    params, uploaded = dict(options.parameters), []
    with tempfile.TemporaryDirectory(prefix="framesieve-deploy-") as tmp:
        work = options.work_dir or Path(tmp)
        code = package_lambda(work)
        out(f"packaged {code.detail}")
        code_key = f"lambda/{code.path.name}"
        if upload(s3, code, bucket, code_key, out):
            uploaded.append(f"s3://{bucket}/{code_key}")
        params.update(LambdaCodeBucket=bucket, LambdaCodeKey=code_key)
        if options.model_data_url:
            params["ModelDataUrl"] = options.model_data_url
        elif options.model is not None or (creating and "ModelDataUrl" not in params):
            model = _model_artifact(options.model, work, out)
            model_key = f"models/{model.path.name}"
            if upload(s3, model, bucket, model_key, out):
                uploaded.append(f"s3://{bucket}/{model_key}")
            params["ModelDataUrl"] = f"s3://{bucket}/{model_key}"
    return params, uploaded


def _model_artifact(manifest: Path | None, work: Path, out: Printer) -> Artifact:
    if manifest is None:
        from models.teacher.build import ensure_teacher

        out("using the FrameSieve teacher (edge-agent models fetch builds it when missing)")
        manifest = ensure_teacher()
    model = package_model(Path(manifest), work)
    out(f"packaged {model.detail}")
    return model


def _print_gateway_hint(session: Any, outputs: dict[str, str], out: Printer) -> None:
    """The values a gateway's config needs, with the account's IoT data endpoint (not a stack output)."""
    try:
        endpoint = session.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    except Exception:  # noqa: BLE001 - a hint only; the deploy itself succeeded
        endpoint = "(aws iot describe-endpoint --endpoint-type iot:Data-ATS)"
    out("gateway settings: iot endpoint " + endpoint
        + f", policy {outputs.get('GatewayPolicyName', '?')}, thing type {outputs.get('GatewayThingType', '?')}, "
          f"escalations to {outputs.get('EscalationTopic', '?')}")


# ------------------------------------------------------------------------------------------ command line
def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. TrainingSampleRate=0.2")
    return key, value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The deploy options, for `framesieve-cloud deploy` (cloud.cli) and `python -m cloud.deploy`."""
    p.add_argument("--stack", required=True, help="CloudFormation stack name (letters, digits, hyphens)")
    p.add_argument("--region", help="AWS region (default: $AWS_DEFAULT_REGION or the AWS profile's)")
    p.add_argument("--environment", help="Environment parameter: dev, staging, prod... (default: dev on create)")
    p.add_argument("--image-uri", help="inference image in ECR, ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG "
                                       "(required on create; see infra/container/Dockerfile)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", type=Path,
                       help="teacher manifest.json to serve (default on create: the FrameSieve teacher; an update "
                            "keeps the stack's model unless this or --model-data-url is given)")
    model.add_argument("--model-data-url", help="s3://.../model.tar.gz already uploaded (skips packaging)")
    p.add_argument("--artifact-bucket", help="bucket for the Lambda zip and model (default: "
                                             "framesieve-artifacts-ACCOUNT-REGION, created when missing)")
    p.add_argument("--instance-type", help="endpoint instance type (template default: ml.g4dn.xlarge)")
    p.add_argument("--min-instances", type=int, help="endpoint instances when idle (template default: 1)")
    p.add_argument("--max-instances", type=int, help="most endpoint instances (template default: 4)")
    p.add_argument("--alert-email", help="e-mail address for detection alerts")
    p.add_argument("--ops-email", help="e-mail address for operational alarms")
    p.add_argument("--retention-days", type=int, help="days result rows are kept (template default: 30)")
    p.add_argument("--param", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="any other template parameter (repeatable), e.g. --param EnableDataCapture=true")
    p.add_argument("--template", type=Path, default=TEMPLATE, help=f"template (default: {TEMPLATE})")
    p.add_argument("--no-wait", action="store_true", help="return once CloudFormation accepted the request")
    p.add_argument("--keep-failed", action="store_true", help="keep a failed first create for inspection "
                                                              "(default: CloudFormation deletes it)")
    p.add_argument("--timeout-min", type=float, default=60.0, help="how long to wait for the stack (default: 60)")
    dash = p.add_mutually_exclusive_group()
    dash.add_argument("--dashboard", action="store_true", default=None,
                      help="also create or update the operator dashboard's stack (infra/cloudformation/"
                           "dashboard.yaml) from the main stack's outputs, and upload its static files; "
                           "default: update it when it exists")
    dash.add_argument("--no-dashboard", dest="dashboard", action="store_false", help="leave the dashboard alone")
    p.add_argument("--dashboard-stack", help="the dashboard stack's name (default: STACK-dashboard)")
    p.add_argument("--dashboard-template", type=Path, default=DASHBOARD_TEMPLATE,
                   help=f"the dashboard's template (default: {DASHBOARD_TEMPLATE})")
    p.add_argument("--api-token-file", type=Path,
                   help="the dashboard's login token, first line of this file (else $FRAMESIEVE_API_TOKEN; "
                        "at least 16 characters; needed to create the dashboard stack, an update keeps its token)")
    p.add_argument("--dashboard-wheels", type=Path, metavar="DIR",
                   help="wheels of the dashboard's cost model (pydantic, PyYAML and theirs) for its Lambda's "
                        "platform, fetched beforehand with pip download (README: dashboard on AWS); default: "
                        "downloaded once into the FrameSieve cache")


def options_from_args(args: argparse.Namespace) -> DeployOptions:
    # The dashboard's flags are checked before anything is uploaded, not after the main stack's minutes
    if args.dashboard is False and (given := [f for f, v in (("--api-token-file", args.api_token_file),
                                                              ("--dashboard-wheels", args.dashboard_wheels),
                                                              ("--dashboard-stack", args.dashboard_stack)) if v]):
        raise DeployError(f"--no-dashboard leaves the dashboard alone, so {' and '.join(given)} would do nothing; "
                          "drop them, or drop --no-dashboard")
    if args.dashboard_wheels is not None and not args.dashboard_wheels.is_dir():
        raise DeployError(f"--dashboard-wheels {args.dashboard_wheels} is not a folder; fetch the cost model's "
                          "wheels into one (README: dashboard on AWS), or leave the flag out to download them")
    named = {"Environment": args.environment, "InstanceType": args.instance_type, "MinInstances": args.min_instances,
             "MaxInstances": args.max_instances, "AlertEmail": args.alert_email, "OpsEmail": args.ops_email,
             "RetentionDays": args.retention_days}
    params = {k: str(v) for k, v in named.items() if v is not None}
    params.update(dict(args.param))
    return DeployOptions(stack=args.stack, image_uri=args.image_uri, model=args.model,
                         model_data_url=args.model_data_url, artifact_bucket=args.artifact_bucket, region=args.region,
                         parameters=params, template=args.template, wait=not args.no_wait,
                         keep_failed=args.keep_failed, timeout_s=args.timeout_min * 60, dashboard=args.dashboard,
                         dashboard_stack=args.dashboard_stack, dashboard_template=args.dashboard_template,
                         api_token=deploy_dashboard.read_token(args.api_token_file),
                         dashboard_wheels=args.dashboard_wheels)


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point for `framesieve-cloud deploy`; raises DeployError (a CloudError) on failure."""
    try:
        run_deploy(options_from_args(args))
    except OSError as exc:  # an unreadable template or model file
        raise DeployError(f"cannot deploy: {exc}") from exc
    return 0


def main(argv: list[str] | None = None) -> int:
    from models.exceptions import ModelError

    parser = argparse.ArgumentParser(prog="framesieve-cloud deploy", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except (CloudError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the stack operation goes on in AWS (aws cloudformation describe-stacks --stack-name "
              f"{args.stack})", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
