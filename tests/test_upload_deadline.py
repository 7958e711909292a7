"""Uploads stop at the job deadline and fail as ``deadline_exceeded`` (issue 21.12).

A store that stops answering mid-upload (a loopback proxy in front of the S3 test server that
holds the asset PUTs, or a source that trickles in) must not hold a job past its deadline, and
an output still uploading when it passes is a permanent ``deadline_exceeded``, never
``succeeded`` late. Every wait here is bounded.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from pipeline.deadline import Deadline
from pipeline.errors import DeadlineExceeded
from pipeline.storage import LocalStorage, S3Storage, make_s3_client
from tests import test_runner_storage as rs
from tests.support import s3server
from tests.support.s3server import S3Server
from tests.support.stallproxy import StallProxy

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
library = rs.library
presets = rs.presets

MiB = 1024 * 1024
SLACK_S = 3.0  # the caller gets control back this soon after the deadline



@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[StallProxy]:
    with StallProxy(s3_server.endpoint_url,
                    lambda method, path: method == "PUT" and "/assets/" in path) as p:
        yield p


def _wait_no_uploads(raw: Any, bucket: str) -> list[Any]:
    """Pending multipart uploads, once the background abort had up to 20 s to run."""
    end = time.monotonic() + 20
    while True:
        uploads = raw.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if not uploads or time.monotonic() > end:
            return list(uploads)
        time.sleep(0.2)


@pytest.mark.s3
@pytest.mark.parametrize("size", [2 * MiB, 12 * MiB], ids=["single-put", "multipart"])
def test_a_stalled_s3_upload_stops_at_the_deadline(
    proxy: StallProxy, s3_server: S3Server, s3_bucket: str, tmp_path: Path, size: int
) -> None:
    src = tmp_path / "video.mp4"
    src.write_bytes(os.urandom(size))
    store = S3Storage(s3_bucket, "conform", make_s3_client(endpoint_url=proxy.url),
                      transfer_config=TransferConfig(multipart_threshold=5 * MiB,
                                                     multipart_chunksize=5 * MiB,
                                                     max_concurrency=2))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        store.put_file(src, "assets/ab/cd/video.mp4", content_type="video/mp4",
                       deadline=Deadline(1.0))
    assert time.monotonic() - started < 1.0 + SLACK_S
    assert info.value.code == "deadline_exceeded" and not info.value.retryable
    assert proxy.held  # the store really was stalled mid-upload
    raw = s3_server.client()
    # a cut multipart upload is aborted at once, while its parts are still stuck in flight
    # (a job process exits when its job ends: a clean-up left for later would die with it)
    assert raw.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    proxy.release()
    assert _wait_no_uploads(raw, s3_bucket) == []
    # a single PUT let through late is whole (S3 PUTs are atomic); a cut multipart never lands
    stored = raw.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert [o["Size"] for o in stored] in ([], [size] if size < 5 * MiB else [])


def test_a_slow_local_copy_stops_at_the_deadline(tmp_path: Path) -> None:
    """A source that trickles in (a slow mount): the copy stops, its temp file removed."""
    fifo = tmp_path / "slow.mp4"
    os.mkfifo(fifo)
    stop = threading.Event()

    def trickle() -> None:
        with open(fifo, "wb") as out:
            while not stop.is_set():
                try:
                    out.write(b"x" * 65536)
                    out.flush()
                except BrokenPipeError:
                    return
                time.sleep(0.05)

    writer = threading.Thread(target=trickle, daemon=True)
    writer.start()
    store = LocalStorage(tmp_path / "out")
    started = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded):
            store.put_file(fifo, "assets/ab/cd/video.mp4", content_type="video/mp4",
                           deadline=Deadline(0.5))
    finally:
        stop.set()
    assert time.monotonic() - started < 0.5 + SLACK_S
    writer.join(5)
    # nothing stored, and no temp file left behind
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


@pytest.mark.s3
@pytest.mark.ffmpeg
def test_a_job_whose_uploads_stall_fails_with_deadline_exceeded(
    proxy: StallProxy, s3_server: S3Server, s3_bucket: str, library: Path,
    presets: Any, tmp_path: Path,
) -> None:
    """End to end: the manifest says deadline_exceeded (permanent) soon after the deadline."""
    from pipeline.job import parse_job_text
    from pipeline.runner import process
    from pipeline.settings import Settings

    deadline_s = 8.0
    settings = Settings(workdir=tmp_path / "work", library=f"file://{library}/{{id}}",
                        dest=f"s3://{s3_bucket}/conform", endpoint_url=proxy.url,
                        x264_preset="ultrafast", job_deadline_s=deadline_s)
    job = parse_job_text(json.dumps(rs.JOB), presets)
    started = time.monotonic()
    result = process(job, settings=settings, presets=presets)
    manifest = result.to_dict()
    took = time.monotonic() - started
    assert proxy.held, "the job never reached its uploads"
    assert took < deadline_s + SLACK_S + 2, took
    assert manifest["status"] == "failed"
    codes = {e["code"] for a in manifest["accounts"] for e in a["errors"]}
    assert codes == {"deadline_exceeded"}
    assert not result.retryable  # permanent: `conform run` exits 1, not 75
