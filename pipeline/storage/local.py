"""The local-folder backend: whole-or-nothing writes through a temp name and a rename."""

from __future__ import annotations

import contextlib
import functools
import mimetypes
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from ..errors import StorageError, StorageNotFound, StoragePermissionError
from .base import IMMUTABLE, StorageRejected, StoredObject
from .keys import MIB, check_key, check_prefix, check_presign, clean_metadata, join_url, public_base

if TYPE_CHECKING:
    from ..deadline import Deadline

_TMP_PREFIX: Final = ".conform-tmp-"
#: A temp file untouched this long belongs to a killed write: a live one grows block by block
#: (1 MiB copies) and is renamed right after its fsync.
STALE_TMP_S: Final = 3600.0
COPY_BLOCK_BYTES: Final = 1 * MIB


def translate_os_error(err: OSError, *, op: str, key: str) -> StorageError:
    details: dict[str, object] = {"op": op, "key": key, "errno": err.errno}
    message = f"storage {op} {key} failed: {err.strerror or err}"
    if isinstance(err, FileNotFoundError):
        return StorageNotFound(message, details=details)
    if isinstance(err, PermissionError):
        return StoragePermissionError(message, details=details)
    return StorageError(message, details=details)  # ENOSPC, EIO …: may pass on a retry


def _fsync_dir(path: Path) -> None:
    """Persist a rename; best effort where directories can't be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_tmp(folder: Path) -> None:
    """Remove temp files that a killed write left in ``folder`` (the next write there).

    A rerun after a kill writes the same keys, so the litter goes with the next run that
    stores into the same folder. Only files older than :data:`STALE_TMP_S` are removed: a
    younger one may be a concurrent run's write in progress.
    """
    cutoff = time.time() - STALE_TMP_S
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_TMP_PREFIX):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and \
                    entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)


def _atomic_write(dest: Path, write: Callable[[IO[bytes]], None]) -> int:
    """Write through a temp file in ``dest``'s folder, fsync, then rename over ``dest``.

    A crash or a failed copy leaves the old object (or none) and no partial file.

    Returns:
        the number of bytes written.

    Raises:
        OSError: anything the filesystem raised; the temp file is already removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(dest.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; stored objects are meant to be read
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)
    return size


class LocalStorage:
    """A folder on disk (``--dest ./conform-out`` or ``file:///abs``), for development and tests.

    Metadata and cache-control have nowhere to live on a plain filesystem and are validated
    but not kept; ``head`` guesses the content type from the key's extension.

    Args:
        root: the folder; created on the first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def uri(self, key: str) -> str:
        """``file:///abs/path/key``.

        Raises:
            ConfigError: the key is invalid.
        """
        return self._path(key).as_uri()

    def _stored(
        self, key: str, path: Path, size: int, content_type: str | None = None
    ) -> StoredObject:
        if content_type is None:  # a folder keeps no content type; the extension is all we have
            content_type, _ = mimetypes.guess_type(key, strict=False)
        return StoredObject(key=key, uri=path.as_uri(), size_bytes=size, content_type=content_type)

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
        """Copy ``src`` into the folder through a temp name and an atomic rename.

        With a ``deadline``, it is checked before every block copied: a slow disk (a network
        mount) stops there, its temp file removed.

        Raises:
            PipelineError: the deadline passed (its error: ``DeadlineExceeded`` for a job).
            ConfigError: invalid key or metadata.
            StorageNotFound: ``src`` does not exist.
            StoragePermissionError: the folder is not writable.
            StorageError: any other filesystem failure (full disk …); nothing partial remains.
        """
        dest = self._path(key)
        clean_metadata(metadata)
        try:
            with open(src, "rb") as fin:
                expected = os.fstat(fin.fileno()).st_size
                size = _atomic_write(dest, lambda out: _copy(
                    fin, out, _deadline_check(deadline, f"storing {key} finished")))
        except OSError as err:
            raise translate_os_error(err, op="put_file", key=self.uri(key)) from err
        if size != expected:
            with contextlib.suppress(OSError):
                dest.unlink()
            raise StorageError(
                f"storage put_file {self.uri(key)} failed: copied {size} of {expected} bytes "
                "(source changed while copying)",
                details={"op": "put_file", "key": key},
            )
        return self._stored(key, dest, size, content_type)

    def put_bytes(
        self, data: bytes, key: str, *, content_type: str, cache_control: str | None = None,
        deadline: Deadline | None = None,
    ) -> StoredObject:
        """Write ``data`` through a temp name and an atomic rename.

        Raises:
            PipelineError: ``deadline`` had passed before the write (its error).
            ConfigError: invalid key.
            StoragePermissionError: the folder is not writable.
            StorageError: any other filesystem failure; nothing partial remains.
        """
        dest = self._path(key)
        _deadline_check(deadline, f"storing {key}")()
        try:
            size = _atomic_write(dest, lambda out: _write_all(out, data))
        except OSError as err:
            raise translate_os_error(err, op="put_bytes", key=self.uri(key)) from err
        return self._stored(key, dest, size, content_type)

    def head(self, key: str) -> StoredObject | None:
        """Describe the file at ``key``, or ``None`` when there is none.

        Raises:
            ConfigError: invalid key.
            StorageError: the file exists but can't be inspected.
        """
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            raise translate_os_error(err, op="head", key=self.uri(key)) from err
        if not path.is_file():
            return None
        return self._stored(key, path, st.st_size)

    def exists(self, key: str) -> bool:
        """Whether a file is stored at ``key``.

        Raises:
            ConfigError: invalid key.
            StorageError: the file can't be inspected.
        """
        return self.head(key) is not None

    def get_file(self, key: str, dest: Path) -> Path:
        """Copy the file at ``key`` to ``dest`` (temp name + rename) and return ``dest``.

        Raises:
            ConfigError: invalid key.
            StorageNotFound: nothing is stored at ``key``.
            StorageError: the copy failed; ``dest`` is untouched.
        """
        path = self._path(key)
        if not path.is_file():
            raise StorageNotFound(
                f"storage get_file {self.uri(key)} failed: no such object",
                details={"op": "get_file", "key": key},
            )
        try:
            with open(path, "rb") as fin:
                _atomic_write(Path(dest), lambda out: _copy(fin, out, _no_check))
        except OSError as err:
            raise translate_os_error(err, op="get_file", key=self.uri(key)) from err
        return Path(dest)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (a plain string prefix, like S3's), sorted.

        Raises:
            ConfigError: the prefix would escape the root.
            StorageError: the folder can't be read.
        """
        check_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        keys: list[str] = []

        def _raise(err: OSError) -> None:
            raise err

        try:
            for dirpath, _dirs, files in os.walk(self.root, onerror=_raise):
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for name in files:
                    if name.startswith(_TMP_PREFIX):
                        continue  # a write in progress (or one killed mid-way)
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        except FileNotFoundError:
            return iter(())  # nothing written yet
        except OSError as err:
            raise translate_os_error(err, op="list", key=self.root.as_uri()) from err
        return iter(sorted(keys))

    def public_url(self, key: str, *, base_url: str | None, presign_s: int | None) -> str | None:
        """``base_url/key`` when a public base URL maps onto this folder; otherwise ``None``.

        A local file can't be presigned, so ``presign_s`` alone gives ``None``.

        Raises:
            ConfigError: invalid key, base URL or presign duration.
        """
        check_key(key)
        if presign_s is not None:
            check_presign(presign_s)
        if base_url:
            return join_url(public_base(base_url), key)
        return None

    def check(self) -> None:
        """Create the folder if needed and make sure we may write into it.

        Raises:
            StorageRejected: the destination exists but is not a folder.
            StoragePermissionError: the folder can't be created or written.
            StorageError: any other filesystem failure.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as err:
            raise StorageRejected(
                f"storage destination {self.root} is not a folder",
                details={"op": "check", "key": str(self.root)},
            ) from err
        except OSError as err:
            raise translate_os_error(err, op="check", key=self.root.as_uri()) from err
        # os.access answers for the real uid, which is what writes will use here; a probe
        # file would leave litter behind when the process is killed.
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoragePermissionError(
                f"storage destination {self.root} is not writable",
                details={"op": "check", "key": str(self.root)},
            )


def _write_all(out: IO[bytes], data: bytes) -> None:
    out.write(data)


def _no_check() -> None:
    return None


def _deadline_check(deadline: Deadline | None, stage: str) -> Callable[[], None]:
    """A check that raises the deadline's error once it has passed (a no-op without one)."""
    if deadline is None:
        return _no_check
    return functools.partial(deadline.check, stage)


def _copy(fin: IO[bytes], out: IO[bytes], check: Callable[[], None]) -> None:
    check()
    while block := fin.read(COPY_BLOCK_BYTES):
        out.write(block)
        check()
