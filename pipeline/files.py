"""Writing a file whole or not at all, hashed on the way: the one temp-write-hash-rename."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

_READ_CHUNK = 1 << 20


class HashingWriter:
    """A file being written, with its running size and SHA-256."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.size_bytes = 0
        self.hasher = hashlib.sha256()

    def write(self, data: bytes) -> None:
        """Append ``data``.

        Raises:
            OSError: the write failed.
        """
        self.fh.write(data)
        self.hasher.update(data)
        self.size_bytes += len(data)

    def reset(self) -> None:
        """Forget what was written (a retried download starts again).

        Raises:
            OSError: the file could not be truncated.
        """
        self.fh.seek(0)
        self.fh.truncate()
        self.size_bytes = 0
        self.hasher = hashlib.sha256()

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of what was written."""
        return self.hasher.hexdigest()


@contextlib.contextmanager
def write_whole(dest: Path, *, fsync: bool = False) -> Iterator[HashingWriter]:
    """Write ``dest`` through a temporary file next to it, renamed over it on success.

    Any failure (``KeyboardInterrupt`` included) removes the temporary file: ``dest`` is
    whole or untouched, never partial.

    Raises:
        OSError: the file could not be created, written or renamed.
    """
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield HashingWriter(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Raises:
        OSError: the file could not be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
