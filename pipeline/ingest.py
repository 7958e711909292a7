"""Fetch media references into the job's workdir: library IDs (file://, s3://, https://) and URLs.

Every source is copied into a file we wrote (ffmpeg and Pillow never read a user's path or URL)
and hashed while it is read. URLs go through :mod:`pipeline.netguard` only.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from . import netguard
from .errors import (
    ConfigError,
    InvalidLibraryId,
    SourceNotFound,
    StorageNotFound,
    TooLarge,
    UrlNotAllowed,
)
from .models import LocalMedia, MediaRef
from .settings import Settings

LIBRARY_ID = re.compile(r"^(?!\.)[A-Za-z0-9._-]{1,128}$")
_COPY_CHUNK = 1024 * 1024


def check_library_id(value: str) -> str:
    """Return ``value`` if it is a safe media-library ID.

    Raises:
        InvalidLibraryId: not 1-128 of letters, digits, ``._-``, or starts with a dot, or has ``..``.
    """
    if not LIBRARY_ID.match(value) or ".." in value:
        raise InvalidLibraryId(
            f"invalid media-library ID {value[:80]!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "not starting with a dot"
        )
    return value


def library_location(template: str, media_id: str, workspace_id: str) -> str:
    """Fill the library template's ``{id}`` and ``{workspace_id}`` placeholders.

    Raises:
        InvalidLibraryId: the ID (or workspace ID) is unsafe.
        ConfigError: the template has no ``{id}`` or an unknown scheme.
    """
    if "{id}" not in template:
        raise ConfigError("the library template must contain {id}")
    check_library_id(media_id)
    if "{workspace_id}" in template:
        check_library_id(workspace_id)
    location = template.replace("{workspace_id}", workspace_id).replace("{id}", media_id)
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    if scheme not in _LIBRARY_BACKENDS:
        raise ConfigError(
            f"library template scheme {scheme or '(none)'!r} is not supported "
            "(use file://, s3:// or https://)"
        )
    return location


def fetch(ref: MediaRef, dest_dir: Path, *, settings: Settings, workspace_id: str) -> LocalMedia:
    """Bring one medium into ``dest_dir``, hashed and size-capped.

    Raises:
        InvalidLibraryId, SourceNotFound, UrlNotAllowed, TooLarge, DownloadFailed, ConfigError.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / ("src-" + hashlib.sha256(str(ref).encode()).hexdigest()[:16])
    if ref.kind == "url":
        return _fetch_url(ref, ref.value, dest, settings)
    if not settings.library:
        raise ConfigError(
            "the job names media-library IDs but no library is configured "
            "(--library TEMPLATE or CONFORM_LIBRARY)"
        )
    location = library_location(settings.library, ref.value, workspace_id)
    scheme = urllib.parse.urlsplit(location).scheme.lower()
    return _LIBRARY_BACKENDS[scheme](ref, location, dest, settings)


def fetch_local_path(path: Path, dest_dir: Path, *, settings: Settings) -> LocalMedia:
    """Copy an operator-given local file (CLI ``probe``/``cover`` only, never from a job).

    Raises:
        SourceNotFound: no such file.
        TooLarge: over the source cap.
    """
    ref = MediaRef("library", str(path))
    dest_dir.mkdir(parents=True, exist_ok=True)
    return _copy_hashed(ref, path, dest_dir / "src-local", settings.max_source_bytes)


def _fetch_url(ref: MediaRef, url: str, dest: Path, settings: Settings) -> LocalMedia:
    got = netguard.download(
        url, dest, max_bytes=settings.max_source_bytes, allow_networks=settings.allow_networks,
        connect_timeout_s=settings.http_connect_timeout_s,
        read_timeout_s=settings.http_read_timeout_s, deadline_s=settings.download_deadline_s,
        max_redirects=settings.max_redirects, retries=settings.http_retries,
    )
    return LocalMedia(ref=ref, path=got.path, size_bytes=got.size_bytes, sha256=got.sha256)


def _from_file(ref: MediaRef, location: str, dest: Path, settings: Settings) -> LocalMedia:
    parts = urllib.parse.urlsplit(location)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError("file:// library templates must name a local path")
    path = Path(urllib.parse.unquote(parts.path))
    return _copy_hashed(ref, path, dest, settings.max_source_bytes)


def _copy_hashed(ref: MediaRef, path: Path, dest: Path, max_bytes: int) -> LocalMedia:
    if not path.is_file():
        raise SourceNotFound(f"media {ref.value!r} not found in the library")
    size = path.stat().st_size
    if size > max_bytes:
        raise TooLarge(f"media {ref.value!r} is {size} bytes, over the {max_bytes}-byte cap")
    digest = hashlib.sha256()
    written = 0
    try:
        with path.open("rb") as src, dest.open("wb") as out:
            for chunk in iter(lambda: src.read(_COPY_CHUNK), b""):
                written += len(chunk)
                if written > max_bytes:
                    raise TooLarge(f"media {ref.value!r} grew past the {max_bytes}-byte cap")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return LocalMedia(ref=ref, path=dest, size_bytes=written, sha256=digest.hexdigest())


def _from_s3(ref: MediaRef, location: str, dest: Path, settings: Settings) -> LocalMedia:
    from . import storage

    parts = urllib.parse.urlsplit(location)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    store = storage.S3Storage(bucket, "", storage.s3_client(endpoint_url=settings.endpoint_url))
    head = store.head(key)
    if head is None:
        raise SourceNotFound(f"media {ref.value!r} not found in the library")
    if head.size_bytes > settings.max_source_bytes:
        raise TooLarge(
            f"media {ref.value!r} is {head.size_bytes} bytes, over the "
            f"{settings.max_source_bytes}-byte cap"
        )
    tmp = dest.with_name(dest.name + ".s3")
    try:
        store.get_file(key, tmp)
    except StorageNotFound as err:
        raise SourceNotFound(f"media {ref.value!r} not found in the library") from err
    try:
        return _copy_hashed(ref, tmp, dest, settings.max_source_bytes)
    finally:
        tmp.unlink(missing_ok=True)


def _from_https(ref: MediaRef, location: str, dest: Path, settings: Settings) -> LocalMedia:
    if not location.lower().startswith(("https://", "http://")):
        raise UrlNotAllowed("library URL must be http(s)")
    return _fetch_url(ref, location, dest, settings)


_LIBRARY_BACKENDS: dict[str, Callable[[MediaRef, str, Path, Settings], LocalMedia]] = {
    "file": _from_file,
    "s3": _from_s3,
    "https": _from_https,
    "http": _from_https,
}

__all__ = ["check_library_id", "fetch", "fetch_local_path", "library_location"]
