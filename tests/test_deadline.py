"""One deadline class: a job's between stages, a download's across retries and reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.deadline import Deadline
from pipeline.errors import DeadlineExceeded, DownloadFailed

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline"


def test_a_passed_job_deadline_names_the_stage() -> None:
    deadline = Deadline(-0.01)
    assert deadline.expired() and deadline.remaining() == 1.0  # a tool call still gets 1 s
    with pytest.raises(DeadlineExceeded, match="before render"):
        deadline.check("render")
    Deadline(60).check("render")  # not passed: nothing raised


def test_a_download_deadline_raises_its_own_error() -> None:
    deadline = Deadline(-0.01, lambda _: DownloadFailed("download of x exceeded its deadline"))
    with pytest.raises(DownloadFailed, match="exceeded"):
        deadline.time_left()
    cause = OSError("reset")
    with pytest.raises(DownloadFailed) as caught:
        Deadline(60, lambda _: DownloadFailed("late")).expire(cause)
    assert caught.value.__cause__ is cause
    assert 59 < Deadline(60).time_left() <= 60


def test_there_is_one_deadline_class() -> None:
    classes = [f"{path.relative_to(PACKAGE)}:{node.name}"
               for path in PACKAGE.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ClassDef) and "deadline" in node.name.lower()
               and not node.name.endswith("Exceeded")]
    assert classes == ["deadline.py:Deadline"]
