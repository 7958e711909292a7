"""``S3Storage``: the Storage protocol over one injected boto3 S3 client.

The class only calls the client it is given; building clients, knowing what boto3 raises and
translating it live in :mod:`pipeline.storage.s3` (the one module that imports boto3).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StorageError, StorageNotFound
from .base import CONTENT_SHA256_KEY, IMMUTABLE, StorageRejected, StoredObject
from .keys import (
    MAX_KEY_BYTES,
    check_key,
    check_prefix,
    check_presign,
    clean_metadata,
    join_url,
    public_base,
)
from .local import translate_os_error
from .s3 import (
    BOTO_ERRORS,
    TRANSFER_CONFIG,
    call_within,
    part_size,
    translate_client_error,
    upload_file,
)
from .s3digest import Digests, digest_file, etag_of, stored_mismatch

if TYPE_CHECKING:
    from ..deadline import Deadline


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
            check_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.transfer_config = transfer_config
        self.checksum = checksum
        self._root = f"{prefix}/" if prefix else ""

    def __repr__(self) -> str:
        return f"S3Storage({self.bucket!r}, {self.prefix!r})"

    def _full(self, key: str) -> str:
        full = self._root + check_key(key)
        if len(full.encode("utf-8")) > MAX_KEY_BYTES:
            raise ConfigError(f"storage key is longer than {MAX_KEY_BYTES} bytes: {full[:80]!r}…")
        return full

    def uri(self, key: str) -> str:
        """``s3://bucket/prefix/key``.

        Raises:
            ConfigError: the key is invalid.
        """
        return f"s3://{self.bucket}/{self._full(key)}"

    def _error(self, err: Exception, op: str, key: str) -> StorageError:
        return translate_client_error(err, op=op, key=f"s3://{self.bucket}/{self._root}{key}")

    def put_file(
        self,
        src: Path,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        cache_control: str | None = IMMUTABLE,
        deadline: Deadline | None = None,
    ) -> StoredObject:
        """Upload ``src``, in parts above the multipart threshold, and verify what was stored.

        With a ``deadline``, the upload stops when it passes however slow the store is: no
        part is sent after it, a multipart upload is aborted, and the deadline's error is
        raised (``DeadlineExceeded`` for a job's), never a late success.

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
            PipelineError: the deadline passed (its error).
            ConfigError: invalid key or metadata.
            StorageNotFound: ``src`` does not exist.
            StoragePermissionError: access denied or bad credentials.
            StorageRejected: no such bucket, or another request the store refuses.
            StorageError: retryable: throttling, 5xx, connection errors (after retries), or
                a checksum/size mismatch.
        """
        full = self._full(key)
        meta = clean_metadata(metadata)
        digests, hashed = self._hash(src)
        if deadline is not None:
            deadline.check(f"uploading {self.uri(key)}")
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
        self._upload(src, key, full, extra, deadline)
        head = self._head_raw(full, key, checksum_mode=self.checksum)
        if head is None:
            raise StorageError(
                f"storage put_file {self.uri(key)} failed: object missing right after upload",
                details={"op": "put_file", "key": key},
            )
        self._verify(head, key, full, size=hashed, digests=digests)
        return self._stored(key, head)

    def _hash(self, src: Path) -> tuple[Digests, int]:
        """The file's digests, per part as s3transfer will cut it, and the bytes hashed."""
        try:
            return digest_file(src, part_size(self.transfer_config, src.stat().st_size))
        except OSError as err:
            raise translate_os_error(err, op="put_file", key=str(src)) from err

    def _upload(self, src: Path, key: str, full: str, extra: dict[str, Any],
                deadline: Deadline | None) -> None:
        """One upload through s3transfer (multipart above the threshold, aborted on failure
        or when the deadline passes)."""
        try:
            stored = upload_file(self.client, str(src), self.bucket, full, extra=extra,
                                 config=self.transfer_config,
                                 left_s=deadline.left_s if deadline is not None else None)
        except BOTO_ERRORS as err:
            raise self._error(err, "put_file", key) from err
        except OSError as err:  # the source vanished or became unreadable mid-upload
            raise translate_os_error(err, op="put_file", key=str(src)) from err
        if not stored:
            assert deadline is not None
            deadline.expire(stage=f"the upload of {self.uri(key)} finished")

    def _verify(
        self, head: Mapping[str, Any], key: str, full: str, *, size: int, digests: Digests
    ) -> None:
        """Compare the stored size and checksum with the file's; delete the object if off."""
        problem = stored_mismatch(head, size=size, digests=digests, checksum=self.checksum,
                                  shown=self.uri(key))
        if problem is None:
            return
        self._discard(full)
        raise StorageError(
            f"storage put_file {self.uri(key)} failed verification: {problem}",
            details={"op": "put_file", "key": key},
        )

    def _discard(self, full: str) -> None:
        """Delete an object that failed verification; a failure to delete changes nothing
        (the verification error is what the caller must see)."""
        with contextlib.suppress(*BOTO_ERRORS):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def put_bytes(
        self, data: bytes, key: str, *, content_type: str, cache_control: str | None = None,
        deadline: Deadline | None = None,
    ) -> StoredObject:
        """Store a small document in one PUT with a SHA-256 checksum the store verifies.

        With a ``deadline``, the caller stops waiting when it passes and gets its error.

        Raises:
            PipelineError: the deadline passed (its error).
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
            if deadline is None:
                response = self.client.put_object(**args)
            else:
                deadline.check(f"uploading {self.uri(key)}")
                stored, response = call_within(lambda: self.client.put_object(**args),
                                               deadline.left_s)
                if not stored:
                    deadline.expire(stage=f"the upload of {self.uri(key)} finished")
        except BOTO_ERRORS as err:
            raise self._error(err, "put_bytes", key) from err
        return StoredObject(
            key=key,
            uri=self.uri(key),
            size_bytes=len(data),
            content_type=content_type,
            etag=etag_of(response.get("ETag")),
        )

    def _head_raw(self, full: str, key: str, *, checksum_mode: bool = False) -> Any:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if checksum_mode:
            args["ChecksumMode"] = "ENABLED"
        try:
            return self.client.head_object(**args)
        except BOTO_ERRORS as err:
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
            etag=etag_of(head.get("ETag")),
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
        except BOTO_ERRORS as err:
            raise self._error(err, "get_file", key) from err
        except OSError as err:
            raise translate_os_error(err, op="get_file", key=str(dest)) from err
        return dest

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, relative to this storage's prefix, in S3's (sorted) order.

        Raises:
            ConfigError: the prefix would escape the root.
            StoragePermissionError: access denied.
            StorageRejected: no such bucket.
            StorageError: retryable failures, after retries.
        """
        check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                for obj in page.get("Contents", ()):
                    yield str(obj["Key"])[len(self._root) :]
        except BOTO_ERRORS as err:
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
            check_presign(presign_s)
        if base_url:
            return join_url(public_base(base_url), key)
        if presign_s is None:
            return None
        try:
            url = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=presign_s
            )
        except BOTO_ERRORS as err:
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
        except BOTO_ERRORS as err:
            translated = translate_client_error(err, op="check", key=f"s3://{self.bucket}")
            if isinstance(translated, StorageNotFound):
                # HEAD responses have no body, so a missing bucket is a bare 404 here.
                raise StorageRejected(
                    f"storage bucket {self.bucket!r} does not exist",
                    details={**translated.details, "op": "check"},
                ) from err
            raise translated from err

