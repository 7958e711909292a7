"""Per-run work folders that a later run can tell apart from live ones, and clean when dead.

A run killed with SIGKILL (or by the OOM killer) never reaches its ``finally``: its work folder
(sources, encodes: often hundreds of MB) would stay forever. Each folder therefore holds a lock
file that its run keeps ``flock``-ed while it lives. The kernel drops the lock when the process
dies, however it dies, so a folder whose lock can be taken belongs to a dead run. A folder
without a lock file (an older version, or one being created right now) is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: nothing is locked or cleaned there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Work folders this module makes, and may clean, start with this.
PREFIX = "conform-"
LOCK_NAME = ".conform-lock"


@contextlib.contextmanager
def run_folder(root: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder under ``root``, locked while the ``with`` block runs, then removed.

    Args:
        root: the work root (``settings.workdir``); created if missing.
        prefix: the folder's name prefix (after :data:`PREFIX`).

    Raises:
        OSError: the folder cannot be made.
    """
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX + prefix, dir=root))
    fd = -1
    try:
        if fcntl is not None:
            # Locked under another name, then renamed: a cleaner never finds the lock file
            # before it is held.
            fd = os.open(folder / (LOCK_NAME + ".new"), os.O_WRONLY | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.rename(folder / (LOCK_NAME + ".new"), folder / LOCK_NAME)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if fd >= 0:
            os.close(fd)  # after the removal: a cleaner never sees it unlocked while we work


def clean_stale(root: Path) -> list[Path]:
    """Remove the work folders of dead runs under ``root``; a live run's folder is kept.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    if fcntl is None:
        return removed
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed  # no work root yet, or unreadable: nothing of ours to clean
    for entry in entries:
        if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        folder = Path(entry.path)
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock file: not a folder we can judge
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # held: a live run
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    if removed:
        log.warning("removed %d work folder(s) left by killed runs in %s", len(removed), root)
    return removed
