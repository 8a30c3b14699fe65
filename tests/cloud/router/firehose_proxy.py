"""A loopback HTTP proxy in front of moto_server's Firehose that makes PutRecordBatch fail the way the real
service can, per call, from a plan: Firehose answers 200 with FailedPutCount and an ErrorCode for some records
(throttled, or ServiceUnavailable) and the caller must send those again. moto never fails a record, so the
proxy forwards the call with the records it lets through and writes the failures into moto's real answer.

Plans, one per PutRecordBatch call in order (then every call passes):
- "pass": forwarded as it is;
- "fail-even": records 0, 2, 4... are not forwarded and answered ServiceUnavailableException;
- "deliver-fail-even": every record is forwarded (so delivered), but 0, 2, 4... are answered as failed: the
  caller's retry delivers them twice, as Firehose's at-least-once delivery can;
- "throttle": the whole call is refused, HTTP 400 ThrottlingException... (botocore retries it itself too).
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET = "Firehose_20150804.PutRecordBatch"


class FaultyFirehose:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.plan: list[str] = []
        self.calls: list[dict[str, Any]] = []  # per PutRecordBatch: records asked, forwarded, failed
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                status, reply = proxy.handle(headers, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        req = urllib.request.Request(self.upstream + "/", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if {k.lower(): v for k, v in headers.items()}.get("x-amz-target") != TARGET:
            return self.forward(headers, body)
        request = json.loads(body)
        records = request["Records"]
        mode = self.plan.pop(0) if self.plan else "pass"
        call = {"mode": mode, "records": [base64.b64decode(r["Data"]) for r in records], "failed": []}
        self.calls.append(call)
        if mode == "throttle":
            call["failed"] = list(range(len(records)))
            return 400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        failing = set(range(0, len(records), 2)) if mode in ("fail-even", "deliver-fail-even") else set()
        call["failed"] = sorted(failing)
        sent = [r for i, r in enumerate(records) if mode == "deliver-fail-even" or i not in failing]
        answers: list[dict[str, Any]] = []
        if sent:
            status, reply = self.forward(headers, json.dumps({**request, "Records": sent}).encode())
            if status != 200:
                return status, reply
            answers = json.loads(reply)["RequestResponses"]
        it = iter(answers)
        out = []
        for i in range(len(records)):
            if mode == "deliver-fail-even" or i not in failing:
                answer = next(it)
            if i in failing:
                answer = {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
            out.append(answer)
        return 200, json.dumps({"FailedPutCount": len(failing), "Encrypted": False, "RequestResponses": out}).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
