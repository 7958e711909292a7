"""A real S3 server (SeaweedFS) on loopback for the whole session, moto for SQS, and helpers.

Use it from any test module (storage, ingest from an S3 library, the SQS worker)::

    from tests.support.s3server import count_puts, s3_bucket, s3_server  # noqa: F401

Fixtures:
    s3_server (session): starts SeaweedFS (``weed mini``, tests/support/seaweed.py) on
        127.0.0.1, every port free and loopback-only, and for the rest of the session points
        the standard AWS variables at it (``AWS_ENDPOINT_URL``, test credentials
        ``testing``/``testing``, region us-east-1; ``AWS_PROFILE``, config files and IMDS are
        switched off so a developer's real credentials can never be used). Restored when the
        session ends. Yields an ``S3Server``: ``.endpoint_url``, ``.client()`` (a fresh plain
        boto3 client for arranging and asserting).
    moto_server (session): moto's ``ThreadedMotoServer`` beside it, for SQS (the worker's
        queues; ``AWS_ENDPOINT_URL_SQS`` points at it) and for a test that needs a server to
        misbehave as a real one won't. ``.reset()`` wipes all moto state.
    s3_bucket / moto_bucket (function): a new, uniquely named, empty bucket on that server;
        its name is returned. Its objects, unfinished multipart uploads and the bucket itself
        are removed afterwards.
    no_retry_sleep (function): removes botocore's retry backoff so retry tests run in
        milliseconds; the number of attempts is unchanged.

Helpers:
    count_puts(client): a context manager counting the write requests a client sends
        (``with count_puts(client) as puts: ...; assert puts.writes == 0``), for "a re-run
        uploads nothing new".
    error_response(status, code): a fake botocore HTTP response for fault injection through
        ``client.meta.events.register("before-send.s3.<Operation>", handler)``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from tests.support.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedServer, find_weed

__all__ = [
    "RequestCounter",
    "S3Server",
    "count_puts",
    "error_response",
    "moto_bucket",
    "moto_server",
    "no_retry_sleep",
    "s3_bucket",
    "s3_server",
]

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
TEST_REGION = "us-east-1"


@dataclass
class S3Server:
    """A running S3(-compatible) server on loopback: SeaweedFS, or moto for SQS and fakes."""

    endpoint_url: str
    kind: str = "seaweedfs"

    def client(self, **config: Any) -> Any:
        """A plain boto3 S3 client for this server (path-style, no retries beyond 1)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=TEST_REGION,
            aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def reset(self) -> None:
        """Wipe all moto state (POST /moto-api/reset); moto only."""
        assert self.kind == "moto", "only moto can be reset"
        http = urllib3.PoolManager()
        response = http.request("POST", f"{self.endpoint_url}/moto-api/reset")
        assert response.status == 200, response.status


def _isolate_aws_environment(mp: pytest.MonkeyPatch, endpoint: str) -> None:
    """Test credentials and ``endpoint`` for every AWS service; never a developer's own."""
    for name, value in TEST_CREDENTIALS.items():
        mp.setenv(name, value)
    mp.setenv("AWS_DEFAULT_REGION", TEST_REGION)
    mp.setenv("AWS_ENDPOINT_URL", endpoint)
    mp.setenv("AWS_CONFIG_FILE", "/nonexistent/conform-test-aws-config")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/conform-test-aws-credentials")
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_REGION",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_S3_ADDRESSING_STYLE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        mp.delenv(name, raising=False)
    if _SHARED.get("sqs"):
        # The session's moto (SQS) started before this module's S3 fixture: keep pointing at
        # it, or a later module's worker would send its SQS calls to SeaweedFS.
        mp.setenv("AWS_ENDPOINT_URL_SQS", _SHARED["sqs"])


#: The one SeaweedFS of this test process and how many fixture instances use it. Modules that
#: re-export the fixture (``s3_server = s3server.s3_server``) get a session fixture of their
#: own; they must all see one server, or a bucket made through one would be missing on the
#: other (moto's in-process servers happened to share their state).
_SHARED: dict[str, Any] = {"server": None, "users": 0, "sqs": None}


def _acquire_seaweed(tmp_path_factory: pytest.TempPathFactory) -> SeaweedServer:
    if _SHARED["server"] is None:
        _SHARED["server"] = SeaweedServer.start(tmp_path_factory.mktemp("seaweedfs"))
    _SHARED["users"] += 1
    server: SeaweedServer = _SHARED["server"]
    return server


def _release_seaweed() -> None:
    _SHARED["users"] -= 1
    if _SHARED["users"] == 0 and _SHARED["server"] is not None:
        _SHARED["server"].stop()
        _SHARED["server"] = None


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """SeaweedFS (``weed mini``) on 127.0.0.1 for the whole session, with the AWS environment
    pointed at it (``AWS_ENDPOINT_URL``). Skips only where weed is missing and CI does not
    demand it (``CONFORM_REQUIRE_FFMPEG``, which scripts/test sets, demands it too)."""
    if find_weed() is None:
        if os.environ.get("CONFORM_REQUIRE_FFMPEG"):
            pytest.fail("weed (SeaweedFS) is missing: scripts/setup test installs it")
        pytest.skip("weed (SeaweedFS) not installed: scripts/setup test installs it")
    server = _acquire_seaweed(tmp_path_factory)
    try:
        with pytest.MonkeyPatch.context() as mp:
            _isolate_aws_environment(mp, server.endpoint_url)
            yield S3Server(endpoint_url=server.endpoint_url)
    finally:
        _release_seaweed()


@pytest.fixture(scope="session")
def moto_server(s3_server: S3Server) -> Iterator[S3Server]:
    """moto's server on 127.0.0.1: the SQS queues of the worker tests (SeaweedFS has no SQS;
    ``AWS_ENDPOINT_URL_SQS`` points here for the session), and an S3 for the few tests that
    need a server to misbehave in ways a real one won't."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    before = _SHARED["sqs"]
    _SHARED["sqs"] = endpoint
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL_SQS", endpoint)
        try:
            yield S3Server(endpoint_url=endpoint, kind="moto")
        finally:
            _SHARED["sqs"] = before
            server.stop()


def _empty_bucket(client: Any, bucket: str) -> None:
    with contextlib.suppress(Exception):
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
    with contextlib.suppress(Exception):
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
    with contextlib.suppress(Exception):
        client.delete_bucket(Bucket=bucket)


@contextlib.contextmanager
def _fresh_bucket(server: S3Server) -> Iterator[str]:
    client = server.client()
    name = f"conform-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        _empty_bucket(client, name)


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh, uniquely named bucket on SeaweedFS; removed with its contents after."""
    with _fresh_bucket(s3_server) as name:
        yield name


@pytest.fixture
def moto_bucket(moto_server: S3Server) -> Iterator[str]:
    """A fresh, uniquely named bucket on moto; removed with its contents after."""
    with _fresh_bucket(moto_server) as name:
        yield name


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry at once: botocore's standard-mode backoff (up to seconds for SlowDown) is zero."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


# --- request counting and fault injection --------------------------------------------------


@dataclass
class RequestCounter:
    """Requests a client sent while counting, by HTTP method and by operation name."""

    methods: collections.Counter[str] = field(default_factory=collections.Counter)
    operations: collections.Counter[str] = field(default_factory=collections.Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def puts(self) -> int:
        """HTTP PUTs: PutObject, UploadPart, CopyObject …"""
        return self.methods["PUT"]

    @property
    def writes(self) -> int:
        """Every request that changes the store: PUT, POST (multipart create/complete), DELETE."""
        return self.methods["PUT"] + self.methods["POST"] + self.methods["DELETE"]

    def _record(self, request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.methods[request.method.upper()] += 1
            self.operations[operation] += 1


@contextlib.contextmanager
def count_puts(client: Any) -> Iterator[RequestCounter]:
    """Count the requests ``client`` sends inside the block (retries count separately).

    Works on any boto3 S3 client, including the cached ``pipeline.storage.s3_client()``
    that the runner uses; the hook is removed on exit.
    """
    counter = RequestCounter()
    unique_id = f"count-puts-{uuid.uuid4().hex}"
    client.meta.events.register("before-send.s3", counter._record, unique_id=unique_id)
    try:
        yield counter
    finally:
        client.meta.events.unregister("before-send.s3", unique_id=unique_id)


class _RawBody:
    """The minimal ``raw`` object ``AWSResponse`` reads a body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def error_response(status: int, code: str, message: str = "injected", url: str = "") -> Any:
    """A fake S3 XML error response; return it from a ``before-send`` hook to inject it."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>injected</RequestId></Error>"
    ).encode()
    headers = {"Content-Type": "application/xml", "Content-Length": str(len(body))}
    return AWSResponse(url, status, headers, _RawBody(body))
