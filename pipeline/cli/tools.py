"""The commands around jobs: ``probe`` and ``cover`` (one file), ``presets``, ``schema`` and
``report``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import ffmpeg
from ..errors import ExitStatus, Interrupted, PipelineError
from ..examine import jsonable
from ..presets import PresetRegistry, load_presets
from ..settings import Settings
from .common import common_options, handle_errors, make_settings
from .display import printable, probe_text

if TYPE_CHECKING:
    from ..manifest import Manifest
    from ..report import Report


@click.command("probe")
@click.argument("source")
@common_options
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
    from ..examine import probe_source

    with handle_errors(ctx):
        try:
            data = probe_source(source, settings=make_settings(**flags),
                                workspace_id=workspace_id).to_dict()
        except PipelineError as err:
            if as_json and not isinstance(err, Interrupted):
                click.echo(json.dumps({"source": source, "error": err.to_dict()}, indent=2))
            raise
        click.echo(json.dumps(data, indent=2) if as_json else probe_text(data))


@click.command("cover")
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
    from ..examine import CoverNotWritten, cover_frame

    with handle_errors(ctx):
        settings = make_settings(workdir=workdir)
        dest = Path(out) if out else Path.cwd() / f"{Path(video).stem}-{at_ms}ms.jpg"
        try:
            result = cover_frame(video, at_ms, dest, settings=settings)
        except CoverNotWritten as err:
            raise click.FileError(str(err.dest), hint=str(err.cause)) from err
        click.echo(json.dumps(result.to_dict()))
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)


@click.group()
def presets() -> None:
    """List and show the platform presets."""


def _registry(presets_dir: str | None) -> PresetRegistry:
    settings = Settings.from_env().replace(presets_dir=Path(presets_dir) if presets_dir
                                           else None)
    return load_presets(settings.presets_dir)


@presets.command("list")
@click.option("--presets", "presets_dir", type=click.Path(file_okay=False), default=None)
@click.pass_context
def presets_list(ctx: click.Context, presets_dir: str | None) -> None:
    """Every platform, its version, variants, and the file it came from."""
    with handle_errors(ctx):
        for p in _registry(presets_dir):
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
        registry = _registry(presets_dir)
        preset = registry.get(name)
        data: Any
        if preset is not None:
            data = {**jsonable(asdict(preset)), "digest": preset.digest()}
        else:
            found = registry.find_variant(name)
            if found is None:
                click.echo(f"error: no platform or variant {name!r} "
                           f"(try: conform presets list)", err=True)
                ctx.exit(ExitStatus.USAGE)
            data = jsonable(asdict(found[1]))
        click.echo(json.dumps(data, indent=2, default=str))


@click.command("schema")
@click.argument("name", type=click.Choice(["job", "manifest"]))
def schema_cmd(name: str) -> None:
    """Print the JSON Schema of a job or of a manifest (kept in the repository's schemas/).

    Generated from the pipeline's typed records: a publish service can validate what it
    sends (the job) and what it reads back (the manifest) against them.
    """
    from ..schema import schema_text

    click.echo(schema_text(name), nl=False)


@click.command("report")
@click.argument("manifest", metavar="MANIFEST")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, metavar="DIR",
              help="Folder for index.html and its pictures: new, empty, or an earlier report "
                   "(replaced whole).")
@click.option("--png", is_flag=True, help="Also write DIR/sheet.png, a PNG contact sheet.")
@click.option("--presets", "presets_dir", type=click.Path(file_okay=False), default=None,
              help="A folder of preset TOML files that add to or override the bundled ones.")
@click.option("--dest", default=None, metavar="URL",
              help="The destination root the outputs may be read from (a folder, file:// or "
                   "s3://bucket/prefix); default: the root the manifest was read from.")
@click.option("--endpoint-url", default=None,
              help="S3 endpoint (MinIO, R2, moto); default: the AWS configuration.")
@click.pass_context
def report_cmd(ctx: click.Context, manifest: str, out_dir: str, png: bool,
               presets_dir: str | None, dest: str | None, endpoint_url: str | None) -> None:
    """Write a preview sheet of a manifest: DIR/index.html, one self-contained page.

    MANIFEST is a local path or an s3:// URI; it must have the shape of `conform schema
    manifest`. Every account with its status, errors and warnings; every output with a
    picture (a poster and a filmstrip for videos), size, bytes, duration and actions; the
    platform's UI zones drawn over vertical outputs. Outputs are read only under the
    destination root; any other is shown as not available. Prints the page's path on stdout.
    """
    with handle_errors(ctx):
        presets = load_presets(Path(presets_dir) if presets_dir else None)
        ffmpeg.require_tools()
        written = write_report(manifest, Path(out_dir), presets=presets, png=png,
                               endpoint_url=endpoint_url, dest=dest)
        click.echo(printable(str(written.index_html)))
        if written.sheet_png is not None:
            click.echo(printable(str(written.sheet_png)))


def check_report_dir(out_dir: Path) -> None:
    """Refuse a report folder that would be refused after the work (a link, a file, a
    folder of other things).

    Raises:
        ConfigError: see :func:`pipeline.report.folder.check_target`.
    """
    from ..report.folder import check_target

    check_target(out_dir)


def write_report(source: str, out_dir: Path, *, presets: PresetRegistry, png: bool = False,
                 endpoint_url: str | None = None, manifest: Manifest | None = None,
                 dest: str | None = None) -> Report:
    """:func:`pipeline.report.make_report`, and where the page went on stderr."""
    from ..report import make_report

    written = make_report(source, out_dir, presets=presets, png=png, endpoint_url=endpoint_url,
                          manifest=manifest, dest=dest)
    click.echo(printable(f"preview: {written.index_html}"), err=True)
    return written
