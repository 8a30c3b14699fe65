"""The CloudFormation and S3 steps of a deploy: read the template, upload content-addressed artifacts, build
the parameter list, and follow a stack operation's events until it settles, naming the root cause on failure."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.exceptions import CloudError
from cloud.packaging import Artifact
from contracts.yaml_errors import syntax_message

Printer = Callable[[str], None]
_CANCELLED = ("Resource creation cancelled", "Resource update cancelled")
TEMPLATE_BODY_LIMIT = 51_200  # bytes CloudFormation takes inline; larger templates go through S3


class DeployError(CloudError):
    """The stack could not be deployed; the message says which resource failed and why."""


# ------------------------------------------------------------------------------------------ the template
def _cfn_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
        name = suffix.lstrip("!")
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {"Ref": value} if name == "Ref" else {f"Fn::{name}": value}

    Loader.add_multi_constructor("!", tag)
    return Loader


def load_template(path: Path | str) -> dict[str, Any]:
    """The template as plain data, short-form tags (!Sub, !GetAtt ...) turned into their long form."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DeployError(f"template {path} does not exist; pass --template infra/cloudformation/framesieve.yaml "
                          "from a FrameSieve checkout")
    try:
        return yaml.load(path.read_text(), Loader=_cfn_loader())  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise DeployError(f"template {path} is not valid YAML at {syntax_message(exc)}") from exc


# ------------------------------------------------------------------------------------------ S3
def ensure_bucket(s3: Any, bucket: str, region: str, out: Printer) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"artifact bucket {bucket!r} exists but cannot be used ({code}): it belongs to "
                              "another account or this role may not read it; pass --artifact-bucket") from exc
    out(f"creating artifact bucket s3://{bucket} (private, encrypted)")
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})


def upload(s3: Any, artifact: Artifact, bucket: str, key: str, out: Printer) -> bool:
    """Upload unless the same content is already there; True when it uploaded."""
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == artifact.sha256:
            out(f"  s3://{bucket}/{key} already uploaded")
            return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    size = artifact.path.stat().st_size
    sent, shown = [0], [-1]

    def progress(n: int) -> None:  # called from the transfer threads; a line per 25%
        sent[0] += n
        quarter = min(4, sent[0] * 4 // max(size, 1))
        if quarter > shown[0]:
            shown[0] = quarter
            out(f"  uploading s3://{bucket}/{key}: {quarter * 25}% of {size / 1e6:.1f} MB")

    s3.upload_file(str(artifact.path), bucket, key, ExtraArgs={"Metadata": {"sha256": artifact.sha256}},
                   Callback=progress, Config=TransferConfig(multipart_threshold=64 * 1024 * 1024))
    return True


# ------------------------------------------------------------------------------------------ the stack
def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in exc.response.get("Error", {}).get("Message", ""):
            return None
        raise


def new_events(cfn: Any, stack_id: str, seen: set[str]) -> list[dict[str, Any]]:
    """Events not seen yet, oldest first (the API pages newest first: stop at the first page with a seen one)."""
    fresh: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        batch = page.get("StackEvents", [])
        fresh.extend(e for e in batch if e["EventId"] not in seen)
        if any(e["EventId"] in seen for e in batch):
            break
    fresh.reverse()
    seen.update(e["EventId"] for e in fresh)
    return fresh


def format_event(e: dict[str, Any]) -> str:
    when = e["Timestamp"].strftime("%H:%M:%S") if hasattr(e.get("Timestamp"), "strftime") else ""
    reason = f"  {e['ResourceStatusReason']}" if e.get("ResourceStatusReason") else ""
    return f"  {when}  {e['ResourceStatus']:<36} {e['ResourceType']:<40} {e['LogicalResourceId']}{reason}"


def first_failure(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The root cause among a failed operation's events (oldest first): the first *_FAILED that is not a
    resource merely cancelled because another failed."""
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
    for e in failed:
        if not str(e.get("ResourceStatusReason", "")).startswith(_CANCELLED):
            return e
    return failed[0] if failed else None


def wait_for_stack(cfn: Any, stack_id: str, name: str, seen: set[str], out: Printer, *, timeout_s: float,
                   poll_s: float, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Print the operation's events as they come; return the settled stack or raise DeployError with the cause."""
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while True:
        fresh = new_events(cfn, stack_id, seen)
        for e in fresh:
            out(format_event(e))
        events.extend(fresh)
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            for e in new_events(cfn, stack_id, seen):  # those written between the two calls above
                out(format_event(e))
                events.append(e)
            break
        if time.monotonic() > deadline:
            raise DeployError(f"stack {name} is still {status} after {timeout_s:.0f} s; it goes on in AWS: watch it "
                              f"with `aws cloudformation describe-stack-events --stack-name {name}`")
        sleep(poll_s)
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"):
        return stack
    cause = first_failure(events)
    why = (f"{cause['LogicalResourceId']} ({cause['ResourceType']}) {cause['ResourceStatus']}: "
           f"{cause.get('ResourceStatusReason') or 'no reason given'}") if cause else \
        (stack.get("StackStatusReason") or "no failed resource reported")
    hint = {"DELETE_COMPLETE": "; the failed stack was deleted, so fix the cause and deploy again",
            "ROLLBACK_COMPLETE": f"; delete it (aws cloudformation delete-stack --stack-name {name}) before the "
                                 "next deploy",
            "UPDATE_ROLLBACK_COMPLETE": "; the stack is back on its previous version and still serving"}.get(status, "")
    raise DeployError(f"stack {name} ended {status}. First failure: {why}{hint}")


def stack_parameters(template: dict[str, Any], given: dict[str, str], existing: dict[str, Any] | None
                     ) -> list[dict[str, Any]]:
    """Given values; on update, every other parameter keeps its current value (not the template default)."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise DeployError(f"unknown template parameter(s) {', '.join(unknown)}; the template takes: "
                          f"{', '.join(sorted(declared))}")
    current = {p["ParameterKey"]: p.get("ParameterValue") for p in (existing or {}).get("Parameters", [])}
    out: list[dict[str, Any]] = [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in sorted(given.items())]
    for k in sorted(set(declared) - set(given)):
        if k in current:  # the stack's value, restated (equivalent to UsePreviousValue, which moto mishandles)
            keep = current[k] is not None and current[k] != "****"  # a NoEcho value is masked: only AWS knows it
            out.append({"ParameterKey": k, "ParameterValue": current[k]} if keep else
                       {"ParameterKey": k, "UsePreviousValue": True})
    if existing is None:
        missing = sorted(k for k, spec in declared.items() if "Default" not in spec and k not in given)
        if missing:
            raise DeployError(f"a new stack needs {', '.join(missing)} (e.g. --image-uri for InferenceImageUri)")
    return out


def check_settled(existing: dict[str, Any] | None, name: str) -> None:
    """A stack can be created or updated now, or DeployError saying what to do first."""
    if existing and existing["StackStatus"].endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {name} is busy ({existing['StackStatus']}); wait for it to settle")
    if existing and existing["StackStatus"] in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"):
        raise DeployError(f"stack {name} is {existing['StackStatus']} from a failed create and cannot "
                          f"be updated; delete it (aws cloudformation delete-stack --stack-name {name})")


def outputs_of(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@dataclass
class StackRun:
    """How a stack operation is run: where a large template goes, whether to wait and for how long."""

    bucket: str
    region: str
    wait: bool = True
    keep_failed: bool = False
    timeout_s: float = 3600.0
    poll_s: float = 5.0


def apply_stack(cfn: Any, s3: Any, name: str, template_path: Path, template: dict[str, Any], params: dict[str, str],
                existing: dict[str, Any] | None, run: StackRun, out: Printer) -> tuple[str, str, dict[str, str]]:
    """Create or update one stack and follow it until it settles: (stack id, status, outputs). Status is
    NO_CHANGE when an update had nothing to do, *_IN_PROGRESS when not waiting."""
    from botocore.exceptions import ClientError

    body = template_path.read_text()
    source: dict[str, str] = {"TemplateBody": body}
    if len(body.encode()) > TEMPLATE_BODY_LIMIT:
        key = f"templates/{name}-{uuid.uuid4().hex[:8]}.yaml"
        s3.put_object(Bucket=run.bucket, Key=key, Body=body.encode())
        source = {"TemplateURL": f"https://{run.bucket}.s3.{run.region}.amazonaws.com/{key}"}
    request = dict(StackName=name, Parameters=stack_parameters(template, params, existing),
                   Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "framesieve:stack", "Value": name}],
                   ClientRequestToken=f"framesieve-{uuid.uuid4().hex}", **source)
    seen: set[str] = set()
    if existing:
        # only the newest page matters: the operation's events all come after it
        seen = {e["EventId"] for e in cfn.describe_stack_events(StackName=existing["StackId"])["StackEvents"]}
        try:
            stack_id = cfn.update_stack(**request)["StackId"]
        except ClientError as exc:
            if "No updates are to be performed" in exc.response.get("Error", {}).get("Message", ""):
                out(f"stack {name} is up to date: nothing changed")
                return existing["StackId"], "NO_CHANGE", outputs_of(existing)
            raise
    else:
        stack_id = cfn.create_stack(**request, OnFailure="ROLLBACK" if run.keep_failed else "DELETE")["StackId"]
    out(f"{'updating' if existing else 'creating'} {stack_id}")
    if not run.wait:
        return stack_id, "UPDATE_IN_PROGRESS" if existing else "CREATE_IN_PROGRESS", {}
    stack = wait_for_stack(cfn, stack_id, name, seen, out, timeout_s=run.timeout_s, poll_s=run.poll_s)
    return stack_id, stack["StackStatus"], outputs_of(stack)
