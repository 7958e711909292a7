"""Manifest records: one place turns an error into a manifest error, one to_dict per record."""

from __future__ import annotations

from pipeline.errors import CannotFit, DownloadFailed, SourceNotFound
from pipeline.manifest import AccountResult, CoverEntry, Manifest, MediaEntry
from pipeline.models import ErrorInfo


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
