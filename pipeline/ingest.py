"""Fetch media references into the job's workdir: library IDs (file://, s3://, https://) and URLs.

Every source is copied into a file we wrote (ffmpeg and Pillow never read a user's path or URL)
and hashed while it is read, under a byte cap. URLs go through :mod:`pipeline.netguard` only.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
import stat
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from .deadline import Deadline
from .errors import (
    ConfigError,
    DeadlineExceeded,
    DownloadFailed,
    DownloadRefused,
    InvalidLibraryId,
    SourceError,
    SourceNotFound,
    StorageError,
    StorageNotFound,
    TooLarge,
    UrlNotAllowed,
)
from .files import write_whole
from .models import LocalMedia, MediaRef
from .settings import Settings

# Letters, digits and ._- only, 1-128 characters, not starting with a dot. ASCII only: the
# pattern is matched with fullmatch, so a trailing newline cannot slip past ``$``.
LIBRARY_ID = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,128}", re.ASCII)
# "scheme:" at the start of a reference that is not http(s): file:, ftp:, gopher:, data: ...
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_COPY_CHUNK = 1024 * 1024


def check_library_id(value: str) -> str:
    """Return ``value`` if it is a safe media-library ID.

    Args:
        value: the ID from the job (integers arrive as their decimal string).

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidLibraryId: not 1-128 of ASCII letters, digits and ``._-``, starts with a dot, or
            contains ``..``.
    """
    if not isinstance(value, str) or not LIBRARY_ID.fullmatch(value) or ".." in value:
        shown = value[:80] if isinstance(value, str) else value
        raise InvalidLibraryId(
            f"invalid media-library ID {shown!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "not starting with a dot"
        )
    return value


def library_location(template: str, media_id: str, workspace_id: str) -> str:
    """Fill the library template's ``{id}`` and ``{workspace_id}`` placeholders.

    Args:
        template: ``file:///dir/{id}``, ``s3://bucket/{workspace_id}/{id}``, ``https://host/{id}``.
        media_id: the library ID from the job.
        workspace_id: the job's workspace, for ``{workspace_id}``.

    Returns:
        The location of the medium.

    Raises:
        InvalidLibraryId: the ID (or the workspace ID, when the template uses it) is unsafe.
        ConfigError: the template has no ``{id}`` or an unsupported scheme.
    """
    check_template(template)
    check_library_id(media_id)
    if "{workspace_id}" in template and not (
        LIBRARY_ID.fullmatch(workspace_id) and ".." not in workspace_id
    ):
        raise InvalidLibraryId(
            f"workspace_id {workspace_id[:80]!r} cannot be used in the library template: "
            "use 1-128 letters, digits, '.', '_' or '-', not starting with a dot"
        )
    return template.replace("{workspace_id}", workspace_id).replace("{id}", media_id)


def check_template(template: str) -> str:
    """Check a library template before any ID is put into it.

    Raises:
        ConfigError: no ``{id}``, an unsupported scheme, or a placeholder outside the path.
    """
    if "{id}" not in template:
        raise ConfigError("the library template must contain {id}")
    parts = urllib.parse.urlsplit(template)
    scheme = parts.scheme.lower()
    if scheme not in _LIBRARY_BACKENDS:
        raise ConfigError(
            f"library template scheme {scheme or '(none)'!r} is not supported "
            "(use file://, s3:// or https://)"
        )
    if "{" in parts.netloc:
        # An ID must never choose the host or bucket it is fetched from.
        raise ConfigError("library template placeholders must be in the path, not the host")
    return template


def fetch(ref: MediaRef, dest_dir: Path, *, settings: Settings, workspace_id: str,
          deadline_s: float | None = None) -> LocalMedia:
    """Bring one medium into ``dest_dir``, hashed while read and size-capped.

    Args:
        ref: a URL or a media-library ID from the job.
        dest_dir: the job's source folder (created if missing).
        settings: library template, byte cap, timeouts and the network allow-list.
        workspace_id: the job's workspace, for ``{workspace_id}`` in the template.
        deadline_s: what is left of the job's time; a download gets the smaller of this and
            ``settings.download_deadline_s``.

    Returns:
        The local copy with its size and SHA-256.

    Raises:
        InvalidLibraryId: the ID does not match the strict pattern.
        UrlNotAllowed: a non-http(s) URL, or a host in a refused network (SSRF guard).
        SourceNotFound: no such medium (``media_not_found``, 404).
        TooLarge: over ``settings.max_source_bytes``.
        DownloadFailed: the fetch failed (retryable when it may pass; a download that ran
            past its own deadline is ``DownloadRefused``, permanent).
        DeadlineExceeded: the job's time left (``deadline_s``) ran out first (permanent).
        ConfigError: no library is configured, or the template is unusable.
    """
    job_bound = deadline_s is not None and deadline_s < settings.download_deadline_s
    if deadline_s is not None and job_bound:
        settings = dataclasses.replace(settings, download_deadline_s=deadline_s)
    try:
        return _fetch(ref, dest_dir, settings, workspace_id)
    except DownloadFailed as err:
        if job_bound and err.details.get("reason") == "deadline":
            # The job's time ran out, not the download's own: the job's deadline error.
            raise DeadlineExceeded(f"job deadline passed while fetching media {ref.value!r}",
                                   details=err.details) from err
        raise


def _fetch(ref: MediaRef, dest_dir: Path, settings: Settings, workspace_id: str) -> LocalMedia:
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / ("src-" + hashlib.sha256(str(ref).encode()).hexdigest()[:16])
    if ref.kind == "url":
        return _fetch_url(ref, ref.value, dest, settings)
    if _URL_SCHEME.match(ref.value):
        # "file:///etc/passwd", "ftp://...", "data:...": a URL of a refused scheme, not an ID.
        scheme = ref.value.split(":", 1)[0].lower()
        raise UrlNotAllowed(f"URL scheme {scheme!r} is not allowed; use http or https")
    check_library_id(ref.value)
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
    # The operator's own path: links are followed on purpose (the copy opens the target).
    return _copy_hashed(ref, Path(os.path.realpath(path)), dest_dir / "src-local", settings)


# --------------------------------------------------------------------------- backends


def _fetch_url(ref: MediaRef, url: str, dest: Path, settings: Settings) -> LocalMedia:
    from . import netguard  # urllib3 + certifi load only when a URL is fetched (~35 ms)

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
    root = library_root(settings.library or location)
    # Symlinks are resolved before anything is opened: a link in the library (to a file, to a
    # directory, to /proc/self/environ) must not carry a job outside the library root. The
    # message is the one a missing file gets, so it says nothing about what lies outside.
    resolved = Path(os.path.realpath(path))
    if root is None or not resolved.is_relative_to(root) or resolved == root:
        raise SourceNotFound(f"media {ref.value!r} not found in the library")
    return _copy_hashed(ref, resolved, dest, settings)


def library_root(template: str) -> Path | None:
    """The resolved folder a ``file://`` library template can never leave.

    It is the template's fixed path up to its first placeholder (``file:///srv/media/{id}``
    -> ``/srv/media``; ``file:///srv/m-{id}`` -> ``/srv``), with symlinks resolved: the
    operator chose it.

    Args:
        template: a ``file://`` library template (or a location filled from one).

    Returns:
        The root, or None when the template has no absolute local path.

    Raises:
        Nothing.
    """
    path = urllib.parse.unquote(urllib.parse.urlsplit(template).path)
    fixed = path.split("{", 1)[0]
    if not fixed.startswith("/"):
        return None
    folder = fixed if fixed.endswith("/") else os.path.dirname(fixed)
    return Path(os.path.realpath(folder))


def _copy_hashed(ref: MediaRef, path: Path, dest: Path, settings: Settings) -> LocalMedia:
    """Copy a regular file (never a FIFO or device: they could block or never end).

    The file is opened without following a final symlink and checked on the open descriptor,
    so it cannot be swapped for a link or a FIFO between the check and the read.
    """
    deadline = _read_deadline(ref, settings)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
        raise SourceNotFound(f"media {ref.value!r} not found in the library") from err
    except OSError as err:
        if err.errno == errno.ELOOP:  # the last component is a symlink
            raise SourceNotFound(f"media {ref.value!r} not found in the library") from err
        raise DownloadRefused(f"media {ref.value!r} cannot be read: {err.strerror}") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SourceNotFound(f"media {ref.value!r} not found in the library")
        if st.st_size > settings.max_source_bytes:
            raise TooLarge(f"media {ref.value!r} is {st.st_size} bytes, over the "
                           f"{settings.max_source_bytes}-byte cap")
        os.set_blocking(fd, True)
        src = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with src:
        return _write_hashed(ref, _chunks(src), dest, settings.max_source_bytes, deadline)


def _chunks(fh: IO[bytes]) -> Iterable[bytes]:
    return iter(lambda: fh.read(_COPY_CHUNK), b"")


def _read_deadline(ref: MediaRef, settings: Settings) -> Deadline:
    """The deadline of one library read, started when the read starts.

    It is the one a URL download gets (``download_deadline_s``, already clipped to what is left
    of the job): a slow NFS mount or S3 endpoint must not hold a job past it any more than a
    slow web server can.
    """
    seconds = settings.download_deadline_s
    return Deadline(seconds, lambda _: DownloadRefused(
        f"media {ref.value!r}: reading it from the library exceeded its {seconds:g} s deadline",
        details={"retryable": False, "reason": "deadline"}))


def _write_hashed(ref: MediaRef, chunks: Iterable[bytes], dest: Path, max_bytes: int,
                  deadline: Deadline) -> LocalMedia:
    """Stream ``chunks`` to ``dest`` through SHA-256, stopping the moment ``max_bytes`` or the
    read's deadline is passed.

    Written to a temporary name and renamed, so a failure never leaves a partial source.

    Raises:
        TooLarge: over ``max_bytes``.
        DownloadRefused: the deadline passed (permanent, as for a URL).
    """
    with write_whole(dest) as out:
        for chunk in chunks:
            deadline.check("")
            if out.size_bytes + len(chunk) > max_bytes:
                raise TooLarge(f"media {ref.value!r} is over the {max_bytes}-byte cap")
            out.write(chunk)
    return LocalMedia(ref=ref, path=dest, size_bytes=out.size_bytes, sha256=out.sha256)


def _from_s3(ref: MediaRef, location: str, dest: Path, settings: Settings) -> LocalMedia:
    """Stream the object straight through the hash to disk (one read, capped on the way)."""
    from . import storage

    parts = urllib.parse.urlsplit(location)
    bucket, key = parts.netloc, urllib.parse.unquote(parts.path).lstrip("/")
    if not bucket or not key:
        raise ConfigError(f"S3 library location {location!r} needs a bucket and a key")
    deadline = _read_deadline(ref, settings)  # from the request on, not from the first byte
    try:
        with storage.read_object(bucket, key, endpoint_url=settings.endpoint_url,
                                 shown=location, chunk_bytes=_COPY_CHUNK) as (size, chunks):
            if size > settings.max_source_bytes:
                raise TooLarge(f"media {ref.value!r} is {size} bytes, over the "
                               f"{settings.max_source_bytes}-byte cap")
            return _write_hashed(ref, chunks, dest, settings.max_source_bytes, deadline)
    except storage.StreamBroken as err:
        raise DownloadFailed(f"media {ref.value!r}: the library download broke off: "
                             f"{err.message}") from err
    except StorageError as err:
        raise _source_error(ref, err) from err
    except OSError as err:  # the local copy could not be written
        raise DownloadFailed(f"media {ref.value!r}: the library download broke off: {err}"
                             ) from err


def _source_error(ref: MediaRef, err: StorageError) -> SourceError:
    """A library read failure as the source error the manifest reports."""
    if isinstance(err, StorageNotFound):
        return SourceNotFound(f"media {ref.value!r} not found in the library",
                              details=err.details)
    cls = DownloadFailed if err.retryable else DownloadRefused
    return cls(f"media {ref.value!r}: {err.message}", details=err.details)


def _from_https(ref: MediaRef, location: str, dest: Path, settings: Settings) -> LocalMedia:
    return _fetch_url(ref, location, dest, settings)


_LIBRARY_BACKENDS: dict[str, Callable[[MediaRef, str, Path, Settings], LocalMedia]] = {
    "file": _from_file,
    "s3": _from_s3,
    "https": _from_https,
    "http": _from_https,
}

__all__ = [
    "check_library_id", "check_template", "fetch", "fetch_local_path", "library_location",
    "library_root",
]
