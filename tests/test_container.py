"""The container job's contract, in-process: the job from CONFORM_JOB_URI, an s3:// argument or
stdin; exit codes 0 / 1 / 2 / 75; JSON log lines that each carry the job id.

scripts/container-test proves the same against the real image built with podman (CI runs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import pipeline
from pipeline.cli import main
from tests.support.jobkit import image_job, make_library

pytestmark = [pytest.mark.ffmpeg]


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_library(tmp_path_factory.mktemp("library"), images=3, video=False)


def _run(tmp: Path, library: Path, *args: str, env: dict[str, str] | None = None,
         input: str | None = None, log_json: bool = False) -> Any:
    pre = ["--log-format", "json"] if log_json else []
    return CliRunner(env=env).invoke(
        main, [*pre, "run", *args, "--library", f"file://{library}/{{id}}",
               "--workdir", str(tmp / "work")], input=input)


def _ours(stderr: str) -> list[dict[str, Any]]:
    """The JSON log records of the pipeline (other libraries may log through them too)."""
    records = [json.loads(line) for line in stderr.splitlines()]
    return [r for r in records if r["logger"].startswith("pipeline")]


@pytest.mark.s3
def test_job_from_conform_job_uri_with_json_logs(tmp_path: Path, library: Path, s3_server: Any,
                                                 s3_bucket: str) -> None:
    client = s3_server.client()
    client.put_object(Bucket=s3_bucket, Key="jobs/c-1.json",
                      Body=json.dumps(image_job("c-1", "photo-1.jpg")).encode())
    dest = f"s3://{s3_bucket}/out"
    result = _run(tmp_path, library, "--dest", dest, log_json=True,
                  env={"CONFORM_JOB_URI": f"s3://{s3_bucket}/jobs/c-1.json"})
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["job_id"] == "c-1" and manifest["status"] == "succeeded"
    stored = client.get_object(Bucket=s3_bucket, Key="out/manifests/ws/c-1.json")["Body"].read()
    assert json.loads(stored) == manifest
    records = _ours(result.stderr)
    assert records and all(r["job_id"] == "c-1" for r in records)
    assert records[-1]["uri"] == f"{dest}/manifests/ws/c-1.json"

    # The same job as an argument: an s3:// URI works where a file name does.
    again = _run(tmp_path, library, f"s3://{s3_bucket}/jobs/c-1.json", "--dest", dest)
    assert again.exit_code == 0, again.stderr
    assert "reused" in json.loads(again.stdout)["accounts"][0]["media"][0]["actions"]


@pytest.mark.s3
def test_unusable_input_exits_2(tmp_path: Path, library: Path, s3_bucket: str) -> None:
    missing = _run(tmp_path, library, "--dest", str(tmp_path / "out"), log_json=True,
                   env={"CONFORM_JOB_URI": f"s3://{s3_bucket}/jobs/none.json"})
    assert missing.exit_code == 2
    (record,) = _ours(missing.stderr)
    assert record["level"] == "error" and record["code"] == "invalid_job"
    nothing = _run(tmp_path, library, "--dest", str(tmp_path / "out"),
                   env={"CONFORM_JOB_URI": ""})
    assert nothing.exit_code == 2 and "CONFORM_JOB_URI" in nothing.stderr
    invalid = _run(tmp_path, library, "-", "--dest", str(tmp_path / "out"),
                   input='{"workspace_id": "w", "content": [], "accounts": []}')
    assert invalid.exit_code == 2
    assert not (tmp_path / "out").exists()  # nothing was processed


def test_stdin_job_and_a_permanent_failure(tmp_path: Path, library: Path) -> None:
    ok = _run(tmp_path, library, "-", "--dest", str(tmp_path / "out"),
              input=json.dumps(image_job("c-2", "photo-2.jpg")))
    assert ok.exit_code == 0, ok.stderr
    failed = _run(tmp_path, library, "-", "--dest", str(tmp_path / "out"),
                  input=json.dumps(image_job("c-3", "gone.jpg")))
    assert failed.exit_code == 1  # don't retry: the medium does not exist
    assert json.loads(failed.stdout)["status"] == "failed"


@pytest.mark.s3
@pytest.mark.usefixtures("no_retry_sleep")
def test_temporary_failure_exits_75(tmp_path: Path, library: Path, s3_server: Any) -> None:
    # Nothing listens on port 9: every storage request fails as a network error.
    result = _run(tmp_path, library, "-", "--dest", "s3://bucket/out", "--endpoint-url",
                  "http://127.0.0.1:9", input=json.dumps(image_job("c-4", "photo-0.jpg")))
    assert result.exit_code == 75, result.stderr


def test_the_library_api_is_exported() -> None:
    for name in ("process", "process_batch", "Worker", "parse_job", "parse_job_text",
                 "load_presets", "Settings", "Manifest", "PipelineError", "JobInvalid",
                 "JobOutcome", "BatchSummary", "MessageResult", "JobEvent"):
        assert name in pipeline.__all__
        assert getattr(pipeline, name) is not None
    from pipeline.fleet.batch import process_batch
    from pipeline.runner import process

    assert pipeline.process is process and pipeline.process_batch is process_batch
    with pytest.raises(AttributeError):
        pipeline.no_such_thing  # noqa: B018 - the attribute access is the test
