"""The sha256 of an upload, whole and as S3 computes it for parts, and the check of what was
stored against it."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .local import COPY_BLOCK_BYTES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Digests:
    """sha256 of a file, whole and as S3 computes it for a multipart upload."""

    hex: str
    full_b64: str
    composite_b64: str | None  # sha256 over the part digests, when uploaded in parts
    parts: int


def digest_file(src: Path, part_size: int | None) -> tuple[Digests, int]:
    """Hash ``src`` in one pass: whole-file sha256 and, for multipart, per-part digests."""
    whole = hashlib.sha256()
    part_digests: list[bytes] = []
    part = hashlib.sha256()
    in_part = 0
    size = 0
    with open(src, "rb") as fin:
        while True:
            want = (
                COPY_BLOCK_BYTES
                if part_size is None
                else min(COPY_BLOCK_BYTES, part_size - in_part)
            )
            block = fin.read(want)
            if not block:
                break
            whole.update(block)
            size += len(block)
            if part_size is not None:
                part.update(block)
                in_part += len(block)
                if in_part == part_size:
                    part_digests.append(part.digest())
                    part, in_part = hashlib.sha256(), 0
    if part_size is not None and in_part:
        part_digests.append(part.digest())
    composite = None
    if part_size is not None:
        composite = base64.b64encode(hashlib.sha256(b"".join(part_digests)).digest()).decode()
    digests = Digests(
        hex=whole.hexdigest(),
        full_b64=base64.b64encode(whole.digest()).decode(),
        composite_b64=composite,
        parts=len(part_digests),
    )
    return digests, size


def etag_of(value: object) -> str | None:
    """An ETag without the quotes S3 puts around it (None when there is none)."""
    return str(value).strip('"') if value else None


def stored_mismatch(head: Mapping[str, Any], *, size: int, digests: Digests, checksum: bool,
                    shown: str) -> str | None:
    """What differs between a HEAD of the stored object and the file we hashed, or None.

    The size always counts. The checksum counts when ``checksum`` is on and the store
    reports one (whole, or S3's "sha256 of the part digests" for multipart); stores that
    report none are checked on size alone.
    """
    stored_size = int(head.get("ContentLength", -1))
    if stored_size != size:
        return f"stored {stored_size} bytes, expected {size}"
    stored_sum = head.get("ChecksumSHA256")
    if not checksum:
        return None
    if not stored_sum:
        log.debug("%s: the store reports no SHA-256; checked the size only", shown)
        return None
    value, _, parts = str(stored_sum).partition("-")
    expected = digests.composite_b64 or digests.full_b64
    if parts and parts.isdigit() and int(parts) != digests.parts:
        # Not the part layout we hashed (a future s3transfer sizing parts differently); the
        # store verified each part, so don't fail on our guess.
        log.debug("%s: %s parts, expected %d", shown, parts, digests.parts)
        return None
    if value != expected:
        return f"stored sha256 {value}, expected {expected}"
    return None
