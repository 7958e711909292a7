"""Many jobs at once: read a batch source, pick this shard's jobs, run them side by side.

A source is a JSON Lines file, a folder of job JSON files, stdin, or an ``s3://`` URI of either.
Every entry is isolated: an unreadable line becomes an ``invalid`` outcome with its line number
and the batch goes on. ``isolation="process"`` (what ``conform batch`` uses) runs each job in
its own process (:mod:`pipeline.jobprocess`): Pillow holds the GIL while it works, so image jobs
on threads would share one core. With ``"thread"`` (the library default) jobs run on threads of
this process, which is enough when the heavy part is ffmpeg's own processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import unquote, urlsplit

from . import ffmpeg, jobprocess, workdir
from .errors import (
    ConfigError,
    ExitStatus,
    Interrupted,
    JobInvalid,
    PipelineError,
    StorageNotFound,
    public_message,
)
from .job import parse_job_text
from .models import ErrorInfo, Job
from .presets import PresetRegistry, load_presets
from .runner import EventCallback, Manifest, manifest_key, process
from .settings import Settings
from .storage import Storage, open_storage

log = logging.getLogger(__name__)

#: A Create-Post request is a few KB; a bigger entry is refused rather than read into memory.
MAX_JOB_BYTES = 4 * 1024 * 1024

#: The job a thread is working on, for log lines (the CLI's log formatter reads it).
current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conform_job_id", default=None)

OutcomeStatus = Literal["succeeded", "partial", "failed", "invalid", "error", "skipped",
                        "interrupted"]
OutcomeCallback = Callable[["JobOutcome"], None]


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One entry of a batch source: a parsed job, or the reason it could not be read.

    Attributes:
        index: 1-based position in the source (the line number of a JSON Lines file).
        where: where it came from, for messages: ``jobs.jsonl:12``, ``jobs/post-1.json``.
        job: the parsed job, or ``None`` when the entry is unusable.
        error: why the entry is unusable (a :class:`JobInvalid`), else ``None``.
    """

    index: int
    where: str
    job: Job | None = None
    error: PipelineError | None = None

    @property
    def shard_key(self) -> str:
        """What decides the shard: the job id, or the position of an unusable entry.

        The position, not ``where``: every pod of a cluster job must agree, even when they
        spell the source's path differently.
        """
        return self.job.id if self.job is not None else f"entry:{self.index}"


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


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's share of a batch: entries whose key hashes to ``index`` mod ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard index must be in 0..count-1, got {self.index} of "
                              f"{self.count}")

    def owns(self, key: str) -> bool:
        """Whether the entry with this key belongs to this shard."""
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The shard of a job id: stable across runs, machines and Python versions.

    sha256 rather than ``hash()``, which is salted per process.
    """
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


SHARD_INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")


def shard_from_env(index: int | None, count: int | None,
                   environ: dict[str, str] | None = None) -> Shard:
    """Resolve ``--shard-index``/``--shard-count``, taking the index from the orchestrator.

    Kubernetes Indexed Jobs set ``JOB_COMPLETION_INDEX`` and AWS Batch array jobs set
    ``AWS_BATCH_JOB_ARRAY_INDEX``; neither says how many shards there are, so the count is
    always given (``--shard-count`` or ``CONFORM_SHARD_COUNT``).

    Raises:
        ConfigError: an index without a count, a value that is not a number, or out of range.
    """
    env = dict(os.environ if environ is None else environ)
    origin = "--shard-index"
    if index is None:
        for name in SHARD_INDEX_VARIABLES:
            if env.get(name, "") != "":
                index, origin = _int_var(env[name], name), name
                break
    if count is None and env.get("CONFORM_SHARD_COUNT", "") != "":
        count = _int_var(env["CONFORM_SHARD_COUNT"], "CONFORM_SHARD_COUNT")
    if index is None and count is None:
        return Shard()
    if count is None:
        raise ConfigError(f"the shard index comes from {origin}; give --shard-count too")
    return Shard(index or 0, count)


def _int_var(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from err


# --------------------------------------------------------------------------- reading sources


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``.

    Raises:
        ConfigError: not an s3:// URI with a bucket.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"expected s3://bucket/key, got {uri!r}")
    return parts.netloc, unquote(parts.path).lstrip("/")


def read_job_uri(uri: str, *, settings: Settings, workdir: Path | None = None) -> str:
    """Read one job document from ``s3://bucket/key`` (``CONFORM_JOB_URI``, a queue message).

    Raises:
        JobInvalid: no such object, too big, or not UTF-8 text.
        ConfigError: not an s3:// URI.
        StorageError: the read failed (retryable ones may pass).
    """
    bucket, key = split_s3_uri(uri)
    if not key:
        raise ConfigError(f"the job URI names no object: {uri!r}")
    store = open_storage(f"s3://{bucket}", endpoint_url=settings.endpoint_url)
    where = workdir or settings.workdir
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conform-jobfile-", dir=where) as tmp:
        head = store.head(key)
        if head is None:
            raise JobInvalid([("", f"cannot read the job {uri}: no such object")])
        if head.size_bytes > MAX_JOB_BYTES:
            raise JobInvalid([("", f"the job {uri} is {head.size_bytes} bytes, over the "
                                   f"{MAX_JOB_BYTES}-byte limit")])
        try:
            local = store.get_file(key, Path(tmp) / "job.json")
        except StorageNotFound as err:
            raise JobInvalid([("", f"cannot read the job {uri}: no such object")]) from err
        try:
            return local.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise JobInvalid([("", f"the job {uri} is not UTF-8 text: {err}")]) from err


class JobSource:
    """A batch SOURCE opened for reading; :meth:`entries` can be iterated more than once.

    stdin and S3 sources are first copied to a spool folder in the workdir (disk, not memory),
    so that the total can be counted before the run and each entry is read only when its turn
    comes. Use as a context manager, or call :meth:`close`, to remove the spool.
    """

    def __init__(self, spec: str, *, presets: PresetRegistry, settings: Settings,
                 stdin: IO[bytes] | None = None) -> None:
        """Open ``spec`` (see the module docstring).

        Raises:
            ConfigError: no such file or folder, or an unusable URI.
            JobInvalid: an S3 URI that names nothing.
            StorageError: an S3 source could not be read.
        """
        self.spec = spec
        self.presets = presets
        self.workspace = settings.workspace
        self._spool: Path | None = None
        self._label = spec
        if spec == "-":
            self._label = "<stdin>"
            self._path = self._spool_dir(settings) / "stdin.jsonl"
            try:
                with self._path.open("wb") as out:
                    shutil.copyfileobj(stdin or sys.stdin.buffer, out)
            except BaseException:
                self.close()
                raise
        elif spec.lower().startswith("s3://"):
            try:
                self._path = self._download(spec, settings)
            except BaseException:
                self.close()
                raise
        elif "://" in spec:
            raise ConfigError(f"batch source must be a file, a folder, - or s3://, got {spec!r}")
        else:
            self._path = Path(spec)
            if not self._path.exists():
                raise ConfigError(f"batch source {spec!r}: no such file or folder")

    def __enter__(self) -> JobSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the spooled copy of a stdin or S3 source."""
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def _spool_dir(self, settings: Settings) -> Path:
        settings.workdir.mkdir(parents=True, exist_ok=True)
        self._spool = Path(tempfile.mkdtemp(prefix="conform-batch-", dir=settings.workdir))
        return self._spool

    def _download(self, uri: str, settings: Settings) -> Path:
        bucket, key = split_s3_uri(uri)
        store = open_storage(f"s3://{bucket}", endpoint_url=settings.endpoint_url)
        spool = self._spool_dir(settings)
        if key and not key.endswith("/") and store.exists(key):
            return store.get_file(key, spool / "source.jsonl")
        prefix = key if not key or key.endswith("/") else key + "/"
        folder = spool / "source"
        folder.mkdir()
        found = 0
        for name in store.list(prefix):
            rel = name[len(prefix):]
            if rel.endswith(".json") and "/" not in rel:
                store.get_file(name, folder / rel)
                found += 1
        if not found:
            raise JobInvalid([("", f"batch source {uri}: no such object and no .json files "
                                   f"under {prefix or 'the bucket'}")])
        self._label = uri.rstrip("/")
        return folder

    def entries(self) -> Iterator[BatchEntry]:
        """Every entry of the source, in order, parsed (or with the reason it is unusable).

        Raises:
            ConfigError: the source can no longer be read.
        """
        if self._path.is_dir():
            return self._folder_entries()
        return self._line_entries()

    def _folder_entries(self) -> Iterator[BatchEntry]:
        try:
            files = sorted(p for p in self._path.iterdir() if p.suffix == ".json" and p.is_file())
        except OSError as err:
            raise ConfigError(f"batch source {self.spec!r}: {err}") from err
        for index, path in enumerate(files, start=1):
            where = f"{self._label.rstrip('/')}/{path.name}"
            try:
                if path.stat().st_size > MAX_JOB_BYTES:
                    raise JobInvalid([("", f"over the {MAX_JOB_BYTES}-byte limit for a job")])
                text = path.read_bytes()
            except OSError as err:
                yield BatchEntry(index, where, error=JobInvalid([("", f"unreadable: {err}")]))
                continue
            except JobInvalid as err:
                yield BatchEntry(index, where, error=err)
                continue
            yield self._entry(index, where, text)

    def _line_entries(self) -> Iterator[BatchEntry]:
        try:
            fh = self._path.open("rb")
        except OSError as err:
            raise ConfigError(f"batch source {self.spec!r}: {err}") from err
        with fh:
            number = 0
            while True:
                line = fh.readline(MAX_JOB_BYTES + 1)
                if not line:
                    return
                number += 1
                where = f"{self._label}:{number}"
                if len(line) > MAX_JOB_BYTES and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # skip the rest of the line
                        line = fh.readline(1 << 20)
                    yield BatchEntry(number, where, error=JobInvalid(
                        [("", f"line longer than the {MAX_JOB_BYTES}-byte limit for a job")]))
                    continue
                if not line.strip():
                    continue
                yield self._entry(number, where, line)

    def _entry(self, index: int, where: str, text: bytes) -> BatchEntry:
        try:
            return BatchEntry(index, where, job=parse_job_text(text, self.presets,
                                                               workspace=self.workspace))
        except JobInvalid as err:
            return BatchEntry(index, where, error=err)


# --------------------------------------------------------------------------- running


def read_manifest(storage: Storage, job: Job, workdir: Path) -> dict[str, Any] | None:
    """The stored manifest of ``job``, or ``None`` when there is none (or it is unreadable).

    Only the job's own workspace is looked in (``manifests/<workspace_id>/<id>.json``): the
    same id in another workspace is another job. A manifest of an older version, stored
    without the workspace (``manifests/<id>.json``), is not read: see README, "Trust
    boundaries", for the migration.

    Raises:
        StorageError: the store could not be asked.
    """
    job_id = job.id
    key = manifest_key(job.workspace_id, job.id)
    if not storage.exists(key):
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conform-manifest-", dir=workdir) as tmp:
        try:
            data = json.loads(storage.get_file(key, Path(tmp) / "m.json").read_text())
        except StorageNotFound:
            return None
        except (OSError, ValueError):
            log.warning("job %s: stored manifest is unreadable; running the job again", job_id,
                        extra={"job_id": job_id})
            return None
    return data if isinstance(data, dict) else None


@dataclass
class _Counts:
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    failures: list[JobOutcome] = field(default_factory=list)

    def add(self, outcome: JobOutcome) -> None:
        self.by_status[outcome.status] = self.by_status.get(outcome.status, 0) + 1
        if outcome.failed:
            self.failures.append(outcome)


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

    Returns:
        The counts and the failed outcomes.

    Raises:
        ConfigError: unusable settings or destination.
    """
    settings = settings or Settings.from_env()
    presets = presets or load_presets(settings.presets_dir)
    given_storage = storage is not None
    storage = storage or open_storage(settings.dest, endpoint_url=settings.endpoint_url)
    workers = max(1, workers or os.cpu_count() or 1)
    if isolation == "process":
        workers = jobprocess.cap_workers(workers, settings.max_decode_bytes)
    shard = shard or Shard()
    started = time.monotonic()
    counts = _Counts()
    seen: dict[tuple[str, str], str] = {}
    stopping = interrupted = False
    not_started = 0

    def finish(outcome: JobOutcome) -> None:
        nonlocal stopping
        counts.add(outcome)
        if outcome.failed and fail_fast:
            stopping = True
        if on_outcome is not None:
            on_outcome(outcome)

    # A storage the caller gave goes to the job processes as it is; else each opens its own.
    child_storage = storage if given_storage else None

    def run_one(entry: BatchEntry, job: Job) -> JobOutcome:
        if isolation == "process":
            return _run_in_process(entry, job, settings=settings, presets=presets,
                                   storage=child_storage, retry_failed=retry_failed,
                                   on_event=on_event)
        return _run_one(entry, job, settings=settings, presets=presets, storage=storage,
                        retry_failed=retry_failed, on_event=on_event)

    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="conform-job")
    inflight: dict[cf.Future[JobOutcome], BatchEntry] = {}
    entries = _as_entries(jobs)
    try:
        try:
            for entry in entries:
                if not shard.owns(entry.shard_key):
                    continue
                counts.total += 1
                if stopping:
                    not_started += 1
                    continue
                if entry.job is None:
                    finish(_invalid(entry))
                    continue
                # By workspace and id: two tenants' "post-42" are two jobs.
                job_key = (entry.job.workspace_id, entry.job.id)
                first = seen.get(job_key)
                if first is not None:
                    finish(JobOutcome(entry.index, entry.where, entry.job.id, "skipped",
                                      note=f"same job as {first}"))
                    continue
                seen[job_key] = entry.where
                # At most `workers` jobs submitted: all of them are running, none waits in
                # the pool's queue, so --fail-fast and Ctrl-C never find work half-scheduled.
                while len(inflight) >= workers:
                    _collect(inflight, finish, block=True)
                if stopping:  # a job that finished while we waited failed (--fail-fast)
                    not_started += 1
                    continue
                inflight[pool.submit(run_one, entry, entry.job)] = entry
            while inflight:
                _collect(inflight, finish, block=True)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted: stopping %d running job(s)", len(inflight))
            ffmpeg.stop_all()
            jobprocess.stop_children()
            _drain(inflight, finish)
            with contextlib.suppress(Exception):
                ffmpeg.reset_stop()  # every job has stopped; a library caller may go on
                jobprocess.reset_stop()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if isolation == "process":
            jobprocess.shutdown()
        with contextlib.suppress(Exception):
            close = getattr(entries, "close", None)
            if close is not None:
                close()
    s = counts.by_status
    return BatchSummary(
        total=counts.total, succeeded=s.get("succeeded", 0), partial=s.get("partial", 0),
        failed=s.get("failed", 0), invalid=s.get("invalid", 0), errors=s.get("error", 0),
        skipped=s.get("skipped", 0),
        not_started=not_started + s.get("interrupted", 0),
        interrupted=interrupted, elapsed_s=time.monotonic() - started,
        failures=tuple(counts.failures))


def _as_entries(jobs: Iterable[Job | BatchEntry]) -> Iterator[BatchEntry]:
    for index, item in enumerate(jobs, start=1):
        yield item if isinstance(item, BatchEntry) else BatchEntry(index, f"#{index}", job=item)


def _collect(inflight: dict[cf.Future[JobOutcome], BatchEntry],
             finish: Callable[[JobOutcome], None], *, block: bool) -> None:
    # A timeout keeps the main thread returning to Python code, where signals are handled.
    done, _ = cf.wait(list(inflight), timeout=0.2 if block else 0,
                      return_when=cf.FIRST_COMPLETED)
    for fut in done:
        inflight.pop(fut)
        finish(fut.result())


def _drain(inflight: dict[cf.Future[JobOutcome], BatchEntry],
           finish: Callable[[JobOutcome], None]) -> None:
    """Wait for running jobs after an interrupt; their ``finally`` blocks remove temp files."""
    while inflight:
        try:
            done, _ = cf.wait(list(inflight), timeout=0.2)
        except KeyboardInterrupt:
            ffmpeg.stop_all()  # a second Ctrl-C: processes were already told to stop
            jobprocess.stop_children()
            continue
        for fut in done:
            inflight.pop(fut)
            finish(fut.result())


def _invalid(entry: BatchEntry) -> JobOutcome:
    err = entry.error or JobInvalid([("", "unusable entry")])
    message = err.message
    if isinstance(err, JobInvalid):
        message = "; ".join(f"{p}: {m}" if p else m for p, m in err.problems)
    return JobOutcome(entry.index, entry.where, None, "invalid",
                      error=ErrorInfo(err.code, message, err.http_status))


def _run_in_process(entry: BatchEntry, job: Job, *, settings: Settings,
                    presets: PresetRegistry, storage: Storage | None, retry_failed: bool,
                    on_event: EventCallback | None) -> JobOutcome:
    """:func:`_run_one` in a process of its own; a process that dies fails only its job."""
    token = current_job_id.set(job.id)
    started = time.monotonic()
    try:
        result = jobprocess.run_in_process(_run_one, entry, job, settings=settings,
                                           presets=presets, storage=storage,
                                           retry_failed=retry_failed, on_event=on_event)
        if isinstance(result, JobOutcome):
            return result
        elapsed = time.monotonic() - started
        if jobprocess.stopping():  # killed by the stop request before it could answer
            return JobOutcome(entry.index, entry.where, job.id, "interrupted", elapsed_s=elapsed)
        reason = result.reason if isinstance(result, jobprocess.ChildDied) else "sent no result"
        log.error("job %s: its process %s", job.id, reason, extra={"job_id": job.id})
        workdir.clean_stale(settings.workdir)  # the work folder the dead process left
        return JobOutcome(entry.index, entry.where, job.id, "error", elapsed_s=elapsed,
                          error=ErrorInfo("internal", f"internal error: the job's process "
                                          f"{reason}", 500, retryable=True))
    finally:
        current_job_id.reset(token)


def _run_one(entry: BatchEntry, job: Job, *, settings: Settings, presets: PresetRegistry,
             storage: Storage | None, retry_failed: bool,
             on_event: EventCallback | None = None) -> JobOutcome:
    """One job in a worker thread or process; every error becomes the outcome, never raises."""
    token = current_job_id.set(job.id)
    started = time.monotonic()

    def outcome(status: OutcomeStatus, **kw: Any) -> JobOutcome:
        return JobOutcome(entry.index, entry.where, job.id, status,
                          elapsed_s=time.monotonic() - started, **kw)

    try:
        if storage is None:
            storage = open_storage(settings.dest, endpoint_url=settings.endpoint_url)
        if not settings.force:
            stored = read_manifest(storage, job, settings.workdir)
            if stored is not None and not (retry_failed and stored.get("status") != "succeeded"):
                return outcome("skipped", note="manifest exists")
        manifest = process(job, settings=settings, presets=presets, storage=storage,
                           on_event=on_event)
        status: OutcomeStatus = ("succeeded" if manifest.status == "succeeded" else
                                 "partial" if manifest.status == "partial" else "failed")
        return outcome(status, manifest=manifest)
    except Interrupted:
        return outcome("interrupted")
    except PipelineError as err:
        log.warning("job %s failed: %s", job.id, err.message, extra={"job_id": job.id})
        return outcome("error", error=ErrorInfo(err.code, public_message(err.message),
                                                err.http_status, retryable=err.retryable))
    except Exception as err:  # one job's bug must not stop the batch
        log.exception("job %s: unexpected error", job.id, extra={"job_id": job.id})
        return outcome("error", error=ErrorInfo("internal", f"internal error: "
                                                f"{type(err).__name__}: {err}", 500))
    finally:
        current_job_id.reset(token)
