"""Reading a manifest for the report from where an operator points (a path, ``file://`` or
``s3://``): :func:`pipeline.manifestfile.read_manifest` caps, parses and checks it against the
published manifest schema before any of it is rendered or used to fetch anything.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..manifest import Manifest
from ..manifestfile import read_manifest, shown
from ..storage import LocalStorage, Storage, open_storage


def load_manifest(source: str, *, endpoint_url: str | None = None) -> Manifest:
    """Read and check a manifest from a local path, ``file://`` or ``s3://`` URI
    (:func:`pipeline.manifestfile.read_manifest` on the storage the URI names).

    Raises:
        ManifestInvalid: too large, not JSON, or not the shape of ``schemas/manifest.json``.
        StorageError: the object could not be fetched (``StorageNotFound`` when absent).
        ConfigError: an unusable URI or a missing file.
    """
    storage, key = _manifest_location(source, endpoint_url=endpoint_url)
    return read_manifest(storage, key, source=source)


def _manifest_location(uri: str, *, endpoint_url: str | None) -> tuple[Storage, str]:
    """The storage and key of a manifest: a local file is read from its folder.

    Raises:
        ConfigError: a scheme other than ``file`` or ``s3``, a malformed URI, a missing file.
    """
    if "://" not in uri:
        path = Path(uri)
        if not path.is_file():
            raise ConfigError(f"no such file: {shown(uri)}")
        return LocalStorage(path.parent), path.name
    parts = urlsplit(uri)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
        if parts.netloc not in ("", "localhost") or not path.is_file():
            raise ConfigError(f"no such local file: {shown(uri)}")
        return LocalStorage(path.parent), path.name
    if parts.scheme == "s3":
        key = unquote(parts.path).lstrip("/")
        if not parts.netloc or not key:
            raise ConfigError(f"s3:// URI needs a bucket and a key: {shown(uri)}")
        return open_storage(f"s3://{parts.netloc}", endpoint_url=endpoint_url), key
    raise ConfigError(f"cannot read {shown(parts.scheme)}:// URIs; use a path, file:// or s3://")
