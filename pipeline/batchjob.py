"""What the batch and the queue worker share around one job: the job id for log lines, the
stored manifest that says whether to run it, and its error when it ends without a manifest.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from pathlib import Path

from .errors import JobInvalid, ManifestInvalid, PipelineError, StorageNotFound, public_message
from .manifest import Manifest
from .manifestfile import read_manifest
from .models import ErrorInfo, Job
from .runner import manifest_key
from .storage import Storage

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
    without the workspace (``manifests/<id>.json``), is not read: see README, "Trust
    boundaries", for the migration.

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
