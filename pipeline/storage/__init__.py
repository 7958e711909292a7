"""Where finished renditions go: one Storage protocol, a local-folder and an S3 backend.

``base`` holds the protocol and the checks both backends share, ``local`` the folder backend,
``s3storage`` the S3 backend and ``s3`` its boto3 border (clients, and the one place botocore
errors are translated). ``open_storage`` picks a backend from a two-entry scheme table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from .base import (
    CONTENT_SHA256_KEY,
    IMMUTABLE,
    Storage,
    StorageRejected,
    StoredObject,
    StreamBroken,
)
from .keys import check_key, redact
from .local import LocalStorage

if TYPE_CHECKING:
    from .s3 import (
        TRANSFER_CONFIG,
        make_s3_client,
        read_object,
        s3_client,
        translate_client_error,
    )
    from .s3storage import S3Storage

# boto3 takes about 0.13 s to import: a run with a local destination and no S3 library never
# pays for it. These names load the S3 backend on first use.
_S3_NAMES = frozenset({"TRANSFER_CONFIG", "S3Storage", "make_s3_client", "read_object",
                       "s3_client", "translate_client_error"})


def __getattr__(name: str) -> Any:
    if name == "S3Storage":
        from .s3storage import S3Storage

        return S3Storage
    if name in _S3_NAMES:
        from . import s3

        return getattr(s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CONTENT_SHA256_KEY",
    "IMMUTABLE",
    "TRANSFER_CONFIG",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StorageRejected",
    "StoredObject",
    "StreamBroken",
    "make_s3_client",
    "open_storage",
    "read_object",
    "s3_client",
    "translate_client_error",
]


def _open_s3(url: str, endpoint_url: str | None) -> Storage:
    parts = urlsplit(url)
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise ConfigError("storage URL must not contain credentials; use the AWS configuration")
    if parts.query or parts.fragment:
        raise ConfigError(f"storage URL must not have a query string or fragment: {url!r}")
    bucket = parts.netloc
    if not bucket:
        raise ConfigError(f"storage URL has no bucket: {url!r}")
    prefix = unquote(parts.path).strip("/")
    if prefix:
        check_key(prefix)
    from .s3 import s3_client
    from .s3storage import S3Storage

    return S3Storage(bucket, prefix, s3_client(endpoint_url=endpoint_url))


def _open_file(url: str, endpoint_url: str | None) -> Storage:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigError("storage URL must not contain credentials")
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"file:// storage URL must be local (file:///abs/path): {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"storage URL must not have a query string or fragment: {url!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ConfigError(f"file:// storage URL needs an absolute path: {url!r}")
    return LocalStorage(Path(path))


_SCHEMES: Final[Mapping[str, Callable[[str, str | None], Storage]]] = {
    "s3": _open_s3,
    "file": _open_file,
}


def open_storage(url: str, *, endpoint_url: str | None = None) -> Storage:
    """Open ``--dest``: ``s3://bucket/prefix``, ``file:///abs/path`` or a plain local path.

    Args:
        url: the storage location.
        endpoint_url: ``--endpoint-url`` for S3-compatible stores.

    Returns:
        an ``S3Storage`` or a ``LocalStorage``.

    Raises:
        ConfigError: empty URL, unknown scheme, credentials or a query in the URL, an empty
            bucket, or a prefix that would escape the bucket.
    """
    if not url or not url.strip():
        raise ConfigError("storage destination is empty")
    if "://" not in url:
        return LocalStorage(Path(url))
    scheme = url.split("://", 1)[0].lower()
    opener = _SCHEMES.get(scheme)
    if opener is None:
        raise ConfigError(
            f"unsupported storage URL scheme {scheme!r} in {redact(url)!r}; "
            f"use s3://bucket/prefix, file:///path or a local path"
        )
    return opener(url, endpoint_url)
