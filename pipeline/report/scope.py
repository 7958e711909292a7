"""What the report may read: objects under the manifest's own destination root, nothing else.

A manifest names its outputs by URI, and whoever wrote the manifest chose those URIs. The report
opens only URIs that are exactly ``root.uri(key)`` for a valid key of the destination root: the
``--dest`` given, else the root the manifest was read from (``<root>/manifests/<ws>/<job>.json``)
or, for a manifest kept elsewhere, its folder. Bare paths, ``..``, ``file://`` elsewhere and
other buckets are never opened, and the caller shows them exactly like a missing file, so the
page says nothing about which files exist outside the root.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, StorageError, StorageNotFound
from ..storage import LocalStorage, Storage, open_storage

_PROBE_KEY = "k"
PLAYER_PRESIGN_S = 24 * 3600  # how long a page's players can load an S3 video
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


@dataclass(frozen=True, slots=True)
class Root:
    """The destination root the report may read (``storage`` is None: nothing may be read)."""

    storage: Storage | None
    uri_prefix: str = ""  # every object's URI under the root starts with this

    def key(self, uri: str) -> str | None:
        """The key of ``uri`` when it names an object under the root, else ``None``."""
        if self.storage is None or not uri.startswith(self.uri_prefix):
            return None
        rest = uri[len(self.uri_prefix):]
        key = unquote(rest) if isinstance(self.storage, LocalStorage) else rest
        try:
            if self.storage.uri(key) != uri:  # only the canonical spelling of a key
                return None
        except ConfigError:  # "..", ".", empty segments, control characters...
            return None
        if isinstance(self.storage, LocalStorage) and not _stays_inside(self.storage.root, key):
            return None
        return key

    def fetch(self, uri: str, dest: Path) -> Path:
        """Copy the object ``uri`` names to ``dest``.

        Raises:
            StorageNotFound: ``uri`` is not under the root (said like a missing object).
            StorageError: the object could not be fetched.
        """
        key = self.key(uri)
        if key is None or self.storage is None:
            raise StorageNotFound("not available", details={"op": "get_file"})
        return self.storage.get_file(key, dest)


    def player_url(self, uri: str) -> str | None:
        """Where the page's ``<video>`` loads ``uri`` from, ``None`` when it can't.

        A local output is played from its ``file://`` URI, an S3 one through a presigned GET
        URL valid :data:`PLAYER_PRESIGN_S` (so the page then loads from the store). Only
        objects under the root get a player.
        """
        key = self.key(uri)
        if key is None or self.storage is None:
            return None
        if isinstance(self.storage, LocalStorage):
            return uri
        try:
            url = self.storage.public_url(key, base_url=None, presign_s=PLAYER_PRESIGN_S)
        except (ConfigError, StorageError):
            return None
        return url if url is not None and media_origin(url) is not None else None


def media_origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, for the page's CSP; ``None`` for others
    (``file:`` players are covered by ``'self'``)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if _ORIGIN.match(origin) else None


def _stays_inside(root: Path, key: str) -> bool:
    """A link inside a local root must not lead out of it."""
    real = os.path.realpath(root.joinpath(*key.split("/")))
    return real.startswith(str(root).rstrip(os.sep) + os.sep)


def open_root(url: str, *, endpoint_url: str | None) -> Root:
    """The root at ``url`` (``--dest``: a folder, ``file://`` or ``s3://bucket/prefix``).

    Raises:
        ConfigError: an unusable storage URL.
    """
    storage = open_storage(url, endpoint_url=endpoint_url)
    if isinstance(storage, LocalStorage) and storage.root == Path(storage.root.anchor):
        raise ConfigError("the report's destination root cannot be the whole file system")
    probe = storage.uri(_PROBE_KEY)
    return Root(storage, probe[: -len(_PROBE_KEY)])


def root_of_manifest(source: str, *, endpoint_url: str | None) -> Root:
    """The root a manifest at ``source`` belongs to; nothing readable when there is none."""
    if not source:
        return Root(None)
    if "://" not in source:
        url = _root_path(PurePosixPath(Path(source).absolute().as_posix()))
    else:
        parts = urlsplit(source)
        if parts.scheme == "file" and parts.netloc in ("", "localhost"):
            url = _root_path(PurePosixPath(unquote(parts.path)))
        elif parts.scheme == "s3" and parts.netloc:
            prefix = _root_path(PurePosixPath("/" + parts.path.lstrip("/")))
            url = f"s3://{parts.netloc}{prefix if prefix != '/' else ''}"
        else:
            return Root(None)
    try:
        return open_root(url, endpoint_url=endpoint_url)
    except ConfigError:
        return Root(None)


def _root_path(manifest: PurePosixPath) -> str:
    """``/r/manifests/ws/job.json`` and ``/r/manifests/job.json`` -> ``/r``; else the folder."""
    parents = manifest.parents
    for depth in (1, 0):  # manifests/<workspace>/<job>.json, then manifests/<job>.json
        if len(parents) > depth + 1 and parents[depth].name == "manifests":
            return str(parents[depth + 1])
    return str(manifest.parent)
