"""One deadline class: a job's between stages, a download's across retries and reads."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import ingest
from pipeline.cli import main
from pipeline.deadline import Deadline
from pipeline.errors import DeadlineExceeded, DownloadFailed
from pipeline.models import ErrorInfo, MediaRef
from pipeline.settings import Settings
from tests.support.httpserver import LOOPBACK, LocalHTTPServer, drip, http_server

http_server = http_server  # the fixture, re-exported for this module

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


# --- a download cut by a deadline is permanent (issue 21.12) ---------------------------------


@pytest.fixture
def dripping(http_server: LocalHTTPServer) -> str:
    """A URL whose body arrives one byte every 50 ms: only a deadline ends it."""
    http_server.route("/drip.mp4", drip(0.05))
    return http_server.url("/drip.mp4")


def test_a_download_cut_by_the_job_deadline_is_deadline_exceeded(
    dripping: str, tmp_path: Path
) -> None:
    settings = Settings(workdir=tmp_path / "work", allow_networks=LOOPBACK)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        ingest.fetch(MediaRef("url", dripping), tmp_path / "src", settings=settings,
                     workspace_id="ws", deadline_s=0.5)  # the job's time left
    assert time.monotonic() - started < 3.0
    assert info.value.code == "deadline_exceeded" and not info.value.retryable
    assert ErrorInfo.from_error(info.value).retryable is False  # `conform run` exits 1, not 75


def test_a_download_past_its_own_deadline_is_permanent_too(dripping: str,
                                                           tmp_path: Path) -> None:
    settings = Settings(workdir=tmp_path / "work", allow_networks=LOOPBACK,
                        download_deadline_s=0.5)
    with pytest.raises(DownloadFailed) as info:
        ingest.fetch(MediaRef("url", dripping), tmp_path / "src", settings=settings,
                     workspace_id="ws", deadline_s=60.0)
    assert info.value.code == "download_failed" and not info.value.retryable


def test_conform_run_exits_1_not_75_when_the_job_deadline_cuts_a_download(
    dripping: str, tmp_path: Path
) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"workspace_id": "ws", "id": "slow-source",
                               "content": [{"media": [dripping]}],
                               "accounts": [{"id": "a1", "platform": "telegram"}]}))
    started = time.monotonic()
    result = CliRunner().invoke(main, [
        "run", str(job), "--allow-network", "127.0.0.0/8", "--job-deadline", "1",
        "--dest", str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--no-progress"])
    assert time.monotonic() - started < 10
    assert result.exit_code == 1, result.output
    manifest = json.loads(result.stdout)
    (account,) = manifest["accounts"]
    assert [e["code"] for e in account["errors"]] == ["deadline_exceeded"]
