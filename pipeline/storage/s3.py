"""The boto3 border: S3 clients built the way the pipeline needs, and every botocore error
turned into a typed, retry-aware storage error here and nowhere else.

This is the one module that imports boto3, botocore and s3transfer. :mod:`.s3storage` holds
the ``S3Storage`` backend (it only calls the client it is given), :mod:`.s3errors` the table
of S3 error codes and :mod:`.s3digest` the upload checksums.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

import boto3
import botocore.exceptions as botoexc
import urllib3
from boto3.exceptions import Boto3Error, RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from s3transfer import exceptions as s3t_exc
from s3transfer.utils import ChunksizeAdjuster

from ..errors import ConfigError, StorageError
from .base import StreamBroken
from .keys import MIB, redact
from .s3errors import DENIED, REJECT, RETRY, build_error, from_response

# S3 allows at most 10,000 parts per upload, so 64 MiB parts cover 640 GB, far above the
# largest platform cap (4 GB), while a 4 GB video is still only 64 parts. Four parts in flight
# keep one upload from taking all of the client's pool (max_pool_connections, 16 by default)
# when several jobs upload at once. "classic" pins s3transfer even when awscrt is installed:
# we rely on its abort-on-failure cleanup and on botocore's per-request event hooks.
TRANSFER_CONFIG: Final = TransferConfig(
    multipart_threshold=64 * MIB,
    multipart_chunksize=64 * MIB,
    max_concurrency=4,
    use_threads=True,
    preferred_transfer_client="classic",
)

_RETRY_MAX_ATTEMPTS: Final = 5


# Non-HTTP failures. Order matters: the first matching class wins.
_BOTOCORE_KINDS: Final[tuple[tuple[type[Exception], str, str], ...]] = (
    (
        botoexc.NoCredentialsError,
        DENIED,
        "no AWS credentials found (environment, profile or instance role)",
    ),
    (botoexc.PartialCredentialsError, DENIED, "incomplete AWS credentials"),
    (botoexc.CredentialRetrievalError, DENIED, "AWS credentials could not be retrieved"),
    (botoexc.TokenRetrievalError, DENIED, "AWS credentials could not be retrieved"),
    (botoexc.SSLError, REJECT, "TLS failure talking to the storage endpoint"),
    (botoexc.ConnectionError, RETRY, "could not connect to the storage endpoint"),
    (botoexc.HTTPClientError, RETRY, "connection to the storage endpoint failed"),
    (botoexc.IncompleteReadError, RETRY, "response from the storage endpoint was cut short"),
    (botoexc.FlexibleChecksumError, RETRY, "checksum of the transferred bytes did not match"),
    (botoexc.ParamValidationError, REJECT, "invalid storage request"),
    (botoexc.NoRegionError, REJECT, "no AWS region configured"),
)


# Everything boto3, botocore and s3transfer raise on purpose. Caught before OSError: some
# botocore timeouts are OSError subclasses (through the vendored requests exceptions).
BOTO_ERRORS: Final[tuple[type[Exception], ...]] = (
    botoexc.BotoCoreError,
    botoexc.ClientError,
    Boto3Error,
    s3t_exc.S3UploadFailedError,
    s3t_exc.S3DownloadFailedError,
    s3t_exc.RetriesExceededError,
    s3t_exc.CancelledError,
)


def _root_cause(err: BaseException) -> BaseException:
    """Unwrap boto3's transfer wrappers, which keep the real error only as the context."""
    seen: set[int] = set()
    wrappers = (S3UploadFailedError, RetriesExceededError, s3t_exc.RetriesExceededError)
    while isinstance(err, wrappers) and id(err) not in seen:
        seen.add(id(err))
        last = getattr(err, "last_exception", None)
        inner = last or err.__cause__ or err.__context__
        if inner is None:
            break
        err = inner
    return err


def translate_client_error(err: Exception, *, op: str, key: str) -> StorageError:
    """Turn a boto3/botocore failure into our typed, retry-aware storage error.

    Retries have already happened by the time this runs (boto3 "standard" mode), so a
    retryable result means "still failing after the retries", and the message says so.

    Args:
        err: what boto3, botocore or s3transfer raised.
        op: the storage operation, for the message (``put_file``, ``head`` …).
        key: the object the operation was about (a key or a URI), for the message.

    Returns:
        ``StorageNotFound`` (NoSuchKey/404), ``StoragePermissionError`` (AccessDenied/403,
        bad or missing credentials), a retryable ``StorageError`` (throttling, 5xx,
        connection errors) or ``StorageRejected`` (NoSuchBucket and other 4xx). The caller
        raises it ``from err``.

    Raises:
        Nothing; it returns the error to raise.
    """
    cause = _root_cause(err)
    if isinstance(cause, botoexc.ClientError):
        return from_response(cause.response, op=op, key=key)
    details: dict[str, object] = {"op": op, "key": key, "error": type(cause).__name__}
    for cls, kind, text in _BOTOCORE_KINDS:
        if isinstance(cause, cls):
            return build_error(kind, f"storage {op} {key} failed: {text}: {cause}", details)
    return StorageError(redact(f"storage {op} {key} failed: {cause}"), details=details)


def part_size(transfer_config: Any, size: int) -> int | None:
    """The part size s3transfer will use for ``size`` bytes, or None for a single PUT."""
    if size < transfer_config.multipart_threshold:
        return None
    return int(ChunksizeAdjuster().adjust_chunksize(transfer_config.multipart_chunksize, size))


# --- uploads that stop at a deadline ---------------------------------------------------------

#: How often a deadline-bound upload looks at the clock while the transfer runs.
_POLL_S: Final = 0.05


def _wait(done: Callable[[], bool], left_s: Callable[[], float]) -> bool:
    """Wait until ``done()``; False when ``left_s()`` ran out first."""
    while not done():
        left = left_s()
        if left <= 0:
            return False
        time.sleep(min(_POLL_S, left))
    return True


def _in_background(fn: Callable[[], object]) -> None:
    """Run ``fn`` on a daemon thread: a request stalled in its socket ends there, on its
    socket timeout, while the caller goes on (and a process that exits does not wait)."""
    threading.Thread(target=fn, name="conform-upload-cleanup", daemon=True).start()


def upload_file(client: Any, src: str, bucket: str, key: str, *, extra: dict[str, Any],
                config: Any, left_s: Callable[[], float] | None) -> bool:
    """Upload ``src`` through s3transfer (in parts above the threshold), until ``left_s``.

    When the time runs out the transfer is cancelled: parts not yet sent are never sent, and
    the multipart upload is aborted right away (:func:`_abort_uploads`), not only by
    s3transfer's own clean-up once the parts in flight return: a job process exits when its
    job ends, and that clean-up would die with it. A single PUT cut off in flight either
    fails or stores the whole file (its checksum header makes it whole or nothing).

    Returns:
        True once stored; False when ``left_s()`` reached 0 first.

    Raises:
        whatever boto3, botocore or s3transfer raised (the caller translates it).
    """
    upload_ids: list[str] = []
    hook = f"conform-upload-{uuid.uuid4().hex}"

    def record_upload(parsed: Any = None, **_: Any) -> None:
        if isinstance(parsed, dict) and parsed.get("Key") == key and parsed.get("UploadId"):
            upload_ids.append(str(parsed["UploadId"]))

    client.meta.events.register("after-call.s3.CreateMultipartUpload", record_upload,
                                unique_id=hook)
    manager = create_transfer_manager(client, config)
    future = manager.upload(src, bucket, key, extra_args=extra)
    try:
        if left_s is None or _wait(future.done, left_s):
            try:
                future.result()  # raises the transfer's error
            except botoexc.ClientError as err:  # wrapped as boto3's upload_file wraps it
                raise S3UploadFailedError(
                    f"Failed to upload {src} to {bucket}/{key}: {err}") from err
            return True
        return False
    finally:
        client.meta.events.unregister("after-call.s3.CreateMultipartUpload", unique_id=hook)
        if future.done():
            manager.shutdown()
        else:  # out of time, or an error or a signal while waiting: stop sending
            future.cancel()
            _abort_uploads(client, bucket, key, upload_ids)
            _in_background(lambda: manager.shutdown(cancel=True))


#: How long a cut-off upload waits for its AbortMultipartUpload before leaving it to finish
#: in the background.
ABORT_GRACE_S: Final = 5.0


def _abort_uploads(client: Any, bucket: str, key: str, upload_ids: list[str]) -> None:
    """Abort the multipart uploads this upload started (a failed abort changes nothing: the
    deadline error is what the caller must see; a lifecycle rule cleans up what remains)."""
    end = time.monotonic() + ABORT_GRACE_S
    for upload_id in list(upload_ids):
        abort = functools.partial(client.abort_multipart_upload, Bucket=bucket, Key=key,
                                  UploadId=upload_id)
        with contextlib.suppress(*BOTO_ERRORS):
            call_within(abort, lambda: end - time.monotonic())


def call_within(call: Callable[[], Any], left_s: Callable[[], float]) -> tuple[bool, Any]:
    """Run one client request, waiting for it until ``left_s`` runs out.

    Returns:
        ``(True, its result)``, or ``(False, None)`` when the time ran out first (the
        request then ends in the background, on its socket timeout at worst).

    Raises:
        whatever the request raised.
    """
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as err:  # handed to the waiting thread
            outcome["error"] = err
        finally:
            finished.set()

    _in_background(run)
    if not _wait(finished.is_set, left_s):
        return False, None
    if "error" in outcome:
        raise outcome["error"]
    return True, outcome["result"]


# --- client and URL ---------------------------------------------------------------------------

_clients: dict[tuple[str | None, str | None, int], Any] = {}
_clients_lock = threading.Lock()


def _effective_endpoint(endpoint_url: str | None) -> str | None:
    """The endpoint boto3 will use: the argument, else AWS_ENDPOINT_URL_S3/AWS_ENDPOINT_URL."""
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def _addressing_style(endpoint: str | None) -> str | None:
    """AWS_S3_ADDRESSING_STYLE if set; "path" for custom endpoints; else the profile's choice.

    MinIO and most self-hosted stores have no wildcard DNS for virtual-hosted buckets, so a
    custom endpoint defaults to path style (R2 accepts both).
    """
    style = os.environ.get("AWS_S3_ADDRESSING_STYLE")
    if style:
        return style
    return "path" if endpoint else None


def make_s3_client(
    *,
    endpoint_url: str | None = None,
    max_pool_connections: int = 16,
    max_attempts: int = _RETRY_MAX_ATTEMPTS,
) -> Any:
    """A new boto3 S3 client configured the way the pipeline needs; not cached.

    Region, credentials and (when ``endpoint_url`` is None) the endpoint come from the
    standard AWS configuration: environment, ``AWS_ENDPOINT_URL[_S3]``, profiles, instance
    roles. Tests that register event hooks use this to get a client of their own.

    Args:
        endpoint_url: ``--endpoint-url``; overrides the AWS configuration.
        max_pool_connections: HTTP connections kept; at least jobs x upload concurrency.
        max_attempts: attempts per request, the first included, in botocore's
            "standard" retry mode (exponential backoff with jitter).

    Returns:
        a boto3 S3 client.

    Raises:
        ConfigError: the AWS configuration is unusable (bad profile, bad endpoint URL).
    """
    endpoint = _effective_endpoint(endpoint_url)
    style = _addressing_style(endpoint)
    config = Config(
        # "total_max_attempts" counts the first try; Config's older "max_attempts" key counts
        # retries only (max_attempts=5 would mean six requests, checked against botocore 1.43).
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        # Only checksum when an operation requires it, or when we ask (put_file does): some
        # S3-compatible stores reject the CRC32 trailers newer botocore sends by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        **({"s3": {"addressing_style": style}} if style else {}),
    )
    try:
        # Sessions are not thread-safe, clients are: one short-lived session per client.
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=endpoint_url or None, config=config)
    except (botoexc.BotoCoreError, ValueError) as err:
        raise ConfigError(redact(f"cannot create the S3 client: {err}")) from err


@contextlib.contextmanager
def read_object(bucket: str, key: str, *, endpoint_url: str | None, shown: str,
                chunk_bytes: int) -> Iterator[tuple[int, Iterator[bytes]]]:
    """An object as its stated length and a stream of chunks, for one read straight to disk.

    Used by ingest for ``s3://`` media libraries: the read is not a :class:`Storage` (no
    prefix, no keys of ours), but its S3 calls and error translation live here.

    Args:
        bucket: the bucket.
        key: the object key.
        endpoint_url: S3 endpoint (MinIO, R2, moto); default: the AWS configuration.
        shown: how the object is named in errors (its ``s3://`` URI).
        chunk_bytes: the size of each chunk read.

    Raises:
        StorageError: the object could not be read (``StorageNotFound`` when absent),
            translated at the border; ``StreamBroken`` when the body broke off mid-read.
    """
    client = s3_client(endpoint_url=endpoint_url)
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except (botoexc.BotoCoreError, botoexc.ClientError) as err:
        raise translate_client_error(err, op="get", key=shown) from err
    body: Any = obj["Body"]
    try:
        yield int(obj.get("ContentLength") or 0), _body_chunks(body, chunk_bytes, shown)
    finally:
        body.close()


def _body_chunks(body: Any, chunk_bytes: int, shown: str) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(chunk_bytes)
    except (botoexc.BotoCoreError, botoexc.ClientError) as err:
        raise translate_client_error(err, op="get", key=shown) from err
    except (OSError, urllib3.exceptions.HTTPError) as err:  # the connection broke mid-body
        raise StreamBroken(str(err)) from err


def s3_client(*, endpoint_url: str | None = None, max_pool_connections: int = 16) -> Any:
    """The process-wide S3 client for an endpoint, created once and shared across threads.

    Args:
        endpoint_url: ``--endpoint-url``; None uses the AWS configuration's endpoint.
        max_pool_connections: HTTP connections kept by the client.

    Returns:
        a boto3 S3 client, the same object for the same endpoint and settings.

    Raises:
        ConfigError: the AWS configuration is unusable.
    """
    endpoint = _effective_endpoint(endpoint_url)
    cache_key = (endpoint, _addressing_style(endpoint), max_pool_connections)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = make_s3_client(
                endpoint_url=endpoint_url, max_pool_connections=max_pool_connections
            )
            _clients[cache_key] = client
        return client
