"""The teacher answering in-process what the router would ask a SageMaker endpoint.

`InProcessRuntime` has the one method of boto3's sagemaker-runtime client the router calls, `invoke_endpoint`,
and fails the way that client does (a `ClientError` with an HTTP status), so the router's retry and
dead-letter rules apply unchanged: an undecodable image is a 400 refusal (not retried, dead-lettered), a
model failure a 424 ModelError.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from cloud.exceptions import RequestError
from cloud.inference.images import check_size, decode_image
from contracts.wire import InvocationRequest, InvocationResponse, WireError, decode
from models.runtime import load_detector, presence_threshold


def _client_error(status: int, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "OriginalStatusCode": status,
                        "OriginalMessage": message, "ResponseMetadata": {"HTTPStatusCode": status}}, "InvokeEndpoint")


class InProcessRuntime:
    """Runs the teacher on the images of an InvocationRequest body; answers as the endpoint would."""

    def __init__(self, detector: Any, max_images: int = 32):
        manifest = detector.manifest
        self.detector, self.max_images = detector, max_images
        self.model = f"{manifest.name}@{manifest.version}"
        self.thresholds = {label: presence_threshold(manifest, label) for label in manifest.label_groups}
        self.images = 0  # answered since start, for the bench

    @classmethod
    def from_manifest(cls, manifest: str, threads: int | None = None) -> InProcessRuntime:
        # onnxruntime on the CPU: a Lambda has no GPU
        return cls(load_detector(manifest, threads=threads, providers=["CPUExecutionProvider"]))

    def answer(self, body: bytes) -> InvocationResponse:
        try:
            request = InvocationRequest.from_payload(decode(body, "the request body", len(body)))
        except WireError as exc:
            raise _client_error(400, "ValidationError", str(exc)) from exc
        if len(request.images) > self.max_images:
            raise _client_error(413, "ValidationError", f"the batch has {len(request.images)} images, over the "
                                                        f"limit of {self.max_images}")
        try:
            for i, data in request.images:  # from the header, before decoding: a pixel bomb costs nothing
                check_size(data, f"instance {i!r}")
            frames = [decode_image(data, f"instance {i!r}") for i, data in request.images]
        except RequestError as exc:
            raise _client_error(exc.status, "ValidationError", str(exc)) from exc
        try:
            results = self.detector.detect(frames)
        except Exception as exc:  # the model itself failed: what SageMaker reports as a 424 ModelError
            raise _client_error(424, "ModelError", f"{type(exc).__name__}: {exc}") from exc
        predictions = []
        for (image_id, _), dets in zip(request.images, results, strict=True):
            floor = np.array([self.thresholds.get(str(lbl), 0.5) for lbl in dets.labels], np.float32)
            predictions.append((image_id, dets[dets.scores >= floor].to_wire()))
        self.images += len(frames)
        return InvocationResponse(self.model, tuple(predictions))

    def invoke_endpoint(self, *, EndpointName: str, Body: bytes, ContentType: str = "application/json",  # noqa: N803
                        Accept: str = "application/json") -> dict[str, Any]:
        if ContentType != "application/json":
            raise _client_error(415, "ValidationError", f"Content-Type {ContentType!r}: send application/json")
        payload = self.answer(Body).to_bytes()
        return {"Body": io.BytesIO(payload), "ContentType": "application/json",
                "InvokedProductionVariant": "in-process"}


def response_json(runtime: InProcessRuntime, body: bytes) -> dict:
    """For tests and the bench: the answer as a dict."""
    return json.loads(runtime.invoke_endpoint(EndpointName="-", Body=body)["Body"].read())
