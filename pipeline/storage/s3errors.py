"""What an S3 error response means for us: a table from S3's error code to our error class.

Pure data and one function over a ClientError's ``response`` dict, so the table can be read
(and tested) without botocore; :func:`pipeline.storage.s3.translate_client_error` unwraps
what boto3 raised and hands the response here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..errors import StorageError, StorageNotFound, StoragePermissionError
from .base import StorageRejected
from .keys import redact

# How an error is treated; each kind is one of our error classes (_ERROR_CLASSES).
NOT_FOUND, DENIED, RETRY, REJECT = "not_found", "denied", "retry", "reject"

# S3 error codes → how we treat them. Codes not listed fall back on the HTTP status.
_ERROR_CODES: Final[Mapping[str, str]] = {
    "NoSuchKey": NOT_FOUND,
    "NotFound": NOT_FOUND,
    "404": NOT_FOUND,
    "NoSuchUpload": NOT_FOUND,
    "AccessDenied": DENIED,
    "403": DENIED,
    "Forbidden": DENIED,
    "InvalidAccessKeyId": DENIED,
    "SignatureDoesNotMatch": DENIED,
    "InvalidToken": DENIED,
    "ExpiredToken": DENIED,
    "TokenRefreshRequired": DENIED,
    "AllAccessDisabled": DENIED,
    "AccountProblem": DENIED,
    "InvalidSecurity": DENIED,
    "SlowDown": RETRY,
    "Throttling": RETRY,
    "ThrottlingException": RETRY,
    "ThrottledException": RETRY,
    "RequestThrottled": RETRY,
    "RequestLimitExceeded": RETRY,
    "TooManyRequests": RETRY,
    "TooManyRequestsException": RETRY,
    "RequestTimeout": RETRY,
    "RequestTimeoutException": RETRY,
    "InternalError": RETRY,
    "ServiceUnavailable": RETRY,
    "ServiceUnavailableException": RETRY,
    "503": RETRY,
    "500": RETRY,
    "502": RETRY,
    "504": RETRY,
    "OperationAborted": RETRY,  # a conflicting operation on the bucket is in progress
    "BadDigest": RETRY,  # bytes were damaged in transit; sending them again may succeed
    "IncompleteBody": RETRY,
    "XAmzContentSHA256Mismatch": RETRY,
    "NoSuchBucket": REJECT,
    "InvalidBucketName": REJECT,
    "InvalidArgument": REJECT,
    "InvalidRequest": REJECT,
    "EntityTooLarge": REJECT,
    "EntityTooSmall": REJECT,
    "KeyTooLongError": REJECT,
    "MethodNotAllowed": REJECT,
    "InvalidObjectState": REJECT,
    "MetadataTooLarge": REJECT,
    "PermanentRedirect": REJECT,  # bucket lives in another region than the client's
    "AuthorizationHeaderMalformed": REJECT,
    "InvalidDigest": REJECT,
}

# Codes not in the table fall back on the HTTP status; 0 is "no answer at all".
_STATUS_KINDS: Final[Mapping[int, str]] = {404: NOT_FOUND, 403: DENIED, 429: RETRY, 0: RETRY}

_ERROR_CLASSES: Final[Mapping[str, type[StorageError]]] = {
    NOT_FOUND: StorageNotFound,
    DENIED: StoragePermissionError,
    RETRY: StorageError,
    REJECT: StorageRejected,
}


def build_error(kind: str, message: str, details: Mapping[str, object]) -> StorageError:
    """The error of class ``kind`` (a table value), its message stripped of secrets."""
    return _ERROR_CLASSES[kind](redact(message), details=details)


def _kind_of(code: str, status: int) -> str:
    """How to treat an error response: by its S3 code, else by its HTTP status."""
    kind = _ERROR_CODES.get(code) or _STATUS_KINDS.get(status)
    if kind is None:
        kind = RETRY if status >= 500 else REJECT
    return kind


def _what(code: str, status: int, error: Mapping[str, Any]) -> str:
    """The failure as the message shows it: code and the store's text, or the status."""
    text = str(error.get("Message") or "").strip()
    if code == "NoSuchBucket":
        bucket = error.get("BucketName")
        text = f"bucket {bucket!r} does not exist" if bucket else "bucket does not exist"
    return f"{code}: {text}" if text and text != code else code or f"HTTP {status}"


def from_response(response: Mapping[str, Any] | None, *, op: str, key: str) -> StorageError:
    """The storage error for a ClientError's ``response`` (its ``Error`` and metadata).

    Args:
        response: ``ClientError.response``: ``Error`` (``Code``, ``Message``, …) and
            ``ResponseMetadata`` (``HTTPStatusCode``, ``RetryAttempts``).
        op: the storage operation, for the message.
        key: the object the operation was about, for the message.

    Returns:
        The typed error; a retryable one says how many attempts were made.

    Raises:
        Nothing; it returns the error to raise.
    """
    response = response or {}
    error: Mapping[str, Any] = response.get("Error") or {}
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    status = int(meta.get("HTTPStatusCode") or 0)
    code = str(error.get("Code") or "") or (str(status) if status else "")
    attempts = int(meta.get("RetryAttempts") or 0) + 1
    kind = _kind_of(code, status)
    details = {"op": op, "key": key, "error_code": code, "http_status": status,
               "attempts": attempts}
    message = f"storage {op} {key} failed: {_what(code, status, error)}"
    if kind == RETRY:
        message += f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
    return build_error(kind, message, details)
