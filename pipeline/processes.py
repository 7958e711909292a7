"""One registry of the processes conform started and that still run: one stop ends them all.

Two kinds of process are listed here: ffmpeg/ffprobe (:mod:`pipeline.ffmpeg`) and job
processes (:mod:`pipeline.fleet.childprocess`). A stop request (Ctrl-C, SIGTERM, a worker's grace
period running out) must end both kinds and refuse new ones until the caller may go on, so
there is one flag and one list: :func:`stop_all` and :func:`reset_stop` are the only calls a
caller makes. Each process is listed with its own way of stopping: an ffmpeg is killed (its
output is a temporary file, thrown away), a job process is sent SIGTERM so that it stops its
own ffmpeg processes and removes its work folder before it ends.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator

__all__ = ["count", "listed", "reset_stop", "stop_all", "stopping"]

log = logging.getLogger(__name__)

StopFunction = Callable[[], None]

_live: dict[int, StopFunction] = {}
# Reentrant: SIGTERM's handler calls stop_all() on the main thread, between two bytecodes of
# whatever it was doing, possibly inside listed() holding this lock; a plain lock would
# deadlock there. Each step under the lock is a single dict operation, so the handler never
# sees the registry half-changed.
_lock = threading.RLock()
_stopping = threading.Event()
_keys = itertools.count()


@contextlib.contextmanager
def listed(stop: StopFunction) -> Iterator[None]:
    """List a started process while the block runs; ``stop`` ends it (from any thread).

    A process listed after a stop request is stopped at once: :func:`stop_all` sets the flag
    before it takes the list under the lock, and the flag is read here under the same lock,
    so a signal that lands between the start of a process and this call still stops it
    (it would otherwise run on, and its job with it, until its timeout).
    """
    key = next(_keys)
    with _lock:
        _live[key] = stop
        stopped_early = _stopping.is_set()
    try:
        if stopped_early:
            _call(stop)
        yield
    finally:
        with _lock:
            _live.pop(key, None)


def stop_all() -> None:
    """Stop every listed process, and every process started until :func:`reset_stop`."""
    _stopping.set()
    with _lock:
        stops = list(_live.values())
    for stop in stops:
        _call(stop)


def reset_stop() -> None:
    """Allow processes again (a library caller or a worker going on after a stop; tests)."""
    _stopping.clear()


def stopping() -> bool:
    """:func:`stop_all` was called and not yet :func:`reset_stop`."""
    return _stopping.is_set()


def count() -> int:
    """How many processes are listed now."""
    with _lock:
        return len(_live)


def _call(stop: StopFunction) -> None:
    # A process that ended on its own in the meantime is not an error; nothing else must
    # keep the other processes from being stopped.
    try:
        stop()
    except (OSError, ValueError, AttributeError) as err:
        log.debug("stopping a process: %s", err)
