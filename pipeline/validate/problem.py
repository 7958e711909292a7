"""The one shape of a validation problem: an ErrorInfo with HTTP 422 and where it was found."""

from __future__ import annotations

from ..models import ErrorInfo


def unprocessable(code: str, message: str, ci: int | None = None,
                  mi: int | None = None) -> ErrorInfo:
    """A 422 problem of the post at ``content[ci].media[mi]`` (either index may be unknown)."""
    return ErrorInfo(code=code, message=message, http_status=422, content_index=ci,
                     media_index=mi)
