"""The queue worker against moto's server (SQS and S3): delete after the manifest, redelivery,
visibility heartbeat, graceful SIGTERM, dead-letter queue, limits."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from pipeline import storage as storage_mod
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.fleet.worker import Worker, _region_from_queue_url
from pipeline.settings import Settings
from tests.support.httpserver import LOOPBACK, LocalHTTPServer, status
from tests.support.jobkit import (
    conform_cmd,
    fake_ffmpeg,
    image_job,
    library_settings,
    pid_alive,
    subprocess_env,
    video_job,
    wait_for,
    workdir_clean,
)
from tests.support.s3server import count_puts

pytestmark = [pytest.mark.s3, pytest.mark.ffmpeg]


@dataclass
class Queues:
    sqs: Any
    jobs: str
    results: str
    dlq: str

    def send(self, body: str | dict[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.jobs,
                              MessageBody=body if isinstance(body, str) else json.dumps(body))

    def counts(self, url: str) -> tuple[int, int]:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return (int(attrs["ApproximateNumberOfMessages"]),
                int(attrs["ApproximateNumberOfMessagesNotVisible"]))

    def drain(self, url: str) -> list[dict[str, Any]]:
        out = []
        while True:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not got:
                return out
            out += [json.loads(m["Body"]) for m in got]


def make_queues(moto_server: Any, *, visibility_s: int = 30, max_receives: int = 2) -> Queues:
    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    name = f"conform-{uuid.uuid4().hex[:10]}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    jobs = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": str(visibility_s),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": str(max_receives)})})["QueueUrl"]
    results = sqs.create_queue(QueueName=f"{name}-results")["QueueUrl"]
    return Queues(sqs, jobs, results, dlq)


@pytest.fixture
def queues(moto_server: Any) -> Iterator[Queues]:
    q = make_queues(moto_server)
    yield q
    for url in (q.jobs, q.results, q.dlq):
        q.sqs.delete_queue(QueueUrl=url)


def _settings(tmp: Path, library: Path, bucket: str, **kw: Any) -> Settings:
    return library_settings(tmp, library, dest=f"s3://{bucket}/out", **kw)


def _worker(tmp: Path, library: Path, bucket: str, q: Queues, **kw: Any) -> Worker:
    settings = kw.pop("settings", None) or _settings(tmp, library, bucket)
    kw.setdefault("wait_time_s", 0)
    return Worker(q.jobs, settings=settings, results_queue_url=q.results, **kw)


def _manifest(s3_server: Any, bucket: str, job_id: str) -> dict[str, Any]:
    body = s3_server.client().get_object(Bucket=bucket, Key=f"out/manifests/ws/{job_id}.json")
    return json.loads(body["Body"].read())


# --------------------------------------------------------------------------- the loop


def test_happy_path_inline_and_s3_jobs(tmp_path: Path, library: Path, s3_server: Any,
                                       s3_bucket: str, queues: Queues) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="jobs/w-2.json",
                                  Body=json.dumps(image_job("w-2", "photo-2.jpg")).encode())
    queues.send(image_job("w-1", "photo-1.jpg"))
    queues.send(f"s3://{s3_bucket}/jobs/w-2.json")
    results: list[Any] = []
    worker = _worker(tmp_path, library, s3_bucket, queues, max_messages=2,
                     on_result=results.append)
    summary = worker.run()
    assert summary.stopped_by == "max_messages" and summary.messages == 2
    assert [r.outcome for r in results] == ["succeeded", "succeeded"]
    assert all(r.deleted for r in results)
    assert queues.counts(queues.jobs) == (0, 0)
    for job_id in ("w-1", "w-2"):
        manifest = _manifest(s3_server, s3_bucket, job_id)
        assert manifest["status"] == "succeeded"
        media = manifest["accounts"][0]["media"][0]
        key = media["uri"].removeprefix(f"s3://{s3_bucket}/")
        head = s3_server.client().head_object(Bucket=s3_bucket, Key=key)
        assert head["ContentLength"] == media["bytes"]
    done = sorted(queues.drain(queues.results), key=lambda m: m["job_id"])
    assert [(m["job_id"], m["status"]) for m in done] == [("w-1", "succeeded"),
                                                          ("w-2", "succeeded")]
    assert done[0]["manifest_uri"] == f"s3://{s3_bucket}/out/manifests/ws/w-1.json"
    assert done[0]["manifest"]["status"] == "succeeded"
    assert workdir_clean(tmp_path)


def test_tenants_with_the_same_job_id_and_the_pinned_workspace(tmp_path: Path, library: Path,
                                                               s3_server: Any, s3_bucket: str,
                                                               queues: Queues) -> None:
    # B's post-43 is done first; A's post-43 must still run, and write its own manifest.
    queues.send({**image_job("post-43", "photo-4.jpg"), "workspace_id": "ws-b"})
    queues.send({**image_job("post-43", "photo-5.jpg"), "workspace_id": "ws-a"})
    worker = _worker(tmp_path, library, s3_bucket, queues)
    first, second = worker.poll_once(), worker.poll_once()
    assert first is not None and second is not None
    assert (first.outcome, second.outcome) == ("succeeded", "succeeded")
    client = s3_server.client()
    for ws in ("ws-a", "ws-b"):
        stored = json.loads(client.get_object(Bucket=s3_bucket, Key=f"out/manifests/{ws}/post-43"
                                              ".json")["Body"].read())
        assert stored["workspace_id"] == ws
    a_media = json.loads(client.get_object(Bucket=s3_bucket, Key="out/manifests/ws-a/post-43"
                                           ".json")["Body"].read())["accounts"][0]["media"][0]
    b_media = json.loads(client.get_object(Bucket=s3_bucket, Key="out/manifests/ws-b/post-43"
                                           ".json")["Body"].read())["accounts"][0]["media"][0]
    assert a_media["sha256"] != b_media["sha256"]  # two pictures, not one job skipped

    # Pinned to ws-a: a message naming ws-b is an invalid job, dropped without running.
    pinned = _worker(tmp_path, library, s3_bucket, queues,
                     settings=_settings(tmp_path, library, s3_bucket, workspace="ws-a"))
    queues.send({**image_job("post-44", "photo-4.jpg"), "workspace_id": "ws-b"})
    result = pinned.poll_once()
    assert result is not None and result.outcome == "invalid" and result.deleted
    assert result.error is not None and result.error.code == "invalid_job"
    missing = client.list_objects_v2(Bucket=s3_bucket, Prefix="out/manifests/ws-b/post-44")
    assert missing.get("KeyCount", 0) == 0
    assert workdir_clean(tmp_path)


def test_a_message_delivered_twice_does_the_work_once(tmp_path: Path, library: Path,
                                                      s3_server: Any, s3_bucket: str,
                                                      queues: Queues) -> None:
    job = image_job("twice", "photo-3.jpg")
    queues.send(job)
    queues.send(job)  # SQS delivers at least once: the same job again
    worker = _worker(tmp_path, library, s3_bucket, queues)
    first = worker.poll_once()
    assert first is not None and first.outcome == "succeeded"
    manifest_before = _manifest(s3_server, s3_bucket, "twice")
    with count_puts(storage_mod.s3_client()) as writes:
        second = worker.poll_once()
    assert second is not None and second.outcome == "skipped" and second.deleted
    assert writes.writes == 0  # nothing encoded or stored again
    assert _manifest(s3_server, s3_bucket, "twice") == manifest_before
    assert queues.counts(queues.jobs) == (0, 0)
    assert [m["status"] for m in queues.drain(queues.results)] == ["succeeded", "skipped"]


def test_permanent_failures_are_done_and_invalid_messages_dropped(tmp_path: Path, library: Path,
                                                                  s3_server: Any,
                                                                  s3_bucket: str,
                                                                  queues: Queues) -> None:
    queues.send(image_job("gone", "no-such-photo.jpg"))
    queues.send("{not json")
    queues.send(f"s3://{s3_bucket}/jobs/missing.json")
    worker = _worker(tmp_path, library, s3_bucket, queues)
    failed, invalid, missing = (worker.poll_once() for _ in range(3))
    assert failed is not None and failed.outcome == "failed" and failed.deleted
    manifest = _manifest(s3_server, s3_bucket, "gone")
    assert manifest["status"] == "failed"
    assert manifest["accounts"][0]["errors"][0]["code"] == "media_not_found"
    assert invalid is not None and invalid.outcome == "invalid" and invalid.deleted
    assert invalid.error is not None and invalid.error.code == "invalid_job"
    assert missing is not None and missing.outcome == "invalid"
    assert queues.counts(queues.jobs) == (0, 0)
    assert [m["status"] for m in queues.drain(queues.results)] == ["failed", "invalid",
                                                                   "invalid"]


def test_visibility_is_extended_while_a_slow_job_runs(tmp_path: Path, library: Path,
                                                      s3_server: Any, moto_server: Any,
                                                      s3_bucket: str, use_ffmpeg: Any) -> None:
    q = make_queues(moto_server, visibility_s=1)
    use_ffmpeg(fake_ffmpeg(tmp_path, mode="slow", delay_s=3.5))
    q.send(video_job("slow"))
    worker = _worker(tmp_path, library, s3_bucket, q)
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", worker.poll_once()))
    thread.start()
    stolen = []
    wait_for(lambda: worker.busy, 10, "the worker to take the message")
    while thread.is_alive():
        # Another consumer polling: with a 1 s visibility timeout and no heartbeat it would
        # get the message after a second.
        stolen += q.sqs.receive_message(QueueUrl=q.jobs, WaitTimeSeconds=0,
                                        VisibilityTimeout=0).get("Messages", [])
        time.sleep(0.2)
    thread.join()
    result = box["r"]
    assert stolen == []
    assert result.outcome == "succeeded" and result.deleted
    assert result.elapsed_s > 3 and result.heartbeats >= 5
    assert q.counts(q.jobs) == (0, 0)


def test_retryable_failures_are_redelivered_then_dead_lettered(tmp_path: Path, library: Path,
                                                               s3_server: Any, moto_server: Any,
                                                               s3_bucket: str,
                                                               http_server: LocalHTTPServer
                                                               ) -> None:
    q = make_queues(moto_server, visibility_s=30, max_receives=2)
    http_server.route("/busy.jpg", status(503))  # a source server that is down: may pass
    job = {"workspace_id": "ws", "id": "poison",
           "content": [{"media": [http_server.url("/busy.jpg")]}],
           "accounts": [{"id": "a1", "platform": "telegram"}]}
    q.send(job)
    settings = _settings(tmp_path, library, s3_bucket, allow_networks=LOOPBACK, http_retries=0)
    worker = _worker(tmp_path, library, s3_bucket, q, settings=settings, retry_delay_s=0)
    first, second = worker.poll_once(), worker.poll_once()
    for n, result in enumerate((first, second), start=1):
        assert result is not None and result.outcome == "retry" and not result.deleted
        assert result.receive_count == n
    assert _manifest(s3_server, s3_bucket, "poison")["accounts"][0]["errors"][0]["code"] == \
        "download_failed"
    assert worker.poll_once() is None  # the queue moved it to its dead-letter queue
    dead = q.sqs.receive_message(QueueUrl=q.dlq, WaitTimeSeconds=0)["Messages"]
    assert json.loads(dead[0]["Body"])["id"] == "poison"
    assert q.drain(q.results) == []  # no completion for a job that never completed
    assert workdir_clean(tmp_path)


def test_a_timeout_is_permanent_not_redelivered_forever(tmp_path: Path, library: Path,
                                                        s3_server: Any, moto_server: Any,
                                                        s3_bucket: str, use_ffmpeg: Any) -> None:
    # The same encode under the same limit times out every time: retrying never ends.
    q = make_queues(moto_server, visibility_s=30, max_receives=5)
    use_ffmpeg(fake_ffmpeg(tmp_path, mode="hang"))
    q.send(video_job("too-slow"))
    settings = _settings(tmp_path, library, s3_bucket, ffmpeg_timeout_s=1.0)
    worker = _worker(tmp_path, library, s3_bucket, q, settings=settings, retry_delay_s=0)
    result = worker.poll_once()
    assert result is not None and result.outcome == "failed" and result.deleted
    errors = _manifest(s3_server, s3_bucket, "too-slow")["accounts"][0]["errors"]
    assert [e["code"] for e in errors] == ["processing_timeout"]
    assert worker.poll_once() is None  # not redelivered
    assert q.counts(q.jobs) == (0, 0)
    assert [m["status"] for m in q.drain(q.results)] == ["failed"]
    assert workdir_clean(tmp_path)


def test_limits_idle_exit_and_max_messages(tmp_path: Path, library: Path, s3_bucket: str,
                                           queues: Queues) -> None:
    started = time.monotonic()
    summary = _worker(tmp_path, library, s3_bucket, queues, idle_exit_s=1.0).run()
    assert summary.stopped_by == "idle" and summary.messages == 0
    assert 0.9 < time.monotonic() - started < 6
    queues.send(image_job("m-1", "photo-4.jpg"))
    queues.send(image_job("m-2", "photo-5.jpg"))
    summary = _worker(tmp_path, library, s3_bucket, queues, max_messages=1).run()
    assert summary.stopped_by == "max_messages" and dict(summary.by_outcome) == {"succeeded": 1}
    assert queues.counts(queues.jobs)[0] == 1  # the other one is still waiting


def test_configuration_errors(tmp_path: Path, library: Path, s3_bucket: str,
                              s3_server: Any, moto_server: Any) -> None:
    q = make_queues(moto_server)
    for bad in ({"wait_time_s": 21}, {"visibility_timeout_s": 0}, {"retry_delay_s": -1}):
        with pytest.raises(ConfigError):
            _worker(tmp_path, library, s3_bucket, q, **bad)
    missing = Worker(q.jobs + "-missing", settings=_settings(tmp_path, library, s3_bucket))
    with pytest.raises(ConfigError):
        missing.run()
    assert _region_from_queue_url("https://sqs.eu-west-3.amazonaws.com/1/q") == "eu-west-3"
    assert _region_from_queue_url("https://ap-south-1.queue.amazonaws.com/1/q") == "ap-south-1"
    assert _region_from_queue_url("http://localhost:4566/000/q") is None


# --------------------------------------------------------------------------- the command


def test_worker_command(tmp_path: Path, library: Path, s3_bucket: str, queues: Queues) -> None:
    queues.send(image_job("cli-1", "photo-0.jpg"))
    result = CliRunner().invoke(main, [
        "worker", "--queue-url", queues.jobs, "--results-queue-url", queues.results,
        "--dest", f"s3://{s3_bucket}/out", "--library", f"file://{library}/{{id}}",
        "--workdir", str(tmp_path / "work"), "--wait-time", "0", "--idle-exit", "0.5"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(m["job_id"], m["status"]) for m in lines] == [("cli-1", "succeeded")]
    bad = CliRunner().invoke(main, ["worker", "--queue-url", queues.jobs + "-nope",
                                    "--dest", f"s3://{s3_bucket}/out", "--wait-time", "0"])
    assert bad.exit_code == 2


def _start_worker(tmp: Path, library: Path, bucket: str, q: Queues, ffmpeg: Path,
                  *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # test: argv built here
        conform_cmd("worker", "--queue-url", q.jobs, "--dest", f"s3://{bucket}/out",
                    "--library", f"file://{library}/{{id}}", "--workdir", str(tmp / "work"),
                    "--wait-time", "1", *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(FFMPEG_PATH=str(ffmpeg)))


def test_sigterm_mid_job_releases_the_message_at_once(tmp_path: Path, library: Path,
                                                      s3_server: Any, s3_bucket: str,
                                                      queues: Queues) -> None:
    marker = tmp_path / "encode.pid"
    queues.send(video_job("term"))
    proc = _start_worker(tmp_path, library, s3_bucket, queues,
                         fake_ffmpeg(tmp_path, mode="hang", marker=marker), "--grace", "0.5")
    wait_for(marker.exists, 30, "the encode to start")
    encode_pid = int(marker.read_text().split()[0])
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert not pid_alive(encode_pid)
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["released"]
    # Visible again at once, though the queue's visibility timeout is 30 s.
    again = queues.sqs.receive_message(QueueUrl=queues.jobs, WaitTimeSeconds=0)["Messages"]
    assert json.loads(again[0]["Body"])["id"] == "term"
    assert workdir_clean(tmp_path)
    missing = s3_server.client().list_objects_v2(Bucket=s3_bucket, Prefix="out/manifests/")
    assert missing.get("KeyCount", 0) == 0


def test_sigterm_lets_a_job_finish_within_the_grace_period(tmp_path: Path, library: Path,
                                                           s3_server: Any, s3_bucket: str,
                                                           queues: Queues) -> None:
    marker = tmp_path / "encode.pid"
    queues.send(video_job("graceful"))
    queues.send(video_job("not-started"))
    proc = _start_worker(tmp_path, library, s3_bucket, queues,
                         fake_ffmpeg(tmp_path, mode="slow", delay_s=1.5, marker=marker),
                         "--grace", "30")
    wait_for(marker.exists, 30, "the encode to start")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["succeeded"]
    assert _manifest(s3_server, s3_bucket, "graceful")["status"] == "succeeded"
    assert queues.counts(queues.jobs) == (1, 0)  # the next message was never taken


def test_sigterm_while_idle_exits_promptly(tmp_path: Path, library: Path, s3_bucket: str,
                                           queues: Queues) -> None:
    proc = _start_worker(tmp_path, library, s3_bucket, queues, Path("/usr/bin/ffmpeg"),
                         "--wait-time", "20")
    time.sleep(2.0)  # inside a 20 s long poll by now
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert time.monotonic() - started < 5
