"""Queue worker: take jobs from an SQS-compatible queue, run them, delete each message only after
its manifest is written.

Delivery is at-least-once, effects are exactly-once: outputs are content-addressed and a job
whose manifest already says ``succeeded`` is not run again, so a message delivered twice does
the work once. A retryable failure leaves the message for redelivery (the queue's redrive policy
moves a poison message to its dead-letter queue); a permanent failure is done (the manifest says
failed) and the message is deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as botoexc
from botocore.config import Config

from . import ffmpeg, jobprocess, workdir
from .batch import current_job_id, read_job_uri, read_manifest
from .errors import ConfigError, Interrupted, JobInvalid, PipelineError, public_message
from .job import parse_job_text
from .models import ErrorInfo, Job
from .presets import PresetRegistry, load_presets
from .runner import EventCallback, Manifest, manifest_key, process
from .settings import Settings
from .storage import Storage, open_storage

log = logging.getLogger(__name__)

MessageOutcome = Literal["succeeded", "partial", "failed", "skipped", "invalid", "retry",
                         "released"]
ResultCallback = Callable[["MessageResult"], None]

#: SQS caps a message at 256 KiB; a bigger manifest is sent by reference only.
_MAX_RESULT_MANIFEST_BYTES = 200_000
_SQS_ERRORS = (botoexc.BotoCoreError, botoexc.ClientError)


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


@dataclass(frozen=True, slots=True)
class WorkerSummary:
    """Why the worker stopped and what it handled."""

    messages: int
    by_outcome: Mapping[str, int]
    stopped_by: Literal["max_messages", "idle", "stop", "interrupt"]
    interrupted_job: bool = False


def _region_from_queue_url(queue_url: str) -> str | None:
    """``https://sqs.eu-west-1.amazonaws.com/...`` → ``eu-west-1`` (also the legacy host form)."""
    host = urlsplit(queue_url).hostname or ""
    match = re.match(r"^(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.(?:queue\.)?amazonaws\.com", host)
    return match.group(1) if match else None


def sqs_client(queue_url: str, *, endpoint_url: str | None = None) -> Any:
    """A boto3 SQS client configured from the standard AWS settings.

    The endpoint comes from ``endpoint_url``, else ``AWS_ENDPOINT_URL_SQS`` /
    ``AWS_ENDPOINT_URL`` (read by boto3 itself); the region from the AWS configuration, else
    from the queue URL.

    Raises:
        ConfigError: the AWS configuration is unusable.
    """
    try:
        session = boto3.session.Session()
        region = session.region_name or _region_from_queue_url(queue_url) or "us-east-1"
        # read_timeout above the 20 s long poll, or every idle poll would end in a timeout.
        config = Config(retries={"mode": "standard", "total_max_attempts": 5},
                        read_timeout=60, connect_timeout=10)
        return session.client("sqs", region_name=region, endpoint_url=endpoint_url or None,
                              config=config)
    except (botoexc.BotoCoreError, ValueError) as err:
        raise ConfigError(f"cannot create the SQS client: {err}") from err


class _Heartbeat:
    """Keeps a message invisible while its job runs, by extending the visibility timeout."""

    def __init__(self, sqs: Any, queue_url: str, receipt: str, visibility_s: int,
                 job: Callable[[], str | None]) -> None:
        self._sqs, self._queue_url, self._receipt = sqs, queue_url, receipt
        self._visibility_s = visibility_s
        # Extend at a third of the timeout: two extensions may fail before the message shows.
        self._interval_s = max(0.2, visibility_s / 3)
        self._stop = threading.Event()
        self._job = job
        self.count = 0
        self._thread = threading.Thread(target=self._run, name="conform-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
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
            except _SQS_ERRORS as err:
                # Another consumer may get the message; outputs are idempotent, so go on.
                log.warning("job %s: cannot extend the message's visibility: %s", self._job(),
                            err, extra={"job_id": self._job()})


def _execute(job: Job, *, settings: Settings, presets: PresetRegistry,
             storage: Storage | None, on_event: EventCallback | None = None
             ) -> tuple[MessageOutcome, Manifest | None, str | None, ErrorInfo | None]:
    """Run one message's job (on the worker's thread or in a process of its own).

    Returns:
        The outcome, the manifest, its URI and the error; never raises for a job's failure.
    """
    if storage is None:
        storage = open_storage(settings.dest, endpoint_url=settings.endpoint_url)
    try:
        if not settings.force:
            stored = read_manifest(storage, job, settings.workdir)
            if stored is not None and stored.get("status") == "succeeded":
                return "skipped", None, storage.uri(manifest_key(job.workspace_id, job.id)), None
        manifest = process(job, settings=settings, presets=presets, storage=storage,
                           on_event=on_event)
    except JobInvalid as err:
        text = "; ".join(f"{p}: {m}" if p else m for p, m in err.problems)
        log.info("message is not a usable job: %s", text)
        return "invalid", None, None, ErrorInfo(err.code, text, err.http_status)
    except (Interrupted, KeyboardInterrupt):
        ffmpeg.stop_all()
        return "released", None, None, None
    except PipelineError as err:
        info = ErrorInfo(err.code, public_message(err.message), err.http_status,
                         retryable=err.retryable)
        log.warning("job %s failed: %s", job.id, err.message)
        return ("retry" if err.retryable else "failed"), None, None, info
    except Exception as err:  # a bug: retried, then dead-lettered by the queue
        log.exception("job %s: unexpected error", job.id)
        return ("retry", None, None,
                ErrorInfo("internal", f"internal error: {type(err).__name__}: {err}", 500,
                          retryable=True))
    if not manifest.ok and manifest.retryable:
        return "retry", manifest, manifest.uri, None
    status: MessageOutcome = ("succeeded" if manifest.ok else
                              "partial" if manifest.status == "partial" else "failed")
    return status, manifest, manifest.uri, None


StopReason = Literal["max_messages", "idle", "stop", "interrupt"]


@dataclass
class _RunState:
    """What the receive loops of one :meth:`Worker.run` share."""

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
        with self.lock:
            self.stop_locked(reason)

    def stop_locked(self, reason: StopReason) -> None:
        self.done = True
        self.stopped_by = self.stopped_by or reason


class Worker:
    """Long-polls a queue and runs each message's job; see the module docstring.

    Example::

        worker = Worker(queue_url, settings=Settings.from_env().replace(dest="s3://out"),
                        max_messages=10)
        summary = worker.run()
    """

    def __init__(
        self,
        queue_url: str,
        *,
        settings: Settings | None = None,
        presets: PresetRegistry | None = None,
        storage: Storage | None = None,
        sqs: Any = None,
        sqs_endpoint_url: str | None = None,
        results_queue_url: str | None = None,
        wait_time_s: int = 20,
        visibility_timeout_s: int | None = None,
        retry_delay_s: int = 30,
        max_messages: int | None = None,
        idle_exit_s: float | None = None,
        on_event: EventCallback | None = None,
        on_result: ResultCallback | None = None,
        workers: int = 1,
        isolation: Literal["thread", "process"] = "thread",
    ) -> None:
        """Set up the worker; nothing is received until :meth:`run` or :meth:`poll_once`.

        Args:
            queue_url: the jobs queue.
            settings: configuration (``dest``, ``library`` …); defaults to the environment.
            presets: preset registry; defaults to the bundled presets.
            storage: the destination; defaults to ``open_storage(settings.dest)``.
            sqs: a boto3 SQS client; defaults to :func:`sqs_client`.
            sqs_endpoint_url: SQS endpoint when ``sqs`` is not given.
            results_queue_url: where to send a completion message per finished job.
            wait_time_s: long-poll wait per receive (0-20 s).
            visibility_timeout_s: how long a received message stays hidden, renewed while
                the job runs; defaults to the queue's own setting.
            retry_delay_s: how long a temporarily failed message stays hidden before
                redelivery.
            max_messages: stop after handling this many messages.
            idle_exit_s: stop after this long without a message (scale to zero).
            on_event: progress events of the running job.
            on_result: called with each :class:`MessageResult` (from the message's thread).
            workers: messages handled at the same time, each by its own receive loop.
            isolation: ``"process"`` runs each job in a process of its own
                (:mod:`pipeline.jobprocess`: every core busy, a crash fails only its message,
                which is left for redelivery; ``workers`` is capped so that each process's
                decode budget fits in memory); ``"thread"`` runs it on the loop's thread.

        Raises:
            ConfigError: unusable settings, destination or AWS configuration.
        """
        if not 0 <= wait_time_s <= 20:
            raise ConfigError("wait time must be between 0 and 20 seconds (an SQS limit)")
        if visibility_timeout_s is not None and not 1 <= visibility_timeout_s <= 43200:
            raise ConfigError("visibility timeout must be between 1 s and 12 h (an SQS limit)")
        if not 0 <= retry_delay_s <= 43200:
            raise ConfigError("retry delay must be between 0 s and 12 h (an SQS limit)")
        if workers < 1:
            raise ConfigError("workers must be at least 1")
        self.queue_url = queue_url
        self.settings = settings or Settings.from_env()
        self.presets = presets or load_presets(self.settings.presets_dir)
        self.storage = storage or open_storage(self.settings.dest,
                                               endpoint_url=self.settings.endpoint_url)
        self.sqs = sqs or sqs_client(queue_url, endpoint_url=sqs_endpoint_url)
        self.results_queue_url = results_queue_url
        self.wait_time_s = wait_time_s
        self.retry_delay_s = retry_delay_s
        self.max_messages = max_messages
        self.idle_exit_s = idle_exit_s
        self.on_event = on_event
        self.on_result = on_result
        self._visibility_s = visibility_timeout_s
        self.isolation = isolation
        self.workers = workers
        if isolation == "process":
            self.workers = jobprocess.cap_workers(workers, self.settings.max_decode_bytes)
        # A storage given by the caller goes to job processes as it is; else each opens its own.
        self._child_storage = storage
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._busy_count = 0
        self._lock = threading.Lock()
        self._grace_timer: threading.Timer | None = None

    # ------------------------------------------------------------------ control

    @property
    def busy(self) -> bool:
        """A message is being handled (between its receipt and its delete or release)."""
        return self._busy.is_set()

    def _interrupt(self) -> None:
        ffmpeg.stop_all()
        jobprocess.stop_children()

    def stop(self, *, grace_s: float | None = None) -> None:
        """Ask the worker to stop after the current message (safe from a signal handler).

        Args:
            grace_s: when a job is running, let it finish for this long, then kill its ffmpeg
                processes so the message is released (visible again at once). ``None``
                waits for the job to finish; ``0`` interrupts it now.
        """
        self._stop.set()
        if grace_s is None or not self.busy:
            return
        if grace_s <= 0:
            self._interrupt()
        elif self._grace_timer is None:
            self._grace_timer = threading.Timer(grace_s, self._interrupt)
            self._grace_timer.daemon = True
            self._grace_timer.start()

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called."""
        return self._stop.is_set()

    def visibility_timeout_s(self) -> int:
        """The visibility timeout the heartbeat renews: the configured one or the queue's.

        Raises:
            ConfigError: the queue cannot be reached or does not exist.
        """
        if self._visibility_s is None:
            try:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"]
            except _SQS_ERRORS as err:
                raise ConfigError(f"cannot read the queue {self.queue_url}: {err}") from err
            self._visibility_s = int(attrs.get("VisibilityTimeout", 30))
        return self._visibility_s

    # ------------------------------------------------------------------ the loop

    def run(self) -> WorkerSummary:
        """Receive and handle messages until a limit is reached or :meth:`stop` is called.

        ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into it by the CLI) stops the worker
        too: a running job is interrupted and its message released.

        Returns:
            How many messages were handled, by outcome, and why the worker stopped.

        Raises:
            ConfigError: the queue cannot be read (wrong URL, no permission).
        """
        self.visibility_timeout_s()
        state = _RunState(last_message=time.monotonic())
        threads: list[threading.Thread] = []
        try:
            if self.workers == 1:
                self._loop(state)
            else:
                threads = [threading.Thread(target=self._thread_loop, args=(state,),
                                            name=f"conform-worker-{i}", daemon=True)
                           for i in range(self.workers)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    while thread.is_alive():  # a timeout: signals are handled between waits
                        thread.join(timeout=0.2)
                if state.error is not None:
                    raise state.error
        except KeyboardInterrupt:
            state.stop("interrupt")
            self._stop.set()
            # The other loops end after their receive (at most one long poll).
            deadline = time.monotonic() + self.wait_time_s + 5
            for thread in threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            if self.isolation == "process" and not any(t.is_alive() for t in threads):
                jobprocess.shutdown()
        return WorkerSummary(state.handled, state.by_outcome, state.stopped_by or "stop",
                             state.interrupted_job)

    def _thread_loop(self, state: _RunState) -> None:
        try:
            self._loop(state)
        except Exception as err:  # ConfigError, or a bug: stop every loop, raise it in run()
            with state.lock:
                state.error = state.error or err
            state.stop("stop")

    def _loop(self, state: _RunState) -> None:
        """One receive loop; ``workers`` of them share ``state``."""
        while True:
            with state.lock:
                if self._stop.is_set() or state.done:
                    return
                if self.max_messages is not None and state.claimed >= self.max_messages:
                    state.stop_locked("max_messages")
                    return
                wait = self.wait_time_s
                if self.idle_exit_s is not None:
                    left = self.idle_exit_s - (time.monotonic() - state.last_message)
                    if left <= 0:
                        state.stop_locked("idle")
                        return
                    wait = max(0, min(wait, int(left + 0.999)))
                state.claimed += 1  # a message this loop may receive counts against the limit
            result = None
            try:
                result = self.poll_once(wait_time_s=wait)
            finally:
                with state.lock:
                    if result is None:
                        state.claimed -= 1
                    else:
                        state.last_message = time.monotonic()
                        state.handled += 1
                        state.by_outcome[result.outcome] = (
                            state.by_outcome.get(result.outcome, 0) + 1)
                        if result.outcome == "released":
                            state.interrupted_job = True
                            state.stop_locked("interrupt")
            if result is not None and result.outcome == "released":
                return

    def poll_once(self, *, wait_time_s: int | None = None) -> MessageResult | None:
        """Receive at most one message and handle it.

        Returns:
            The result, or ``None`` when no message came within the wait.

        Raises:
            ConfigError: the queue cannot be read (wrong URL, no permission).
        """
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=1,
                WaitTimeSeconds=self.wait_time_s if wait_time_s is None else wait_time_s,
                VisibilityTimeout=self.visibility_timeout_s(),
                MessageSystemAttributeNames=["ApproximateReceiveCount"])
        except botoexc.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if "NonExistentQueue" in code or "AccessDenied" in code:
                raise ConfigError(f"cannot receive from {self.queue_url}: {err}") from err
            log.warning("receive failed, trying again: %s", err)
            time.sleep(1.0)
            return None
        except botoexc.BotoCoreError as err:
            log.warning("receive failed, trying again: %s", err)
            time.sleep(1.0)
            return None
        messages = response.get("Messages") or []
        if not messages:
            return None
        return self.handle(messages[0])

    # ------------------------------------------------------------------ one message

    def handle(self, message: Mapping[str, Any]) -> MessageResult:
        """Run the job of one received message and settle the message.

        The message is deleted only after the manifest is written (or when it can never
        succeed); it is left for redelivery after ``retry_delay_s`` when the failure may pass,
        and released at once when the worker is stopped mid-job.

        Returns:
            What was done; never raises for a job's failure.
        """
        with self._lock:
            self._busy_count += 1
            self._busy.set()
        started = time.monotonic()
        holder: list[str | None] = [None]
        message_id = str(message.get("MessageId", ""))
        receipt = str(message["ReceiptHandle"])
        attrs = message.get("Attributes") or {}
        count = int(attrs.get("ApproximateReceiveCount", 1))
        token = current_job_id.set(None)
        try:
            with _Heartbeat(self.sqs, self.queue_url, receipt, self.visibility_timeout_s(),
                            lambda: holder[0]) as heartbeat:
                outcome, job, manifest, uri, error = self._work(str(message.get("Body", "")),
                                                                holder)
            result = MessageResult(message_id, count, outcome, job_id=job.id if job else None,
                                   manifest=manifest, manifest_uri=uri, error=error,
                                   heartbeats=heartbeat.count)
            result = self._settle(result, receipt)
            result = dataclasses.replace(result, elapsed_s=time.monotonic() - started)
            log.info("message %s: %s", message_id, result.outcome,
                     extra={"job_id": result.job_id})
            if self.on_result is not None:
                self.on_result(result)
            return result
        finally:
            current_job_id.reset(token)
            with self._lock:
                self._busy_count -= 1
                if not self._busy_count:
                    self._busy.clear()

    def _work(self, body: str, holder: list[str | None]
              ) -> tuple[MessageOutcome, Job | None, Manifest | None, str | None,
                         ErrorInfo | None]:
        job: Job | None = None
        try:
            job = self._read_job(body)
        except JobInvalid as err:
            text = "; ".join(f"{p}: {m}" if p else m for p, m in err.problems)
            log.info("message is not a usable job: %s", text)
            return "invalid", job, None, None, ErrorInfo(err.code, text, err.http_status)
        except KeyboardInterrupt:
            self._interrupt()
            return "released", job, None, None, None
        except PipelineError as err:
            info = ErrorInfo(err.code, public_message(err.message), err.http_status,
                             retryable=err.retryable)
            log.warning("message failed: %s", err.message)
            return ("retry" if err.retryable else "failed"), job, None, None, info
        holder[0] = job.id
        current_job_id.set(job.id)
        if self.isolation == "thread":
            outcome, manifest, uri, error = _execute(job, settings=self.settings,
                                                     presets=self.presets, storage=self.storage,
                                                     on_event=self.on_event)
            return outcome, job, manifest, uri, error
        result = jobprocess.run_in_process(_execute, job, settings=self.settings,
                                           presets=self.presets, storage=self._child_storage,
                                           on_event=self.on_event)
        if isinstance(result, tuple):
            outcome, manifest, uri, error = result
            return outcome, job, manifest, uri, error
        if jobprocess.stopping():  # killed by the stop request before it could answer
            return "released", job, None, None, None
        reason = result.reason if isinstance(result, jobprocess.ChildDied) else "sent no result"
        log.error("job %s: its process %s", job.id, reason, extra={"job_id": job.id})
        workdir.clean_stale(self.settings.workdir)  # the work folder the dead process left
        return ("retry", job, None, None,
                ErrorInfo("internal", f"internal error: the job's process {reason}", 500,
                          retryable=True))

    def _read_job(self, body: str) -> Job:
        text = body.strip()
        if not text:
            raise JobInvalid([("", "empty message")])
        if text.lower().startswith("s3://"):
            text = read_job_uri(text, settings=self.settings)
        return parse_job_text(text, self.presets, workspace=self.settings.workspace)

    def _settle(self, result: MessageResult, receipt: str) -> MessageResult:
        """Delete, hide for a retry, or release the message, according to the outcome."""
        if result.outcome == "released":
            self._change_visibility(receipt, 0)
            # The job stopped; a later run in this process may start ffmpeg again.
            ffmpeg.reset_stop()
            jobprocess.reset_stop()
            return result
        if result.outcome == "retry":
            self._change_visibility(receipt, self.retry_delay_s)
            return result
        self._send_result(result)
        try:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
        except _SQS_ERRORS as err:
            # The message will come back; the manifest exists, so it will be skipped then.
            log.warning("cannot delete message %s: %s", result.message_id, err)
            return result
        return dataclasses.replace(result, deleted=True)

    def _change_visibility(self, receipt: str, seconds: int) -> None:
        with contextlib.suppress(*_SQS_ERRORS):
            self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt,
                                               VisibilityTimeout=seconds)

    def _send_result(self, result: MessageResult) -> None:
        if not self.results_queue_url:
            return
        data = result.to_dict()
        body = json.dumps(data, separators=(",", ":"))
        if len(body.encode()) > _MAX_RESULT_MANIFEST_BYTES:
            data.pop("manifest", None)
            body = json.dumps(data, separators=(",", ":"))
        try:
            self.sqs.send_message(QueueUrl=self.results_queue_url, MessageBody=body)
        except _SQS_ERRORS as err:
            log.warning("cannot send the completion message of %s: %s", result.job_id, err)
