"""The one ffmpeg runner: a stop request reaches every process, however it is timed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from pipeline import ffmpeg, processes
from pipeline.errors import Interrupted


@pytest.fixture(autouse=True)
def _allow_processes() -> Any:
    processes.reset_stop()
    yield
    processes.reset_stop()


def test_a_stop_between_start_and_listing_still_stops_the_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM handled after Popen but before the process is listed (found by CI: a batch hung
    because stop_all() had taken its list a moment too early)."""
    real_popen = subprocess.Popen

    def popen_then_signal(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        processes.stop_all()  # the signal handler runs here: the process is not listed yet
        return proc

    monkeypatch.setattr(ffmpeg.subprocess, "Popen", popen_then_signal)
    started = time.monotonic()
    with pytest.raises(Interrupted):
        ffmpeg.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=60)
    assert time.monotonic() - started < 10  # killed at once, not at its 60 s timeout


def test_no_process_starts_once_stopping() -> None:
    processes.stop_all()
    with pytest.raises(Interrupted):
        ffmpeg.run([sys.executable, "-c", "pass"], timeout_s=10)


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


@pytest.mark.ffmpeg
def test_a_stream_goes_from_one_process_to_another_through_handed_over_descriptors() -> None:
    """One ffmpeg writes raw sound to an inherited pipe (``pipe:N``), another reads it on its
    stdin and its stdout is read as it comes: what the subject check's tap does."""
    read_fd, write_fd = os.pipe()
    got = bytearray()

    def consume() -> None:
        ffmpeg.run([*ffmpeg.ffmpeg_head("-v", "error"), "-ar", "8000", "-ac", "1",
                    *ffmpeg.pipe_input("s16le"), "-f", "s16le", "pipe:1"],
                   timeout_s=30, stdin_fd=read_fd,
                   read_stdout=lambda stream: got.extend(stream.read()))

    reader = threading.Thread(target=consume)
    reader.start()
    ffmpeg.run([*ffmpeg.ffmpeg_head("-v", "error"), "-f", "lavfi", "-i",
                "sine=sample_rate=8000:duration=0.5", "-f", "s16le", f"pipe:{write_fd}"],
               timeout_s=30, hand_over=(write_fd,))
    reader.join(30)
    assert len(got) == 8000  # 0.5 s of 16-bit mono at 8 kHz, all of it
    assert _closed(read_fd) and _closed(write_fd)  # each call closed what it was given


@pytest.mark.ffmpeg
def test_a_failing_stderr_reader_does_not_stall_the_process() -> None:
    lines: list[bytes] = []

    def fails_at_the_third(line: bytes) -> None:
        lines.append(line)
        if len(lines) == 3:
            raise RuntimeError("a bug in a reader")

    done = ffmpeg.run([*ffmpeg.ffmpeg_head("-v", "info", "-nostats"), "-f", "lavfi", "-i",
                       "testsrc2=size=64x64:rate=25:duration=2", "-vf", "showinfo",
                       "-f", "null", "-"], timeout_s=60, on_stderr_line=fails_at_the_third)
    assert len(lines) == 3  # not called again after it failed
    assert "n:  49" in done.stderr_tail  # yet every line was read: the process ran to the end


def test_descriptors_given_to_a_call_that_cannot_start_are_closed() -> None:
    read_fd, write_fd = os.pipe()
    processes.stop_all()
    with pytest.raises(Interrupted):
        ffmpeg.run(["ffmpeg", "-version"], timeout_s=5, stdin_fd=read_fd, hand_over=(write_fd,))
    assert _closed(read_fd) and _closed(write_fd)
