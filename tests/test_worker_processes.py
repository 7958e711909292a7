"""`conform worker --workers N`: messages side by side, each job in a process of its own."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobkit import conform_cmd, subprocess_env, video_job
from tests.test_batch_processes import _probe_codec, _spy_ffmpeg
from tests.test_worker import Queues, make_queues

pytestmark = [pytest.mark.s3, pytest.mark.ffmpeg]


@pytest.fixture
def queues(moto_server: Any) -> Iterator[Queues]:
    q = make_queues(moto_server, max_receives=3)
    yield q
    for url in (q.jobs, q.results, q.dlq):
        q.sqs.delete_queue(QueueUrl=url)


def _worker(tmp: Path, library: Path, bucket: str, q: Queues, ffmpeg: Path
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        conform_cmd("worker", "--queue-url", q.jobs, "--dest", f"s3://{bucket}/out",
                    "--library", f"file://{library}/{{id}}", "--workdir", str(tmp / "work"),
                    "--wait-time", "0", "--idle-exit", "3", "--retry-delay", "0",
                    "--workers", "2"),
        capture_output=True, text=True, timeout=120,
        env=subprocess_env(FFMPEG_PATH=str(ffmpeg)))


def _outputs(s3_server: Any, bucket: str, tmp: Path) -> list[Path]:
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="out/assets/")
            .get("Contents", []) if o["Key"].endswith(".mp4")]
    paths = []
    for i, key in enumerate(keys):
        path = tmp / f"got-{i}.mp4"
        client.download_file(bucket, key, str(path))
        paths.append(path)
    return paths


def test_worker_runs_messages_side_by_side_in_processes(tmp_path: Path, library: Path,
                                                        s3_server: Any, s3_bucket: str,
                                                        queues: Queues) -> None:
    for i in range(3):
        queues.send(video_job(f"w-{i}"))
    log = tmp_path / "encoders.pid"
    result = _worker(tmp_path, library, s3_bucket, queues, _spy_ffmpeg(tmp_path, log))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((m["job_id"], m["status"]) for m in lines) == [
        ("w-0", "succeeded"), ("w-1", "succeeded"), ("w-2", "succeeded")]
    assert queues.counts(queues.jobs) == (0, 0)
    parents = [int(p) for p in log.read_text().split()]
    assert len(parents) >= 2 and len(set(parents)) == len(parents)
    outputs = _outputs(s3_server, s3_bucket, tmp_path)
    assert outputs and all(_probe_codec(p) == "h264" for p in outputs)


def test_a_worker_job_process_that_dies_leaves_its_message_for_redelivery(
        tmp_path: Path, library: Path, s3_server: Any, s3_bucket: str, queues: Queues) -> None:
    queues.send(video_job("crashes-once"))
    queues.send(video_job("fine"))
    log = tmp_path / "encoders.pid"
    result = _worker(tmp_path, library, s3_bucket, queues,
                     _spy_ffmpeg(tmp_path, log, crash_first=True))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    retried = [m for m in lines if m["status"] == "retry"]
    assert len(retried) == 1
    assert retried[0]["errors"][0]["code"] == "internal"
    assert "SIGKILL" in retried[0]["errors"][0]["message"]
    done = sorted(m["job_id"] for m in lines if m["status"] == "succeeded")
    assert done == ["crashes-once", "fine"]  # the crashed one came back and succeeded
    assert queues.counts(queues.jobs) == (0, 0)
    work = tmp_path / "work"
    assert not [p for p in work.iterdir() if p.name.startswith("conform-")]
