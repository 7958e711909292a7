"""Many jobs at once: take a batch's entries, pick this shard's jobs, run them side by side.

Reading sources and sharding live in :mod:`pipeline.fleet.sources` (its names are re-exported
here). Every entry is isolated: an unusable one becomes an ``invalid`` outcome and the batch
goes on. ``isolation="process"`` (what ``conform batch`` uses) runs each job in its own process
(:mod:`pipeline.fleet.childprocess`): Pillow holds the GIL while it works, so image jobs on threads
would share one core. With ``"thread"`` (the library default) jobs run on threads of this
process, which is enough when the heavy part is ffmpeg's own processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import processes
from ..errors import ExitStatus, JobInvalid
from ..manifestfile import read_manifest
from ..models import ErrorInfo, Job
from ..presets import PresetRegistry, load_presets
from ..runner import EventCallback, Manifest
from ..settings import Settings
from ..storage import Storage, open_storage
from .childprocess import cap_workers
from .childprocess import shutdown as shutdown_job_processes
from .jobs import JobLauncher, JobResult, current_job_id, error_info
from .sources import (
    MAX_JOB_BYTES,
    SHARD_INDEX_VARIABLES,
    BatchEntry,
    JobSource,
    Shard,
    read_job_uri,
    shard_from_env,
    shard_of,
    split_s3_uri,
)

__all__ = [
    "MAX_JOB_BYTES",
    "SHARD_INDEX_VARIABLES",
    "BatchEntry",
    "BatchSummary",
    "JobOutcome",
    "JobSource",
    "Shard",
    "current_job_id",
    "error_info",
    "process_batch",
    "read_job_uri",
    "read_manifest",
    "shard_from_env",
    "shard_of",
    "split_s3_uri",
]

log = logging.getLogger(__name__)

OutcomeStatus = Literal["succeeded", "partial", "failed", "invalid", "error", "skipped",
                        "interrupted"]
OutcomeCallback = Callable[["JobOutcome"], None]
StartCallback = Callable[[BatchEntry], None]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What happened to one entry of a batch.

    ``status`` is the manifest's status (``succeeded``/``partial``/``failed``) for a job that
    ran, ``invalid`` for an unusable entry, ``error`` when the job stopped before writing a
    manifest (e.g. the manifest write itself failed), ``skipped`` when there was nothing to do
    (its manifest exists, or the same job came earlier in the batch) and ``interrupted`` when
    a signal stopped it.
    """

    index: int
    where: str
    job_id: str | None
    status: OutcomeStatus
    manifest: Manifest | None = None
    error: ErrorInfo | None = None
    note: str | None = None
    elapsed_s: float = 0.0
    #: the job's workspace, for the progress lines (not in the stdout line, whose shape is set)
    workspace_id: str | None = None

    @property
    def ok(self) -> bool:
        """Nothing failed: it succeeded or there was nothing to do."""
        return self.status in ("succeeded", "skipped")

    @property
    def failed(self) -> bool:
        """Counts as a failure of the batch (exit status 1, ``--fail-fast``)."""
        return self.status in ("partial", "failed", "invalid", "error")

    def to_dict(self) -> dict[str, Any]:
        """The stdout line: the manifest, or a manifest-shaped record when there is none."""
        if self.manifest is not None:
            return self.manifest.to_dict()
        errors = [self.error.to_dict()] if self.error is not None else []
        return {"job_id": self.job_id, "status": self.status, "source": self.where,
                "accounts": [], "errors": errors}


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Counts for a whole batch, and the outcomes that failed.

    ``total`` counts the entries of this shard that were read: all of them, unless the batch
    was interrupted. ``not_started`` are those that never ran (``--fail-fast``, interrupt).
    """

    total: int
    succeeded: int = 0
    partial: int = 0
    failed: int = 0
    invalid: int = 0
    errors: int = 0
    skipped: int = 0
    not_started: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    failures: tuple[JobOutcome, ...] = ()

    @property
    def ok(self) -> bool:
        """Every scheduled job succeeded or was skipped, and nothing was interrupted."""
        return not (self.partial or self.failed or self.invalid or self.errors
                    or self.interrupted)

    @property
    def exit_status(self) -> ExitStatus:
        """0 all ok, 1 some job failed, 130 interrupted."""
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        return ExitStatus.OK if self.ok else ExitStatus.JOB_FAILED


# --------------------------------------------------------------------------- running


def process_batch(
    jobs: Iterable[Job | BatchEntry],
    *,
    settings: Settings | None = None,
    presets: PresetRegistry | None = None,
    storage: Storage | None = None,
    workers: int | None = None,
    fail_fast: bool = False,
    retry_failed: bool = False,
    shard: Shard | None = None,
    on_event: EventCallback | None = None,
    on_outcome: OutcomeCallback | None = None,
    isolation: Literal["thread", "process"] = "thread",
    on_start: StartCallback | None = None,
) -> BatchSummary:
    """Run many jobs concurrently, each isolated from the others.

    A job whose manifest already exists in the destination is skipped (unless
    ``settings.force``), so running a killed batch again continues where it stopped. A job id
    seen earlier in the same batch is skipped too. Ctrl-C (or SIGTERM turned into
    ``KeyboardInterrupt``) stops scheduling, kills running ffmpeg processes, waits for the
    running jobs to clean up their temporary files, and returns with ``interrupted=True``.

    Args:
        jobs: parsed jobs, or entries of a :class:`JobSource` (unusable ones are reported).
        settings: configuration; defaults to :meth:`Settings.from_env`.
        presets: preset registry; defaults to the bundled presets plus ``settings.presets_dir``.
        storage: the destination; defaults to ``open_storage(settings.dest)``.
        workers: jobs run at the same time; defaults to the CPU count.
        fail_fast: stop scheduling after the first failure (running jobs finish).
        retry_failed: also run jobs whose stored manifest says ``failed`` or ``partial``.
        shard: run only this shard's share of the entries.
        on_event: progress events of every job (called from worker threads).
        on_outcome: called once per entry as it finishes, from the calling thread.
        isolation: ``"process"`` runs every job in its own process (every core busy, a crash
            fails only its job; ``workers`` is then capped so that each process's decode
            budget fits in the available memory); arguments must be picklable. ``"thread"``
            runs jobs on threads of this process.
        on_start: called with each entry whose job is handed to a worker, from the calling
            thread (its outcome follows through ``on_outcome``).

    Returns:
        The counts and the failed outcomes.

    Raises:
        ConfigError: unusable settings or destination.
    """
    settings = settings or Settings.from_env()
    presets = presets or load_presets(settings.presets_dir)
    storage_used = storage or open_storage(settings.dest, endpoint_url=settings.endpoint_url)
    launcher = JobLauncher(settings, presets, storage_used, child_storage=storage,
                           retry_failed=retry_failed, on_event=on_event, isolation=isolation)
    workers = max(1, workers or os.cpu_count() or 1)
    if isolation == "process":
        workers = cap_workers(workers, settings.max_decode_bytes)
    batch = _Batch(launcher, workers=workers, shard=shard or Shard(), fail_fast=fail_fast,
                   on_outcome=on_outcome, on_start=on_start)
    entries = _as_entries(jobs)
    try:
        try:
            batch.schedule(entries)
        except KeyboardInterrupt:
            batch.interrupt()
    finally:
        batch.close()
        with contextlib.suppress(Exception):
            close = getattr(entries, "close", None)
            if close is not None:
                close()
    return batch.summary()


@dataclass
class _Batch:
    """One run of :func:`process_batch`: schedules this shard's entries and counts outcomes.

    At most ``workers`` jobs are submitted: all of them are running, none waits in the pool's
    queue, so ``--fail-fast`` and Ctrl-C never find work half-scheduled.
    """

    launcher: JobLauncher
    workers: int
    shard: Shard
    fail_fast: bool
    on_outcome: OutcomeCallback | None
    on_start: StartCallback | None = None
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    not_started: int = 0
    stopping: bool = False
    interrupted: bool = False
    by_status: dict[str, int] = field(default_factory=dict)
    failures: list[JobOutcome] = field(default_factory=list)
    # By workspace and id: two tenants' "post-42" are two jobs.
    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    inflight: dict[cf.Future[JobOutcome], BatchEntry] = field(default_factory=dict)
    pool: cf.ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.pool = cf.ThreadPoolExecutor(max_workers=self.workers,
                                          thread_name_prefix="conform-job")

    def schedule(self, entries: Iterable[BatchEntry]) -> None:
        """Submit every entry of this shard, then wait for the last jobs."""
        for entry in entries:
            if self.shard.owns(entry.shard_key):
                self.total += 1
                self._offer(entry)
        while self.inflight:
            self._collect()

    def _offer(self, entry: BatchEntry) -> None:
        if self.stopping:
            self.not_started += 1
            return
        if entry.job is None:
            self._finish(_invalid(entry))
            return
        job_key = (entry.job.workspace_id, entry.job.id)
        first = self.seen.get(job_key)
        if first is not None:
            self._finish(JobOutcome(entry.index, entry.where, entry.job.id, "skipped",
                                    workspace_id=entry.job.workspace_id,
                                    note=f"same job as {first}"))
            return
        self.seen[job_key] = entry.where
        while len(self.inflight) >= self.workers:
            self._collect()
        if self.stopping:  # a job that finished while we waited failed (--fail-fast)
            self.not_started += 1
            return
        if self.on_start is not None:
            self.on_start(entry)
        self.inflight[self.pool.submit(_run, self.launcher, entry, entry.job)] = entry

    def _finish(self, outcome: JobOutcome) -> None:
        self.by_status[outcome.status] = self.by_status.get(outcome.status, 0) + 1
        if outcome.failed:
            self.failures.append(outcome)
            self.stopping = self.stopping or self.fail_fast
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _wait(self) -> set[cf.Future[JobOutcome]]:
        # A timeout keeps the main thread returning to Python code, where signals are handled.
        done, _ = cf.wait(list(self.inflight), timeout=0.2, return_when=cf.FIRST_COMPLETED)
        return done

    def _settle(self, done: set[cf.Future[JobOutcome]]) -> None:
        for fut in done:
            self.inflight.pop(fut)
            self._finish(fut.result())

    def _collect(self) -> None:
        self._settle(self._wait())

    def interrupt(self) -> None:
        """Ctrl-C: stop every running job, wait for their clean-up, count them."""
        self.interrupted = True
        log.warning("interrupted: stopping %d running job(s)", len(self.inflight))
        processes.stop_all()
        while self.inflight:
            try:
                done = self._wait()
            except KeyboardInterrupt:
                processes.stop_all()  # a second Ctrl-C: processes were already told to stop
                continue
            self._settle(done)
        processes.reset_stop()  # every job has stopped; a library caller may go on

    def close(self) -> None:
        """Shut the pool (and the job processes) down."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.launcher.isolation == "process":
            shutdown_job_processes()

    def summary(self) -> BatchSummary:
        """The counts so far, as the caller gets them."""
        s = self.by_status
        return BatchSummary(
            total=self.total, succeeded=s.get("succeeded", 0), partial=s.get("partial", 0),
            failed=s.get("failed", 0), invalid=s.get("invalid", 0), errors=s.get("error", 0),
            skipped=s.get("skipped", 0), not_started=self.not_started + s.get("interrupted", 0),
            interrupted=self.interrupted, elapsed_s=time.monotonic() - self.started,
            failures=tuple(self.failures))


def _as_entries(jobs: Iterable[Job | BatchEntry]) -> Iterator[BatchEntry]:
    for index, item in enumerate(jobs, start=1):
        yield item if isinstance(item, BatchEntry) else BatchEntry(index, f"#{index}", job=item)


def _invalid(entry: BatchEntry) -> JobOutcome:
    err = entry.error or JobInvalid([("", "unusable entry")])
    return JobOutcome(entry.index, entry.where, None, "invalid", error=error_info(err))


def _run(launcher: JobLauncher, entry: BatchEntry, job: Job) -> JobOutcome:
    """One entry's job on a worker thread (its own process, if so isolated), as its outcome."""
    started = time.monotonic()
    return _outcome(entry, job, launcher.run(job), time.monotonic() - started)


def _outcome(entry: BatchEntry, job: Job, result: JobResult, elapsed_s: float) -> JobOutcome:
    """The batch's words for how a job ended: the same status, a note for a skipped job."""
    note = "manifest exists" if result.status == "skipped" else None
    return JobOutcome(entry.index, entry.where, job.id, result.status, manifest=result.manifest,
                      error=result.error, note=note, elapsed_s=elapsed_s,
                      workspace_id=job.workspace_id)
