"""One error hierarchy for the whole pipeline, with stable codes and exit statuses."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import ClassVar

# A file: URI, or an absolute path standing on its own (after a space, a quote, "(" or "="):
# not the path of an http(s) URL, whose first "/" follows a ":" or a host name.
_SERVER_PATH = re.compile(
    r"(?:\bfile:(?://)?|(?<![^\s'\"(=\[]))(/(?:[^\s'\"(),;:\]]+/)*)([^\s'\"(),;:/\]]*)")


def public_message(message: str) -> str:
    """``message`` without the server's paths, for what goes back to the API caller.

    Error messages name files (a work folder, the destination's root, a file:// library);
    the manifest is returned to the client, so every absolute path is cut to its last part:
    ``file:///srv/out/manifests/ws/a.json`` becomes ``.../a.json``.
    """
    return _SERVER_PATH.sub(lambda m: f".../{m.group(2)}" if m.group(2) else "...", message)


class ExitStatus(enum.IntEnum):
    """Process exit codes, decided in one place (httpie's ``ExitStatus``)."""

    OK = 0
    JOB_FAILED = 1
    USAGE = 2
    TEMPFAIL = 75
    INTERRUPTED = 130


class PipelineError(Exception):
    """Root of every error the library raises on purpose.

    ``code`` is a stable snake_case name that consumers of the manifest match on,
    ``http_status`` follows the Create-Post API's error table, ``retryable`` says whether
    running the same work again may succeed.
    """

    code: str = "internal"  # a plain attribute so ValidationFailed can set it per instance
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = ExitStatus.JOB_FAILED
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, details: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: Mapping[str, object] = dict(details or {})

    def to_dict(self) -> dict[str, object]:
        """The error as it appears in a manifest's ``errors`` list."""
        return {"code": self.code, "message": self.message, "http_status": self.http_status}


# --- configuration and input -------------------------------------------------------------


class ConfigError(PipelineError):
    """Bad settings, a missing tool, or an unusable storage/library URL."""

    code = "config_error"
    exit_code = ExitStatus.USAGE


class PresetError(ConfigError):
    """An invalid preset file or an unknown preset; lists every problem at once."""

    code = "preset_error"


class JobInvalid(PipelineError):
    """The job document itself is unusable; nothing is processed.

    ``problems`` holds ``(json_path, message)`` pairs, every problem found, not just the first.
    """

    code = "invalid_job"
    http_status = 422
    exit_code = ExitStatus.USAGE

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        text = "; ".join(f"{path}: {msg}" if path else msg for path, msg in self.problems)
        super().__init__(text or "invalid job")


class ManifestInvalid(PipelineError):
    """A manifest handed to ``conform report`` is unusable: too large, not JSON, or not the
    published shape (``schemas/manifest.json``). The message names the JSON path."""

    code = "invalid_manifest"
    exit_code = ExitStatus.USAGE


# --- sources -----------------------------------------------------------------------------


class SourceError(PipelineError):
    """A medium could not be obtained."""

    code = "source_error"
    http_status = 400


class InvalidLibraryId(SourceError):
    code = "invalid_library_id"


class SourceNotFound(SourceError):
    code = "media_not_found"
    http_status = 404


class UrlNotAllowed(SourceError):
    """Scheme not allowed, or the host resolves to a refused network (SSRF guard)."""

    code = "url_not_allowed"


class TooLarge(SourceError):
    """A source over a byte, pixel or frame cap: too large to fetch or decode safely."""

    code = "too_large"


class DownloadFailed(SourceError):
    """The download did not complete for a reason that may pass (timeout, 5xx, reset)."""

    code = "download_failed"
    retryable = True


class DownloadRefused(DownloadFailed):
    """A download that will not pass by itself: the server refused for good (most 4xx, TLS
    verification, redirect loops, no such host) or it ran past its deadline (a deadline is
    permanent: the same source takes as long again)."""

    retryable = False


# --- media -------------------------------------------------------------------------------


class MediaError(PipelineError):
    """The medium is not something we can process."""

    code = "media_error"
    http_status = 400


class UnsupportedMedia(MediaError):
    code = "unsupported_media"


class CorruptMedia(MediaError):
    code = "corrupt_media"


class ThumbnailInvalid(MediaError):
    code = "thumbnail_invalid"


class InvalidCaptions(MediaError):
    """A caption file that is neither SRT nor WebVTT, or breaks on a line it names."""

    code = "invalid_captions"


# --- per-account validation (API error table: 422) -----------------------------------------


class ValidationFailed(PipelineError):
    """A post breaks a platform rule for one account; ``code`` is set per instance."""

    http_status = 422

    def __init__(
        self,
        code: str,
        message: str,
        *,
        content_index: int | None = None,
        media_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.content_index = content_index
        self.media_index = media_index

    def to_dict(self) -> dict[str, object]:
        """Include the position of the offending medium when known."""
        out = super().to_dict()
        if self.content_index is not None:
            out["content_index"] = self.content_index
        if self.media_index is not None:
            out["media_index"] = self.media_index
        return out


# --- tools and processing ------------------------------------------------------------------


class FFmpegError(PipelineError):
    """ffmpeg or ffprobe exited non-zero; carries argv, return code and the stderr tail."""

    code = "processing_failed"

    def __init__(self, args: list[str], returncode: int, stderr_tail: str) -> None:
        import shlex

        self.args_list = list(args)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        tool = args[0].rsplit("/", 1)[-1] if args else "ffmpeg"
        super().__init__(
            f"{tool} failed with exit code {returncode}: {stderr_tail.strip()[-600:]}",
            details={"argv": shlex.join(args), "returncode": returncode, "stderr": stderr_tail},
        )


class FFmpegTimeout(FFmpegError):
    """ffmpeg ran past its time (``ffmpeg_timeout_s`` or what the job deadline left).

    Not retryable: the same source, preset and limits take as long again, so a retry would
    time out forever; a bigger limit (``--job-deadline``) is the operator's call.
    """

    code = "processing_timeout"


class ProcessingFailed(PipelineError):
    """Our own processing went wrong: an output that breaks its preset never ships."""

    code = "processing_failed"


class CannotFit(PipelineError):
    """An output that cannot be brought under a platform's byte cap at any size it allows.

    Not a source error (the source was fetched and read: the cap is too small for it). It
    keeps the manifest's code ``too_large`` and its 400, so manifest consumers see no change.
    """

    code = "too_large"
    http_status = 400


class Interrupted(PipelineError):
    code = "interrupted"
    exit_code = ExitStatus.INTERRUPTED
    retryable = True


# --- storage -------------------------------------------------------------------------------


class StorageError(PipelineError):
    code = "storage_failed"
    http_status = 503
    retryable = True


class StorageNotFound(StorageError):
    code = "storage_not_found"
    http_status = 404
    retryable = False


class StoragePermissionError(StorageError):
    code = "storage_failed"
    http_status = 403
    retryable = False


class DeadlineExceeded(PipelineError):
    """The job ran past its overall deadline (``job_deadline_s``).

    Not retryable, for the reason given at :class:`FFmpegTimeout`; the runner reports it in
    the manifest for every output not made in time.
    """

    code = "deadline_exceeded"
