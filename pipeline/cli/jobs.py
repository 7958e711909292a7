"""``conform run`` and ``conform plan``: one job, made or only planned."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .. import ffmpeg
from ..errors import ExitStatus, JobInvalid
from ..job import parse_job_text
from ..presets import load_presets
from .common import (
    common_options,
    dest_option,
    handle_errors,
    job_options,
    log_format,
    make_settings,
    read_job_text,
    start,
)
from .display import json_line, plan_table, progress_printer
from .tools import check_report_dir, write_report


@click.command()
@click.argument("job", metavar="JOB", required=False)
@dest_option
@common_options
@job_options
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
    from ..fleet.jobs import reset_current_job, set_current_job
    from ..runner import process

    # log lines carry the job's ids until the command ends
    token = set_current_job(None, None)
    ctx.call_on_close(lambda: reset_current_job(token))
    with handle_errors(ctx):
        settings = make_settings(**flags)
        job = job or os.environ.get("CONFORM_JOB_URI") or None
        if job is None:
            raise JobInvalid([("", "no job: give JOB (a file, - for stdin, or s3://...) "
                                   "or set CONFORM_JOB_URI")])
        presets = load_presets(settings.presets_dir)
        if report_dir is not None:
            check_report_dir(Path(report_dir))  # refused now, not after the job ran
        parsed = parse_job_text(read_job_text(job, settings), presets,
                                workspace=settings.workspace)
        set_current_job(parsed.id, parsed.workspace_id)
        ffmpeg.require_tools()  # encoders are checked if an encode fails
        start(settings)
        manifest = process(parsed, settings=settings, presets=presets,
                           on_event=progress_printer(progress, log_format(ctx)))
        click.echo(json.dumps(manifest.to_dict(), indent=2))
        if report_dir is not None:
            write_report(manifest.uri or "", Path(report_dir), presets=presets,
                         endpoint_url=settings.endpoint_url, manifest=manifest)
        if manifest.uri:
            click.echo(json_line("manifest written", job_id=parsed.id, uri=manifest.uri,
                                 status=manifest.status) if log_format(ctx) == "json"
                       else f"manifest: {manifest.uri}", err=True)
        if manifest.ok:
            ctx.exit(ExitStatus.OK)
        ctx.exit(ExitStatus.TEMPFAIL if manifest.retryable else ExitStatus.JOB_FAILED)


@click.command()
@click.argument("job", metavar="JOB")
@common_options
@job_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable plan.")
@click.pass_context
def plan(ctx: click.Context, /, job: str, as_json: bool, **flags: Any) -> None:
    """Show what `run` would do for JOB (fetches and probes, writes nothing)."""
    from .. import runner
    from ..examine import plan_summary

    with handle_errors(ctx):
        settings = make_settings(**flags)
        presets = load_presets(settings.presets_dir)
        parsed = parse_job_text(read_job_text(job), presets, workspace=settings.workspace)
        ffmpeg.require_tools()
        start(settings)
        data = plan_summary(runner.dry_run(parsed, settings=settings, presets=presets))
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        else:
            click.echo(plan_table(data))
        ok = all(a["ok"] for a in data["accounts"])
        ctx.exit(ExitStatus.OK if ok else ExitStatus.JOB_FAILED)
