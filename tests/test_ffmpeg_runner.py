"""The one ffmpeg runner: a stop request reaches every process, however it is timed."""

from __future__ import annotations

import subprocess
import sys
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
