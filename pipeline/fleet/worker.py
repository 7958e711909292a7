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
import logging
import re
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as botoexc
from botocore.config import Config

from .. import processes
from ..errors import ConfigError
from ..models import Job
from ..presets import PresetRegistry, load_presets
from ..runner import EventCallback
from ..settings import Settings
from ..storage import Storage, open_storage
from .childprocess import cap_workers
from .childprocess import shutdown as shutdown_job_processes
from .jobs import JobLauncher, JobResult, current_job_id, set_current_job
from .messages import (
    Heartbeat,
    LoopState,
    MessageOutcome,
    MessageResult,
    ResultCallback,
    WorkerSummary,
    check_limits,
    message_outcome,
    read_message,
)
from .metrics import Monitor

__all__ = [
    "MessageOutcome",
    "MessageResult",
    "ResultCallback",
    "Worker",
    "WorkerSummary",
    "sqs_client",
]

log = logging.getLogger(__name__)

_SQS_ERRORS = (botoexc.BotoCoreError, botoexc.ClientError)


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
        monitor: Monitor | None = None,
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
                (:mod:`pipeline.fleet.childprocess`: every core busy, a crash fails only its
                message, which is left for redelivery; ``workers`` is capped so that each process's
                decode budget fits in memory); ``"thread"`` runs it on the loop's thread.
            monitor: told of every receive, job and destination check (metrics, /healthz,
                /readyz); defaults to one of its own (see :attr:`monitor`).

        Raises:
            ConfigError: unusable settings, destination or AWS configuration.
        """
        check_limits(wait_time_s, visibility_timeout_s, retry_delay_s, workers)
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
        self.on_result = on_result
        self._visibility_s = visibility_timeout_s
        self.isolation = isolation
        self.workers = workers
        if isolation == "process":
            self.workers = cap_workers(workers, self.settings.max_decode_bytes)
        self._jobs = JobLauncher(self.settings, self.presets, self.storage, child_storage=storage,
                               retry_failed=True, on_event=on_event, isolation=isolation)
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._busy_count = 0
        self._lock = threading.Lock()
        self._grace_timer: threading.Timer | None = None
        # A turn of the loop takes at most a long poll plus the SQS client's read timeout and
        # the pause after a failed receive; a job, its deadline plus the clean-up.
        self.monitor = monitor or Monitor(idle_limit_s=self.wait_time_s + 90.0,
                                          job_limit_s=self.settings.job_deadline_s + 120.0)

    # ------------------------------------------------------------------ control

    @property
    def busy(self) -> bool:
        """A message is being handled (between its receipt and its delete or release)."""
        return self._busy.is_set()

    def _interrupt(self) -> None:
        processes.stop_all()

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
        self.monitor.check_destination(self.storage.check, force=True)
        state = LoopState(last_message=time.monotonic())
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
                shutdown_job_processes()
            self.monitor.loop_ended()
        return WorkerSummary(state.handled, state.by_outcome, state.stopped_by or "stop",
                             state.interrupted_job)

    def _thread_loop(self, state: LoopState) -> None:
        try:
            self._loop(state)
        except Exception as err:  # ConfigError, or a bug: stop every loop, raise it in run()
            with state.lock:
                state.error = state.error or err
            state.stop("stop")

    def _loop(self, state: LoopState) -> None:
        """One receive loop; ``workers`` of them share ``state``."""
        while True:
            wait = state.claim(stopped=self._stop.is_set(), max_messages=self.max_messages,
                               wait_time_s=self.wait_time_s, idle_exit_s=self.idle_exit_s)
            if wait is None:
                return
            result = None
            try:
                result = self.poll_once(wait_time_s=wait)
            finally:
                state.record(result)
            if result is not None and result.outcome == "released":
                return

    def poll_once(self, *, wait_time_s: int | None = None) -> MessageResult | None:
        """Receive at most one message and handle it.

        Returns:
            The result, or ``None`` when no message came within the wait.

        Raises:
            ConfigError: the queue cannot be read (wrong URL, no permission).
        """
        self.monitor.check_destination(self.storage.check)
        self.monitor.beat()
        began = time.monotonic()
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=1,
                WaitTimeSeconds=self.wait_time_s if wait_time_s is None else wait_time_s,
                VisibilityTimeout=self.visibility_timeout_s(),
                MessageSystemAttributeNames=["ApproximateReceiveCount"])
        except botoexc.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            self.monitor.received(time.monotonic() - began, ok=False, reason=code)
            if "NonExistentQueue" in code or "AccessDenied" in code:
                raise ConfigError(f"cannot receive from {self.queue_url}: {err}") from err
            log.warning("receive failed, trying again: %s", err)
            time.sleep(1.0)
            return None
        except botoexc.BotoCoreError as err:
            self.monitor.received(time.monotonic() - began, ok=False, reason=str(err)[:200])
            log.warning("receive failed, trying again: %s", err)
            time.sleep(1.0)
            return None
        self.monitor.received(time.monotonic() - began, ok=True)
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
        token = self.monitor.job_started()
        holder: list[tuple[str | None, str | None]] = [(None, None)]
        message_id = str(message.get("MessageId", ""))
        receipt = str(message["ReceiptHandle"])
        attrs = message.get("Attributes") or {}
        count = int(attrs.get("ApproximateReceiveCount", 1))
        job_token = current_job_id.set(None)
        result: MessageResult | None = None
        try:
            with Heartbeat(self.sqs, self.queue_url, receipt, self.visibility_timeout_s(),
                           lambda: holder[0], _SQS_ERRORS) as heartbeat:
                job, done = self._work(str(message.get("Body", "")), holder)
            result = MessageResult(message_id, count, message_outcome(done),
                                   job_id=job.id if job else None, manifest=done.manifest,
                                   manifest_uri=done.uri, error=done.error,
                                   heartbeats=heartbeat.count)
            result = self._settle(result, receipt)
            result = dataclasses.replace(result, elapsed_s=time.monotonic() - started)
            log.info("message %s: %s", message_id, result.outcome,
                     extra={"job_id": result.job_id})
            if self.on_result is not None:
                self.on_result(result)
            return result
        finally:
            current_job_id.reset(job_token)
            self.monitor.job_finished(
                token, result.outcome if result else "error", time.monotonic() - started,
                manifest=result.manifest if result else None,
                error=result.error if result else None)
            with self._lock:
                self._busy_count -= 1
                if not self._busy_count:
                    self._busy.clear()

    def _work(self, body: str, holder: list[tuple[str | None, str | None]]
              ) -> tuple[Job | None, JobResult]:
        try:
            job = read_message(body, settings=self.settings, presets=self.presets)
        except KeyboardInterrupt:
            self._interrupt()
            return None, JobResult("interrupted")
        if not isinstance(job, Job):
            return None, job
        holder[0] = (job.id, job.workspace_id)
        set_current_job(job.id, job.workspace_id)  # the job id is reset by handle()
        return job, self._jobs.run(job)

    def _settle(self, result: MessageResult, receipt: str) -> MessageResult:
        """Delete, hide for a retry, or release the message, according to the outcome."""
        if result.outcome == "released":
            self._change_visibility(receipt, 0)
            # The job stopped; a later run in this process may start processes again.
            processes.reset_stop()
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
        try:
            self.sqs.send_message(QueueUrl=self.results_queue_url,
                                  MessageBody=result.completion_message())
        except _SQS_ERRORS as err:
            log.warning("cannot send the completion message of %s: %s", result.job_id, err)
