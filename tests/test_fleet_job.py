"""One fleet job, written once: the batch and the queue worker run a job the same way and get
the same frozen record back, then say it in their own words."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from pipeline.fleet import jobs
from pipeline.fleet.batch import BatchEntry, _outcome
from pipeline.fleet.jobs import JobLauncher, JobResult, run_job
from pipeline.fleet.messages import message_outcome, read_message
from pipeline.job import parse_job
from pipeline.models import ErrorInfo, Job
from pipeline.presets import PresetRegistry
from pipeline.settings import Settings
from pipeline.storage import open_storage
from tests.support.jobkit import image_job, library_settings, make_library


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "library", images=1, video=False)


def _runner(settings: Settings, presets: PresetRegistry, *, isolation: Any = "thread",
            retry_failed: bool = False) -> JobLauncher:
    storage = open_storage(settings.dest)
    return JobLauncher(settings, presets, storage, child_storage=None, retry_failed=retry_failed,
                     on_event=None, isolation=isolation)


def _local_path(uri: str) -> Path:
    return Path(urlsplit(uri).path) if uri.startswith("file:") else Path(uri)


def test_the_record_holds_only_consistent_combinations() -> None:
    error = ErrorInfo("storage_failed", "the store is down", 503, retryable=True)
    assert JobResult("error", error=error).error == error
    assert JobResult("skipped", uri="file:///out/manifests/ws/x.json").uri
    assert JobResult("interrupted").manifest is None
    with pytest.raises(ValueError):
        JobResult("error")  # an error without the error
    with pytest.raises(ValueError):
        JobResult("succeeded")  # a job that ran without its manifest
    with pytest.raises(ValueError):
        JobResult("interrupted", error=error)
    record = JobResult("error", error=error)
    with pytest.raises(AttributeError):
        record.status = "succeeded"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(record)) == record  # what a job process sends back


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_job_runs_then_is_skipped_the_same_way_for_batch_and_worker(
        tmp_path: Path, library: Path, presets: PresetRegistry, isolation: str) -> None:
    settings = library_settings(tmp_path, library)
    job = parse_job(image_job("post-1"), presets)
    first = _runner(settings, presets, isolation=isolation).run(job)
    assert first.status == "succeeded" and first.error is None
    assert first.manifest is not None and first.uri == first.manifest.uri
    # The output is on disk and decodes as the platform would see it, and so is the manifest.
    media = [m for a in first.manifest.accounts for m in a.media]
    assert media
    for medium in media:
        with Image.open(_local_path(medium.uri)) as im:
            im.load()
            assert im.size[0] > 0
    assert _local_path(first.uri).is_file()

    again = _runner(settings, presets, isolation=isolation).run(job)
    assert again == JobResult("skipped", uri=first.uri)
    assert message_outcome(first) == "succeeded" and message_outcome(again) == "skipped"
    entry = BatchEntry(1, "#1", job=job)
    assert _outcome(entry, job, first, 0.5).status == "succeeded"
    skipped = _outcome(entry, job, again, 0.5)
    assert (skipped.status, skipped.note, skipped.ok) == ("skipped", "manifest exists", True)


def test_a_stored_failure_is_run_again_only_when_retrying(
        tmp_path: Path, library: Path, presets: PresetRegistry) -> None:
    settings = library_settings(tmp_path, library)
    job = parse_job(image_job("post-2", photo="missing.jpg"), presets)
    failed = _runner(settings, presets).run(job)
    assert failed.status == "failed" and failed.manifest is not None
    assert [e.code for a in failed.manifest.accounts for e in a.errors] == ["media_not_found"]
    assert message_outcome(failed) == "failed"  # not retryable: the message is done
    assert _runner(settings, presets).run(job).status == "skipped"  # the batch's default
    # The worker (and `batch --retry-failed`) runs it again: its manifest did not succeed.
    assert _runner(settings, presets, retry_failed=True).run(job).status == "failed"


def test_a_bug_in_a_job_is_an_error_record_that_the_worker_retries(
        tmp_path: Path, library: Path, presets: PresetRegistry,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(jobs, "process", explode)
    settings = library_settings(tmp_path, library)
    job = parse_job(image_job("post-3"), presets)
    result = run_job(job, settings=settings, presets=presets, storage=None, retry_failed=True)
    assert result.status == "error" and result.error is not None
    assert (result.error.code, result.error.retryable) == ("internal", True)
    assert message_outcome(result) == "retry"
    outcome = _outcome(BatchEntry(1, "#1", job=job), job, result, 0.1)
    assert outcome.status == "error" and outcome.failed
    assert outcome.to_dict()["errors"] == [result.error.to_dict()]


def test_the_worker_words_for_a_job_without_a_manifest(presets: PresetRegistry) -> None:
    settings = Settings()
    unusable = read_message("{not json", settings=settings, presets=presets)
    assert isinstance(unusable, JobResult) and unusable.error is not None
    assert message_outcome(unusable) == "invalid"
    assert isinstance(read_message(_job_text(), settings=settings, presets=presets), Job)
    passing = ErrorInfo("storage_failed", "the store is down", 503, retryable=True)
    lasting = ErrorInfo("config_error", "no such bucket", 500)
    assert message_outcome(JobResult("error", error=passing)) == "retry"
    assert message_outcome(JobResult("error", error=lasting)) == "failed"
    assert message_outcome(JobResult("interrupted")) == "released"
    assert message_outcome(JobResult("skipped", uri="s3://out/manifests/ws/x.json")) == "skipped"


def _job_text() -> str:
    return json.dumps(image_job("post-4"))
