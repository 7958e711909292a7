"""`conform --help` and every subcommand's help, pinned (tests/data/help.txt).

The help is the command line's contract with its users and with the README: a refactor must
leave it byte for byte as it was. A deliberate change to an option or a docstring rewrites the
file (``python -m tests.test_help_text --write``) and the diff shows what users will see.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from pipeline.cli import main

GOLDEN = Path(__file__).resolve().parent / "data" / "help.txt"


def _commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            yield from _commands(group.commands[name], (*path, name))


def help_text() -> str:
    """Every command's ``--help`` at 80 columns, each under a ``=== conform ...`` line."""
    runner = CliRunner()
    parts = []
    for path in _commands(main):
        result = runner.invoke(main, [*path, "--help"], env={"COLUMNS": "80"},
                               terminal_width=80, prog_name="conform")
        assert result.exit_code == 0, (path, result.output)
        parts.append(f"=== conform {' '.join(path)}".rstrip() + "\n" + result.output)
    return "\n".join(parts)


def test_every_commands_help_is_as_pinned() -> None:
    assert help_text() == GOLDEN.read_text(encoding="utf-8")


def test_the_pinned_help_covers_every_command() -> None:
    listed = [line for line in GOLDEN.read_text(encoding="utf-8").splitlines()
              if line.startswith("=== ")]
    assert len(listed) == len(list(_commands(main))) >= 10
    assert "=== conform presets show" in listed


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(help_text(), encoding="utf-8")
