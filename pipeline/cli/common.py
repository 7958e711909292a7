"""What every ``conform`` command shares: logging set-up, the one error handler, settings from
flags, the shared option groups and the start-up chores.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .. import processes
from ..errors import ExitStatus, Interrupted, JobInvalid, PipelineError
from ..settings import Settings, parse_networks

log = logging.getLogger("pipeline")


# --------------------------------------------------------------------------- logging


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"level": record.levelname.lower(), "logger": record.name,
                   "message": record.getMessage(), "time": round(record.created, 3)}
        payload.update(job_fields(getattr(record, "job_id", None),
                                  getattr(record, "workspace_id", None)))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def current_job() -> tuple[str | None, str | None]:
    """The job (id, workspace id) the calling thread works on, once :mod:`pipeline.fleet.jobs`
    is loaded.

    Read through ``sys.modules``, not imported: ``conform --help`` must not load the runner.
    """
    fleet_jobs = sys.modules.get("pipeline.fleet.jobs")
    return fleet_jobs.current_job() if fleet_jobs is not None else (None, None)


def job_fields(job_id: object, workspace_id: object) -> dict[str, Any]:
    """``workspace_id`` and ``job_id`` for a JSON line, those that are known.

    A line that names a job names its workspace: job ids are the tenant's own and repeat
    across workspaces, so an operator filters one tenant by both.
    """
    fields: dict[str, Any] = {}
    if workspace_id and job_id:
        fields["workspace_id"] = workspace_id
    if job_id:
        fields["job_id"] = job_id
    return fields


class _JobIdFilter(logging.Filter):
    """Put the ids of the job a thread is working on into every record (``job_id`` and
    ``workspace_id``). A record that names another job (``extra={"job_id": ...}``) gets the
    workspace only when it is the thread's job: never another tenant's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "pipeline.fleet.jobs" not in sys.modules:
            return True
        job_id, workspace_id = current_job()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id
        if getattr(record, "workspace_id", None) is None and getattr(
                record, "job_id", None) == job_id:
            record.workspace_id = workspace_id
        return True


def setup_logging(verbose: int, log_format: str) -> None:
    """Logs go to stderr, as text or one JSON object per line; ``-v``/``-vv`` show more."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: stop, kill running processes, clean up, exit 130."""

    def _on_term(signum: int, frame: Any) -> None:
        processes.stop_all()
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread (tests)
        signal.signal(signal.SIGTERM, _on_term)


def log_format(ctx: click.Context) -> str:
    """``--log-format`` of the root command: ``text`` or ``json``."""
    return str(ctx.find_root().params.get("log_format") or "text")


# --------------------------------------------------------------------------- errors


@contextlib.contextmanager
def handle_errors(ctx: click.Context) -> Iterator[None]:
    """The one place where errors become messages and exit codes (never a traceback)."""
    try:
        yield
    except (Interrupted, KeyboardInterrupt):
        processes.stop_all()
        _fail(ctx, _Failure(ExitStatus.INTERRUPTED, "interrupted", {"code": "interrupted"},
                            ["error: interrupted"]))
    except click.exceptions.Exit:
        raise
    except Exception as err:
        if ctx.find_root().params.get("debug"):
            raise
        _fail(ctx, _failure(err))


class _Failure:
    """How one error is told: the exit status, the JSON log line's fields, the text lines."""

    def __init__(self, status: int, message: str, fields: dict[str, Any],
                 text: list[str]) -> None:
        self.status, self.message, self.fields, self.text = status, message, fields, text


def _failure(err: Exception) -> _Failure:
    """Called while ``err`` is being handled (the internal error logs its traceback)."""
    if isinstance(err, JobInvalid):
        return _Failure(ExitStatus.USAGE, "the job is invalid", {
            "code": err.code, "problems": [{"path": p, "message": m} for p, m in err.problems],
        }, ["error: the job is invalid:", *(f"  {path}: {message}" if path else f"  {message}"
                                            for path, message in err.problems)])
    if isinstance(err, PipelineError):
        return _Failure(ExitStatus.TEMPFAIL if err.retryable else err.exit_code, err.message,
                        {"code": err.code}, [f"error: [{err.code}] {err.message}"])
    if isinstance(err, OSError):
        # The machine, not the input: a full disk or an unwritable work folder. Worth a retry.
        message = f"{err.strerror or err} ({err.filename})" if err.filename else str(err)
        return _Failure(ExitStatus.TEMPFAIL, message, {"code": "io_error"},
                        [f"error: [io_error] {message}"])
    # A bug of ours: one line for the user, the traceback in the log (and with --debug).
    log.error("internal error", exc_info=True)
    message = f"{type(err).__name__}: {err}"
    return _Failure(ExitStatus.JOB_FAILED, f"internal error: {message}", {"code": "internal"},
                    [f"error: [internal] {message} (run with --debug for the traceback)"])


def _fail(ctx: click.Context, failure: _Failure) -> None:
    if log_format(ctx) == "json":
        click.echo(error_line(failure.message, **failure.fields), err=True)
    else:
        for line in failure.text:
            click.echo(line, err=True)
    ctx.exit(failure.status)


def error_line(message: str, **fields: Any) -> str:
    """An error as one JSON log object, with the job's ids when a job was being worked on."""
    return json.dumps({"level": "error", "logger": "pipeline", "message": message,
                       "time": round(time.time(), 3), **job_fields(*current_job()),
                       **fields})


# --------------------------------------------------------------------------- settings


def make_settings(**flags: Any) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    base = Settings.from_env()
    networks = flags.pop("allow_network", None)
    if networks:
        flags["allow_networks"] = base.allow_networks + parse_networks(list(networks))
    if flags.get("workdir") is not None:
        flags["workdir"] = Path(flags["workdir"])
    if flags.get("presets_dir") is not None:
        flags["presets_dir"] = Path(flags["presets_dir"])
    if flags.get("force") is False:
        flags["force"] = None
    return base.replace(**flags)


def read_job_text(job: str, settings: Settings | None = None) -> str:
    """The text of JOB: a file, ``-`` for stdin, or an ``s3://`` URI.

    Raises:
        JobInvalid: the file cannot be read.
    """
    if job == "-":
        return sys.stdin.read()
    if job.lower().startswith("s3://"):
        from ..fleet.sources import read_job_uri

        return read_job_uri(job, settings=settings or Settings.from_env())
    try:
        return Path(job).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise JobInvalid([("", f"cannot read the job file {job!r}: {err}")]) from err


def start(settings: Settings) -> None:
    """Start-up chores of the commands that run jobs: remove work folders of killed runs."""
    from .. import workdir

    workdir.clean_stale(settings.workdir)


# --------------------------------------------------------------------------- option groups


def _apply(fn: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        fn = option(fn)
    return fn


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Where media come from and temporary files go (every command that fetches)."""
    return _apply(fn, [
        click.option("--library", envvar=None, default=None, metavar="TEMPLATE",
                     help="Where media-library IDs live: file:///dir/{id}, s3://bucket/{id}, "
                          "https://host/{workspace_id}/{id} (default: $CONFORM_LIBRARY)."),
        click.option("--presets", "presets_dir", type=click.Path(file_okay=False), default=None,
                     help="A folder of preset TOML files that add to or override the bundled "
                          "ones."),
        click.option("--allow-network", multiple=True, metavar="CIDR",
                     help="Allow URL sources in this private network (repeatable; "
                          "also $CONFORM_ALLOW_NETWORK)."),
        click.option("--endpoint-url", default=None,
                     help="S3 endpoint (MinIO, R2, moto); default: the AWS configuration."),
        click.option("--workdir", type=click.Path(file_okay=False), default=None,
                     help="Where temporary files go (default: $CONFORM_WORKDIR or $TMPDIR)."),
    ])


def job_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What the operator pins for every job: the tenant, and how long a job may take."""
    return _apply(fn, [
        click.option("--workspace", default=None, metavar="ID",
                     help="Serve only this workspace: a job with another workspace_id is "
                          "refused as invalid (default: $CONFORM_WORKSPACE). Set it when "
                          "jobs come from more than one tenant."),
        click.option("--job-deadline", "job_deadline_s", type=click.FloatRange(min=0,
                     min_open=True), default=None, metavar="SECONDS",
                     help="Wall-clock limit for one job, downloads and encodes included; "
                          "outputs not made by then fail with deadline_exceeded (default: "
                          "$CONFORM_JOB_DEADLINE_S or 14400)."),
    ])


def dest_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--dest``: where outputs and manifests go."""
    return click.option("--dest", default=None, help="Output folder or s3://bucket/prefix "
                        "(default: $CONFORM_DEST or ./conform-out).")(fn)
