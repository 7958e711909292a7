"""The one place that runs outside tools: ffmpeg and ffprobe, with timeouts and typed errors.

(The only other processes are conform's own job processes, started by
:mod:`pipeline.fleet.childprocess` through :mod:`multiprocessing`: Python running our code, not a
tool reading untrusted input.)

stdout and stderr go to temporary files (or stdout is read line by line for progress), so a
chatty ffmpeg can never fill a pipe and deadlock us; on failure the tail of stderr is put into
the error. Every process is killed in ``finally`` if it is still alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import processes
from .errors import ConfigError, FFmpegError, FFmpegTimeout, Interrupted

log = logging.getLogger(__name__)

STDERR_TAIL_BYTES = 4096
_MAX_LINE_BYTES = 65536  # a longer stderr line is handed over in parts
ProgressCallback = Callable[[float], None]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, looked up once in the parent (never in a forked child)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


_prctl = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when we die (Linux only).

    Without it, a conform killed by SIGKILL or the OOM killer leaves its ffmpeg encoding at
    full CPU with nobody to read the result. Why ``preexec_fn`` despite its warning about
    threads: the hazard is a child that needs a lock another thread held at fork time. This
    one touches no Python lock and imports nothing: it calls a ``prctl`` looked up before the
    fork with two small-int arguments, then ``getppid``; CPython re-creates the GIL in the
    child. The alternatives do not do the job: ``process_group``/``start_new_session`` only
    change which terminal signals reach ffmpeg, and a wrapper (``setpriv --pdeathsig``, or a
    Python trampoline) adds a binary we may not have or ~20 ms to every ffmpeg call.

    The signal follows the *thread* that forked the child; ``run`` waits for the process in
    that same thread, so the thread outlives the child.
    """
    prctl = _prctl
    if prctl is None:
        return None
    sigkill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill)
        if os.getppid() != parent_pid:  # we died between fork and prctl: no signal will come
            os._exit(1)

    return preexec


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished run: its stdout (when captured) and the stderr tail."""

    args: list[str]
    stdout: bytes
    stderr_tail: str
    elapsed_s: float


def _find(env_name: str, name: str) -> str:
    configured = os.environ.get(env_name)
    candidate = configured or name
    found = shutil.which(candidate)
    if not found:
        raise ConfigError(
            f"{name} not found (looked for {candidate!r}); install it "
            "(Debian: apt-get install ffmpeg) or set " + env_name
        )
    return found


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (``FFMPEG_PATH`` or PATH).

    Raises:
        ConfigError: not installed.
    """
    return _find("FFMPEG_PATH", "ffmpeg")


@functools.cache
def ffprobe_exe() -> str:
    """Path of the ffprobe binary (``FFPROBE_PATH`` or PATH).

    Raises:
        ConfigError: not installed.
    """
    return _find("FFPROBE_PATH", "ffprobe")


@functools.cache
def encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build has."""
    out = run([ffmpeg_exe(), "-hide_banner", "-encoders"], timeout_s=30).stdout.decode()
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


@functools.cache
def filters() -> frozenset[str]:
    """Names of the filters this ffmpeg build has (zscale may be missing on some builds)."""
    out = run([ffmpeg_exe(), "-hide_banner", "-filters"], timeout_s=30).stdout.decode()
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and "->" in parts[2]:
            names.add(parts[1])
    return frozenset(names)


def require_tools() -> None:
    """Fail at start-up when ffmpeg or ffprobe is not installed (cheap: a PATH lookup).

    Raises:
        ConfigError: ffmpeg or ffprobe missing.
    """
    ffmpeg_exe()
    ffprobe_exe()


@functools.cache
def require_capabilities() -> None:
    """Fail early, not in the middle of a batch, when the build lacks an encoder we need.

    Long-running commands (batch, worker) call this at start-up; an encode calls it when it
    fails, to tell a build without our encoders from a failed encode (``ffmpeg -encoders``
    costs ~50 ms, and an encode that worked had them). Cached: one check per process.

    Raises:
        ConfigError: ffmpeg/ffprobe missing or an encoder we rely on is absent.
    """
    require_tools()
    missing = {"libx264", "aac"} - encoders()
    if missing:
        raise ConfigError(f"ffmpeg lacks required encoders: {', '.join(sorted(missing))}")


def safe_input(path: Path, demuxer: str | None) -> list[str]:
    """Input options that keep ffmpeg on the local file we wrote, with a forced demuxer.

    ``-protocol_whitelist file`` stops playlists (HLS, concat, subfile) inside a file from
    reaching other files or the network; the explicit ``-f`` stops ffmpeg from guessing a
    playlist format from the content. ``file:`` keeps a name like ``-x`` or ``a:b`` from being
    read as an option or protocol.
    """
    args = ["-protocol_whitelist", "file"]
    if demuxer:
        args += ["-f", demuxer]
    return [*args, "-i", "file:" + str(path.resolve())]


def pipe_input(demuxer: str) -> list[str]:
    """Input options for a stream on our stdin that our own ffmpeg wrote (an encode's copy):
    only the pipe may be read, with a forced demuxer."""
    return ["-protocol_whitelist", "pipe", "-f", demuxer, "-i", "pipe:0"]


# The demuxer we force for each sniffed container: ffmpeg never guesses (no playlists).
DEMUXERS = {
    "mp4": "mov", "mov": "mov", "webm": "matroska", "matroska": "matroska", "avi": "avi",
    "mpegts": "mpegts", "gif": "gif", "png": "apng",
    # Our own list of an animation's frames (pipeline.video.frames), read in safe mode.
    "ffconcat": "concat",
}


def locked_input(path: Path, fmt: str) -> tuple[str, dict[str, str | None]]:
    """The input name and options of :func:`safe_input` for an ffmpeg-python ``input()``.

    ``fmt`` is the probed container (``mp4``, ``gif``...); its demuxer is forced.
    """
    options: dict[str, str | None] = {"f": DEMUXERS.get(fmt), "protocol_whitelist": "file"}
    if options["f"] == "concat":
        # Spelled out though it is the default: entries may only be relative names of
        # portable characters, so the list reaches nothing outside its own folder.
        options["safe"] = "1"
    return "file:" + str(path.resolve()), options


def ffmpeg_head(*options: str) -> list[str]:
    """The start of every ffmpeg argv: the binary, no banner, stdin never read, then ``options``.

    Raises:
        ConfigError: ffmpeg is not installed.
    """
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *options]


def ffprobe_head(*options: str) -> list[str]:
    """The start of every ffprobe argv: the binary, no banner, then ``options``.

    Raises:
        ConfigError: ffprobe is not installed.
    """
    return [ffprobe_exe(), "-hide_banner", *options]


def probe_input(path: Path, fmt: str) -> list[str]:
    """:func:`safe_input` for ffprobe, which takes the input as a positional argument."""
    return [a for a in safe_input(path, DEMUXERS.get(fmt)) if a != "-i"]


def _tail(fh: IO[bytes]) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - STDERR_TAIL_BYTES))
    return fh.read().decode("utf-8", "replace")


def run(
    args: list[str],
    *,
    timeout_s: float,
    on_progress: ProgressCallback | None = None,
    duration_s: float | None = None,
    read_stdout: Callable[[IO[bytes]], None] | None = None,
    on_stderr_line: Callable[[bytes], None] | None = None,
    stdin_fd: int | None = None,
    hand_over: tuple[int, ...] = (),
) -> Completed:
    """Run ffmpeg or ffprobe and wait for it.

    Args:
        args: full argv; ``args[0]`` is the binary. Never a shell string.
        timeout_s: wall-clock limit; the process is killed when it expires.
        on_progress: called with a fraction 0..1 parsed from ``-progress pipe:1``
            (the caller must have put ``-progress pipe:1 -nostats`` in ``args``).
        duration_s: the output's expected duration, to turn ``out_time`` into a fraction.
        read_stdout: reads the process's stdout as it comes, to its end (instead of
            ``on_progress``). It must keep reading: a reader that stops stalls the process
            until the timeout.
        on_stderr_line: called with each stderr line as it comes (the tail is kept as well).
        stdin_fd: a file descriptor the process reads as its stdin (default: nothing).
        hand_over: file descriptors the process inherits under the same numbers (``pipe:N``).
            ``stdin_fd`` and these belong to this call: they are closed here once the
            process has them, or when it cannot be started.

    Returns:
        The captured stdout (empty when it was read as it came) and the stderr tail.

    Raises:
        FFmpegError: non-zero exit, with argv and stderr tail.
        FFmpegTimeout: the timeout expired (retryable).
        Interrupted: a stop was requested (SIGINT/SIGTERM).
    """
    if on_progress is not None:
        def read_stdout(stream: IO[bytes]) -> None:
            _read_progress(stream, on_progress, duration_s)
    # Closed (and emptied) as soon as the child has them: a number closed twice could by
    # then be another thread's file.
    given = [*hand_over, *((stdin_fd,) if stdin_fd is not None else ())]
    try:
        if processes.stopping():
            raise Interrupted("stopping: no new ffmpeg processes")
        log.debug("running %s", shlex.join(args))
        return _run(args, timeout_s=timeout_s, read_stdout=read_stdout,
                    on_stderr_line=on_stderr_line, stdin_fd=stdin_fd, hand_over=hand_over,
                    given=given)
    finally:
        _close_all(given)


def _close_all(fds: list[int]) -> None:
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


def _run(args: list[str], *, timeout_s: float,
         read_stdout: Callable[[IO[bytes]], None] | None,
         on_stderr_line: Callable[[bytes], None] | None, stdin_fd: int | None,
         hand_over: tuple[int, ...], given: list[int]) -> Completed:
    started = time.monotonic()
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as err_fh, tempfile.TemporaryFile() as out_fh:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL if stdin_fd is None else stdin_fd,
            stdout=subprocess.PIPE if read_stdout else out_fh,
            stderr=subprocess.PIPE if on_stderr_line else err_fh,
            pass_fds=hand_over,
            preexec_fn=_die_with_parent(os.getpid()),  # thread-safe here: see its docstring
        )
        _close_all(given)  # the child has its copies: ours would hold its pipes open

        def _kill() -> None:
            if proc.poll() is None:
                proc.kill()

        def _expire() -> None:
            timed_out.set()
            _kill()

        timer = threading.Timer(max(0.1, timeout_s), _expire)
        timer.daemon = True
        lines = None
        if on_stderr_line is not None and proc.stderr is not None:
            lines = threading.Thread(target=_copy_lines, name="ffmpeg-stderr",
                                     args=(proc.stderr, err_fh, on_stderr_line), daemon=True)
        # Listed for processes.stop_all(), which kills it (at once if a stop came first).
        with processes.listed(_kill):
            timer.start()
            if lines is not None:
                lines.start()
            try:
                if read_stdout is not None and proc.stdout is not None:
                    read_stdout(proc.stdout)
                returncode = proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if lines is not None:
                    lines.join()
        elapsed = time.monotonic() - started
        tail = _tail(err_fh)
        if timed_out.is_set():
            raise FFmpegTimeout(args, -9, f"timed out after {timeout_s:.0f} s\n{tail}")
        if processes.stopping() and returncode != 0:
            raise Interrupted("interrupted while running ffmpeg")
        if returncode != 0:
            raise FFmpegError(args, returncode, tail)
        out_fh.seek(0)
        stdout = out_fh.read()
    return Completed(args=args, stdout=stdout, stderr_tail=tail, elapsed_s=elapsed)


def _copy_lines(stream: IO[bytes], sink: IO[bytes], on_line: Callable[[bytes], None]) -> None:
    """Hand each stderr line to ``on_line`` and keep it in ``sink`` (for the error's tail).

    The stream is read to its end whatever ``on_line`` does: a reader that stopped would
    stall the process once the pipe is full.
    """
    listening = True
    for line in iter(lambda: stream.readline(_MAX_LINE_BYTES), b""):
        sink.write(line)
        if listening:
            try:
                on_line(line)
            except Exception:
                log.exception("a stderr reader failed; reading on without it")
                listening = False


def _read_progress(stream: IO[bytes], on_progress: ProgressCallback,
                   duration_s: float | None) -> None:
    """Parse ffmpeg's ``key=value`` progress blocks; ``progress=end`` closes the last one."""
    for raw in iter(stream.readline, b""):
        key, _, value = raw.decode("ascii", "replace").strip().partition("=")
        if key == "out_time_us" and duration_s:
            try:
                fraction = int(value) / 1e6 / duration_s
            except ValueError:
                continue
            on_progress(min(1.0, max(0.0, fraction)))
        elif key == "progress" and value == "end":
            on_progress(1.0)
