"""Storage keys and arguments, checked the same way by every backend: keys, listing prefixes,
object metadata, public base URLs and presign lifetimes; and messages with URL secrets cut.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlsplit

from ..errors import ConfigError

#: One mebibyte (block and part sizes are counted in them).
MIB: Final = 1024 * 1024
# SigV4 presigned URLs are valid for at most seven days.
_PRESIGN_MAX_S: Final = 7 * 24 * 3600
# S3's limits: 1024 bytes of UTF-8 per key, 2 KB of user metadata per object.
MAX_KEY_BYTES: Final = 1024
_MAX_METADATA_BYTES: Final = 2048
_METADATA_KEY_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Printable ASCII except '%', which we use to escape everything else in metadata values.
_METADATA_SAFE: Final = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def check_key(key: str) -> str:
    """Refuse keys that could escape the root or mean different things on different stores.

    Raises:
        ConfigError: the key is empty, absolute, has ``..``/``.``/empty segments, backslashes
            or control characters, or is longer than S3 allows.
    """
    if not isinstance(key, str) or not key:
        raise ConfigError(f"storage key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise ConfigError(f"storage key must be relative: {key!r}")
    if "\\" in key:
        raise ConfigError(f"storage key must use '/' separators, not backslashes: {key!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise ConfigError(f"storage key contains control characters: {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ConfigError(f"storage key has an empty, '.' or '..' segment: {key!r}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise ConfigError(f"storage key is longer than {MAX_KEY_BYTES} bytes: {key[:80]!r}…")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix is a plain string prefix of keys (like S3's), so it may be partial.

    Raises:
        ConfigError: the prefix is absolute or has backslashes or control characters.
    """
    if prefix.startswith("/") or "\\" in prefix:
        raise ConfigError(f"storage list prefix must be relative and '/'-separated: {prefix!r}")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in prefix):
        raise ConfigError(f"storage list prefix contains control characters: {prefix!r}")
    return prefix


def clean_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lowercase ASCII keys and ASCII-safe values, as every S3-compatible store accepts them.

    Values that are not printable ASCII are percent-encoded (UTF-8), the same encoding
    ``urllib.parse.unquote`` reverses.

    Raises:
        ConfigError: a key is not ``[a-z0-9][a-z0-9._-]*`` or the total exceeds S3's 2 KB.
    """
    out: dict[str, str] = {}
    for raw_key, raw_value in (metadata or {}).items():
        name = str(raw_key).lower()
        if not _METADATA_KEY_RE.match(name):
            raise ConfigError(f"metadata key must be lowercase ASCII [a-z0-9._-]: {raw_key!r}")
        value = str(raw_value)
        if not (value.isascii() and value.isprintable()) or "%" in value:
            value = quote(value, safe=_METADATA_SAFE)
        out[name] = value
    if sum(len(k) + len(v) for k, v in out.items()) > _MAX_METADATA_BYTES:
        raise ConfigError(f"object metadata exceeds {_MAX_METADATA_BYTES} bytes")
    return out


def public_base(base_url: str) -> str:
    """Validate ``--public-base-url`` and return it without a trailing slash.

    Raises:
        ConfigError: not an http(s) URL, or it carries credentials, a query or a fragment.
    """
    parts = urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"public base URL must be an https:// URL: {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("public base URL must not contain credentials")
    if parts.query or parts.fragment:
        raise ConfigError("public base URL must not have a query string or fragment")
    return base_url.rstrip("/")


def check_presign(presign_s: int) -> int:
    """Raises: ConfigError: outside 1 s … 7 days (SigV4's limit)."""
    if isinstance(presign_s, bool) or not 1 <= presign_s <= _PRESIGN_MAX_S:
        raise ConfigError(f"presign seconds must be between 1 and {_PRESIGN_MAX_S}: {presign_s}")
    return presign_s


def join_url(base: str, key: str) -> str:
    return f"{base}/{quote(key, safe='/')}"


_URL_SECRETS_RE: Final = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"]*@")
_URL_QUERY_RE: Final = re.compile(r"(?P<url>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"?]*)\?[^\s\"]*")


def redact(text: str) -> str:
    """Drop credentials and query strings (presigned signatures) from URLs in a message."""
    text = _URL_SECRETS_RE.sub(r"\g<scheme>", text)
    return _URL_QUERY_RE.sub(r"\g<url>", text)
