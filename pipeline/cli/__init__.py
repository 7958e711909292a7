"""The ``conform`` command line: thin wrapper that parses, calls the library and renders results.

stdout carries machine-readable results only (the manifest JSON); logs and progress go to stderr.
Each command parses its options into :class:`~pipeline.settings.Settings`, calls one library
function and prints what it returns; errors become messages and exit codes in one place,
:func:`pipeline.cli.common.handle_errors`.
"""

from __future__ import annotations

import click

from ..version import __version__
from .common import install_signal_handlers, setup_logging
from .fleet import batch, worker
from .jobs import plan, run
from .tools import cover_cmd, presets, probe_cmd, report_cmd, schema_cmd

__all__ = ["main"]


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
    setup_logging(verbose, log_format)
    install_signal_handlers()


for _command in (run, plan, batch, worker, probe_cmd, cover_cmd, presets, schema_cmd,
                 report_cmd):
    main.add_command(_command)
