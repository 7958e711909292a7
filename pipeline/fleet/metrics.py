"""What an operator watches: a worker's or batch's Prometheus metrics, liveness and readiness.

:class:`Monitor` is told what happens (a receive, a job starting and finishing, a destination
check) and keeps three things: the metrics (prometheus_client, in a registry of its own), a
liveness verdict (is the receive loop still turning?) and a readiness verdict (have the queue
and the destination been reached, and are they still?). :mod:`pipeline.fleet.status` serves
them over HTTP. Job processes (``--workers N``) report back to the parent through their
results, so the parent counts every job's figures; the ``process_*`` metrics are the parent's.

Every label value is from a closed set (job statuses, ``made``/``reused``, the error codes of
:mod:`pipeline.errors`), so no job can grow the number of series.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from ..errors import PipelineError
from ..manifest import Manifest
from ..models import ErrorInfo

__all__ = ["CONTENT_TYPE", "Monitor", "Verdict"]

#: The Prometheus text exposition format, version 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds: a job takes from one second (an image) to an hour (a long 4K video).
_JOB_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
#: Seconds: a long poll returns within its wait (≤ 20 s) unless the queue is unwell.
_RECEIVE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 25, 30, 60)
#: A failing destination is checked again at most this often (one HeadBucket request).
_RECHECK_S = 5.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """An endpoint's answer: OK or not, and why, one line per part."""

    ok: bool
    lines: tuple[str, ...]

    def body(self) -> bytes:
        """The response body: ``ok`` or ``unavailable``, then the reasons."""
        return ("\n".join(("ok" if self.ok else "unavailable", *self.lines)) + "\n").encode()


@dataclass
class _Liveness:
    """The receive loop beats on every turn; a job in hand has its own, longer, allowance."""

    idle_limit_s: float
    job_limit_s: float
    last_beat: float = field(default_factory=time.monotonic)
    jobs: dict[int, float] = field(default_factory=dict)  # start times by a token
    running: bool = True
    next_token: int = 0

    def verdict(self, now: float) -> Verdict:
        if not self.running:
            return Verdict(False, ("the loop has ended",))
        if self.jobs:
            oldest = now - min(self.jobs.values())
            if oldest > self.job_limit_s:
                return Verdict(False, (f"a job has run for {oldest:.0f} s, over its "
                                       f"{self.job_limit_s:.0f} s allowance",))
            return Verdict(True, (f"{len(self.jobs)} job(s) running",))
        idle = now - self.last_beat
        if idle > self.idle_limit_s:
            return Verdict(False, (f"no turn of the loop for {idle:.0f} s "
                                   f"(allowed {self.idle_limit_s:.0f} s)",))
        return Verdict(True, (f"last turn {idle:.1f} s ago",))


class Monitor:
    """Metrics, liveness and readiness of one worker or batch process (thread-safe).

    Args:
        parts: what must have been reached before the process is ready, e.g.
            ``("queue", "destination")``.
        idle_limit_s: longest time between two turns of the loop while no job runs.
        job_limit_s: longest time one job may run (its deadline plus a margin).
    """

    def __init__(self, parts: Iterable[str] = ("queue", "destination"), *,
                 idle_limit_s: float = 120.0, job_limit_s: float = 4 * 3600.0 + 120.0) -> None:
        self._lock = threading.Lock()
        self._live = _Liveness(idle_limit_s, job_limit_s)
        self._parts: dict[str, str | None] = dict.fromkeys(parts, "not reached yet")
        self._last_destination_check = float("-inf")
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.jobs = Counter("conform_jobs", "Jobs finished, by outcome.", ["status"],
                            registry=self.registry)
        self.duration = Histogram("conform_job_duration_seconds",
                                  "Wall time of a job, from receipt to its outcome.",
                                  buckets=_JOB_BUCKETS, registry=self.registry)
        self.in_progress = Gauge("conform_jobs_in_progress", "Jobs running now.",
                                 registry=self.registry)
        self.outputs = Counter("conform_outputs",
                               "Stored outputs of finished jobs: made now or reused.",
                               ["action"], registry=self.registry)
        self.errors = Counter("conform_errors", "Errors of finished jobs, by stable code.",
                              ["code"], registry=self.registry)
        self.receive = Histogram("conform_queue_receive_seconds",
                                 "Time of one receive from the queue (a long poll).",
                                 buckets=_RECEIVE_BUCKETS, registry=self.registry)
        for action in ("made", "reused"):
            self.outputs.labels(action)  # the series exist at 0 from the start

    # ------------------------------------------------------------------ what happens

    def beat(self) -> None:
        """A turn of the loop (a receive began, an entry was scheduled)."""
        with self._lock:
            self._live.last_beat = time.monotonic()

    def received(self, seconds: float, *, ok: bool, reason: str = "") -> None:
        """A receive from the queue ended after ``seconds``; ``ok`` when the queue answered."""
        self.receive.observe(seconds)
        self.mark("queue", ok, reason or "the last receive failed")
        self.beat()

    def job_started(self) -> int:
        """A job began; returns the token to pass to :meth:`job_finished`."""
        self.in_progress.inc()
        with self._lock:
            token = self._live.next_token
            self._live.next_token += 1
            self._live.jobs[token] = time.monotonic()
            self._live.last_beat = time.monotonic()
        return token

    def job_finished(self, token: int | None, status: str, elapsed_s: float, *,
                     manifest: Manifest | None = None, error: ErrorInfo | None = None) -> None:
        """A job ended with ``status`` (its manifest's, or skipped/invalid/retry ...);
        ``token`` is None for an entry that never started (invalid, a duplicate)."""
        with self._lock:
            started = token is not None and self._live.jobs.pop(token, None) is not None
            self._live.last_beat = time.monotonic()
        if started:
            self.in_progress.dec()
        self.jobs.labels(status).inc()
        self.duration.observe(max(0.0, elapsed_s))
        codes = [error.code] if error is not None else []
        if manifest is not None:
            codes += [e.code for a in manifest.accounts for e in a.errors]
            self._count_outputs(manifest)
        for code in codes:
            self.errors.labels(code).inc()
        if any(code.startswith("storage") for code in codes):
            self.mark("destination", False, "a job could not write to it")
        elif manifest is not None and "destination" in self._parts:
            self.mark("destination", True)

    def _count_outputs(self, manifest: Manifest) -> None:
        """Each stored object once, even when several accounts share it."""
        seen: dict[str, bool] = {}
        for account in manifest.accounts:
            for medium in account.media:
                seen[medium.uri] = seen.get(medium.uri, False) or "reused" in medium.actions
        for reused in seen.values():
            self.outputs.labels("reused" if reused else "made").inc()

    def mark(self, part: str, ok: bool, reason: str = "") -> None:
        """``part`` was reached (``ok``) or failed, and why."""
        with self._lock:
            if part in self._parts:
                self._parts[part] = None if ok else (reason or "failing")

    def check_destination(self, check: Callable[[], None], *, force: bool = False) -> None:
        """Reach the destination with its storage's ``check()`` (S3: one HeadBucket), when it
        has not been reached or is failing (at most every few seconds; ``force``: now)."""
        with self._lock:
            due = force or (self._parts.get("destination") is not None and
                            time.monotonic() - self._last_destination_check >= _RECHECK_S)
            if due:
                self._last_destination_check = time.monotonic()
        if not due:
            return
        try:
            check()
        except PipelineError as err:
            self.mark("destination", False, f"{err.code}: {err}"[:300])
        else:
            self.mark("destination", True)

    def loop_ended(self) -> None:
        """The loop returned: the process is about to exit, so it is no longer live."""
        with self._lock:
            self._live.running = False

    # ------------------------------------------------------------------ what is served

    def metrics_text(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    def liveness(self) -> Verdict:
        """``/healthz``: the loop turns, or the job in hand is within its allowance."""
        with self._lock:
            return self._live.verdict(time.monotonic())

    def readiness(self) -> Verdict:
        """``/readyz``: every part reached and not failing since."""
        with self._lock:
            lines = tuple(f"{part}: {'ok' if why is None else why}"
                          for part, why in self._parts.items())
            return Verdict(all(why is None for why in self._parts.values()), lines)
