"""One registry of live processes: one stop call ends ffmpeg children and job processes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline import ffmpeg, processes
from pipeline.errors import Interrupted
from pipeline.fleet import childprocess

pytestmark = pytest.mark.ffmpeg


@pytest.fixture(autouse=True)
def _allow_processes() -> Iterator[None]:
    processes.reset_stop()
    yield
    processes.reset_stop()


def _encode_forever() -> list[str]:
    """An ffmpeg that runs until it is stopped (a live source read at its own pace)."""
    return [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-re", "-f", "lavfi", "-i",
            "testsrc=size=64x64:rate=10", "-progress", "pipe:1", "-nostats", "-f", "null", "-"]


def _run_until_stopped(on_running: Callable[[], None]) -> str:
    """Run :func:`_encode_forever` through the runner; how it ended."""
    told: list[bool] = []

    def progress(_: float) -> None:
        if not told:  # ffmpeg reports progress: it is running and listed
            told.append(True)
            on_running()

    try:
        ffmpeg.run(_encode_forever(), timeout_s=300, on_progress=progress, duration_s=3600)
    except Interrupted:
        return "interrupted"
    return "finished"


def _job_encoding_until_stopped(on_event: Callable[[Any], None]) -> str:
    """A job process's work: its own ffmpeg, which only its stop request ends."""
    return _run_until_stopped(lambda: on_event("running"))


def test_one_stop_call_ends_an_ffmpeg_child_and_a_job_process() -> None:
    ffmpeg_running, job_running = threading.Event(), threading.Event()
    ended: dict[str, Any] = {}

    def in_this_process() -> None:
        ended["ffmpeg"] = _run_until_stopped(ffmpeg_running.set)

    def in_a_job_process() -> None:
        ended["job"] = childprocess.run_in_process(_job_encoding_until_stopped,
                                                 on_event=lambda _: job_running.set())

    threads = [threading.Thread(target=in_this_process, daemon=True),
               threading.Thread(target=in_a_job_process, daemon=True)]
    for thread in threads:
        thread.start()
    assert ffmpeg_running.wait(60) and job_running.wait(60)
    assert processes.count() == 2  # the ffmpeg here and the job process (its ffmpeg is its own)

    processes.stop_all()

    for thread in threads:
        thread.join(timeout=60)
    assert not [t for t in threads if t.is_alive()]
    # The job process got SIGTERM, stopped its own ffmpeg and sent its result back.
    assert ended == {"ffmpeg": "interrupted", "job": "interrupted"}
    assert processes.count() == 0


def test_nothing_starts_while_stopping_and_everything_may_start_after_reset() -> None:
    processes.stop_all()
    assert processes.stopping()
    with pytest.raises(Interrupted):
        ffmpeg.run([ffmpeg.ffmpeg_exe(), "-version"], timeout_s=30)
    # A job process started now is told to stop at once: it never runs its ffmpeg for long.
    result = childprocess.run_in_process(_job_encoding_until_stopped, on_event=lambda _: None)
    assert result in ("interrupted", childprocess.ChildDied(-15))

    processes.reset_stop()
    assert not processes.stopping()
    assert b"ffmpeg version" in ffmpeg.run([ffmpeg.ffmpeg_exe(), "-version"], timeout_s=30).stdout
    assert childprocess.run_in_process(_return_seven) == 7


def _return_seven() -> int:
    return 7


def test_a_process_listed_after_a_stop_is_stopped_at_once() -> None:
    calls: list[str] = []
    processes.stop_all()
    with processes.listed(lambda: calls.append("stopped")):
        assert calls == ["stopped"]
        assert processes.count() == 1
    assert processes.count() == 0


def test_a_stop_reaches_every_process_even_when_one_has_already_gone() -> None:
    calls: list[str] = []

    def gone() -> None:
        raise ProcessLookupError(3, "No such process")

    with processes.listed(gone), processes.listed(lambda: calls.append("stopped")):
        processes.stop_all()
    assert calls == ["stopped"]
    assert processes.stopping() and processes.count() == 0


def test_a_stop_from_a_signal_handler_inside_the_registry_does_not_deadlock() -> None:
    # SIGTERM's handler runs stop_all() on the main thread, perhaps while that very thread is
    # inside listed() holding the registry's lock (reached here on purpose, as a handler would).
    calls: list[str] = []
    done = threading.Event()

    def main_thread_interrupted_mid_listing() -> None:
        with processes.listed(lambda: calls.append("stopped")), processes._lock:
            processes.stop_all()
        done.set()

    thread = threading.Thread(target=main_thread_interrupted_mid_listing, daemon=True)
    thread.start()
    assert done.wait(10), "stop_all() waited for a lock its own thread holds"
    assert calls == ["stopped"]
