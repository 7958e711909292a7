"""The S3 backend (AWS, MinIO, R2, moto) through one shared boto3 client; botocore errors
become typed, retry-aware storage errors here and nowhere else."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
import botocore.exceptions as botoexc
import urllib3
from boto3.exceptions import Boto3Error, RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from s3transfer import exceptions as s3t_exc
from s3transfer.utils import ChunksizeAdjuster

from ..errors import ConfigError, StorageError, StorageNotFound, StoragePermissionError
from .base import (
    _MAX_KEY_BYTES,
    CONTENT_SHA256_KEY,
    IMMUTABLE,
    StorageRejected,
    StoredObject,
    StreamBroken,
    _check_key,
    _check_prefix,
    _check_presign,
    _clean_metadata,
    _join_url,
    _MiB,
    _public_base,
    _redact,
)
from .local import _COPY_BLOCK_BYTES, _translate_os_error

log = logging.getLogger(__name__)

# S3 allows at most 10,000 parts per upload, so 64 MiB parts cover 640 GB, far above the
# largest platform cap (4 GB), while a 4 GB video is still only 64 parts. Four parts in flight
# keep one upload from taking all of the client's pool (max_pool_connections, 16 by default)
# when several jobs upload at once. "classic" pins s3transfer even when awscrt is installed:
# we rely on its abort-on-failure cleanup and on botocore's per-request event hooks.
TRANSFER_CONFIG: Final = TransferConfig(
    multipart_threshold=64 * _MiB,
    multipart_chunksize=64 * _MiB,
    max_concurrency=4,
    use_threads=True,
    preferred_transfer_client="classic",
)

_RETRY_MAX_ATTEMPTS: Final = 5


# --- error translation ------------------------------------------------------------------------

_NOT_FOUND, _DENIED, _RETRY, _REJECT = "not_found", "denied", "retry", "reject"

# S3 error codes → how we treat them. Codes not listed fall back on the HTTP status.
_ERROR_CODES: Final[Mapping[str, str]] = {
    "NoSuchKey": _NOT_FOUND,
    "NotFound": _NOT_FOUND,
    "404": _NOT_FOUND,
    "NoSuchUpload": _NOT_FOUND,
    "AccessDenied": _DENIED,
    "403": _DENIED,
    "Forbidden": _DENIED,
    "InvalidAccessKeyId": _DENIED,
    "SignatureDoesNotMatch": _DENIED,
    "InvalidToken": _DENIED,
    "ExpiredToken": _DENIED,
    "TokenRefreshRequired": _DENIED,
    "AllAccessDisabled": _DENIED,
    "AccountProblem": _DENIED,
    "InvalidSecurity": _DENIED,
    "SlowDown": _RETRY,
    "Throttling": _RETRY,
    "ThrottlingException": _RETRY,
    "ThrottledException": _RETRY,
    "RequestThrottled": _RETRY,
    "RequestLimitExceeded": _RETRY,
    "TooManyRequests": _RETRY,
    "TooManyRequestsException": _RETRY,
    "RequestTimeout": _RETRY,
    "RequestTimeoutException": _RETRY,
    "InternalError": _RETRY,
    "ServiceUnavailable": _RETRY,
    "ServiceUnavailableException": _RETRY,
    "503": _RETRY,
    "500": _RETRY,
    "502": _RETRY,
    "504": _RETRY,
    "OperationAborted": _RETRY,  # a conflicting operation on the bucket is in progress
    "BadDigest": _RETRY,  # bytes were damaged in transit; sending them again may succeed
    "IncompleteBody": _RETRY,
    "XAmzContentSHA256Mismatch": _RETRY,
    "NoSuchBucket": _REJECT,
    "InvalidBucketName": _REJECT,
    "InvalidArgument": _REJECT,
    "InvalidRequest": _REJECT,
    "EntityTooLarge": _REJECT,
    "EntityTooSmall": _REJECT,
    "KeyTooLongError": _REJECT,
    "MethodNotAllowed": _REJECT,
    "InvalidObjectState": _REJECT,
    "MetadataTooLarge": _REJECT,
    "PermanentRedirect": _REJECT,  # bucket lives in another region than the client's
    "AuthorizationHeaderMalformed": _REJECT,
    "InvalidDigest": _REJECT,
}

# Non-HTTP failures. Order matters: the first matching class wins.
_BOTOCORE_KINDS: Final[tuple[tuple[type[Exception], str, str], ...]] = (
    (
        botoexc.NoCredentialsError,
        _DENIED,
        "no AWS credentials found (environment, profile or instance role)",
    ),
    (botoexc.PartialCredentialsError, _DENIED, "incomplete AWS credentials"),
    (botoexc.CredentialRetrievalError, _DENIED, "AWS credentials could not be retrieved"),
    (botoexc.TokenRetrievalError, _DENIED, "AWS credentials could not be retrieved"),
    (botoexc.SSLError, _REJECT, "TLS failure talking to the storage endpoint"),
    (botoexc.ConnectionError, _RETRY, "could not connect to the storage endpoint"),
    (botoexc.HTTPClientError, _RETRY, "connection to the storage endpoint failed"),
    (botoexc.IncompleteReadError, _RETRY, "response from the storage endpoint was cut short"),
    (botoexc.FlexibleChecksumError, _RETRY, "checksum of the transferred bytes did not match"),
    (botoexc.ParamValidationError, _REJECT, "invalid storage request"),
    (botoexc.NoRegionError, _REJECT, "no AWS region configured"),
)



# Everything boto3, botocore and s3transfer raise on purpose. Caught before OSError: some
# botocore timeouts are OSError subclasses (through the vendored requests exceptions).
_BOTO_ERRORS: Final[tuple[type[Exception], ...]] = (
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


def _build_error(kind: str, message: str, details: Mapping[str, object]) -> StorageError:
    cls: type[StorageError] = {
        _NOT_FOUND: StorageNotFound,
        _DENIED: StoragePermissionError,
        _RETRY: StorageError,
        _REJECT: StorageRejected,
    }[kind]
    return cls(_redact(message), details=details)


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
    details: dict[str, object] = {"op": op, "key": key}
    if isinstance(cause, botoexc.ClientError):
        response: Mapping[str, Any] = cause.response or {}
        error: Mapping[str, Any] = response.get("Error") or {}
        meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
        code = str(error.get("Code") or "")
        status = int(meta.get("HTTPStatusCode") or 0)
        if not code and status:
            code = str(status)
        attempts = int(meta.get("RetryAttempts") or 0) + 1
        kind = _ERROR_CODES.get(code)
        if kind is None:
            if status == 404:
                kind = _NOT_FOUND
            elif status == 403:
                kind = _DENIED
            elif status == 429 or status >= 500 or status == 0:
                kind = _RETRY
            else:
                kind = _REJECT
        details.update(error_code=code, http_status=status, attempts=attempts)
        text = str(error.get("Message") or "").strip()
        if code == "NoSuchBucket":
            bucket = error.get("BucketName")
            text = f"bucket {bucket!r} does not exist" if bucket else "bucket does not exist"
        what = f"{code}: {text}" if text and text != code else code or f"HTTP {status}"
        message = f"storage {op} {key} failed: {what}"
        if kind == _RETRY:
            message += f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
        return _build_error(kind, message, details)
    for cls, kind, text in _BOTOCORE_KINDS:
        if isinstance(cause, cls):
            details["error"] = type(cause).__name__
            return _build_error(kind, f"storage {op} {key} failed: {text}: {cause}", details)
    details["error"] = type(cause).__name__
    return StorageError(_redact(f"storage {op} {key} failed: {cause}"), details=details)




# --- S3 ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Digests:
    """sha256 of a file, whole and as S3 computes it for a multipart upload."""

    hex: str
    full_b64: str
    composite_b64: str | None  # sha256 over the part digests, when uploaded in parts
    parts: int


def _digest_file(src: Path, part_size: int | None) -> tuple[_Digests, int]:
    """Hash ``src`` in one pass: whole-file sha256 and, for multipart, per-part digests."""
    whole = hashlib.sha256()
    part_digests: list[bytes] = []
    part = hashlib.sha256()
    in_part = 0
    size = 0
    with open(src, "rb") as fin:
        while True:
            want = (
                _COPY_BLOCK_BYTES
                if part_size is None
                else min(_COPY_BLOCK_BYTES, part_size - in_part)
            )
            block = fin.read(want)
            if not block:
                break
            whole.update(block)
            size += len(block)
            if part_size is not None:
                part.update(block)
                in_part += len(block)
                if in_part == part_size:
                    part_digests.append(part.digest())
                    part, in_part = hashlib.sha256(), 0
    if part_size is not None and in_part:
        part_digests.append(part.digest())
    composite = None
    if part_size is not None:
        composite = base64.b64encode(hashlib.sha256(b"".join(part_digests)).digest()).decode()
    digests = _Digests(
        hex=whole.hexdigest(),
        full_b64=base64.b64encode(whole.digest()).decode(),
        composite_b64=composite,
        parts=len(part_digests),
    )
    return digests, size


def _etag(value: object) -> str | None:
    return str(value).strip('"') if value else None


class S3Storage:
    """Objects under ``s3://bucket/prefix`` through one injected boto3 client.

    Works with AWS S3 and S3-compatible stores (MinIO, Cloudflare R2, moto); the endpoint,
    region, credentials and addressing style are the client's business (see ``s3_client``).

    Args:
        bucket: the bucket name.
        prefix: the key prefix every key is placed under ('' for the bucket root).
        client: a boto3 S3 client, normally ``s3_client()``.
        transfer_config: a boto3 ``TransferConfig``; tests lower the multipart threshold.
        checksum: send SHA-256 checksums the store verifies; turn off only for stores that
            reject ``x-amz-checksum-*`` headers (the size is still checked).

    Raises:
        ConfigError: empty bucket or invalid prefix.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        *,
        transfer_config: Any = TRANSFER_CONFIG,
        checksum: bool = True,
    ) -> None:
        if not bucket:
            raise ConfigError("S3 bucket name is empty")
        prefix = prefix.strip("/")
        if prefix:
            _check_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.transfer_config = transfer_config
        self.checksum = checksum
        self._root = f"{prefix}/" if prefix else ""

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket!r}, {self.prefix!r})"

    def _full(self, key: str) -> str:
        full = self._root + _check_key(key)
        if len(full.encode("utf-8")) > _MAX_KEY_BYTES:
            raise ConfigError(f"storage key is longer than {_MAX_KEY_BYTES} bytes: {full[:80]!r}…")
        return full

    def uri(self, key: str) -> str:
        """``s3://bucket/prefix/key``.

        Raises:
            ConfigError: the key is invalid.
        """
        return f"s3://{self.bucket}/{self._full(key)}"

    def _error(self, err: Exception, op: str, key: str) -> StorageError:
        return translate_client_error(err, op=op, key=f"s3://{self.bucket}/{self._root}{key}")

    def _part_size(self, size: int) -> int | None:
        """The part size s3transfer will use for ``size`` bytes, or None for a single PUT."""
        if size < self.transfer_config.multipart_threshold:
            return None
        return int(
            ChunksizeAdjuster().adjust_chunksize(self.transfer_config.multipart_chunksize, size)
        )

    def put_file(
        self,
        src: Path,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        cache_control: str | None = IMMUTABLE,
    ) -> StoredObject:
        """Upload ``src``, in parts above the multipart threshold, and verify what was stored.

        The checksum: the file is hashed (sha256) before the upload. A single PUT carries
        that digest as ``x-amz-checksum-sha256``, so the store rejects the request unless the
        bytes it received are the file we hashed. Multipart parts carry a per-part SHA-256
        that botocore computes and the store verifies. Afterwards a HEAD with checksum mode
        compares the stored checksum (whole, or S3's "sha256 of the part digests" for
        multipart) and the size with ours; stores that don't report checksums (older MinIO,
        moto for single PUTs of some versions) are checked on size alone. The hex digest is
        also kept as ``sha256`` metadata, readable on any store.

        A failed multipart upload is aborted by s3transfer (its failure cleanup calls
        AbortMultipartUpload), so no object and no parts remain; a verified mismatch deletes
        the object.

        Raises:
            ConfigError: invalid key or metadata.
            StorageNotFound: ``src`` does not exist.
            StoragePermissionError: access denied or bad credentials.
            StorageRejected: no such bucket, or another request the store refuses.
            StorageError: retryable: throttling, 5xx, connection errors (after retries), or
                a checksum/size mismatch.
        """
        full = self._full(key)
        meta = _clean_metadata(metadata)
        try:
            size = src.stat().st_size
            digests, hashed = _digest_file(src, self._part_size(size))
        except OSError as err:
            raise _translate_os_error(err, op="put_file", key=str(src)) from err
        meta[CONTENT_SHA256_KEY] = digests.hex
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": meta}
        if cache_control:
            extra["CacheControl"] = cache_control
        if self.checksum:
            extra["ChecksumAlgorithm"] = "SHA256"
            if digests.composite_b64 is None:
                # Our own digest as the header: botocore sends it as is (no aws-chunked
                # trailer, which some S3-compatible stores reject) and the store checks it.
                extra["ChecksumSHA256"] = digests.full_b64
        try:
            self.client.upload_file(
                str(src), self.bucket, full, ExtraArgs=extra, Config=self.transfer_config
            )
        except _BOTO_ERRORS as err:
            raise self._error(err, "put_file", key) from err
        except OSError as err:  # the source vanished or became unreadable mid-upload
            raise _translate_os_error(err, op="put_file", key=str(src)) from err
        head = self._head_raw(full, key, checksum_mode=self.checksum)
        if head is None:
            raise StorageError(
                f"storage put_file {self.uri(key)} failed: object missing right after upload",
                details={"op": "put_file", "key": key},
            )
        self._verify(head, key, full, size=hashed, digests=digests)
        return self._stored(key, head)

    def _verify(
        self, head: Mapping[str, Any], key: str, full: str, *, size: int, digests: _Digests
    ) -> None:
        """Compare the stored size and checksum with the file's; delete the object if off."""
        problem = None
        stored_size = int(head.get("ContentLength", -1))
        if stored_size != size:
            problem = f"stored {stored_size} bytes, expected {size}"
        stored_sum = head.get("ChecksumSHA256")
        if problem is None and self.checksum and not stored_sum:
            log.debug("%s: the store reports no SHA-256; checked the size only", self.uri(key))
        elif problem is None and stored_sum and self.checksum:
            value, _, parts = str(stored_sum).partition("-")
            expected = digests.composite_b64 or digests.full_b64
            if parts and parts.isdigit() and int(parts) != digests.parts:
                # Not the part layout we hashed (a future s3transfer sizing parts
                # differently); the store verified each part, so don't fail on our guess.
                log.debug("%s: %s parts, expected %d", self.uri(key), parts, digests.parts)
            elif value != expected:
                problem = f"stored sha256 {value}, expected {expected}"
        if problem is None:
            return
        with contextlib.suppress(*_BOTO_ERRORS):
            self.client.delete_object(Bucket=self.bucket, Key=full)
        raise StorageError(
            f"storage put_file {self.uri(key)} failed verification: {problem}",
            details={"op": "put_file", "key": key},
        )

    def put_bytes(
        self, data: bytes, key: str, *, content_type: str, cache_control: str | None = None
    ) -> StoredObject:
        """Store a small document in one PUT with a SHA-256 checksum the store verifies.

        Raises:
            ConfigError: invalid key.
            StoragePermissionError: access denied or bad credentials.
            StorageRejected: no such bucket, or another request the store refuses.
            StorageError: retryable failures, after retries.
        """
        full = self._full(key)
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Body": data,
            "ContentType": content_type,
        }
        if cache_control:
            args["CacheControl"] = cache_control
        if self.checksum:
            args["ChecksumSHA256"] = base64.b64encode(hashlib.sha256(data).digest()).decode()
        try:
            response = self.client.put_object(**args)
        except _BOTO_ERRORS as err:
            raise self._error(err, "put_bytes", key) from err
        return StoredObject(
            key=key,
            uri=self.uri(key),
            size_bytes=len(data),
            content_type=content_type,
            etag=_etag(response.get("ETag")),
        )

    def _head_raw(self, full: str, key: str, *, checksum_mode: bool = False) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if checksum_mode:
            args["ChecksumMode"] = "ENABLED"
        try:
            return self.client.head_object(**args)
        except _BOTO_ERRORS as err:
            translated = self._error(err, "head", key)
            if isinstance(translated, StorageNotFound):
                return None
            raise translated from err

    def _stored(self, key: str, head: Mapping[str, Any]) -> StoredObject:
        recorded = (head.get("Metadata") or {}).get(CONTENT_SHA256_KEY)
        return StoredObject(
            key=key,
            uri=self.uri(key),
            size_bytes=int(head.get("ContentLength", 0)),
            content_type=head.get("ContentType"),
            etag=_etag(head.get("ETag")),
            sha256=str(recorded) if recorded else None,
        )

    def head(self, key: str) -> StoredObject | None:
        """Describe the object at ``key``, or ``None`` when there is none.

        A HEAD response has no body, so a missing bucket also reads as ``None`` here; the
        next write names the bucket in its error.

        Raises:
            ConfigError: invalid key.
            StoragePermissionError: access denied (S3 answers 403 for a missing key when
                the caller may not list the bucket).
            StorageError: retryable failures, after retries.
        """
        head = self._head_raw(self._full(key), key)
        return None if head is None else self._stored(key, head)

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``.

        Raises:
            ConfigError: invalid key.
            StoragePermissionError: access denied.
            StorageError: retryable failures, after retries.
        """
        return self.head(key) is not None

    def get_file(self, key: str, dest: Path) -> Path:
        """Download the object to ``dest`` (s3transfer writes a temp name, then renames).

        Raises:
            ConfigError: invalid key.
            StorageNotFound: nothing is stored at ``key``.
            StoragePermissionError: access denied.
            StorageRejected: no such bucket.
            StorageError: retryable failures, after retries, or a local write failure.
        """
        full = self._full(key)
        dest = Path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, full, str(dest), Config=self.transfer_config)
        except _BOTO_ERRORS as err:
            raise self._error(err, "get_file", key) from err
        except OSError as err:
            raise _translate_os_error(err, op="get_file", key=str(dest)) from err
        return dest

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, relative to this storage's prefix, in S3's (sorted) order.

        Raises:
            ConfigError: the prefix would escape the root.
            StoragePermissionError: access denied.
            StorageRejected: no such bucket.
            StorageError: retryable failures, after retries.
        """
        _check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                for obj in page.get("Contents", ()):
                    yield str(obj["Key"])[len(self._root) :]
        except _BOTO_ERRORS as err:
            raise self._error(err, "list", prefix) from err

    def public_url(self, key: str, *, base_url: str | None, presign_s: int | None) -> str | None:
        """An https URL for ``key``.

        ``base_url`` (``--public-base-url``) maps onto this storage's root, i.e. the
        ``--dest`` location including its prefix, and wins when given, since it doesn't
        expire. Otherwise ``presign_s`` gives a presigned GET URL valid that long. With
        neither, ``None``.

        Raises:
            ConfigError: invalid key, base URL or presign duration.
            StoragePermissionError: no credentials to sign with.
            StorageError: presigning failed otherwise.
        """
        full = self._full(key)
        if presign_s is not None:
            _check_presign(presign_s)
        if base_url:
            return _join_url(_public_base(base_url), key)
        if presign_s is None:
            return None
        try:
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=presign_s
            )
        except _BOTO_ERRORS as err:
            raise self._error(err, "presign", key) from err
        return str(url)

    def check(self) -> None:
        """One HeadBucket: the bucket exists and these credentials may use it.

        Run before any work so a typo in the bucket or a wrong key fails in a second, not
        after an hour of encoding. HeadBucket needs ``s3:ListBucket``, which the pipeline
        needs anyway: without it S3 answers 403 instead of 404 for a missing object, and
        the re-run check could not tell "not made yet" from "forbidden".

        Raises:
            StorageRejected: the bucket does not exist (or lives in another region).
            StoragePermissionError: access denied, bad or missing credentials.
            StorageError: retryable failures (endpoint down, 5xx), after retries.
        """
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except _BOTO_ERRORS as err:
            translated = translate_client_error(err, op="check", key=f"s3://{self.bucket}")
            if isinstance(translated, StorageNotFound):
                # HEAD responses have no body, so a missing bucket is a bare 404 here.
                raise StorageRejected(
                    f"storage bucket {self.bucket!r} does not exist",
                    details={**translated.details, "op": "check"},
                ) from err
            raise translated from err


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
        raise ConfigError(_redact(f"cannot create the S3 client: {err}")) from err


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
