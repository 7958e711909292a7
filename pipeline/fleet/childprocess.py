"""Run one job in a child process, so a batch keeps every core busy and a crash stays local.

Pillow holds the GIL while it decodes, resizes and encodes, so jobs on threads of one process
share one core for their image work. ``conform batch`` and ``conform worker`` therefore run
each job in its own process, forked from a ``forkserver`` (never ``fork`` from the threaded
parent, which can copy a lock held by another thread) with the pipeline already imported:

- the parent keeps a thread per running job, which relays the child's progress events and log
  records and collects its result; ``current_job_id`` is set on that thread, so log lines
  carry the job id as before;
- each child has its own decode-memory budget (:mod:`pipeline.budget`), sized by
  ``runner.process`` from the settings; :func:`cap_workers` bounds how many run at once by the
  machine's available memory;
- SIGTERM/SIGINT in a child stop its ffmpeg processes (the job ends ``interrupted`` and its
  ``finally`` blocks remove its work folder); every live child is listed in
  :mod:`pipeline.processes`, whose ``stop_all()`` sends it SIGTERM (and kills the ffmpeg
  processes of this one), and a child dies with the parent (``PR_SET_PDEATHSIG``);
- a child that dies without a result (a crash in a decoder, the OOM killer) fails only its job:
  :class:`ChildDied`; the caller removes the work folder it left
  (:func:`pipeline.workdir.clean_stale`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .. import processes
from ..errors import PipelineError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class ChildDied:
    """A job's process ended without sending its result."""

    exitcode: int | None

    @property
    def reason(self) -> str:
        """``killed by signal 9`` / ``exited with status 3``, for the job's error."""
        code = self.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"killed by signal {name}"
        return f"exited with status {code}"


class JobProcessLost(PipelineError):
    """A job's process ended without a result (it died, or was killed): a bug or the OOM
    killer, not the job's input, so running it again may succeed."""

    retryable = True

    def __init__(self, result: object) -> None:
        reason = result.reason if isinstance(result, ChildDied) else "sent no result"
        super().__init__(f"internal error: the job's process {reason}")
        self.reason = reason


# Imported once in the fork server, not once per job: the pipeline imports its image and
# video modules (Pillow, NumPy, pillow-heif) lazily, which would cost every job's process
# about half a CPU second. OpenCV (smart framing only) is left out. A module that fails to
# import here is skipped by the server and imported by the job that needs it.
# "__main__": the server runs the program's main file (the `conform` script) once, so that
# a job's process does not run it again (multiprocessing does that for a spawned child).
PRELOAD = ["__main__", "pipeline.runner", "pipeline.fleet.childprocess", "pipeline.fleet.batch",
           "pipeline.fleet.worker", "pipeline.image", "pipeline.video", "pipeline.cover",
           "pipeline.vision.sampling", "pipeline.storage", "PIL.Image", "PIL.ImageCms",
           "PIL.ImageFilter", "PIL.ImageSequence", "PIL.ImageStat", "numpy", "pillow_heif"]


# A Unix socket's path holds at most 107 bytes; the fork server's is
# $TMPDIR/pymp-XXXXXXXX/listener-XXXXXXXX (about 35 more).
_MAX_SOCKET_DIR = 70
_temp_lock = threading.Lock()


def _short_temp_dir() -> None:
    """Put multiprocessing's folder (the fork server's socket) where its path fits.

    A long ``TMPDIR`` (a CI runner's or a test's) would make the server fail with "AF_UNIX path
    too long"; then ``/tmp`` is used for that folder only, when it is writable.
    """
    from multiprocessing import util

    with _temp_lock:
        if len(tempfile.gettempdir()) <= _MAX_SOCKET_DIR or not os.access("/tmp", os.W_OK):
            util.get_temp_dir()
            return
        saved = tempfile.tempdir
        tempfile.tempdir = "/tmp"
        try:
            util.get_temp_dir()  # made once per process, removed at exit
        finally:
            tempfile.tempdir = saved


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    _short_temp_dir()
    return ctx


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (Linux), else ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cap_workers(workers: int, max_decode_bytes: int, *,
                available_bytes: int | None = None) -> int:
    """Fewer workers when each one's decode budget would not fit in the machine's memory.

    Every job process may hold ``max_decode_bytes`` of decoded pictures at once, so
    ``workers x max_decode_bytes`` must fit in the available memory. Logs a warning when it
    caps. Never below 1 (one worker is what ``conform run`` needs anyway).
    """
    avail = available_memory_bytes() if available_bytes is None else available_bytes
    if avail is None or max_decode_bytes <= 0:
        return workers
    fits = max(1, avail // max_decode_bytes)
    if workers > fits:
        log.warning("running %d worker(s), not %d: each may decode up to %d MB of pictures "
                    "(CONFORM_MAX_DECODE_BYTES) and %d MB of memory is available",
                    fits, workers, max_decode_bytes // 1_000_000, avail // 1_000_000)
        return int(fits)
    return workers


def shutdown() -> None:
    """Stop the fork server and wait for it (after a batch or a worker's run).

    Waiting for it, rather than leaving it to exit with this process, removes its socket now
    and adds its jobs' CPU time to this process's children (``getrusage``, ``wait4``: what
    ``time`` and a scheduler's accounting show). The next job starts a new server.
    """
    from multiprocessing import forkserver

    with contextlib.suppress(AttributeError, OSError, ChildProcessError):
        forkserver._forkserver._stop()  # type: ignore[attr-defined]


def run_in_process(fn: Callable[..., Any], *args: Any,
                   on_event: Callable[[Any], None] | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a child process; its result, or :class:`ChildDied`.

    ``fn`` must be a module-level function and its arguments and result picklable. With
    ``on_event``, ``fn`` gets an ``on_event`` keyword too, whose calls arrive here (on this
    thread). Log records of the child are handled by this process's loggers.
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    level = logging.getLogger().getEffectiveLevel()
    proc = ctx.Process(target=_child_main, name="conform-job", daemon=True,
                       args=(sender, level, dict(os.environ), os.getcwd(), fn, args, kwargs,
                             on_event is not None))

    def terminate() -> None:
        if proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)

    try:
        proc.start()
        # Listed for processes.stop_all(): SIGTERM (at once if a stop came first).
        with processes.listed(terminate):
            sender.close()
            result, received = _receive(receiver, on_event)
            proc.join()
        return result if received else ChildDied(proc.exitcode)
    finally:
        receiver.close()
        if proc.is_alive():
            proc.kill()
            proc.join()


def _receive(receiver: Connection, on_event: Callable[[Any], None] | None) -> tuple[Any, bool]:
    """Relay the child's events and log records until it closes the pipe; its result."""
    result: Any = None
    received = False
    while True:
        try:
            kind, payload = receiver.recv()
        except (EOFError, OSError):
            break
        if kind == "event" and on_event is not None:
            on_event(payload)
        elif kind == "log":
            logging.getLogger(payload.name).handle(payload)
        elif kind == "result":
            result, received = payload, True
    return result, received


# --------------------------------------------------------------------------- in the child


class _PipeHandler(logging.Handler):
    """Sends each log record to the parent, ready to pickle (message formatted, no traceback
    object), like :class:`logging.handlers.QueueHandler`."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg, record.args, record.exc_info = record.getMessage(), None, None
            self._send(("log", record))
        except Exception:  # a log line must never break a job
            self.handleError(record)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        parent = os.getppid()
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: no signal will come
            os._exit(1)


def _child_main(conn: Connection, level: int, environ: dict[str, str], cwd: str,
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                events: bool) -> None:
    _die_with_parent()
    # The server was forked when the first job started: take the parent's environment and
    # folder of now (FFMPEG_PATH, CONFORM_*, relative paths), as a fork would.
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    lock = threading.Lock()

    def send(message: Any) -> None:
        with lock:
            conn.send(message)

    def on_signal(signum: int, frame: Any) -> None:
        # Not stop_all() here: it takes a lock the interrupted code may hold.
        threading.Thread(target=processes.stop_all, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    root = logging.getLogger()
    root.handlers[:] = [_PipeHandler(send)]
    root.setLevel(level)
    if events:
        kwargs = {**kwargs, "on_event": lambda event: send(("event", event))}
    result = fn(*args, **kwargs)
    send(("result", result))
    conn.close()


__all__ = ["ChildDied", "available_memory_bytes", "cap_workers", "run_in_process", "shutdown"]
