"""Timing, CPU and peak-memory measurement of child processes (Linux /proc), plus medians.

Wall time comes from ``perf_counter`` around a blocking ``wait4``, CPU time from the rusage
``wait4`` returns (it covers the child and every descendant it waited for, so ffmpeg is
included). Peak RSS is sampled from ``/proc/<pid>/status`` (``VmHWM``, the kernel's own
high-water mark) for the child and, separately, for each of its descendants, because the
memory goal is about the Python process while ffmpeg's footprint is reported beside it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_INTERVAL_S = 0.02


class BenchError(Exception):
    """A measured command failed: the bench reports it instead of a number."""


@dataclass(frozen=True, slots=True)
class ProcRun:
    """One finished child process."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    cpu_s: float
    stdout: bytes
    stderr_tail: str
    peak_rss_kb: int | None = None
    peak_child_rss_kb: int | None = None
    child_peaks: dict[str, int] = field(default_factory=dict)
    machine_busy: float | None = None  # share of all cores busy (anyone's work) meanwhile


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _read_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def _children(pid: int) -> list[int]:
    """Direct children, from /proc/<pid>/task/*/children (every thread can fork)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                found.extend(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            continue
    return found


class _RssSampler(threading.Thread):
    """Polls VmHWM of a process and all its descendants until told to stop."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.main_kb = 0
        self.child_kb: dict[int, tuple[str, int]] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_INTERVAL_S)

    def sample(self) -> None:
        hwm = _read_hwm_kb(self.pid)
        if hwm is not None:
            self.main_kb = max(self.main_kb, hwm)
        todo = _children(self.pid)
        seen: set[int] = set()
        while todo:
            child = todo.pop()
            if child in seen:
                continue
            seen.add(child)
            chwm = _read_hwm_kb(child)
            if chwm is not None:
                name, prev = self.child_kb.get(child, (_comm(child), 0))
                self.child_kb[child] = (name, max(prev, chwm))
            todo.extend(_children(child))

    def stop(self) -> None:
        self._halt.set()


def run_process(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: Path | None = None, track_rss: bool = False, timeout_s: float = 3600,
                check: bool = True) -> ProcRun:
    """Run one command to completion and measure it.

    Args:
        argv: the command (never a shell string).
        env: the full environment for the child.
        cwd: its working directory.
        track_rss: sample peak RSS of the child and its descendants.
        timeout_s: kill the child after this long.
        check: raise :class:`BenchError` on a non-zero exit.

    Returns:
        Wall and CPU seconds, exit code, stdout, the stderr tail and (if tracked) peak RSS.

    Raises:
        BenchError: the command failed (``check``) or timed out.
    """
    ticks_before = _cpu_ticks()
    with tempfile.TemporaryFile() as out_fh, tempfile.TemporaryFile() as err_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out_fh, stderr=err_fh,
            env=dict(env) if env is not None else None, cwd=cwd)
        sampler = _RssSampler(proc.pid) if track_rss else None
        if sampler is not None:
            sampler.start()
        timer = threading.Timer(timeout_s, proc.kill)
        timer.daemon = True
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            if sampler is not None:
                sampler.stop()
                sampler.join()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err_fh.seek(max(0, os.fstat(err_fh.fileno()).st_size - 3000))
        tail = err_fh.read().decode("utf-8", "replace")
        out_fh.seek(0)
        stdout = out_fh.read()
    run = ProcRun(
        argv=tuple(argv), returncode=proc.returncode, wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime, stdout=stdout, stderr_tail=tail,
        peak_rss_kb=(sampler.main_kb or None) if sampler else None,
        peak_child_rss_kb=(max((kb for _n, kb in sampler.child_kb.values()), default=0) or None)
        if sampler else None,
        child_peaks=_peaks_by_name(sampler) if sampler else {},
        machine_busy=_busy_since(ticks_before),
    )
    if check and run.returncode != 0:
        last = [line for line in tail.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise BenchError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} ... exited "
                         f"{run.returncode}: {last[0].strip()[:300]}")
    return run


def _busy_since(before: tuple[int, int] | None) -> float | None:
    after = _cpu_ticks()
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _peaks_by_name(sampler: _RssSampler) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for name, kb in sampler.child_kb.values():
        peaks[name] = max(peaks.get(name, 0), kb)
    return peaks


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (in this process)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    """The median (the bench's summary statistic: robust to one noisy run)."""
    if not values:
        raise BenchError("no measurements")
    return float(statistics.median(values))


def interleave(runs: int, *steps: Callable[[], float]) -> list[list[float]]:
    """Run each step ``runs`` times, alternating their order (ABBA...) so slow drift of a
    shared, noisy machine hits every contender alike. Returns the seconds per step."""
    results: list[list[float]] = [[] for _ in steps]
    order = list(range(len(steps)))
    for i in range(runs):
        for idx in (order if i % 2 == 0 else list(reversed(order))):
            results[idx].append(steps[idx]())
    return results
