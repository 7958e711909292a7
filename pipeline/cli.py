"""The ``conform`` command line: thin wrapper that parses, calls the library and renders results.

stdout carries machine-readable results only (the manifest JSON); logs and progress go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from . import __version__, ffmpeg
from .errors import ExitStatus, Interrupted, JobInvalid, PipelineError
from .job import parse_job_text
from .models import JobEvent
from .presets import PresetRegistry, load_presets
from .settings import Settings, parse_networks

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


def _setup_logging(verbose: int, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
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
        click.echo("error: the job is invalid:", err=True)
        for path, message in err.problems:
            click.echo(f"  {path}: {message}" if path else f"  {message}", err=True)
        ctx.exit(ExitStatus.USAGE)
    except (Interrupted, KeyboardInterrupt):
        ffmpeg.stop_all()
        click.echo("error: interrupted", err=True)
        ctx.exit(ExitStatus.INTERRUPTED)
    except PipelineError as err:
        if debug:
            raise
        click.echo(f"error: [{err.code}] {err.message}", err=True)
        ctx.exit(ExitStatus.TEMPFAIL if err.retryable else err.exit_code)


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


def _read_job_text(job: str) -> str:
    if job == "-":
        return sys.stdin.read()
    try:
        return Path(job).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise JobInvalid([("", f"cannot read the job file {job!r}: {err}")]) from err


def _progress_printer(enabled: bool) -> Callable[[JobEvent], None] | None:
    if not enabled:
        return None
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
                     help="A folder of preset TOML files that add to or override the bundled ones."),
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


def _load(ctx: click.Context, settings: Settings) -> PresetRegistry:
    return load_presets(settings.presets_dir)


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
@click.argument("job", metavar="JOB")
@click.option("--dest", default=None, help="Output folder or s3://bucket/prefix "
              "(default: $CONFORM_DEST or ./conform-out).")
@_common_options
@click.option("--force", is_flag=True,
              help="Re-make and re-upload outputs even when they already exist.")
@click.option("--public-base-url", default=None, metavar="URL",
              help="Add an https 'url' next to each 'uri': URL is where --dest (with its "
                   "prefix) is served, e.g. a CDN (default: $CONFORM_PUBLIC_BASE_URL).")
@click.option("--presign", "presign_s", type=int, default=None, metavar="SECONDS",
              help="Add a presigned GET 'url' valid for SECONDS, at most 7 days "
                   "(s3:// destinations only; --public-base-url wins when both are given).")
@click.option("--progress/--no-progress", default=True, help="Progress lines on stderr.")
@click.pass_context
def run(ctx: click.Context, job: str, progress: bool, **flags: Any) -> None:
    """Conform the media of one post (JOB: a JSON file, or - for stdin) and print the manifest."""
    from .runner import process

    with handle_errors(ctx):
        settings = _settings(ctx, **flags)
        presets = _load(ctx, settings)
        parsed = parse_job_text(_read_job_text(job), presets)
        ffmpeg.require_capabilities()
        manifest = process(parsed, settings=settings, presets=presets,
                           on_event=_progress_printer(progress))
        click.echo(json.dumps(manifest.to_dict(), indent=2))
        if manifest.uri:
            click.echo(f"manifest: {manifest.uri}", err=True)
        if manifest.ok:
            ctx.exit(ExitStatus.OK)
        ctx.exit(ExitStatus.TEMPFAIL if manifest.retryable else ExitStatus.JOB_FAILED)


@main.command()
@click.argument("job", metavar="JOB")
@_common_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan.")
@click.pass_context
def plan(ctx: click.Context, job: str, as_json: bool, **flags: Any) -> None:
    """Show what `run` would do for JOB (fetches and probes, writes nothing)."""
    from . import runner

    with handle_errors(ctx):
        settings = _settings(ctx, **flags)
        presets = _load(ctx, settings)
        parsed = parse_job_text(_read_job_text(job), presets)
        ffmpeg.require_capabilities()
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
    for r in jobplan.renditions:
        t = r.target
        outputs.append({
            "key": r.key, "name": r.name, "source": r.ref_text, "kind": t.kind,
            "action": getattr(t, "action", "passthrough" if getattr(t, "passthrough", False)
                              else "convert"),
            "width": t.geometry.width, "height": t.geometry.height, "actions": list(r.actions),
            "warnings": list(r.warnings),
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
    return {"outputs": outputs, "covers": covers, "accounts": accounts,
            "encodes": sum(1 for o in outputs if o["action"] == "transcode")}


def _plan_table(data: dict[str, Any]) -> str:
    lines = [f"{len(data['outputs'])} output(s), {data['encodes']} encode(s), "
             f"{len(data['covers'])} cover(s)", ""]
    lines.append(f"{'OUTPUT':<14} {'ACTION':<12} {'SIZE':<11} {'VARIANTS':<40} DOES")
    for o in data["outputs"]:
        lines.append(f"{o['key'][:12]:<14} {o['action']:<12} "
                     f"{str(o['width']) + 'x' + str(o['height']):<11} "
                     f"{','.join(o['variants'])[:40]:<40} {', '.join(o['actions'])}")
    lines.append("")
    lines.append(f"{'ACCOUNT':<16} {'PLATFORM':<10} {'STATUS':<8} DETAILS")
    for a in data["accounts"]:
        details = "; ".join(f"{e['code']}: {e['message']}" for e in a["errors"]) or \
            ", ".join(sorted({m["variant"] for m in a["media"]}))
        lines.append(f"{a['account_id'][:16]:<16} {a['platform']:<10} "
                     f"{'ok' if a['ok'] else 'FAILED':<8} {details}")
        for w in a["warnings"]:
            lines.append(f"{'':<36} warning: {w}")
    return "\n".join(lines)


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
                           max_frames=settings.max_animation_frames)
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
            data = _jsonable(asdict(found[1]))  # type: ignore[index]
        click.echo(json.dumps(data, indent=2, default=str))
