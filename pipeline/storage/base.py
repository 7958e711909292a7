"""Storage basics shared by the backends: the protocol, stored objects, the store's errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from ..errors import StorageError

if TYPE_CHECKING:
    from ..deadline import Deadline

#: Cache-Control for renditions: keys are content-addressed, so an object never changes.
IMMUTABLE: Final = "public, max-age=31536000, immutable"

#: Metadata key holding the hex sha256 of the stored bytes; written by put_file on S3.
CONTENT_SHA256_KEY: Final = "sha256"


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object as stored: its key relative to the storage root, where it is, how big."""

    key: str
    uri: str
    size_bytes: int
    content_type: str | None
    etag: str | None = None
    #: hex sha256 of the bytes as recorded when they were stored (S3 ``sha256`` metadata);
    #: ``None`` where the store keeps no such record (a local folder, foreign objects).
    sha256: str | None = None


@runtime_checkable
class Storage(Protocol):
    """Put, look up, fetch and list objects under one root (a folder or an S3 prefix).

    Keys are relative, ``/``-separated paths. Writes are whole or nothing: a reader either
    sees the complete object or no object at all.
    """

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
        """Store ``src`` under ``key``, replacing any object already there.

        With a ``deadline`` the write stops when it passes (nothing partial remains) and
        raises the deadline's error (``DeadlineExceeded`` for a job's).
        """
        ...

    def put_bytes(
        self, data: bytes, key: str, *, content_type: str, cache_control: str | None = None,
        deadline: Deadline | None = None,
    ) -> StoredObject:
        """Store a small document (a manifest) under ``key``; not immutable by default.

        ``deadline``: as for :meth:`put_file`; a manifest is written without one.
        """
        ...

    def head(self, key: str) -> StoredObject | None:
        """Describe the object at ``key``, or ``None`` when there is none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        ...

    def get_file(self, key: str, dest: Path) -> Path:
        """Copy the object at ``key`` to ``dest`` and return ``dest``."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, relative to the storage root."""
        ...

    def uri(self, key: str) -> str:
        """``file:///abs/path`` or ``s3://bucket/prefix/key`` for ``key``."""
        ...

    def public_url(self, key: str, *, base_url: str | None, presign_s: int | None) -> str | None:
        """An http(s) URL for ``key``, when one can be given."""
        ...

    def check(self) -> None:
        """Fail fast, before any work, when the destination can't be written at all."""
        ...


class StorageRejected(StorageError):
    """The store refused the request for a reason a retry won't fix (no such bucket, bad argument).

    Lives here rather than in errors.py until that module grows a non-retryable
    ``StorageError`` leaf; the ``code`` is the same ``storage_failed``.
    """

    retryable = False


class StreamBroken(StorageError):
    """An object's body broke off while it was being read (connection reset, truncated)."""

    retryable = True
