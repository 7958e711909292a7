"""The ``conform`` command line: thin wrapper that parses, calls the library and renders results.

stdout carries machine-readable results only (the manifest JSON); logs and progress go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__, ffmpeg
from .errors import ExitStatus, Interrupted, JobInvalid, PipelineError
from .job import parse_job_text
from .models import JobEvent
from .presets import PresetRegistry, load_presets
from .settings import Settings, parse_networks

if TYPE_CHECKING:
    from .report import Report

log = logging.getLogger("pipeline")


# --------------------------------------------------------------------------- plumbing


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"level": record.levelname.lower(), "logger": record.name,
                   "message": record.getMessage(), "time": round(record.created, 3)}
        job_id = getattr(record, "job_id", None)
        if job_id:
            payload["job_id"] = job_id
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload)


class _JobIdFilter(logging.Filter):
    """Put the id of the job a thread is working on into every record (``job_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            # Only set once a job has run, and then pipeline.batch is loaded: no import here.
            batch = sys.modules.get(f"{__package__}.batch")
            if batch is not None:
                record.job_id = batch.current_job_id.get()
        return True


def _setup_logging(verbose: int, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)


@contextlib.contextmanager
def handle_errors(ctx: click.Context) -> Iterator[None]:
    """The one place where errors become messages and exit codes (never a traceback)."""
    debug = bool(ctx.find_root().params.get("debug"))
    try:
        yield
    except JobInvalid as err:
        if debug:
            raise
        if _log_format(ctx) == "json":
            click.echo(_error_line("the job is invalid", code=err.code,
                                   problems=[{"path": p, "message": m} for p, m in err.problems]),
                       err=True)
            ctx.exit(ExitStatus.USAGE)
        click.echo("error: the job is invalid:", err=True)
        for path, message in err.problems:
            click.echo(f"  {path}: {message}" if path else f"  {message}", err=True)
        ctx.exit(ExitStatus.USAGE)
    except (Interrupted, KeyboardInterrupt):
        ffmpeg.stop_all()
        click.echo(_error_line("interrupted", code="interrupted") if _log_format(ctx) == "json"
                   else "error: interrupted", err=True)
        ctx.exit(ExitStatus.INTERRUPTED)
    except PipelineError as err:
        if debug:
            raise
        click.echo(_error_line(err.message, code=err.code) if _log_format(ctx) == "json"
                   else f"error: [{err.code}] {err.message}", err=True)
        ctx.exit(ExitStatus.TEMPFAIL if err.retryable else err.exit_code)
    except OSError as err:
        # The machine, not the input: a full disk or an unwritable work folder. Worth a retry.
        if debug:
            raise
        message = f"{err.strerror or err} ({err.filename})" if err.filename else str(err)
        click.echo(_error_line(message, code="io_error") if _log_format(ctx) == "json"
                   else f"error: [io_error] {message}", err=True)
        ctx.exit(ExitStatus.TEMPFAIL)
    except click.exceptions.Exit:
        raise
    except Exception as err:
        # A bug of ours: one line for the user, the traceback in the log (and with --debug).
        if debug:
            raise
        log.error("internal error", exc_info=True)
        click.echo(_error_line(f"internal error: {type(err).__name__}: {err}", code="internal")
                   if _log_format(ctx) == "json" else
                   f"error: [internal] {type(err).__name__}: {err} (run with --debug for the "
                   "traceback)", err=True)
        ctx.exit(ExitStatus.JOB_FAILED)


def _error_line(message: str, **fields: Any) -> str:
    """An error as one JSON log object, with the job id when a job was being worked on."""
    batch = sys.modules.get(f"{__package__}.batch")
    job_id = batch.current_job_id.get() if batch is not None else None
    return json.dumps({"level": "error", "logger": "pipeline", "message": message,
                       "time": round(time.time(), 3), **({"job_id": job_id} if job_id else {}),
                       **fields})


def _install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: stop, kill running ffmpeg, clean up, exit 130."""

    def _on_term(signum: int, frame: Any) -> None:
        ffmpeg.stop_all()
        raise KeyboardInterrupt

    with contextlib.suppress(ValueError):  # not in the main thread (tests)
        signal.signal(signal.SIGTERM, _on_term)


def _settings(ctx: click.Context, **flags: Any) -> Settings:
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


def _read_job_text(job: str, settings: Settings | None = None) -> str:
    if job == "-":
        return sys.stdin.read()
    if job.lower().startswith("s3://"):
        from .batch import read_job_uri

        return read_job_uri(job, settings=settings or Settings.from_env())
    try:
        return Path(job).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise JobInvalid([("", f"cannot read the job file {job!r}: {err}")]) from err


def _log_format(ctx: click.Context) -> str:
    return str(ctx.find_root().params.get("log_format") or "text")


def _json_line(message: str, **fields: Any) -> str:
    """A progress record in the shape of the JSON log lines (``--log-format json``)."""
    job_id = fields.pop("job_id", None)
    payload: dict[str, Any] = {"level": "info", "logger": "pipeline.progress",
                               "message": message, "time": round(time.time(), 3)}
    if job_id:
        payload["job_id"] = job_id
    payload.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(payload)


def _json_event_printer() -> Callable[[JobEvent], None]:
    """Each job event as one JSON object on stderr; encode progress in 10 % steps."""
    lock = threading.Lock()
    last_step: dict[tuple[str, str | None], int] = {}

    def show(event: JobEvent) -> None:
        if event.kind == "progress" and event.pct is not None:
            step = int(event.pct * 10)
            with lock:
                if last_step.get((event.job_id, event.detail), -1) >= step:
                    return
                last_step[(event.job_id, event.detail)] = step
        line = _json_line(f"{event.stage} {event.kind}", job_id=event.job_id, stage=event.stage,
                          kind=event.kind, pct=None if event.pct is None
                          else round(event.pct, 3), detail=event.detail)
        with lock:
            click.echo(line, err=True)

    return show


def _progress_printer(enabled: bool, log_format: str = "text"
                      ) -> Callable[[JobEvent], None] | None:
    if not enabled:
        return None
    if log_format == "json":
        return _json_event_printer()
    tty = sys.stderr.isatty()

    def show(event: JobEvent) -> None:
        if event.stage == "encode" and event.pct is not None:
            if tty:
                bar = "#" * int(event.pct * 30)
                click.echo(f"\r  encoding {event.detail or ''} [{bar:<30}] {event.pct:4.0%}",
                           err=True, nl=False)
                if event.pct >= 1:
                    click.echo("", err=True)
            return
        if event.kind == "start":
            click.echo(f"[{event.job_id}] {event.stage}" + (f": {event.detail}"
                                                            if event.detail else ""), err=True)

    return show


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
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
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _job_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What the operator pins for every job: the tenant, and how long a job may take."""
    options = [
        click.option("--workspace", default=None, metavar="ID",
                     help="Serve only this workspace: a job with another workspace_id is "
                          "refused as invalid (default: $CONFORM_WORKSPACE). Set it when "
                          "jobs come from more than one tenant."),
        click.option("--job-deadline", "job_deadline_s", type=click.FloatRange(min=0,
                     min_open=True), default=None, metavar="SECONDS",
                     help="Wall-clock limit for one job, downloads and encodes included; "
                          "outputs not made by then fail with deadline_exceeded (default: "
                          "$CONFORM_JOB_DEADLINE_S or 14400)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _start(settings: Settings) -> None:
    """Start-up chores of the commands that run jobs: remove work folders of killed runs."""
    from . import workdir

    workdir.clean_stale(settings.workdir)


# --------------------------------------------------------------------------- commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message="conform %(version)s")
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              help="Logs as text lines or one JSON object per line.")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of error messages.")
@click.pass_context
def main(ctx: click.Context, verbose: int, log_format: str, debug: bool) -> None:
    """conform: make images and videos fit each social platform before a post is published.

    Exit codes: 0 every account ok; 1 some account failed; 2 invalid job, usage or
    configuration; 75 temporary failure (retry); 130 interrupted.
    """
    _setup_logging(verbose, log_format)
    _install_signal_handlers()


@main.command()
@click.argument("job", metavar="JOB", required=False)
@click.option("--dest", default=None, help="Output folder or s3://bucket/prefix "
              "(default: $CONFORM_DEST or ./conform-out).")
@_common_options
@_job_options
@click.option("--force", is_flag=True,
              help="Re-make and re-upload outputs even when they already exist.")
@click.option("--public-base-url", default=None, metavar="URL",
              help="Add an https 'url' next to each 'uri': URL is where --dest (with its "
                   "prefix) is served, e.g. a CDN (default: $CONFORM_PUBLIC_BASE_URL).")
@click.option("--presign", "presign_s", type=int, default=None, metavar="SECONDS",
              help="Add a presigned GET 'url' valid for SECONDS, at most 7 days "
                   "(s3:// destinations only; --public-base-url wins when both are given).")
@click.option("--progress/--no-progress", default=True, help="Progress lines on stderr.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              metavar="DIR", help="Also write the preview sheet (DIR/index.html) of the manifest.")
@click.pass_context
def run(ctx: click.Context, /, job: str | None, progress: bool, report_dir: str | None,
        **flags: Any) -> None:
    """Conform the media of one post and print the manifest.

    JOB is a JSON file, - for stdin, or an s3:// URI; without JOB the job is read from the
    s3:// URI in $CONFORM_JOB_URI (the container's input). Exit codes: 0 done, 1 an account
    failed for good, a timeout included (don't retry), 75 temporary failure (retry), 2
    invalid job.
    """
    from .batch import current_job_id
    from .runner import process

    token = current_job_id.set(None)  # log lines carry the job id until the command ends
    ctx.call_on_close(lambda: current_job_id.reset(token))
    with handle_errors(ctx):
        settings = _settings(ctx, **flags)
        job = job or os.environ.get("CONFORM_JOB_URI") or None
        if job is None:
            raise JobInvalid([("", "no job: give JOB (a file, - for stdin, or s3://...) "
                                   "or set CONFORM_JOB_URI")])
        presets = load_presets(settings.presets_dir)
        parsed = parse_job_text(_read_job_text(job, settings), presets,
                                workspace=settings.workspace)
        current_job_id.set(parsed.id)
        ffmpeg.require_tools()  # encoders are checked before the first encode
        _start(settings)
        manifest = process(parsed, settings=settings, presets=presets,
                           on_event=_progress_printer(progress, _log_format(ctx)))
        click.echo(json.dumps(manifest.to_dict(), indent=2))
        if report_dir is not None:
            _write_report(manifest.uri or "", Path(report_dir), presets=presets,
                          endpoint_url=settings.endpoint_url, manifest=manifest.to_dict())
        if manifest.uri:
            click.echo(_json_line("manifest written", job_id=parsed.id, uri=manifest.uri,
                                  status=manifest.status) if _log_format(ctx) == "json"
                       else f"manifest: {manifest.uri}", err=True)
        if manifest.ok:
            ctx.exit(ExitStatus.OK)
        ctx.exit(ExitStatus.TEMPFAIL if manifest.retryable else ExitStatus.JOB_FAILED)


@main.command()
@click.argument("job", metavar="JOB")
@_common_options
@_job_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan.")
@click.pass_context
def plan(ctx: click.Context, /, job: str, as_json: bool, **flags: Any) -> None:
    """Show what `run` would do for JOB (fetches and probes, writes nothing)."""
    from . import runner

    with handle_errors(ctx):
        settings = _settings(ctx, **flags)
        presets = load_presets(settings.presets_dir)
        parsed = parse_job_text(_read_job_text(job), presets, workspace=settings.workspace)
        ffmpeg.require_tools()
        _start(settings)
        jobplan = runner.plan(parsed, settings=settings, presets=presets)
        data = _plan_data(jobplan)
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            click.echo(_plan_table(data))
        ok = all(a["ok"] for a in data["accounts"])
        ctx.exit(ExitStatus.OK if ok else ExitStatus.JOB_FAILED)


def _plan_data(jobplan: Any) -> dict[str, Any]:
    outputs = []
    shared = {key: n for n, keys in enumerate(getattr(jobplan, "decodes", ()), start=1)
              for key in keys}
    for r in jobplan.renditions:
        t = r.target
        outputs.append({
            "shared_decode": shared.get(r.key),  # encodes with the same number: one decode
            "key": r.key, "name": r.name, "source": r.ref_text, "kind": t.kind,
            "action": getattr(t, "action", "passthrough" if getattr(t, "passthrough", False)
                              else "convert"),
            "width": t.geometry.width, "height": t.geometry.height, "actions": list(r.actions),
            "warnings": list(r.warnings),
            # smart framing's path, one summary per shot (see README "Smart framing")
            "reframe": [shot.to_dict() for shot in getattr(t, "reframe", ())],
            "accounts": [u.account_id for u in r.uses], "variants": sorted({u.variant_id
                                                                            for u in r.uses}),
            "target": asdict(t),
        })
    covers = [{"key": c.key, "source": c.target.source, "at_ms": c.target.at_ms,
               "width": c.target.width, "height": c.target.height, "format": c.target.format,
               "accounts": list(c.accounts)} for c in jobplan.covers]
    accounts = []
    for ap in jobplan.accounts:
        ch = ap.check
        accounts.append({"account_id": ch.account.id, "platform": ch.account.platform,
                         "mode": ch.account.mode, "ok": ch.ok,
                         "media": [{"content_index": s.content_index, "media_index": s.media_index,
                                    "variant": s.variant.id, "output": key}
                                   for s, key in ap.media],
                         "cover": ap.cover_key, "warnings": list(ch.warnings),
                         "errors": [e.to_dict() for e in ch.errors]})
    encodes = sum(1 for o in outputs if o["action"] == "transcode")
    return {"outputs": outputs, "covers": covers, "accounts": accounts, "encodes": encodes,
            "decodes": encodes - sum(len(keys) - 1 for keys in getattr(jobplan, "decodes", ()))}


def _plan_table(data: dict[str, Any]) -> str:
    lines = [f"{len(data['outputs'])} output(s), {data['encodes']} encode(s) from "
             f"{data['decodes']} decode(s), {len(data['covers'])} cover(s)", ""]
    lines.append(f"{'OUTPUT':<14} {'ACTION':<12} {'SIZE':<11} {'VARIANTS':<40} DOES")
    for o in data["outputs"]:
        lines.append(f"{o['key'][:12]:<14} {o['action']:<12} "
                     f"{str(o['width']) + 'x' + str(o['height']):<11} "
                     f"{','.join(o['variants'])[:40]:<40} {', '.join(o['actions'])}"
                     + (f" [decode #{o['shared_decode']}, shared]" if o["shared_decode"] else ""))
    lines.append("")
    lines.append(f"{'ACCOUNT':<16} {'PLATFORM':<10} {'STATUS':<8} DETAILS")
    for a in data["accounts"]:
        details = "; ".join(f"{e['code']}: {e['message']}" for e in a["errors"]) or \
            ", ".join(sorted({m["variant"] for m in a["media"]}))
        lines.append(f"{a['account_id'][:16]:<16} {a['platform']:<10} "
                     f"{'ok' if a['ok'] else 'FAILED':<8} {details}")
        for w in a["warnings"]:
            lines.append(f"{'':<36} warning: {w}")
    # Account ids, sources and messages come from the job: a terminal must not obey them.
    return "\n".join(_printable(line) for line in lines)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """``text`` with control characters (ESC, CR, BEL ...) shown as ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@main.command("probe")
@click.argument("source")
@_common_options
@click.option("--workspace-id", default="default", help="For {workspace_id} in the template.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output on stdout (also for errors: {\"error\": {...}}).")
@click.pass_context
def probe_cmd(ctx: click.Context, /, source: str, workspace_id: str, as_json: bool,
              **flags: Any) -> None:
    """Show what probing finds in SOURCE (a local path, an http(s) URL or a library ID).

    URLs are fetched with the same SSRF guard as jobs (--allow-network opens private ranges);
    the file is identified by its bytes, never by its name.
    """
    with handle_errors(ctx):
        try:
            data = _probe_source(source, workspace_id, _settings(ctx, **flags))
        except PipelineError as err:
            if as_json and not isinstance(err, Interrupted):
                click.echo(json.dumps({"source": source, "error": err.to_dict()}, indent=2))
            raise
        if as_json:
            click.echo(json.dumps(data, indent=2))
        else:
            click.echo(_probe_text(data))


def _probe_source(source: str, workspace_id: str, settings: Settings) -> dict[str, Any]:
    """Fetch SOURCE into a temporary folder, probe it, and return the facts as JSON data."""
    import shutil
    import tempfile

    from . import ingest, probe
    from .errors import SourceNotFound
    from .job import parse_media_ref

    settings.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="conform-probe-", dir=settings.workdir))
    try:
        if Path(source).is_file():
            local = ingest.fetch_local_path(Path(source), tmp, settings=settings)
        else:
            problems: list[tuple[str, str]] = []
            ref = parse_media_ref(source, "source", problems)
            if ref is None:
                raise JobInvalid(problems)
            if ref.kind == "library" and not settings.library and "://" not in source:
                raise SourceNotFound(f"{source!r}: no such file (and no --library or "
                                     "CONFORM_LIBRARY to look it up as a media-library ID)")
            local = ingest.fetch(ref, tmp, settings=settings, workspace_id=workspace_id)
        info = probe.probe(local.path, timeout_s=settings.probe_timeout_s,
                           max_pixels=settings.max_image_pixels,
                           max_frames=settings.max_animation_frames,
                           max_video_side_px=settings.max_video_side_px,
                           max_video_pixels=settings.max_video_pixels,
                           max_decode_bytes=settings.max_decode_bytes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"source": source, "sha256": local.sha256, **_jsonable(asdict(info))}


def _jsonable(value: Any) -> Any:
    from fractions import Fraction

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    return value


def _probe_text(data: dict[str, Any]) -> str:
    lines = [f"{data['source']}", f"  kind: {data['kind']} ({data['format_name']}), "
             f"{data['size_bytes']} bytes, {data['width']}x{data['height']} displayed"]
    if data.get("duration_s"):
        lines.append(f"  duration: {data['duration_s']:.3f} s")
    if data.get("bitrate_kbps"):
        lines.append(f"  bitrate: {data['bitrate_kbps']} kb/s")
    for part in ("video", "audio", "image"):
        if data.get(part):
            fields = ", ".join(f"{k}={v}" for k, v in data[part].items() if v not in (None, ""))
            lines.append(f"  {part}: {fields}")
    lines.append(f"  sha256: {data['sha256']}")
    return "\n".join(lines)


@main.group()
def presets() -> None:
    """List and show the platform presets."""


@presets.command("list")
@click.option("--presets", "presets_dir", type=click.Path(file_okay=False), default=None)
@click.pass_context
def presets_list(ctx: click.Context, presets_dir: str | None) -> None:
    """Every platform, its version, variants, and the file it came from."""
    with handle_errors(ctx):
        settings = Settings.from_env().replace(presets_dir=Path(presets_dir) if presets_dir
                                               else None)
        registry = load_presets(settings.presets_dir)
        for p in registry:
            variants = ", ".join(v.id for v in p.variants.values())
            click.echo(f"{p.platform:<10} {p.version:<12} {variants}")
            click.echo(f"{'':<10} from {p.origin}")


@presets.command("show")
@click.argument("name")
@click.option("--presets", "presets_dir", type=click.Path(file_okay=False), default=None)
@click.pass_context
def presets_show(ctx: click.Context, name: str, presets_dir: str | None) -> None:
    """Print one platform's preset (NAME: a platform, alias, or variant id) as JSON."""
    with handle_errors(ctx):
        settings = Settings.from_env().replace(presets_dir=Path(presets_dir) if presets_dir
                                               else None)
        registry = load_presets(settings.presets_dir)
        preset = registry.get(name)
        data: Any
        if preset is not None:
            data = {**_jsonable(asdict(preset)), "digest": preset.digest()}
        else:
            found = registry.find_variant(name)
            if found is None:
                click.echo(f"error: no platform or variant {name!r} "
                           f"(try: conform presets list)", err=True)
                ctx.exit(ExitStatus.USAGE)
            data = _jsonable(asdict(found[1]))
        click.echo(json.dumps(data, indent=2, default=str))


@main.command("schema")
@click.argument("name", type=click.Choice(["job", "manifest"]))
def schema_cmd(name: str) -> None:
    """Print the JSON Schema of a job or of a manifest (kept in the repository's schemas/).

    Generated from the pipeline's typed records: a publish service can validate what it
    sends (the job) and what it reads back (the manifest) against them.
    """
    from .schema import schema_text

    click.echo(schema_text(name), nl=False)


@main.command("report")
@click.argument("manifest", metavar="MANIFEST")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="Folder for index.html and its pictures (created).")
@click.option("--png", is_flag=True, help="Also write DIR/sheet.png, a PNG contact sheet.")
@click.option("--presets", "presets_dir", type=click.Path(file_okay=False), default=None,
              help="A folder of preset TOML files that add to or override the bundled ones.")
@click.option("--endpoint-url", default=None,
              help="S3 endpoint (MinIO, R2, moto); default: the AWS configuration.")
@click.pass_context
def report_cmd(ctx: click.Context, manifest: str, out_dir: str, png: bool,
               presets_dir: str | None, endpoint_url: str | None) -> None:
    """Write a preview sheet of a manifest: DIR/index.html, one self-contained page.

    MANIFEST is a local path or an s3:// URI. Every account with its status, errors and
    warnings; every output with a picture (a poster and a filmstrip for videos), size, bytes,
    duration and actions; the platform's UI zones drawn over vertical outputs. Prints the
    page's path on stdout.
    """
    with handle_errors(ctx):
        presets = load_presets(Path(presets_dir) if presets_dir else None)
        ffmpeg.require_tools()
        written = _write_report(manifest, Path(out_dir), presets=presets, png=png,
                                endpoint_url=endpoint_url)
        click.echo(str(written.index_html))
        if written.sheet_png is not None:
            click.echo(str(written.sheet_png))


def _write_report(source: str, out_dir: Path, *, presets: PresetRegistry, png: bool = False,
                  endpoint_url: str | None = None,
                  manifest: dict[str, Any] | None = None) -> Report:
    from .report import make_report

    written = make_report(source, out_dir, presets=presets, png=png, endpoint_url=endpoint_url,
                          manifest=manifest)
    click.echo(f"preview: {written.index_html}", err=True)
    return written


# --------------------------------------------------------------------------- batch and worker


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _BatchView:
    """Renders a batch: manifests on stdout, a live bar (TTY) or plain/JSON lines on stderr.

    ``on_event`` is called from worker threads, ``on_outcome`` from the main thread; one lock
    keeps their writes apart.
    """

    def __init__(self, total: int, *, mode: str, progress: bool, human: bool = False,
                 report: Callable[[Any], str | None] | None = None) -> None:
        self.total = total
        self.mode = mode  # "bar", "lines" or "json"
        self.progress = progress
        self.human = human  # stdout is a terminal: one readable line per job, not JSON
        self.report = report  # writes a job's preview sheet, returns where
        self.done = self.failed = self.skipped = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # job id -> what it is doing
        self._encode: dict[str, tuple[str, float]] = {}  # job id -> (output, fraction)
        self._drawn_at = 0.0
        self._json_events = _json_event_printer() if mode == "json" and progress else None

    def on_event(self, event: JobEvent) -> None:
        if self._json_events is not None:
            self._json_events(event)
            return
        with self._lock:
            if event.stage == "encode" and event.pct is not None:
                self._encode[event.job_id] = (event.detail or "", event.pct)
            elif event.kind == "start":
                self._running[event.job_id] = event.stage
                self._encode.pop(event.job_id, None)  # that encode is over
            self._draw(force=event.pct is not None and event.pct >= 1)

    def on_outcome(self, outcome: Any) -> None:
        from .batch import JobOutcome

        assert isinstance(outcome, JobOutcome)
        page = self.report(outcome) if self.report is not None else None
        if outcome.status not in ("skipped", "interrupted") and not self.human:
            click.echo(json.dumps(outcome.to_dict(), separators=(",", ":")))
        with self._lock:
            if outcome.status != "interrupted":
                self.done += 1
            self.failed += outcome.failed
            self.skipped += outcome.status == "skipped"
            if outcome.job_id is not None:
                self._running.pop(outcome.job_id, None)
                self._encode.pop(outcome.job_id, None)
            if self.human and outcome.status not in ("skipped", "interrupted"):
                if self.mode == "bar":
                    click.echo("\r\x1b[2K", err=True, nl=False)  # the bar shares the terminal
                click.echo(_human_line(outcome, self.done, self.total, page))
            if not (self.human and self.mode == "bar"):
                self._report(outcome)
            self._draw(force=True)

    def _report(self, outcome: Any) -> None:
        what = outcome.job_id or outcome.where
        detail = ""
        if outcome.error is not None:
            detail = f"[{outcome.error.code}] {outcome.error.message}"
        elif outcome.manifest is not None and outcome.failed:
            codes = sorted({e.code for a in outcome.manifest.accounts for e in a.errors})
            detail = ", ".join(codes)
        elif outcome.note:
            detail = outcome.note
        if self.mode == "json":
            click.echo(_json_line(f"job {outcome.status}", job_id=outcome.job_id,
                                  status=outcome.status, source=outcome.where,
                                  done=self.done, total=self.total,
                                  elapsed_s=round(outcome.elapsed_s, 3),
                                  error=outcome.error.to_dict() if outcome.error else None,
                                  note=outcome.note), err=True)
            return
        if self.mode == "bar" and not outcome.failed:
            return  # the bar counts it; only failures get a line of their own
        where = f" ({outcome.where})" if outcome.job_id and outcome.where else ""
        status = outcome.status.upper() if outcome.failed else outcome.status
        line = (f"[{self.done}/{self.total}] {status} {what}{where}"
                + (f": {detail}" if detail else "")
                + (f" in {outcome.elapsed_s:.1f}s" if outcome.status in
                   ("succeeded", "partial", "failed") else ""))
        if self.mode == "bar":
            click.echo("\r\x1b[2K" + line, err=True)
        else:
            click.echo(line, err=True)

    def _draw(self, *, force: bool = False) -> None:
        """Redraw the bar (TTY only), at most ten times a second."""
        if self.mode != "bar" or not self.progress:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        width = 24
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width)
        parts = [f"[{bar:<{width}}] {self.done}/{self.total} jobs"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self._encode:
            name, pct = next(reversed(self._encode.values()))
            more = f" (+{len(self._encode) - 1})" if len(self._encode) > 1 else ""
            parts.append(f"encoding {name} {pct:.0%}{more}")
        elif self._running:
            parts.append(f"{len(self._running)} running")
        processed = self.done - self.skipped
        if processed and self.done < self.total:
            eta = (now - self.started) / processed * (self.total - self.done)
            parts.append(f"ETA {_fmt_duration(eta)}")
        columns = shutil.get_terminal_size((100, 20)).columns
        click.echo("\r\x1b[2K" + " | ".join(parts)[: columns - 1], err=True, nl=False)

    def finish(self, summary: Any) -> None:
        if self.mode == "bar":
            click.echo("\r\x1b[2K", err=True, nl=False)
        counts = {"succeeded": summary.succeeded, "partial": summary.partial,
                  "failed": summary.failed, "invalid": summary.invalid,
                  "errors": summary.errors, "skipped": summary.skipped,
                  "not_started": summary.not_started}
        if self.mode == "json":
            click.echo(_json_line("batch interrupted" if summary.interrupted else "batch done",
                                  total=self.total, **counts, interrupted=summary.interrupted,
                                  elapsed_s=round(summary.elapsed_s, 3)), err=True)
            return
        text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()
                         if v or k == "succeeded")
        state = "interrupted" if summary.interrupted else "done"
        click.echo(f"batch {state}: {self.total} job(s): {text} "
                   f"in {_fmt_duration(summary.elapsed_s)}", err=True)


def _human_line(outcome: Any, done: int, total: int, page: str | None) -> str:
    """One line a person reads for a finished job (``conform batch`` with stdout on a TTY)."""
    what = outcome.job_id or outcome.where
    status = outcome.status.upper() if outcome.failed else outcome.status
    line = f"[{done}/{total}] {status} {what}"
    manifest = outcome.manifest
    if manifest is not None:
        ok = sum(1 for a in manifest.accounts if a.status == "ok")
        warnings = sum(len(a.warnings) + sum(len(m.warnings) for m in a.media)
                       for a in manifest.accounts)
        codes = sorted({e.code for a in manifest.accounts for e in a.errors})
        line += (f": {ok} account(s) ok, {len(manifest.accounts) - ok} failed"
                 + (f" ({', '.join(codes)})" if codes else "")
                 + f", {warnings} warning(s)")
        if manifest.uri:
            line += f"; manifest {manifest.uri}"
    elif outcome.error is not None:
        line += (f" ({outcome.where})" if outcome.job_id else "") + (
            f": [{outcome.error.code}] {outcome.error.message}")
    if page:
        line += f"; report {page}"
    return line + f" in {outcome.elapsed_s:.1f}s"


def _batch_reporter(report_dir: str | None, presets: PresetRegistry,
                    endpoint_url: str | None) -> Callable[[Any], str | None] | None:
    """``--report DIR``: each job's sheet in DIR/<workspace id>/<job id>/index.html.

    Scoped by workspace like the manifests: two tenants' ``post-42`` are two sheets.
    """
    if report_dir is None:
        return None

    def write(outcome: Any) -> str | None:
        if outcome.manifest is None or outcome.job_id is None:
            return None
        # ids are safe path segments, but may be "." or ".."
        parts = [outcome.manifest.workspace_id, outcome.job_id]
        folder = Path(report_dir).joinpath(
            *(p if not p.startswith(".") else "_" + p for p in parts if p))
        from .report import make_report

        try:
            written = make_report(outcome.manifest.uri or "", folder, presets=presets,
                                  endpoint_url=endpoint_url,
                                  manifest=outcome.manifest.to_dict())
        except PipelineError as err:  # the batch goes on; the job's line says no report
            log.warning("no preview sheet for %s: %s", outcome.job_id, err.message)
            return None
        return str(written.index_html)

    return write


@main.command()
@click.argument("source", metavar="SOURCE")
@click.option("--dest", default=None, help="Output folder or s3://bucket/prefix "
              "(default: $CONFORM_DEST or ./conform-out).")
@_common_options
@_job_options
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
@click.pass_context
def batch(ctx: click.Context, /, source: str, workers: int | None, fail_fast: bool,
          retry_failed: bool, shard_index: int | None, shard_count: int | None,
          progress: bool, as_json: bool, report_dir: str | None, **flags: Any) -> None:
    """Conform many posts: SOURCE is a JSON Lines file, a folder of job .json files, - (stdin)
    or an s3:// URI of either.

    Prints one manifest per line on stdout as jobs finish (a job without a manifest gets a line
    with its status, source and errors); on a terminal, one readable line per job instead
    (status, accounts ok/failed, warnings, where its manifest and report are) unless --json.
    Jobs whose manifest exists in DEST are skipped, so a killed batch continues where it
    stopped. Exit codes: 0 all ok, 1 some job failed, 2 the
    source or the settings are unusable, 130 interrupted.
    """
    from .batch import JobSource, process_batch, shard_from_env

    with handle_errors(ctx):
        settings = _settings(ctx, **flags)
        presets = load_presets(settings.presets_dir)
        shard = shard_from_env(shard_index, shard_count)
        ffmpeg.require_capabilities()
        _start(settings)
        with JobSource(source, presets=presets, settings=settings) as src:
            total = sum(1 for entry in src.entries() if shard.owns(entry.shard_key))
            mode = ("json" if _log_format(ctx) == "json" else
                    "bar" if progress and sys.stderr.isatty() else "lines")
            view = _BatchView(total, mode=mode, progress=progress,
                              human=not as_json and sys.stdout.isatty(),
                              report=_batch_reporter(report_dir, presets,
                                                     settings.endpoint_url))
            summary = process_batch(src.entries(), settings=settings, presets=presets,
                                    workers=workers, fail_fast=fail_fast,
                                    retry_failed=retry_failed, shard=shard,
                                    on_event=view.on_event, on_outcome=view.on_outcome,
                                    isolation="process")
            view.finish(summary)
        ctx.exit(summary.exit_status)


@main.command()
@click.option("--queue-url", envvar="CONFORM_QUEUE_URL", required=True,
              help="The SQS(-compatible) queue of jobs (also $CONFORM_QUEUE_URL). A message is "
                   "a job's JSON or an s3:// URI of one.")
@click.option("--dest", default=None, help="Output folder or s3://bucket/prefix "
              "(default: $CONFORM_DEST or ./conform-out).")
@_common_options
@_job_options
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
@click.pass_context
def worker(ctx: click.Context, /, queue_url: str, sqs_endpoint_url: str | None,
           results_queue_url: str | None, max_messages: int | None, idle_exit_s: float | None,
           wait_time_s: int, visibility_timeout_s: int | None, retry_delay_s: int,
           grace_s: float, workers: int, **flags: Any) -> None:
    """Run jobs from a queue until stopped: delete each message after its manifest is written.

    Prints one JSON line per handled message on stdout. Temporary failures are left on the
    queue for redelivery (its redrive policy dead-letters poison messages); permanent ones are
    done. Exit codes: 0 stopped (limit, idle or signal between jobs), 2 unusable settings or
    queue, 130 a signal interrupted a job (its message was released).
    """
    from .worker import MessageResult, Worker

    json_logs = _log_format(ctx) == "json"
    report_lock = threading.Lock()  # --workers: loops finish messages on their own threads

    def report(result: MessageResult) -> None:
        with report_lock:
            _report(result)

    def _report(result: MessageResult) -> None:
        click.echo(json.dumps(result.to_dict(), separators=(",", ":")))
        if json_logs:
            click.echo(_json_line(f"message {result.outcome}", job_id=result.job_id,
                                  message_id=result.message_id, status=result.outcome,
                                  deleted=result.deleted, heartbeats=result.heartbeats,
                                  elapsed_s=round(result.elapsed_s, 3)), err=True)
        else:
            error = f": [{result.error.code}] {result.error.message}" if result.error else ""
            job = f" {result.job_id}" if result.job_id else ""
            click.echo(f"message {result.message_id}: {result.outcome}{job}{error} "
                       f"in {result.elapsed_s:.1f}s", err=True)

    with handle_errors(ctx):
        settings = _settings(ctx, **flags)
        presets = load_presets(settings.presets_dir)
        ffmpeg.require_capabilities()
        _start(settings)
        w = Worker(queue_url, settings=settings, presets=presets,
                   sqs_endpoint_url=sqs_endpoint_url, results_queue_url=results_queue_url,
                   wait_time_s=wait_time_s, visibility_timeout_s=visibility_timeout_s,
                   retry_delay_s=retry_delay_s, max_messages=max_messages,
                   idle_exit_s=idle_exit_s,
                   on_event=_json_event_printer() if json_logs else None, on_result=report,
                   workers=workers, isolation="process")

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
            summary = w.run()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        ctx.exit(ExitStatus.INTERRUPTED if summary.interrupted_job else ExitStatus.OK)


@main.command("cover")
@click.argument("video", type=click.Path(exists=True, dir_okay=False))
@click.option("--at-ms", "at_ms", type=int, required=True, metavar="N",
              help="The time of the frame, in milliseconds from the start of the video.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Where the JPEG goes (default: VIDEO's name + '-<N>ms.jpg' in the current "
                   "folder).")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where temporary files go (default: $CONFORM_WORKDIR or $TMPDIR).")
@click.pass_context
def cover_cmd(ctx: click.Context, video: str, at_ms: int, out: str | None,
              workdir: str | None) -> None:
    """Write the frame shown at N ms of VIDEO as a JPEG (what a TikTok cover would show).

    Prints one JSON object on stdout: the file, its size and the timestamp, and warnings
    (a black frame). A time outside [0, duration) exits 1 with cover_timestamp_out_of_range.
    """
    import shutil
    import tempfile

    from . import cover, ingest, probe

    with handle_errors(ctx):
        settings = _settings(ctx, workdir=workdir)
        probe.setup_pillow(settings.max_image_pixels, settings.max_decode_bytes)
        settings.workdir.mkdir(parents=True, exist_ok=True)
        dest = Path(out) if out else Path.cwd() / f"{Path(video).stem}-{at_ms}ms.jpg"
        tmp = Path(tempfile.mkdtemp(prefix="conform-cover-", dir=settings.workdir))
        try:
            local = ingest.fetch_local_path(Path(video), tmp / "src", settings=settings)
            info = probe.probe(local.path, timeout_s=settings.probe_timeout_s,
                               max_pixels=settings.max_image_pixels,
                               max_video_side_px=settings.max_video_side_px,
                               max_video_pixels=settings.max_video_pixels,
                               max_decode_bytes=settings.max_decode_bytes)
            result = cover.cover_at(local.path, info, at_ms, tmp,
                                    timeout_s=settings.ffmpeg_timeout_s)
            try:
                shutil.copyfile(result.path, dest)
            except OSError as err:
                raise click.FileError(str(dest), hint=str(err)) from err
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        click.echo(json.dumps({"video": video, "out": str(dest), "timestamp_ms": at_ms,
                               "mime": result.mime, "bytes": dest.stat().st_size,
                               "width": result.width, "height": result.height,
                               "warnings": list(result.warnings)}))
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
