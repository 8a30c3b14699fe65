"""A 30 s clip landed in S3 (moto_server) and sieved by `framesieve-cloud sieve --bucket --key`: result rows in
the store, and the same per-frame decisions as `edge-agent bench`'s hybrid on that clip (same student, same
bands), whose escalations are answered by the same teacher server."""

from __future__ import annotations

import json
import time

from cloud.cli import main as cloud_main
from edge_agent.bench.runner import agent_config, run_hybrid
from edge_agent.escalation.http import UrlTransport
from tests.cloud.conftest import aws
from tests.landed.conftest import AUDIT, BANDS, sieve_yaml


def key_fields(line: dict) -> tuple:
    dets = tuple((d["label"], round(d["score"], 3), tuple(round(v, 1) for v in d["box"])) for d in line["detections"])
    return line["frame_index"], round(line["pts_s"], 3), line["decided_by"], line["escalated"], dets


def test_a_landed_clip_gives_rows_and_the_benchs_decisions(stack, clip30, tmp_path, capsys, teacher_endpoint):
    camera = clip30.stem
    s3 = aws("s3", stack.moto.url)
    s3.create_bucket(Bucket="landed-video")
    recorded = float(int(time.time()) - 100)  # when its first frame was recorded (within the router's window)
    s3.upload_file(str(clip30), "landed-video", "landed/road/2026-12-03/0400.mp4",
                   ExtraArgs={"Metadata": {"start-time": str(recorded)}})

    code = cloud_main(["sieve", "--config", str(sieve_yaml(tmp_path, camera)), "--bucket", "landed-video",
                       "--key", "landed/road/2026-12-03/0400.mp4", "--out", str(tmp_path / "out")])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "sieved" and result["cameras"] == [camera] and result["site"] == "road-1"
    sieved = [json.loads(ln) for ln in (tmp_path / "out" / "decisions-0.jsonl").read_text().splitlines()]

    # edge-agent bench's hybrid on the same clip: its one-camera config, the same default student and bands
    config = agent_config(camera, clip30, 1.0, teacher_endpoint + "/invocations",
                          {"labels": BANDS, "audit_fraction": AUDIT})
    bench = run_hybrid(config, tmp_path / "bench", camera, transport=UrlTransport(config.escalation.url))
    assert len(sieved) == len(bench.lines) == 30
    escalated = sum(ln["escalated"] for ln in bench.lines)
    assert escalated >= 3, "the clip must make the cascade ask the cloud, or the comparison proves little"
    assert [key_fields(ln) for ln in sieved] == [key_fields(ln) for ln in bench.lines]

    # a row per escalation, written by the router into the stack's store, under the sieve's thing for the site
    rows = stack.router.store.query_camera(camera, 0, 4e9, limit=1000).items
    assert len(rows) == escalated == result["escalated_frames"] == result["router"]["stored"]
    assert {(r.thing, r.site) for r in rows} == {("sieve-test_road-1", "road-1")}
    asked = sorted((ln["frame_index"], ln["pts_s"]) for ln in sieved if ln["escalated"])
    assert sorted((r.frame_index, r.t_s) for r in rows) == [(i, recorded + pts) for i, pts in asked]
    # every sampled frame's decision as the fleet view's per-minute counters
    buckets = stack.router.store.event_buckets(camera, 0, 4e9)
    assert sum(b["sampled"] for b in buckets) == 30
    assert len(buckets) == result["minutes_stored"] <= 2  # one write per camera-minute, not per frame
    assert sum(b["escalated"] for b in buckets) == escalated

    # the same object again (an S3 event delivered twice): no second row, no frame counted twice
    assert cloud_main(["sieve", "--config", str(sieve_yaml(tmp_path, camera)), "--bucket", "landed-video",
                       "--key", "landed/road/2026-12-03/0400.mp4"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["minutes_stored"] == 0 and again["router"].get("stored", 0) == 0
    assert sum(b["sampled"] for b in stack.router.store.event_buckets(camera, 0, 4e9)) == 30
    assert len(stack.router.store.query_camera(camera, 0, 4e9, limit=1000).items) == escalated


def test_the_lambda_hands_a_long_segment_to_the_fargate_task(stack, clip30, tmp_path, monkeypatch):
    """The handler on an S3 ObjectCreated event: a segment over lambda_max_segment_s starts the sieve's Fargate
    task on it (ECS RunTask on moto) and sieves nothing itself."""
    from landed import constants as k
    from landed import handler

    ecs = aws("ecs", stack.moto.url)
    cluster = ecs.create_cluster(clusterName="sieve")["cluster"]["clusterArn"]
    task_def = ecs.register_task_definition(
        family="sieve", networkMode="bridge", cpu="1024", memory="2048",
        containerDefinitions=[{"name": "sieve", "image": "framesieve-sieve:latest", "cpu": 1024, "memory": 2048}],
    )["taskDefinition"]
    # bridge and no subnets: moto 5.2's RunTask fails on any awsvpc network configuration (its ENI has no
    # private_dns_name); the stack's task definition is awsvpc and the stack sets the subnets
    for name, value in ((k.CONFIG, str(sieve_yaml(tmp_path, clip30.stem, max_s=20))), (k.CLUSTER, cluster),
                        (k.TASK_DEFINITION, task_def["taskDefinitionArn"])):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler, "_sieve", None)
    s3 = aws("s3", stack.moto.url)
    s3.create_bucket(Bucket="landed-long")
    s3.upload_file(str(clip30), "landed-long", "landed/road/long+one.mp4")
    event = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "landed-long"},
                                                                  "object": {"key": "landed/road/long%2Bone.mp4"}}}]}
    done = handler.handler(event)["objects"]
    assert [d["status"] for d in done] == ["handed_off"] and done[0]["segment_s"] == 30.0
    task = ecs.describe_tasks(cluster=cluster, tasks=[done[0]["task"]])["tasks"][0]
    assert task["overrides"]["containerOverrides"][0]["command"] == [
        "framesieve-cloud", "sieve", "--bucket", "landed-long", "--key", "landed/road/long+one.mp4"]
    assert not stack.router.store.query_camera(clip30.stem, 0, 4e9).items  # the Lambda sieved nothing itself


def test_with_the_teacher_inside_the_sieve_answers_in_process(stack, clip30, tmp_path, capsys, monkeypatch,
                                                               teacher_manifest):
    """TeacherBackend=lambda: no endpoint; the stack names it "in-process" and the sieve runs the teacher itself."""
    from cloud import constants as c
    from tests.landed.conftest import cut

    monkeypatch.setenv(c.ENDPOINT_NAME, "in-process")
    monkeypatch.setenv("FRAMESIEVE_TEACHER_MANIFEST", str(teacher_manifest))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:9")  # nothing there: not asked
    clip = cut(clip30, tmp_path / "roadcam.mp4", 12.0)
    s3 = aws("s3", stack.moto.url)
    s3.create_bucket(Bucket="landed-inside")
    s3.upload_file(str(clip), "landed-inside", "landed/road/inside.mp4")
    assert cloud_main(["sieve", "--config", str(sieve_yaml(tmp_path, clip.stem)), "--bucket", "landed-inside",
                       "--key", "landed/road/inside.mp4"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = stack.router.store.query_camera(clip.stem, 0, 4e9, limit=1000).items
    assert result["sampled_frames"] == 12 and result["escalated_frames"] >= 1
    assert len(rows) == result["escalated_frames"] == result["router"]["stored"]
    card = json.loads(teacher_manifest.read_text())
    assert {r.model for r in rows} == {f"{card['name']}@{card['version']}"}  # the teacher answered, in process
