"""``conform batch`` and ``conform worker``: many jobs, from a source or from a queue."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import ffmpeg
from ..errors import ExitStatus
from ..presets import load_presets
from .common import (
    common_options,
    dest_option,
    handle_errors,
    job_options,
    log_format,
    make_settings,
    start,
)
from .display import BatchView, json_event_printer, message_printer

if TYPE_CHECKING:
    from ..fleet.batch import BatchEntry, JobOutcome, OutcomeCallback
    from ..fleet.metrics import Monitor
    from ..fleet.worker import Worker
    from ..settings import Settings

metrics_option = click.option(
    "--metrics-address", envvar="CONFORM_METRICS_ADDRESS", default=None, metavar="HOST:PORT",
    help="Serve GET /metrics (Prometheus), /healthz and /readyz on this address while running "
         "(also $CONFORM_METRICS_ADDRESS; a bare PORT means 127.0.0.1; 0.0.0.0:PORT for every "
         "interface). Off unless given.")


@click.command()
@click.argument("source", metavar="SOURCE")
@dest_option
@common_options
@job_options
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Jobs run at the same time, each in its own process (default: the CPU "
                   "count, fewer when their decode-memory budgets would not fit in memory).")
@click.option("--fail-fast", is_flag=True, help="Stop scheduling jobs after the first failure.")
@click.option("--force", is_flag=True,
              help="Run jobs whose manifest exists again, and re-make their outputs.")
@click.option("--retry-failed", is_flag=True,
              help="Run again the jobs whose stored manifest says failed or partial.")
@click.option("--shard-index", type=click.IntRange(min=0), default=None,
              help="This process's shard, 0-based (default: $JOB_COMPLETION_INDEX or "
                   "$AWS_BATCH_JOB_ARRAY_INDEX).")
@click.option("--shard-count", type=click.IntRange(min=1), default=None,
              help="How many shards the batch is split into (default: $CONFORM_SHARD_COUNT).")
@click.option("--progress/--no-progress", default=True,
              help="Progress on stderr: a live bar on a terminal, lines otherwise.")
@click.option("--json", "as_json", is_flag=True,
              help="Manifests as JSON lines on stdout even on a terminal (the default when "
                   "stdout is not a terminal).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              metavar="DIR",
              help="Write each job's preview sheet to DIR/<workspace id>/<job id>/index.html.")
@metrics_option
@click.pass_context
def batch(ctx: click.Context, /, source: str, workers: int | None, fail_fast: bool,
          retry_failed: bool, shard_index: int | None, shard_count: int | None,
          progress: bool, as_json: bool, report_dir: str | None, metrics_address: str | None,
          **flags: Any) -> None:
    """Conform many posts: SOURCE is a JSON Lines file, a folder of job .json files, - (stdin)
    or an s3:// URI of either.

    Prints one manifest per line on stdout as jobs finish (a job without a manifest gets a line
    with its status, source and errors); on a terminal, one readable line per job instead
    (status, accounts ok/failed, warnings, where its manifest and report are) unless --json.
    Jobs whose manifest exists in DEST are skipped, so a killed batch continues where it
    stopped. Exit codes: 0 all ok, 1 some job failed, 2 the
    source or the settings are unusable, 130 interrupted.
    """
    from ..fleet.batch import JobSource, process_batch, shard_from_env
    from ..fleet.previews import sheet_writer
    from ..fleet.status import serving

    with handle_errors(ctx):
        settings = make_settings(**flags)
        presets = load_presets(settings.presets_dir)
        shard = shard_from_env(shard_index, shard_count)
        ffmpeg.require_capabilities()
        start(settings)
        monitor = _batch_monitor(settings)
        with JobSource(source, presets=presets, settings=settings) as src, \
                serving(metrics_address, monitor.monitor):
            total = sum(1 for entry in src.entries() if shard.owns(entry.shard_key))
            monitor.started(settings)
            mode = ("json" if log_format(ctx) == "json" else
                    "bar" if progress and sys.stderr.isatty() else "lines")
            report = None if report_dir is None else sheet_writer(
                Path(report_dir), presets=presets, endpoint_url=settings.endpoint_url)
            view = BatchView(total, mode=mode, progress=progress,
                             human=not as_json and sys.stdout.isatty(), report=report)
            summary = process_batch(src.entries(), settings=settings, presets=presets,
                                    workers=workers, fail_fast=fail_fast,
                                    retry_failed=retry_failed, shard=shard,
                                    on_event=view.on_event,
                                    on_outcome=monitor.outcome_to(view.on_outcome),
                                    on_start=monitor.on_start, isolation="process")
            monitor.monitor.loop_ended()
            view.finish(summary)
        ctx.exit(summary.exit_status)


@click.command()
@click.option("--queue-url", envvar="CONFORM_QUEUE_URL", required=True,
              help="The SQS(-compatible) queue of jobs (also $CONFORM_QUEUE_URL). A message is "
                   "a job's JSON or an s3:// URI of one.")
@dest_option
@common_options
@job_options
@click.option("--results-queue-url", envvar="CONFORM_RESULTS_QUEUE_URL", default=None,
              help="Send a completion message per finished job to this queue.")
@click.option("--sqs-endpoint-url", default=None,
              help="SQS endpoint (ElasticMQ, moto); default: the AWS configuration "
                   "($AWS_ENDPOINT_URL_SQS, $AWS_ENDPOINT_URL).")
@click.option("--max-messages", type=click.IntRange(min=1), default=None,
              help="Exit after handling this many messages.")
@click.option("--idle-exit", "idle_exit_s", type=click.FloatRange(min=0), default=None,
              metavar="SECONDS", help="Exit after SECONDS without a message (scale to zero).")
@click.option("--wait-time", "wait_time_s", type=click.IntRange(0, 20), default=20,
              show_default=True, metavar="SECONDS", help="Long-poll wait per receive.")
@click.option("--visibility-timeout", "visibility_timeout_s", type=click.IntRange(1, 43200),
              default=None, metavar="SECONDS",
              help="How long a message stays hidden, renewed while its job runs "
                   "(default: the queue's).")
@click.option("--retry-delay", "retry_delay_s", type=click.IntRange(0, 43200), default=30,
              show_default=True, metavar="SECONDS",
              help="How long a temporarily failed message waits before redelivery.")
@click.option("--grace", "grace_s", type=click.FloatRange(min=0), default=20.0,
              show_default=True, metavar="SECONDS",
              help="On SIGTERM/SIGINT, let the running job finish for this long, then "
                   "interrupt it and release its message.")
@click.option("--force", is_flag=True,
              help="Run jobs whose manifest already says succeeded again.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Messages handled at the same time, each job in its own process (fewer "
                   "when their decode-memory budgets would not fit in memory).")
@metrics_option
@click.pass_context
def worker(ctx: click.Context, /, queue_url: str, sqs_endpoint_url: str | None,
           results_queue_url: str | None, max_messages: int | None, idle_exit_s: float | None,
           wait_time_s: int, visibility_timeout_s: int | None, retry_delay_s: int,
           grace_s: float, workers: int, metrics_address: str | None, **flags: Any) -> None:
    """Run jobs from a queue until stopped: delete each message after its manifest is written.

    Prints one JSON line per handled message on stdout. Temporary failures are left on the
    queue for redelivery (its redrive policy dead-letters poison messages); permanent ones are
    done. Exit codes: 0 stopped (limit, idle or signal between jobs), 2 unusable settings or
    queue, 130 a signal interrupted a job (its message was released).
    """
    from ..fleet.status import serving
    from ..fleet.worker import Worker

    json_logs = log_format(ctx) == "json"
    with handle_errors(ctx):
        settings = make_settings(**flags)
        presets = load_presets(settings.presets_dir)
        ffmpeg.require_capabilities()
        start(settings)
        w = Worker(queue_url, settings=settings, presets=presets,
                   sqs_endpoint_url=sqs_endpoint_url, results_queue_url=results_queue_url,
                   wait_time_s=wait_time_s, visibility_timeout_s=visibility_timeout_s,
                   retry_delay_s=retry_delay_s, max_messages=max_messages,
                   idle_exit_s=idle_exit_s,
                   on_event=json_event_printer() if json_logs else None,
                   on_result=message_printer(json_logs), workers=workers, isolation="process")
        with serving(metrics_address, w.monitor), _stop_on_signals(w, grace_s):
            summary = w.run()
        ctx.exit(ExitStatus.INTERRUPTED if summary.interrupted_job else ExitStatus.OK)


@contextlib.contextmanager
def _stop_on_signals(w: Worker, grace_s: float) -> Iterator[None]:
    """SIGTERM/SIGINT stop the worker gracefully while it runs; the old handlers come back."""

    def on_signal(signum: int, frame: Any) -> None:
        # First signal: finish the running job within the grace period (then release its
        # message); a second one releases it now. While idle, stop the long poll at once.
        w.stop(grace_s=0 if w.stopping else grace_s)
        if not w.busy:
            raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not in the main thread (tests)
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _BatchMonitor:
    """A batch's monitor: the source and the destination must be reached; each scheduled
    entry is a job in progress until its outcome."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._tokens: dict[int, int] = {}

    def started(self, settings: Settings) -> None:
        """The source was opened and counted; check the destination once."""
        from ..storage import open_storage

        self.monitor.mark("source", True)
        self.monitor.beat()
        storage = open_storage(settings.dest, endpoint_url=settings.endpoint_url)
        self.monitor.check_destination(storage.check, force=True)

    def on_start(self, entry: BatchEntry) -> None:
        self._tokens[entry.index] = self.monitor.job_started()

    def outcome_to(self, then: OutcomeCallback) -> OutcomeCallback:
        """An ``on_outcome`` that counts the outcome, then calls ``then``."""

        def on_outcome(outcome: JobOutcome) -> None:
            self.monitor.job_finished(self._tokens.pop(outcome.index, None), outcome.status,
                                      outcome.elapsed_s, manifest=outcome.manifest,
                                      error=outcome.error)
            then(outcome)

        return on_outcome


def _batch_monitor(settings: Settings) -> _BatchMonitor:
    from ..fleet.metrics import Monitor

    # Reading the next entries (an S3 listing) may take a while; a job has its deadline.
    return _BatchMonitor(Monitor(("source", "destination"), idle_limit_s=600.0,
                                 job_limit_s=settings.job_deadline_s + 120.0))
