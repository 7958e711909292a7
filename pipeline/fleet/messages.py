"""What the queue worker does with one message's job, apart from the queue itself.

The result records (:class:`MessageResult`, :class:`WorkerSummary`), a message body read as a
job (:func:`read_message`), and the worker's words for how a job ended
(:func:`message_outcome`); the job itself runs as every fleet job does
(:class:`pipeline.fleet.jobs.JobLauncher`). :mod:`pipeline.fleet.worker` settles the message
(delete, retry, release) according to that outcome.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, JobInvalid, PipelineError
from ..job import parse_job_text
from ..models import ErrorInfo, Job
from ..presets import PresetRegistry
from ..runner import Manifest
from ..settings import Settings
from .jobs import JobResult, error_info
from .sources import read_job_uri

log = logging.getLogger(__name__)

MessageOutcome = Literal["succeeded", "partial", "failed", "skipped", "invalid", "retry",
                         "released"]
ResultCallback = Callable[["MessageResult"], None]
#: SQS caps a message at 256 KiB; a bigger manifest is sent by reference only.
_MAX_RESULT_MANIFEST_BYTES = 200_000


@dataclass(frozen=True, slots=True)
class MessageResult:
    """What the worker did with one message.

    ``outcome``: the manifest's status for a job that ran (``succeeded``, ``partial``,
    ``failed``), ``skipped`` when its manifest already said succeeded, ``invalid`` for a message
    that is not a usable job, ``retry`` when the failure was temporary and the message was left
    for redelivery, ``released`` when a stop request interrupted the job and the message was
    made visible again at once.
    """

    message_id: str
    receive_count: int
    outcome: MessageOutcome
    job_id: str | None = None
    manifest: Manifest | None = None
    manifest_uri: str | None = None
    error: ErrorInfo | None = None
    deleted: bool = False
    heartbeats: int = 0
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The completion message (``--results-queue-url``) and the worker's stdout line."""
        out: dict[str, Any] = {"message_id": self.message_id, "job_id": self.job_id,
                               "status": self.outcome, "receive_count": self.receive_count,
                               "manifest_uri": self.manifest_uri}
        if self.error is not None:
            out["errors"] = [self.error.to_dict()]
        if self.manifest is not None:
            out["manifest"] = self.manifest.to_dict()
        return out

    def completion_message(self) -> str:
        """:meth:`to_dict` as a queue message; without the manifest when it would not fit."""
        data = self.to_dict()
        body = json.dumps(data, separators=(",", ":"))
        if len(body.encode()) > _MAX_RESULT_MANIFEST_BYTES:
            data.pop("manifest", None)
            body = json.dumps(data, separators=(",", ":"))
        return body


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    """Why the worker stopped and what it handled."""

    messages: int
    by_outcome: Mapping[str, int]
    stopped_by: Literal["max_messages", "idle", "stop", "interrupt"]
    interrupted_job: bool = False


StopReason = Literal["max_messages", "idle", "stop", "interrupt"]


@dataclass
class LoopState:
    """What the receive loops of one :meth:`Worker.run` share: how many messages each may
    still take, what they handled, and why they stop."""

    last_message: float
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    claimed: int = 0
    handled: int = 0
    by_outcome: dict[str, int] = dataclasses.field(default_factory=dict)
    stopped_by: StopReason | None = None
    interrupted_job: bool = False
    done: bool = False
    error: Exception | None = None

    def stop(self, reason: StopReason) -> None:
        """End every loop (the first reason given is the one reported)."""
        with self.lock:
            self.stop_locked(reason)

    def stop_locked(self, reason: StopReason) -> None:
        """:meth:`stop` with :attr:`lock` already held."""
        self.done = True
        self.stopped_by = self.stopped_by or reason

    def claim(self, *, stopped: bool, max_messages: int | None, wait_time_s: int,
              idle_exit_s: float | None) -> int | None:
        """May a loop receive one more message? Its long-poll wait, or ``None``: stop.

        A message a loop may receive counts against ``max_messages`` until
        :meth:`record` says none came.
        """
        with self.lock:
            if stopped or self.done:
                return None
            if max_messages is not None and self.claimed >= max_messages:
                self.stop_locked("max_messages")
                return None
            wait = wait_time_s
            if idle_exit_s is not None:
                left = idle_exit_s - (time.monotonic() - self.last_message)
                if left <= 0:
                    self.stop_locked("idle")
                    return None
                wait = max(0, min(wait, int(left + 0.999)))
            self.claimed += 1
            return wait

    def record(self, result: MessageResult | None) -> None:
        """What one receive brought: nothing (the claim is returned) or a handled message."""
        with self.lock:
            if result is None:
                self.claimed -= 1
                return
            self.last_message = time.monotonic()
            self.handled += 1
            self.by_outcome[result.outcome] = self.by_outcome.get(result.outcome, 0) + 1
            if result.outcome == "released":
                self.interrupted_job = True
                self.stop_locked("interrupt")


def check_limits(wait_time_s: int, visibility_timeout_s: int | None, retry_delay_s: int,
                 workers: int) -> None:
    """SQS's own limits, checked before anything is received.

    Raises:
        ConfigError: a value outside its limit.
    """
    if not 0 <= wait_time_s <= 20:
        raise ConfigError("wait time must be between 0 and 20 seconds (an SQS limit)")
    if visibility_timeout_s is not None and not 1 <= visibility_timeout_s <= 43200:
        raise ConfigError("visibility timeout must be between 1 s and 12 h (an SQS limit)")
    if not 0 <= retry_delay_s <= 43200:
        raise ConfigError("retry delay must be between 0 s and 12 h (an SQS limit)")
    if workers < 1:
        raise ConfigError("workers must be at least 1")


def read_message(body: str, *, settings: Settings, presets: PresetRegistry) -> Job | JobResult:
    """The job of a message body (its JSON or an ``s3://`` URI of it), or why not (an
    ``error`` result: :func:`message_outcome` says ``invalid``, ``retry`` or ``failed``)."""
    try:
        text = body.strip()
        if not text:
            raise JobInvalid([("", "empty message")])
        if text.lower().startswith("s3://"):
            text = read_job_uri(text, settings=settings)
        return parse_job_text(text, presets, workspace=settings.workspace)
    except JobInvalid as err:
        log.info("message is not a usable job: %s", err.message)
        return JobResult("error", error=error_info(err))
    except PipelineError as err:
        log.warning("message failed: %s", err.message)
        return JobResult("error", error=error_info(err))


def message_outcome(result: JobResult) -> MessageOutcome:
    """What the worker does with a message, by how its job ended.

    A job that ran keeps its manifest's status, unless every failure in it may pass (then
    ``retry``: the message comes back); ``skipped`` stays; a stop request ``released`` it;
    a job that ended without a manifest is ``invalid`` (not a usable job), ``retry`` when the
    error may pass (a bug, a lost job process, a storage outage) or ``failed``.
    """
    if result.manifest is not None:
        manifest = result.manifest
        return "retry" if not manifest.ok and manifest.retryable else manifest.status
    if result.error is not None:
        if result.error.code == JobInvalid.code:
            return "invalid"
        return "retry" if result.error.retryable else "failed"
    return "released" if result.status == "interrupted" else "skipped"


class Heartbeat:
    """Keeps a message invisible while its job runs, by extending the visibility timeout."""

    def __init__(self, sqs: Any, queue_url: str, receipt: str, visibility_s: int,
                 job: Callable[[], tuple[str | None, str | None]],
                 errors: tuple[type[Exception], ...]) -> None:
        """``job``: the (job id, workspace id) being worked on, once the message is read;
        ``errors``: what a failed extension raises (the SQS client's own exceptions)."""
        self._sqs, self._queue_url, self._receipt = sqs, queue_url, receipt
        self._errors = errors
        self._visibility_s = visibility_s
        # Extend at a third of the timeout: two extensions may fail before the message shows.
        self._interval_s = max(0.2, visibility_s / 3)
        self._stop = threading.Event()
        self._job = job
        self.count = 0
        self._thread = threading.Thread(target=self._run, name="conform-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop extending, and wait so no extension races the delete or the release."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._sqs.change_message_visibility(QueueUrl=self._queue_url,
                                                    ReceiptHandle=self._receipt,
                                                    VisibilityTimeout=self._visibility_s)
                self.count += 1
            except self._errors as err:
                # Another consumer may get the message; outputs are idempotent, so go on.
                job_id, workspace_id = self._job()
                log.warning("job %s: cannot extend the message's visibility: %s", job_id, err,
                            extra={"job_id": job_id, "workspace_id": workspace_id})
