"""One conformance suite for LocalStorage and S3Storage (SeaweedFS, a real S3 server), plus
S3-specific failure tests (faults injected in the client, before a request is sent)."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
)

from pipeline.errors import (
    ConfigError,
    StorageError,
    StorageNotFound,
    StoragePermissionError,
)
from pipeline.storage import (
    IMMUTABLE,
    TRANSFER_CONFIG,
    LocalStorage,
    S3Storage,
    Storage,
    StorageRejected,
    make_s3_client,
    open_storage,
    s3_client,
    translate_client_error,
)
from pipeline.storage import local as storage_local
from tests.support import s3server
from tests.support.s3server import S3Server, count_puts, error_response

# the shared fixtures, re-exported so pytest finds them in this module
s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
no_retry_sleep = s3server.no_retry_sleep

MiB = 1024 * 1024
# S3 refuses parts under 5 MiB (except the last), so 5 MiB is the smallest
# threshold that still exercises multipart; an 11 MiB file goes up as 3 parts.
SMALL_TRANSFER = TransferConfig(
    multipart_threshold=5 * MiB,
    multipart_chunksize=5 * MiB,
    max_concurrency=4,
    preferred_transfer_client="classic",
)
BIG_BYTES = 11 * MiB
S3_PREFIX = "renditions"

BAD_KEYS = [
    "",
    "/abs/key.mp4",
    "a/../b.mp4",
    "..",
    "./a.mp4",
    "a\\b.mp4",
    "a//b.mp4",
    "a/",
    "a\x00b",
    "x" * 1100,
]


@dataclass
class Backend:
    """A storage under test plus what the S3 variant needs for white-box checks."""

    name: str
    storage: Storage
    root: Path | None = None  # local
    client: Any = None  # s3: the storage's own client (hooks go here)
    raw: Any = None  # s3: a plain client for arranging and asserting
    bucket: str = ""

    def leftovers(self) -> list[str]:
        """Temp files (local) or unfinished multipart uploads (S3) left behind."""
        if self.name == "local":
            assert self.root is not None
            if not self.root.exists():
                return []
            return [str(p) for p in self.root.rglob("*") if p.name.startswith(".conform-tmp-")]
        uploads = self.raw.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "store"
        return Backend("local", LocalStorage(root), root=root)
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    client = make_s3_client()  # a client of its own, so hooks don't leak into other tests
    store = S3Storage(bucket, S3_PREFIX, client, transfer_config=SMALL_TRANSFER)
    return Backend("s3", store, client=client, raw=server.client(), bucket=bucket)


@pytest.fixture
def s3(s3_server: S3Server, s3_bucket: str, no_retry_sleep: None) -> Backend:
    """The S3 backend alone, retries without sleeping, for fault-injection tests."""
    client = make_s3_client()
    store = S3Storage(s3_bucket, S3_PREFIX, client, transfer_config=SMALL_TRANSFER)
    return Backend("s3", store, client=client, raw=s3_server.client(), bucket=s3_bucket)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def big_data() -> bytes:
    return os.urandom(BIG_BYTES)


@contextlib.contextmanager
def writes_fail(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every write fails mid-way: a full disk locally, a connection reset on S3."""
    if backend.name == "local":

        def half_copy(fin: Any, out: Any, *_: Any) -> None:
            out.write(fin.read(1000))
            raise OSError(errno.ENOSPC, "No space left on device")

        with monkeypatch.context() as mp:
            mp.setattr(storage_local, "_copy", half_copy)
            mp.setattr(storage_local, "_write_all", half_copy)
            yield
        return
    from botocore.retries import standard

    def reset(request: Any, **_: Any) -> None:
        raise ConnectionClosedError(endpoint_url=request.url)

    events = backend.client.meta.events
    with monkeypatch.context() as mp:
        mp.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)
        for op in ("PutObject", "UploadPart"):
            events.register(f"before-send.s3.{op}", reset, unique_id=f"reset-{op}")
        try:
            yield
        finally:
            for op in ("PutObject", "UploadPart"):
                events.unregister(f"before-send.s3.{op}", unique_id=f"reset-{op}")


# --- the conformance suite: every backend behaves the same ------------------------------------


def test_round_trip(backend: Backend, tmp_path: Path) -> None:
    store = backend.storage
    src = write(tmp_path / "in" / "clip.mp4", b"\x00\x01video bytes" * 1000)
    stored = store.put_file(src, "ab/cd/clip.mp4", content_type="video/mp4")
    assert stored.key == "ab/cd/clip.mp4"
    assert stored.size_bytes == src.stat().st_size
    assert stored.uri == store.uri("ab/cd/clip.mp4")

    head = store.head("ab/cd/clip.mp4")
    assert head is not None
    assert head.size_bytes == stored.size_bytes
    assert head.content_type == "video/mp4"
    assert store.exists("ab/cd/clip.mp4")

    out = store.get_file("ab/cd/clip.mp4", tmp_path / "out" / "nested" / "clip.mp4")
    assert out.read_bytes() == src.read_bytes()
    assert list(store.list()) == ["ab/cd/clip.mp4"]


def test_absent_objects(backend: Backend, tmp_path: Path) -> None:
    store = backend.storage
    assert store.head("no/such.mp4") is None
    assert not store.exists("no/such.mp4")
    with pytest.raises(StorageNotFound) as info:
        store.get_file("no/such.mp4", tmp_path / "x.mp4")
    assert not info.value.retryable
    assert not (tmp_path / "x.mp4").exists()
    assert list(store.list()) == []


def test_overwrite_replaces(backend: Backend, tmp_path: Path) -> None:
    store = backend.storage
    store.put_file(write(tmp_path / "a", b"first"), "k.bin", content_type="x/y")
    store.put_file(write(tmp_path / "b", b"second!"), "k.bin", content_type="x/y")
    assert store.get_file("k.bin", tmp_path / "got").read_bytes() == b"second!"
    assert list(store.list()) == ["k.bin"]


def test_put_bytes(backend: Backend, tmp_path: Path) -> None:
    store = backend.storage
    stored = store.put_bytes(
        b'{"ok": true}', "jobs/j1/result.json", content_type="application/json"
    )
    assert stored.size_bytes == 12
    assert stored.content_type == "application/json"
    head = store.head("jobs/j1/result.json")
    assert head is not None and head.content_type == "application/json"
    assert store.get_file("jobs/j1/result.json", tmp_path / "r.json").read_bytes() == (
        b'{"ok": true}'
    )


def test_list_prefix_and_order(backend: Backend, tmp_path: Path) -> None:
    store = backend.storage
    for key in ["b/3.json", "a/2.jpg", "a/1.mp4", "ab.txt"]:
        store.put_bytes(key.encode(), key, content_type="text/plain")
    assert list(store.list()) == ["a/1.mp4", "a/2.jpg", "ab.txt", "b/3.json"]
    assert list(store.list("a/")) == ["a/1.mp4", "a/2.jpg"]
    assert list(store.list("a")) == ["a/1.mp4", "a/2.jpg", "ab.txt"]
    assert list(store.list("zzz")) == []


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_bad_keys_refused(backend: Backend, tmp_path: Path, bad: str) -> None:
    store = backend.storage
    src = write(tmp_path / "f", b"x")
    with pytest.raises(ConfigError):
        store.put_file(src, bad, content_type="x/y")
    with pytest.raises(ConfigError):
        store.put_bytes(b"x", bad, content_type="x/y")
    with pytest.raises(ConfigError):
        store.head(bad)
    with pytest.raises(ConfigError):
        store.get_file(bad, tmp_path / "out")
    with pytest.raises(ConfigError):
        store.uri(bad)
    assert list(store.list()) == []


def test_list_prefix_refused(backend: Backend) -> None:
    with pytest.raises(ConfigError):
        backend.storage.list("/etc")
    with pytest.raises(ConfigError):
        backend.storage.list("a\\b")


def test_bad_metadata_refused(backend: Backend, tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"x")
    with pytest.raises(ConfigError):
        backend.storage.put_file(src, "k", content_type="x/y", metadata={"bad key": "v"})
    with pytest.raises(ConfigError):
        backend.storage.put_file(src, "k", content_type="x/y", metadata={"k": "v" * 3000})
    assert not backend.storage.exists("k")


def test_uri_forms(backend: Backend) -> None:
    uri = backend.storage.uri("ab/clip one.mp4")
    if backend.name == "local":
        assert backend.root is not None
        assert uri == (backend.root / "ab" / "clip one.mp4").as_uri()
        assert uri.startswith("file:///")
    else:
        assert uri == f"s3://{backend.bucket}/{S3_PREFIX}/ab/clip one.mp4"


def test_public_url(backend: Backend, tmp_path: Path) -> None:
    store = backend.storage
    store.put_bytes(b"hello", "ab/c d.txt", content_type="text/plain")
    assert store.public_url("ab/c d.txt", base_url=None, presign_s=None) is None
    url = store.public_url("ab/c d.txt", base_url="https://cdn.example.com/out/", presign_s=None)
    assert url == "https://cdn.example.com/out/ab/c%20d.txt"
    # the base URL wins over presigning: it doesn't expire
    both = store.public_url("ab/c d.txt", base_url="https://cdn.example.com", presign_s=60)
    assert both == "https://cdn.example.com/ab/c%20d.txt"

    presigned = store.public_url("ab/c d.txt", base_url=None, presign_s=300)
    if backend.name == "local":
        assert presigned is None  # a local file can't be presigned
    else:
        assert presigned is not None
        query = parse_qs(urlsplit(presigned).query)
        assert query.get("X-Amz-Expires") == ["300"] or "Expires" in query
        response = urllib3.PoolManager().request("GET", presigned)
        assert response.status == 200
        assert response.data == b"hello"

    for base in ("ftp://cdn.example.com", "https://user:pw@cdn.example.com", "https://x?y=1"):
        with pytest.raises(ConfigError):
            store.public_url("ab/c d.txt", base_url=base, presign_s=None)
    for seconds in (0, -1, 8 * 24 * 3600):
        with pytest.raises(ConfigError):
            store.public_url("ab/c d.txt", base_url=None, presign_s=seconds)


def test_large_file_round_trip(backend: Backend, tmp_path: Path, big_data: bytes) -> None:
    """Above the (injected) multipart threshold on S3: 3 parts, verified, byte-identical."""
    src = write(tmp_path / "big.mp4", big_data)
    if backend.name == "s3":
        with count_puts(backend.client) as requests:
            stored = backend.storage.put_file(src, "big.mp4", content_type="video/mp4")
        assert requests.operations["CreateMultipartUpload"] == 1
        assert requests.operations["UploadPart"] == 3
        assert requests.operations["CompleteMultipartUpload"] == 1
        assert requests.operations["PutObject"] == 0
        assert stored.etag is not None and stored.etag.endswith("-3")
    else:
        stored = backend.storage.put_file(src, "big.mp4", content_type="video/mp4")
    assert stored.size_bytes == BIG_BYTES
    got = backend.storage.get_file("big.mp4", tmp_path / "got.mp4")
    assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(big_data).digest()
    assert backend.leftovers() == []


@pytest.mark.parametrize("size", [2000, BIG_BYTES], ids=["single", "multipart"])
def test_failed_write_leaves_nothing_partial(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    big_data: bytes,
    size: int,
) -> None:
    """Whole or nothing: a write that fails mid-way leaves the previous object (or none)."""
    store = backend.storage
    store.put_bytes(b"old", "keep.bin", content_type="x/y")
    src = write(tmp_path / "new.bin", big_data[:size])
    with writes_fail(backend, monkeypatch):
        with pytest.raises(StorageError) as info:
            store.put_file(src, "keep.bin", content_type="x/y")
        assert info.value.retryable
        with pytest.raises(StorageError):
            store.put_file(src, "fresh.bin", content_type="x/y")
    assert store.get_file("keep.bin", tmp_path / "kept").read_bytes() == b"old"
    assert not store.exists("fresh.bin")
    assert list(store.list()) == ["keep.bin"]
    assert backend.leftovers() == []


def test_check_passes_on_a_usable_destination(backend: Backend) -> None:
    backend.storage.check()
    if backend.root is not None:
        assert backend.root.is_dir()  # the folder is created up front


def test_recorded_sha256(backend: Backend, tmp_path: Path) -> None:
    data = b"bytes to hash" * 100
    stored = backend.storage.put_file(write(tmp_path / "f", data), "f.bin", content_type="x/y")
    head = backend.storage.head("f.bin")
    assert head is not None
    if backend.name == "s3":
        assert stored.sha256 == head.sha256 == hashlib.sha256(data).hexdigest()
    else:
        assert head.sha256 is None  # a folder keeps no record beyond the bytes


def test_source_missing(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        backend.storage.put_file(tmp_path / "nope.mp4", "k.mp4", content_type="video/mp4")
    assert not backend.storage.exists("k.mp4")


# --- S3 specifics -----------------------------------------------------------------------------


@pytest.mark.s3
def test_s3_object_headers_and_metadata(s3: Backend, tmp_path: Path) -> None:
    data = b"rendition" * 500
    src = write(tmp_path / "r.mp4", data)
    s3.storage.put_file(
        src,
        "ab/r.mp4",
        content_type="video/mp4",
        metadata={"source-sha256": "f" * 64, "preset-id": "ig-reel", "Job-Id": "jöb 1"},
    )
    head = s3.raw.head_object(Bucket=s3.bucket, Key=f"{S3_PREFIX}/ab/r.mp4", ChecksumMode="ENABLED")
    assert head["ContentType"] == "video/mp4"
    assert head["CacheControl"] == IMMUTABLE
    assert head["Metadata"] == {
        "source-sha256": "f" * 64,
        "preset-id": "ig-reel",
        "job-id": "j%C3%B6b 1",  # keys lowercased, non-ASCII values percent-encoded
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    s3.storage.put_bytes(b"{}", "m.json", content_type="application/json")
    manifest = s3.raw.head_object(Bucket=s3.bucket, Key=f"{S3_PREFIX}/m.json")
    assert "CacheControl" not in manifest  # manifests change; never immutable


@pytest.mark.s3
def test_s3_multipart_checksum_and_metadata(s3: Backend, tmp_path: Path, big_data: bytes) -> None:
    src = write(tmp_path / "big.mp4", big_data)
    s3.storage.put_file(src, "big.mp4", content_type="video/mp4")
    head = s3.raw.head_object(Bucket=s3.bucket, Key=f"{S3_PREFIX}/big.mp4", ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == hashlib.sha256(big_data).hexdigest()
    parts = [big_data[i : i + 5 * MiB] for i in range(0, BIG_BYTES, 5 * MiB)]
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert head["ChecksumSHA256"].split("-")[0] == base64.b64encode(composite).decode()


@pytest.mark.s3
def test_s3_checksum_mismatch_detected_and_removed(s3: Backend, tmp_path: Path) -> None:
    def corrupt(parsed: dict[str, Any], **_: Any) -> None:
        if "ChecksumSHA256" in parsed:
            parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()

    s3.client.meta.events.register("after-call.s3.HeadObject", corrupt)
    with pytest.raises(StorageError, match="verification"):
        s3.storage.put_file(write(tmp_path / "f", b"data" * 100), "f.bin", content_type="x/y")
    s3.client.meta.events.unregister("after-call.s3.HeadObject", corrupt)
    assert not s3.storage.exists("f.bin")


def _part_number(request: Any) -> int:
    return int(parse_qs(urlsplit(request.url).query)["partNumber"][0])


@pytest.mark.s3
def test_s3_part_failure_retried(s3: Backend, tmp_path: Path, big_data: bytes) -> None:
    """Part 2 fails twice with a 500, then succeeds: the upload completes intact."""
    failures = {"left": 2}
    lock = threading.Lock()

    def flaky(request: Any, **_: Any) -> Any:
        with lock:
            if _part_number(request) == 2 and failures["left"]:
                failures["left"] -= 1
                return error_response(500, "InternalError", url=request.url)
        return None

    s3.client.meta.events.register("before-send.s3.UploadPart", flaky)
    src = write(tmp_path / "big.mp4", big_data)
    stored = s3.storage.put_file(src, "big.mp4", content_type="video/mp4")
    assert failures["left"] == 0
    assert stored.size_bytes == BIG_BYTES
    got = s3.storage.get_file("big.mp4", tmp_path / "got")
    assert got.read_bytes() == big_data


@pytest.mark.s3
def test_s3_part_failure_aborts_upload(s3: Backend, tmp_path: Path, big_data: bytes) -> None:
    """Part 2 keeps failing: a clean retryable error, the multipart upload is aborted."""
    attempts = {"n": 0}

    def broken(request: Any, **_: Any) -> Any:
        if _part_number(request) == 2:
            attempts["n"] += 1
            return error_response(503, "ServiceUnavailable", url=request.url)
        return None

    s3.client.meta.events.register("before-send.s3.UploadPart", broken)
    src = write(tmp_path / "big.mp4", big_data)
    with pytest.raises(StorageError) as info:
        s3.storage.put_file(src, "big.mp4", content_type="video/mp4")
    err = info.value
    assert type(err) is StorageError and err.retryable and err.code == "storage_failed"
    assert "ServiceUnavailable" in err.message and "after 5 attempts" in err.message
    assert attempts["n"] == 5  # standard retry mode, max_attempts=5
    assert isinstance(err.__cause__, S3UploadFailedError)
    assert not s3.storage.exists("big.mp4")
    assert s3.leftovers() == []  # s3transfer aborted the multipart upload


@pytest.mark.s3
def test_s3_connection_reset_retried(s3: Backend, tmp_path: Path) -> None:
    resets = {"left": 2}

    def reset_twice(request: Any, **_: Any) -> None:
        if resets["left"]:
            resets["left"] -= 1
            raise ConnectionClosedError(endpoint_url=request.url)

    s3.client.meta.events.register("before-send.s3.PutObject", reset_twice)
    src = write(tmp_path / "f", b"payload" * 100)
    s3.storage.put_file(src, "f.bin", content_type="x/y")
    assert resets["left"] == 0
    assert s3.storage.get_file("f.bin", tmp_path / "got").read_bytes() == b"payload" * 100


@pytest.mark.s3
def test_s3_503_burst_retried(s3: Backend, tmp_path: Path) -> None:
    burst = {"left": 3}
    seen: list[str] = []

    def slow_down(request: Any, **_: Any) -> Any:
        seen.append(request.method)
        if burst["left"]:
            burst["left"] -= 1
            return error_response(503, "SlowDown", "Please reduce your request rate.")
        return None

    s3.client.meta.events.register("before-send.s3.PutObject", slow_down)
    stored = s3.storage.put_file(write(tmp_path / "f", b"x" * 10), "f.bin", content_type="x/y")
    assert stored.size_bytes == 10
    assert seen == ["PUT"] * 4


@pytest.mark.s3
def test_s3_throttling_exhausted_is_retryable_error(s3: Backend) -> None:
    s3.client.meta.events.register(
        "before-send.s3.PutObject",
        lambda request, **_: error_response(503, "SlowDown", "Please reduce your request rate."),
    )
    with pytest.raises(StorageError) as info:
        s3.storage.put_bytes(b"{}", "m.json", content_type="application/json")
    assert type(info.value) is StorageError and info.value.retryable
    assert "SlowDown" in info.value.message
    assert info.value.details["attempts"] == 5


@pytest.mark.s3
def test_s3_bad_credentials(s3: Backend, tmp_path: Path) -> None:
    calls = {"n": 0}

    def denied(request: Any, **_: Any) -> Any:
        calls["n"] += 1
        return error_response(
            403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist."
        )

    s3.client.meta.events.register("before-send.s3", denied)
    with pytest.raises(StoragePermissionError) as info:
        s3.storage.put_file(write(tmp_path / "f", b"x"), "f.bin", content_type="x/y")
    assert not info.value.retryable
    assert "InvalidAccessKeyId" in info.value.message
    assert calls["n"] == 1  # not retried
    with pytest.raises(StoragePermissionError):
        s3.storage.head("f.bin")


@pytest.mark.s3
def test_s3_no_credentials(s3_server: S3Server, s3_bucket: str, monkeypatch: Any) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = S3Storage(s3_bucket, "", make_s3_client())
    with pytest.raises(StoragePermissionError, match="no AWS credentials"):
        store.put_bytes(b"{}", "m.json", content_type="application/json")


@pytest.mark.s3
def test_s3_missing_bucket(s3: Backend, tmp_path: Path) -> None:
    store = S3Storage("conform-no-such-bucket", "p", s3.client)
    with pytest.raises(StorageRejected) as info:
        store.put_file(write(tmp_path / "f", b"x"), "f.bin", content_type="x/y")
    assert not info.value.retryable
    assert info.value.code == "storage_failed"
    assert "conform-no-such-bucket" in info.value.message
    assert "does not exist" in info.value.message
    with pytest.raises(StorageRejected, match="does not exist"):
        list(store.list())


@pytest.mark.s3
def test_s3_check_missing_bucket_and_denied(s3: Backend) -> None:
    with pytest.raises(StorageRejected, match="does not exist"):
        S3Storage("conform-no-such-bucket", "", s3.client).check()
    s3.client.meta.events.register(
        "before-send.s3.HeadBucket", lambda request, **_: error_response(403, "AccessDenied")
    )
    with pytest.raises(StoragePermissionError):
        s3.storage.check()


def test_local_check_refuses_a_file(tmp_path: Path) -> None:
    write(tmp_path / "not-a-dir", b"x")
    with pytest.raises(StorageRejected, match="not a folder"):
        LocalStorage(tmp_path / "not-a-dir").check()
    with pytest.raises(StorageRejected):
        LocalStorage(tmp_path / "not-a-dir" / "below").check()


@pytest.mark.s3
def test_s3_unreachable_endpoint(s3_server: S3Server, no_retry_sleep: None) -> None:
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    client = make_s3_client(endpoint_url="http://127.0.0.1:9", max_attempts=2)
    store = S3Storage("bucket", "", client)
    with pytest.raises(StorageError) as info:
        store.head("k")
    assert type(info.value) is StorageError and info.value.retryable
    assert "could not connect" in info.value.message


@pytest.mark.s3
def test_count_puts_sees_a_rerun_upload_nothing(s3: Backend, tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"x" * 100)
    with count_puts(s3.client) as first:
        s3.storage.put_file(src, "f.bin", content_type="x/y")
    assert first.puts == 1 and first.writes == 1
    with count_puts(s3.client) as second:
        assert s3.storage.exists("f.bin")  # what a re-run does before uploading
    assert second.writes == 0 and second.operations["HeadObject"] == 1


# --- local specifics --------------------------------------------------------------------------


def test_local_temp_write_failure_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStorage(tmp_path / "store")

    def fail_replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(storage_local.os, "replace", fail_replace)
    with pytest.raises(StorageError) as info:
        store.put_file(write(tmp_path / "f", b"x" * 5000), "a/b.bin", content_type="x/y")
    assert info.value.retryable
    assert not (tmp_path / "store" / "a" / "b.bin").exists()
    assert list((tmp_path / "store" / "a").iterdir()) == []


def test_local_permission_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStorage(tmp_path / "store")

    def denied(*_: Any, **__: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(storage_local.tempfile, "mkstemp", denied)
    with pytest.raises(StoragePermissionError):
        store.put_bytes(b"x", "k", content_type="x/y")


def test_local_list_skips_temp_files(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    store.put_bytes(b"x", "a/k.txt", content_type="text/plain")
    (tmp_path / "a" / ".conform-tmp-abc").write_bytes(b"partial")
    assert list(store.list()) == ["a/k.txt"]


def test_local_objects_are_readable(tmp_path: Path) -> None:
    stored = LocalStorage(tmp_path).put_bytes(b"x", "k.txt", content_type="text/plain")
    assert stored.uri == (tmp_path.resolve() / "k.txt").as_uri()
    assert (tmp_path / "k.txt").stat().st_mode & 0o044 == 0o044


# --- opening storage from --dest ----------------------------------------------------------------


@pytest.mark.s3
def test_open_storage_s3(s3_server: S3Server) -> None:
    store = open_storage("s3://my-bucket/some/prefix/")
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix) == ("my-bucket", "some/prefix")
    assert store.client is s3_client()
    assert store.uri("k.mp4") == "s3://my-bucket/some/prefix/k.mp4"
    root = open_storage("s3://my-bucket")
    assert isinstance(root, S3Storage) and root.uri("k") == "s3://my-bucket/k"


def test_open_storage_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_storage(f"file://{tmp_path}/out")
    assert isinstance(store, LocalStorage) and store.root == (tmp_path / "out").resolve()
    monkeypatch.chdir(tmp_path)
    plain = open_storage("./conform-out")
    assert isinstance(plain, LocalStorage) and plain.root == (tmp_path / "conform-out").resolve()
    assert isinstance(open_storage("file://localhost/tmp/x"), LocalStorage)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "s3://",
        "s3:///prefix",
        "s3://AKIA:secret@bucket/prefix",
        "s3://key@bucket/prefix",
        "s3://bucket/prefix?versionId=1",
        "s3://bucket/a/../b",
        "file://user:pw@localhost/tmp",
        "file://otherhost/tmp",
        "http://example.com/out",
        "gs://bucket/prefix",
    ],
)
def test_open_storage_refuses(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        open_storage(url)
    assert "secret" not in info.value.message


# --- the client ---------------------------------------------------------------------------------


def test_transfer_config() -> None:
    assert TRANSFER_CONFIG.multipart_threshold == 64 * MiB
    assert TRANSFER_CONFIG.multipart_chunksize == 64 * MiB
    assert TRANSFER_CONFIG.max_request_concurrency == 4


def test_s3_client_cached_per_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = "http://127.0.0.1:1/cache-test"
    results: list[Any] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        results.append(s3_client(endpoint_url=endpoint))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in results}) == 1
    client = results[0]
    assert s3_client(endpoint_url="http://127.0.0.1:2") is not client
    config = client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert config.s3 == {"addressing_style": "path"}
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.max_pool_connections == 16
    assert client.meta.endpoint_url == endpoint
    assert make_s3_client(endpoint_url=endpoint) is not client


def test_addressing_style_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "virtual")
    client = make_s3_client(endpoint_url="http://127.0.0.1:1")
    assert client.meta.config.s3 == {"addressing_style": "virtual"}


# --- error translation --------------------------------------------------------------------------


def client_error(code: str, status: int, op: str = "PutObject", **extra: Any) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened", **extra},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 4},
        },
        op,
    )


@pytest.mark.parametrize(
    ("code", "status", "cls", "retryable"),
    [
        ("NoSuchKey", 404, StorageNotFound, False),
        ("404", 404, StorageNotFound, False),
        ("AccessDenied", 403, StoragePermissionError, False),
        ("InvalidAccessKeyId", 403, StoragePermissionError, False),
        ("SignatureDoesNotMatch", 403, StoragePermissionError, False),
        ("SlowDown", 503, StorageError, True),
        ("InternalError", 500, StorageError, True),
        ("ServiceUnavailable", 503, StorageError, True),
        ("RequestTimeout", 400, StorageError, True),
        ("SomethingNew", 502, StorageError, True),
        ("TooManyRequests", 429, StorageError, True),
        ("NoSuchBucket", 404, StorageRejected, False),
        ("InvalidArgument", 400, StorageRejected, False),
        ("SomethingElse", 400, StorageRejected, False),
        ("", 403, StoragePermissionError, False),
    ],
)
def test_translate_client_error(code: str, status: int, cls: type, retryable: bool) -> None:
    err = translate_client_error(client_error(code, status), op="put_file", key="s3://b/k")
    assert type(err) is cls
    assert err.retryable is retryable
    assert "s3://b/k" in err.message
    assert err.details["http_status"] == status
    if retryable:
        assert "after 5 attempts" in err.message


def test_translate_unwraps_transfer_errors() -> None:
    inner = client_error("AccessDenied", 403)
    try:
        try:
            raise inner
        except ClientError as e:
            raise S3UploadFailedError(f"Failed to upload: {e}")  # noqa: B904 (boto3's shape)
    except S3UploadFailedError as wrapped:
        err = translate_client_error(wrapped, op="put_file", key="k")
    assert type(err) is StoragePermissionError


@pytest.mark.parametrize(
    ("exc", "cls", "retryable"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), StorageError, True),
        (ConnectionClosedError(endpoint_url="http://x"), StorageError, True),
        (NoCredentialsError(), StoragePermissionError, False),
        (RuntimeError("surprise"), StorageError, True),
    ],
)
def test_translate_other_errors(exc: Exception, cls: type, retryable: bool) -> None:
    err = translate_client_error(exc, op="head", key="k")
    assert type(err) is cls and err.retryable is retryable


def test_translate_redacts_credentials() -> None:
    exc = ProxyConnectionError(proxy_url="http://user:hunter2@proxy:3128/?token=abc", error="x")
    err = translate_client_error(exc, op="put_file", key="s3://b/k")
    assert "hunter2" not in err.message and "token=abc" not in err.message
    assert err.retryable


def test_storage_protocol() -> None:
    assert isinstance(LocalStorage(Path("/tmp")), Storage)
    assert isinstance(S3Storage("b", "", client=object()), Storage)
