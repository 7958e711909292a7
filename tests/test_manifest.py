"""Manifest records: one place turns an error into a manifest error, one to_dict per record."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.errors import (
    CannotFit,
    DownloadFailed,
    ManifestInvalid,
    SourceNotFound,
    StorageNotFound,
)
from pipeline.manifest import AccountResult, CaptionFile, CoverEntry, Manifest, MediaEntry
from pipeline.manifestfile import read_manifest
from pipeline.models import ErrorInfo
from pipeline.reframes import ReframeEntry, ReframeKey
from pipeline.storage import LocalStorage


def test_error_info_keeps_code_status_and_retryability() -> None:
    info = ErrorInfo.from_error(DownloadFailed("reset by peer"), 1, 2)
    assert (info.code, info.http_status, info.retryable) == (
        "download_failed", DownloadFailed.http_status, True)
    assert (info.content_index, info.media_index) == (1, 2)
    assert info.to_dict() == {"code": "download_failed", "message": "reset by peer",
                              "http_status": DownloadFailed.http_status,
                              "content_index": 1, "media_index": 2}
    missing = ErrorInfo.from_error(SourceNotFound("gone"))
    assert missing.to_dict() == {"code": "media_not_found", "message": "gone",
                                 "http_status": 404}
    fit = ErrorInfo.from_error(CannotFit("cannot fit the image under 5000 bytes"))
    assert (fit.code, fit.http_status, fit.retryable) == ("too_large", 400, False)


def test_an_unexpected_exception_is_an_internal_error() -> None:
    info = ErrorInfo.from_error(KeyError("width"))
    assert info.to_dict() == {"code": "internal", "message": "internal error: KeyError: 'width'",
                              "http_status": 500}


def _manifest(errors: tuple[ErrorInfo, ...]) -> Manifest:
    media = MediaEntry(content_index=0, media_index=0, source="clip.mp4", kind="video",
                       uri="file:///out/a.mp4", mime="video/mp4", bytes=10, sha256="ab",
                       width=2, height=2, duration_ms=1000, actions=("passed_through",),
                       warnings=())
    cover = CoverEntry(uri="file:///out/c.jpg", mime="image/jpeg", bytes=5, width=2, height=2,
                       timestamp_ms=0, source="video_cover_timestamp_ms")
    ok = AccountResult("a1", "tiktok", "tiktok-video", "ok", (media,), cover, (), ())
    failed = AccountResult("a2", "x", "twitter-video", "failed", (), None, ("w",), errors)
    return Manifest(job_id="j", status="partial", presets_version="p", accounts=(ok, failed),
                    workspace_id="ws", extra={"pipeline_version": "0"})


def test_manifest_to_dict_is_the_published_shape() -> None:
    data = _manifest((ErrorInfo("download_failed", "m", 502, 0, 0, retryable=True),)).to_dict()
    assert list(data) == ["job_id", "workspace_id", "status", "presets_version", "accounts",
                          "pipeline_version"]
    ok, failed = data["accounts"]
    assert list(ok["media"][0]) == ["content_index", "media_index", "source", "kind", "uri",
                                    "mime", "bytes", "sha256", "width", "height",
                                    "duration_ms", "actions", "warnings"]
    assert ok["cover"] == {"uri": "file:///out/c.jpg", "mime": "image/jpeg", "bytes": 5,
                           "width": 2, "height": 2, "timestamp_ms": 0,
                           "source": "video_cover_timestamp_ms"}
    # retryable is for the caller's retry decision, not part of the published error
    assert failed["errors"] == [{"code": "download_failed", "message": "m", "http_status": 502,
                                 "content_index": 0, "media_index": 0}]


def test_manifest_is_retryable_only_when_every_error_is() -> None:
    assert _manifest((ErrorInfo("download_failed", "m", 502, retryable=True),)).retryable
    assert not _manifest((ErrorInfo("download_failed", "m", 502, retryable=True),
                          ErrorInfo("too_large", "m", 400))).retryable
    assert not _manifest(()).retryable


def _full_manifest() -> Manifest:
    """A manifest with every optional field set (url, alt, captions, reframe, error indexes)."""
    base = _manifest((ErrorInfo("download_failed", "m", 502, 0, 1),))
    ok = base.accounts[0]
    media = replace(ok.media[0], url="https://cdn.example/a.mp4", alt="a cat",
                    reframe=(ReframeEntry(0.0, 2.5, "pan", 608, 1080,
                                          (ReframeKey(0.0, 12, 0), ReframeKey(2.5, 90, 0))),),
                    captions=(CaptionFile(uri="file:///out/c.vtt", format="vtt", lang="en",
                                          bytes=40, key="", url="https://cdn.example/c.vtt"),))
    assert ok.cover is not None
    cover = replace(ok.cover, url="https://cdn.example/c.jpg")
    return replace(base, accounts=(replace(ok, media=(media,), cover=cover),
                                   *base.accounts[1:]))


def test_from_dict_gives_back_what_to_dict_wrote() -> None:
    for manifest in (_manifest(()), _full_manifest()):
        data = manifest.to_dict()
        again = Manifest.from_dict(json.loads(json.dumps(data)), uri="s3://b/m.json")
        assert again.to_dict() == data and list(again.to_dict()) == list(data)
        assert again.uri == "s3://b/m.json" and again.status == manifest.status
        assert again.accounts[0].media[0].kind == "video"
    # a document of a version that wrote no workspace: the unscoped job
    old = {k: v for k, v in _manifest(()).to_dict().items() if k != "workspace_id"}
    assert Manifest.from_dict(old).workspace_id == ""


def test_read_manifest_reads_checks_and_types_a_stored_manifest(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "dest")
    data = _full_manifest().to_dict()
    storage.put_bytes(json.dumps(data).encode(), "manifests/ws/j.json",
                      content_type="application/json")
    manifest = read_manifest(storage, "manifests/ws/j.json", workdir=tmp_path / "work")
    assert isinstance(manifest, Manifest) and manifest.to_dict() == data
    with pytest.raises(StorageNotFound):
        read_manifest(storage, "manifests/ws/other.json")
    bad = {**data, "accounts": [{**data["accounts"][0], "status": 7}]}
    storage.put_bytes(json.dumps(bad).encode(), "manifests/ws/bad.json",
                      content_type="application/json")
    with pytest.raises(ManifestInvalid, match=r"\$\.accounts\[0\]\.status"):
        read_manifest(storage, "manifests/ws/bad.json")
    storage.put_bytes(b"\xff{", "manifests/ws/bytes.json", content_type="application/json")
    with pytest.raises(ManifestInvalid, match="not UTF-8"):
        read_manifest(storage, "manifests/ws/bytes.json")


def test_the_batch_reruns_a_job_whose_stored_manifest_is_missing_or_damaged(
        tmp_path: Path) -> None:
    from pipeline.fleet.jobs import stored_manifest
    from pipeline.job import parse_job
    from pipeline.presets import load_presets
    from pipeline.runner import manifest_key

    presets = load_presets()
    job = parse_job({"id": "j", "workspace_id": "ws", "content": [{"text": "hi"}],
                     "accounts": [{"id": "a", "platform": "x"}]}, presets)
    storage = LocalStorage(tmp_path / "dest")
    key = manifest_key(job.workspace_id, job.id)
    assert stored_manifest(storage, job, tmp_path / "work") is None  # never run
    data = _full_manifest().to_dict()
    storage.put_bytes(json.dumps(data).encode(), key, content_type="application/json")
    found = stored_manifest(storage, job, tmp_path / "work")
    assert found is not None and found.status == "partial" and found.to_dict() == data
    for damaged in (b"{", json.dumps({**data, "status": "done"}).encode()):
        storage.put_bytes(damaged, key, content_type="application/json")
        assert stored_manifest(storage, job, tmp_path / "work") is None
