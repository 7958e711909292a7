"""The report's folder: written fresh, then swapped in whole; links are never followed.

``--out DIR`` may be a shared place where someone else can put things. So nothing is written
into ``DIR`` itself: the page and its pictures go to a new private folder next to it
(``mkdtemp``), which is renamed to ``DIR`` when complete. An earlier report in ``DIR`` (it has
the marker file) is renamed away and removed without following links; any other non-empty
``DIR`` is refused, so an operator's own ``DIR/pictures`` is never deleted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError

MARKER = ".conform-report"  # says "this folder is a report conform wrote; it may replace it"


def check_target(out_dir: Path) -> None:
    """Refuse ``out_dir`` unless it is absent, an empty folder or an earlier report.

    Raises:
        ConfigError: a link, a file, or a folder with other things in it.
    """
    try:
        st = os.lstat(out_dir)
    except FileNotFoundError:
        return
    except OSError as err:
        raise ConfigError(f"cannot use the report folder {out_dir}: {err.strerror}") from err
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(f"the report folder {out_dir} is a link; links are not followed")
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"the report folder {out_dir} exists and is not a folder")
    try:
        names = os.listdir(out_dir)
        marker = os.lstat(out_dir / MARKER) if MARKER in names else None
    except OSError as err:
        raise ConfigError(f"cannot use the report folder {out_dir}: {err.strerror}") from err
    if names and (marker is None or not stat.S_ISREG(marker.st_mode)):
        raise ConfigError(f"the report folder {out_dir} is not empty and holds no earlier "
                          "report: give a new or empty folder")


@contextlib.contextmanager
def fresh_folder(out_dir: Path) -> Iterator[Path]:
    """A new private folder to write the report into; swapped in as ``out_dir`` on success.

    On an error the new folder is removed and ``out_dir`` is left as it was.

    Raises:
        ConfigError: ``out_dir`` is refused (:func:`check_target`) or cannot be created.
    """
    check_target(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as err:
        raise ConfigError(f"cannot create the report folder {out_dir}: {err.strerror}") from err
    try:
        yield fresh
        (fresh / MARKER).write_bytes(b"")
        os.chmod(fresh, 0o755)  # mkdtemp's folder is private; a report is for reading
        _swap_in(fresh, out_dir)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh, ignore_errors=True)


def _swap_in(fresh: Path, out_dir: Path) -> None:
    """Rename ``fresh`` to ``out_dir``; an earlier report there is renamed away, then removed.

    Raises:
        ConfigError: ``out_dir`` changed into something that is refused, or a rename failed.
    """
    check_target(out_dir)  # again: it may have changed while the pictures were made
    old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(6)}"
    moved = False
    try:
        if os.path.lexists(out_dir):
            os.rename(out_dir, old)  # renames a link itself, never what it points at
            moved = True
        os.rename(fresh, out_dir)
    except OSError as err:
        if moved:
            with contextlib.suppress(OSError):
                os.rename(old, out_dir)  # put the earlier report back
        raise ConfigError(f"cannot write the report folder {out_dir}: {err.strerror}") from err
    if os.path.islink(old):
        os.unlink(old)
    elif os.path.lexists(old):
        shutil.rmtree(old, ignore_errors=True)  # rmtree unlinks links inside, never follows
