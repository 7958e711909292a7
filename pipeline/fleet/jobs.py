"""One fleet job, written once: what the batch and the queue worker share around a job.

:class:`JobLauncher` runs a job (on the caller's thread or in a process of its own) and returns
how it ended as one frozen :class:`JobResult`; :mod:`pipeline.fleet.batch` and
:mod:`pipeline.fleet.messages` only put that result in their own words (a batch's outcome, what to
do with a queue message). Around it: the job id for log lines, the stored manifest that says
whether to run the job, and its error when it ends without a manifest.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .. import processes, workdir
from ..errors import (
    Interrupted,
    JobInvalid,
    ManifestInvalid,
    PipelineError,
    StorageNotFound,
    public_message,
)
from ..manifestfile import read_manifest
from ..models import ErrorInfo, Job
from ..presets import PresetRegistry
from ..runner import EventCallback, Manifest, manifest_key, process
from ..settings import Settings
from ..storage import Storage, open_storage
from . import childprocess

__all__ = [
    "JobLauncher",
    "JobResult",
    "JobStatus",
    "current_job_id",
    "error_info",
    "run_job",
    "stored_manifest",
]

log = logging.getLogger(__name__)

#: The job a thread is working on, for log lines (the CLI's log formatter reads it).
current_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conform_job_id", default=None)
#: Its workspace: log lines name both, so an operator can filter one tenant (job ids are the
#: tenant's own and may repeat across workspaces). Read only alongside ``current_job_id``.
current_workspace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conform_workspace_id", default=None)

JobTokens = tuple[contextvars.Token[str | None], contextvars.Token[str | None]]


def set_current_job(job_id: str | None, workspace_id: str | None) -> JobTokens:
    """Name the job (and its workspace) the calling thread works on, for its log lines.

    Returns:
        what :func:`reset_current_job` takes to restore the previous job.
    """
    return current_job_id.set(job_id), current_workspace_id.set(workspace_id)


def reset_current_job(tokens: JobTokens) -> None:
    """Restore the job named before :func:`set_current_job`."""
    current_job_id.reset(tokens[0])
    current_workspace_id.reset(tokens[1])


def current_job() -> tuple[str | None, str | None]:
    """The job id and workspace id the calling thread works on (``None``, ``None`` if none)."""
    job_id = current_job_id.get()
    return job_id, current_workspace_id.get() if job_id else None


def stored_manifest(storage: Storage, job: Job, workdir: Path) -> Manifest | None:
    """The stored manifest of ``job``, or ``None`` when there is none (or it is unreadable).

    Only the job's own workspace is looked in (``manifests/<workspace_id>/<id>.json``): the
    same id in another workspace is another job. A manifest of an older version, stored
    without the workspace (``manifests/<id>.json``), is not read: see
    docs/storage-and-safety.md, "Trust boundaries", for the migration.

    Raises:
        StorageError: the store could not be asked.
    """
    try:
        return read_manifest(storage, manifest_key(job.workspace_id, job.id), workdir=workdir)
    except StorageNotFound:
        return None
    except ManifestInvalid as err:
        log.warning("job %s: stored manifest is unreadable (%s); running the job again",
                    job.id, err.message, extra={"job_id": job.id})
        return None


def error_info(err: BaseException) -> ErrorInfo:
    """The error of a job that ended without a manifest, as the batch and the worker report it.

    :meth:`ErrorInfo.from_error`, with the server's paths cut from a library error's message
    (the line goes back to the API caller). The problems of an invalid job quote the caller's
    own document and are kept as they are.
    """
    info = ErrorInfo.from_error(err)
    if isinstance(err, PipelineError) and not isinstance(err, JobInvalid):
        return dataclasses.replace(info, message=public_message(info.message))
    return info


# --------------------------------------------------------------------------- one job

#: How a job ended: its manifest's status when it ran; ``skipped`` when its stored manifest
#: leaves nothing to do; ``interrupted`` when a stop request ended it; ``error`` when it ended
#: without a manifest.
JobStatus = Literal["succeeded", "partial", "failed", "skipped", "interrupted", "error"]
_RAN = ("succeeded", "partial", "failed")


@dataclass(frozen=True, slots=True)
class JobResult:
    """How one job ended, the same for the batch and the queue worker.

    ``manifest`` is there exactly when the job ran (``status`` is then its status), ``uri``
    says where the manifest is stored (for a skipped job, the stored one), and ``error``
    is there exactly when ``status`` is ``error``. A job process sends it back whole (it
    pickles), so the parent reports and counts every job's figures.
    """

    status: JobStatus
    manifest: Manifest | None = None
    uri: str | None = None
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        if (self.manifest is not None) != (self.status in _RAN):
            raise ValueError(f"a {self.status!r} job result with manifest={self.manifest!r}")
        if self.manifest is not None and self.manifest.status != self.status:
            raise ValueError(f"a {self.status!r} job result for a "
                             f"{self.manifest.status!r} manifest")
        if (self.error is not None) != (self.status == "error"):
            raise ValueError(f"a {self.status!r} job result with error={self.error!r}")


def run_job(job: Job, *, settings: Settings, presets: PresetRegistry, storage: Storage | None,
            retry_failed: bool, on_event: EventCallback | None = None) -> JobResult:
    """Run one job here (a worker thread, or the job's own process); never raises.

    A job whose stored manifest exists is skipped (unless ``settings.force``); with
    ``retry_failed`` only when that manifest says ``succeeded``. Every error becomes the
    result's ``error``: a library error as it is, anything else (a bug, not the job's input)
    as a retryable ``internal`` error.
    """
    token = set_current_job(job.id, job.workspace_id)
    try:
        if storage is None:
            storage = open_storage(settings.dest, endpoint_url=settings.endpoint_url)
        if not settings.force:
            stored = stored_manifest(storage, job, settings.workdir)
            if stored is not None and not (retry_failed and stored.status != "succeeded"):
                return JobResult("skipped", uri=storage.uri(manifest_key(job.workspace_id,
                                                                         job.id)))
        manifest = process(job, settings=settings, presets=presets, storage=storage,
                           on_event=on_event)
        return JobResult(manifest.status, manifest, manifest.uri)
    except (Interrupted, KeyboardInterrupt):
        processes.stop_all()  # Ctrl-C on this thread: nothing of the job may run on
        return JobResult("interrupted")
    except PipelineError as err:
        log.warning("job %s failed: %s", job.id, err.message, extra={"job_id": job.id})
        return JobResult("error", error=error_info(err))
    except Exception as err:  # one job's bug must not stop the batch or the worker
        log.exception("job %s: unexpected error", job.id, extra={"job_id": job.id})
        return JobResult("error", error=dataclasses.replace(error_info(err), retryable=True))
    finally:
        reset_current_job(token)


@dataclass(frozen=True, slots=True)
class JobLauncher:
    """How every job of a batch or a worker runs: the same arguments for each job."""

    settings: Settings
    presets: PresetRegistry
    storage: Storage
    # A storage the caller gave goes to the job processes as it is; else each opens its own.
    child_storage: Storage | None
    retry_failed: bool
    on_event: EventCallback | None
    isolation: Literal["thread", "process"]

    def run(self, job: Job) -> JobResult:
        """Run ``job`` as :attr:`isolation` says; never raises for the job's failure.

        A job process that dies without a result (a crash, the OOM killer) ends the job with
        a retryable error, and the work folder it left is removed; one stopped by
        :func:`pipeline.processes.stop_all` before it could answer ends ``interrupted``.
        """
        token = set_current_job(job.id, job.workspace_id)
        try:
            if self.isolation == "thread":
                return run_job(job, settings=self.settings, presets=self.presets,
                               storage=self.storage, retry_failed=self.retry_failed,
                               on_event=self.on_event)
            return self._in_process(job)
        finally:
            reset_current_job(token)

    def _in_process(self, job: Job) -> JobResult:
        result = childprocess.run_in_process(run_job, job, settings=self.settings,
                                           presets=self.presets, storage=self.child_storage,
                                           retry_failed=self.retry_failed,
                                           on_event=self.on_event)
        if isinstance(result, JobResult):
            return result
        if processes.stopping():  # killed by the stop request before it could answer
            return JobResult("interrupted")
        lost = childprocess.JobProcessLost(result)
        log.error("job %s: its process %s", job.id, lost.reason, extra={"job_id": job.id})
        workdir.clean_stale(self.settings.workdir)  # the work folder the dead process left
        return JobResult("error", error=error_info(lost))
