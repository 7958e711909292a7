"""Storage basics shared by the backends: the protocol, stored objects, key and URL checks."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

from ..errors import ConfigError, StorageError

if TYPE_CHECKING:
    from ..deadline import Deadline

#: Cache-Control for renditions: keys are content-addressed, so an object never changes.
IMMUTABLE: Final = "public, max-age=31536000, immutable"

_MiB: Final = 1024 * 1024
# SigV4 presigned URLs are valid for at most seven days.
_PRESIGN_MAX_S: Final = 7 * 24 * 3600
# S3's limits: 1024 bytes of UTF-8 per key, 2 KB of user metadata per object.
_MAX_KEY_BYTES: Final = 1024
_MAX_METADATA_BYTES: Final = 2048
_METADATA_KEY_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Printable ASCII except '%', which we use to escape everything else in metadata values.
_METADATA_SAFE: Final = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
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


# --- key and argument checks ------------------------------------------------------------------


def _check_key(key: str) -> str:
    """Refuse keys that could escape the root or mean different things on different stores.

    Raises:
        ConfigError: the key is empty, absolute, has ``..``/``.``/empty segments, backslashes
            or control characters, or is longer than S3 allows.
    """
    if not isinstance(key, str) or not key:
        raise ConfigError(f"storage key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise ConfigError(f"storage key must be relative: {key!r}")
    if "\\" in key:
        raise ConfigError(f"storage key must use '/' separators, not backslashes: {key!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise ConfigError(f"storage key contains control characters: {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(f"storage key has an empty, '.' or '..' segment: {key!r}")
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise ConfigError(f"storage key is longer than {_MAX_KEY_BYTES} bytes: {key[:80]!r}…")
    return key


def _check_prefix(prefix: str) -> str:
    """A listing prefix is a plain string prefix of keys (like S3's), so it may be partial.

    Raises:
        ConfigError: the prefix is absolute or has backslashes or control characters.
    """
    if prefix.startswith("/") or "\\" in prefix:
        raise ConfigError(f"storage list prefix must be relative and '/'-separated: {prefix!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in prefix):
        raise ConfigError(f"storage list prefix contains control characters: {prefix!r}")
    return prefix


def _clean_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lowercase ASCII keys and ASCII-safe values, as every S3-compatible store accepts them.

    Values that are not printable ASCII are percent-encoded (UTF-8), the same encoding
    ``urllib.parse.unquote`` reverses.

    Raises:
        ConfigError: a key is not ``[a-z0-9][a-z0-9._-]*`` or the total exceeds S3's 2 KB.
    """
    out: dict[str, str] = {}
    for raw_key, raw_value in (metadata or {}).items():
        name = str(raw_key).lower()
        if not _METADATA_KEY_RE.match(name):
            raise ConfigError(f"metadata key must be lowercase ASCII [a-z0-9._-]: {raw_key!r}")
        value = str(raw_value)
        if not (value.isascii() and value.isprintable()) or "%" in value:
            value = quote(value, safe=_METADATA_SAFE)
        out[name] = value
    if sum(len(k) + len(v) for k, v in out.items()) > _MAX_METADATA_BYTES:
        raise ConfigError(f"object metadata exceeds {_MAX_METADATA_BYTES} bytes")
    return out


def _public_base(base_url: str) -> str:
    """Validate ``--public-base-url`` and return it without a trailing slash.

    Raises:
        ConfigError: not an http(s) URL, or it carries credentials, a query or a fragment.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"public base URL must be an https:// URL: {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("public base URL must not contain credentials")
    if parts.query or parts.fragment:
        raise ConfigError("public base URL must not have a query string or fragment")
    return base_url.rstrip("/")


def _check_presign(presign_s: int) -> int:
    """Raises: ConfigError: outside 1 s … 7 days (SigV4's limit)."""
    if isinstance(presign_s, bool) or not 1 <= presign_s <= _PRESIGN_MAX_S:
        raise ConfigError(f"presign seconds must be between 1 and {_PRESIGN_MAX_S}: {presign_s}")
    return presign_s


def _join_url(base: str, key: str) -> str:
    return f"{base}/{quote(key, safe='/')}"


_URL_SECRETS_RE: Final = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"]*@")
_URL_QUERY_RE: Final = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"?]*)\?[^\s\"]*")


def _redact(text: str) -> str:
    """Drop credentials and query strings (presigned signatures) from URLs in a message."""
    text = _URL_SECRETS_RE.sub(r"\g<scheme>", text)
    return _URL_QUERY_RE.sub(r"\g<url>", text)
