"""Prometheus text metrics for a fleet operator to scrape: `output.metrics_port` in the agent config.

Counters come from the agent's own summary, so the numbers a scrape shows are the ones the agent
logs and the bench reports; nothing is counted twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HELP = {
    "sampled": "Frames sampled",
    "motion_skipped": "Sampled frames without motion (previous decision carried)",
    "edge_decided": "Sampled frames decided at the edge",
    "escalated": "Sampled frames escalated to the cloud and answered",
    "audit": "Escalations made as audit samples of confident decisions",
    "budget_refused": "Escalations refused by the hourly budget (decided at the edge)",
    "cloud_failed": "Escalations that failed: timeout, error or error verdict (decided at the edge)",
    "cloud_open": "Frames not escalated because the cloud circuit breaker was open (decided at the edge)",
    "cloud_busy": "Frames not escalated because escalation.max_in_flight were awaited (decided at the edge)",
    "student_failed": "Frames whose student call failed (decided at the edge on the settled past)",
    "bytes_sent": "Bytes of escalation messages sent",
    "message_units": "IoT Core 5 KB message units sent",
    "fullres_sent": "Escalations cropped from the camera's full-resolution stream (escalation_source)",
    "fullres_missed": "Escalations sent from the detect frame: no full-resolution frame within max_skew_s",
    "corrupt_frames": "Frames that could not be decoded",
    "reconnects": "Live stream reconnections",
}

_BREAKER = {"closed": 0, "half_open": 1, "open": 2}


def render(summary: dict) -> str:
    """Prometheus exposition text: one counter family per field, one series per camera."""
    lines = []
    for field, help_text in _HELP.items():
        name = f"framesieve_{field}_total"
        lines += [f"# HELP {name} {help_text}.", f"# TYPE {name} counter"]
        for camera, counters in sorted(summary["cameras"].items()):
            lines.append(f'{name}{{camera="{camera}"}} {counters.get(field, 0)}')
    students = summary.get("students", {})
    if students:
        lines += ["# HELP framesieve_own_student Whether the camera runs a (specialized) student of its own.",
                  "# TYPE framesieve_own_student gauge"]
        lines += [f'framesieve_own_student{{camera="{c}"}} {int(s["own"] is not None)}'
                  for c, s in sorted(students.items())]
        lines += ["# HELP framesieve_onboarding Whether the camera onboards (the cloud decides every frame with "
                  "motion until a student of its own is promoted on evidence).", "# TYPE framesieve_onboarding gauge"]
        lines += [f'framesieve_onboarding{{camera="{c}"}} {int(bool(s.get("onboarding")))}'
                  for c, s in sorted(students.items())]
        lines += ["# HELP framesieve_uncertain_fraction Share of the last 50 looked-at frames escalated for "
                  "uncertainty (what the rollback guard watches).", "# TYPE framesieve_uncertain_fraction gauge"]
        lines += [f'framesieve_uncertain_fraction{{camera="{c}"}} {s["uncertain_fraction"]:.4f}'
                  for c, s in sorted(students.items()) if s["uncertain_fraction"] is not None]
    sizes = summary.get("detect_stream", {})
    if sizes:  # each camera's decoded frame against its student's input (pipeline/detect_size.py)
        lines += ["# HELP framesieve_detect_downscale How many times the camera's decoded frame is larger than the "
                  "student's input (the larger axis).", "# TYPE framesieve_detect_downscale gauge"]
        lines += [f'framesieve_detect_downscale{{camera="{c}"}} {d["downscale"]:.4f}' for c, d in sorted(sizes.items())]
        lines += ["# HELP framesieve_detect_stream_oversized Whether the camera's whole frame is shrunk 1.5x or more "
                  "into one student look (not tiled): a detect sub-stream at about the student's input would do.",
                  "# TYPE framesieve_detect_stream_oversized gauge"]
        lines += [f'framesieve_detect_stream_oversized{{camera="{c}"}} {int(bool(d["oversized"]))}'
                  for c, d in sorted(sizes.items())]
    precision = summary.get("student_precision")
    if precision:  # student.precision auto/int8: 1 on the state it is in; the reason is in the log and the summary
        lines += ["# HELP framesieve_student_int8 Whether the agent's student runs in INT8 (quantised on the cameras' "
                  "own frames).", "# TYPE framesieve_student_int8 gauge",
                  f"framesieve_student_int8 {int(precision.get('running', precision['state']) == 'int8')}",
                  "# HELP framesieve_student_int8_state Where the INT8 calibration stands (collecting, quantising, "
                  "swapping, int8, fp32: stayed on fp32, see the log).", "# TYPE framesieve_student_int8_state gauge"]
        lines += [f'framesieve_student_int8_state{{state="{s}"}} {int(precision["state"] == s)}'
                  for s in ("collecting", "quantising", "swapping", "int8", "fp32")]
        lines += ["# HELP framesieve_student_int8_calibration_frames Frames kept for the INT8 calibration so far.",
                  "# TYPE framesieve_student_int8_calibration_frames gauge",
                  f"framesieve_student_int8_calibration_frames {precision['frames_kept']}"]
    spec = summary.get("specialization")
    if spec:
        for name, help_text in (("runs", "Specialization training runs started"),
                                ("promotions", "Specialized students promoted and swapped in")):
            lines += [f"# HELP framesieve_specialization_{name}_total {help_text}.",
                      f"# TYPE framesieve_specialization_{name}_total counter",
                      f"framesieve_specialization_{name}_total {spec[name]}"]
        lines += ["# HELP framesieve_training_records Training records kept for the camera.",
                  "# TYPE framesieve_training_records gauge"]
        lines += [f'framesieve_training_records{{camera="{c}"}} {s["records"]}'
                  for c, s in sorted(spec["cameras"].items())]
    cloud = summary.get("cloud")
    if cloud:
        lines += ["# HELP framesieve_cloud_breaker_state The cloud circuit breaker: 0 closed, 1 half-open (probing), "
                  "2 open (the edge decides without asking).", "# TYPE framesieve_cloud_breaker_state gauge",
                  f"framesieve_cloud_breaker_state {_BREAKER.get(cloud['state'], 0)}",
                  "# HELP framesieve_cloud_breaker_opens_total Times the cloud circuit breaker opened.",
                  "# TYPE framesieve_cloud_breaker_opens_total counter",
                  f"framesieve_cloud_breaker_opens_total {cloud['opens']}",
                  "# HELP framesieve_escalations_in_flight Escalations sent and awaited now.",
                  "# TYPE framesieve_escalations_in_flight gauge",
                  f"framesieve_escalations_in_flight {cloud['in_flight']}"]
        if "max_in_flight" in cloud:  # the limit beyond which frames are decided at the edge (cloud_busy)
            lines += ["# HELP framesieve_escalations_max_in_flight Escalations awaited at once at most "
                      "(escalation.max_in_flight, auto: sized from the cameras); beyond it frames count as cloud_busy.",
                      "# TYPE framesieve_escalations_max_in_flight gauge",
                      f"framesieve_escalations_max_in_flight {cloud['max_in_flight']}"]
    lines += ["# HELP framesieve_student_rollbacks_total Cameras sent back to the agent's student by their guard.",
              "# TYPE framesieve_student_rollbacks_total counter",
              f"framesieve_student_rollbacks_total {summary.get('student_rollbacks', 0)}",
              "# HELP framesieve_errors_total Batches that failed to process.",
              "# TYPE framesieve_errors_total counter", f"framesieve_errors_total {summary.get('errors', 0)}"]
    return "\n".join(lines) + "\n"


def serve_metrics(snapshot: Callable[[], dict], port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve GET /metrics in a daemon thread; returns the server (call shutdown() to stop it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            body = render(snapshot()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # scrapes every few seconds would flood the log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
