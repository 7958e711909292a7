"""What a run leaves per output in storage: the asset, then its ``meta.json`` (typed here).

Outputs are content-addressed (``assets/<key[:2]>/<key[2:]>/<name>``). ``meta.json`` sits
next to the asset and is written after it, so its existence means the asset is whole; a
later run reads it back (:func:`find_stored`) to reuse the output instead of making it again.
Its document is a :class:`StoredRendition` or a :class:`StoredCover`, whose ``to_dict`` is
the exact JSON earlier versions wrote (the manifest's media and cover objects are built from
the same record).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from ..deadline import Deadline
from ..errors import ConfigError, StorageNotFound
from ..storage import IMMUTABLE, Storage, StoredObject
from ..vision.subject import SubjectBox, Subjects

log = logging.getLogger(__name__)


def asset_key(key: str, name: str) -> str:
    """Storage key of a content-addressed output."""
    return f"assets/{key[:2]}/{key[2:]}/{name}"


def meta_key(key: str) -> str:
    """Storage key of the ``meta.json`` that describes the output of content key ``key``."""
    return asset_key(key, "meta.json")


def _str_list(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data[name]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}: not a list of strings")
    return tuple(value)


def _int(data: Mapping[str, Any], name: str, *, optional: bool = False) -> int | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int):
        raise ValueError(f"{name}: not an integer")
    return value


def _box(row: object) -> SubjectBox:
    if (not isinstance(row, list) or len(row) != 6 or row[0] not in ("face", "salient", "motion")
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row[1:])):
        raise ValueError("subjects: not a list of [kind, left, top, right, bottom, confidence]")
    return SubjectBox(row[0], *(float(v) for v in row[1:]))


#: More sampled frames or boxes than any run records (6 frames; a 480 px frame holds at most
#: ~700 faces of the cascade's 24 px minimum): a meta.json over these was not written by us,
#: and is not read further (the output is made again).
_MAX_SUBJECT_FRAMES = 64
_MAX_BOXES_PER_FRAME = 1024


def _subjects(data: Mapping[str, Any]) -> Subjects | None:
    value = data.get("subjects")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) > _MAX_SUBJECT_FRAMES
            or not all(isinstance(boxes, list) and len(boxes) <= _MAX_BOXES_PER_FRAME
                       for boxes in value)):
        raise ValueError("subjects: not a list of frames of boxes")
    return tuple(tuple(_box(row) for row in boxes) for boxes in value)


def _subjects_json(subjects: Subjects) -> list[list[list[object]]]:
    return [[[b.kind, *(round(v, 4) for v in (b.left, b.top, b.right, b.bottom, b.confidence))]
             for b in boxes] for boxes in subjects]


def _common(data: object, content_key: str, fields: frozenset[str]) -> dict[str, Any]:
    """The fields every stored entry has, checked: the key must name an asset of this output.

    Raises:
        ValueError: ``data`` does not describe an output of ``content_key``.
    """
    folder = asset_key(content_key, "")
    if not isinstance(data, dict) or not fields <= data.keys():
        raise ValueError("missing fields")
    key = data["key"]
    if (not isinstance(key, str) or not key.startswith(folder) or "/" in key[len(folder):]
            or key == meta_key(content_key)):
        raise ValueError("key: not an asset of this output")
    if not isinstance(data["sha256"], str) or not isinstance(data["mime"], str):
        raise ValueError("sha256, mime: not strings")
    return {"key": key, "mime": data["mime"], "bytes": _int(data, "bytes"),
            "sha256": data["sha256"], "width": _int(data, "width"),
            "height": _int(data, "height"), "warnings": _str_list(data, "warnings")}


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """What every stored output records: where it is and what its bytes are."""

    key: str
    mime: str
    bytes: int
    sha256: str
    width: int
    height: int
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StoredRendition(StoredEntry):
    """A stored rendition (video or image), as its ``meta.json`` keeps it."""

    kind: Literal["video", "image"]
    duration_ms: int | None
    actions: tuple[str, ...]
    reframe: tuple[dict[str, Any], ...] | None = None  # smart framing's shots, when framed
    #: The subject boxes of the output's sampled frames, when a surface using it had UI zones
    #: (see :func:`pipeline.vision.subject.sample_subjects`). They depend on the pixels alone, so
    #: every job that reuses the output names its own surfaces' zones from them; the stored
    #: ``warnings`` never name a surface (that would tell another tenant who made it first).
    subjects: Subjects | None = None

    #: What a stored document must carry to stand in for a fresh rendition in the manifest.
    FIELDS: ClassVar[frozenset[str]] = frozenset({
        "key", "kind", "mime", "bytes", "sha256", "width", "height", "duration_ms", "actions",
        "warnings"})

    @classmethod
    def from_json(cls, data: object, content_key: str) -> StoredRendition:
        """The entry a ``meta.json`` document describes.

        Raises:
            ValueError: it does not describe a rendition of ``content_key``.
        """
        common = _common(data, content_key, cls.FIELDS)
        assert isinstance(data, dict)  # checked by _common
        kind, reframe = data["kind"], data.get("reframe")
        if kind not in ("video", "image"):
            raise ValueError("kind: neither video nor image")
        if reframe is not None and (not isinstance(reframe, list)
                                    or not all(isinstance(s, dict) for s in reframe)):
            raise ValueError("reframe: not a list of objects")
        return cls(**common, kind=kind, duration_ms=_int(data, "duration_ms", optional=True),
                   actions=_str_list(data, "actions"),
                   reframe=tuple(reframe) if reframe is not None else None,
                   subjects=_subjects(data))

    def to_dict(self) -> dict[str, Any]:
        """The ``meta.json`` document (and the manifest's source for this output)."""
        out: dict[str, Any] = {
            "key": self.key, "kind": self.kind, "mime": self.mime, "bytes": self.bytes,
            "sha256": self.sha256, "width": self.width, "height": self.height,
            "duration_ms": self.duration_ms, "actions": list(self.actions),
            "warnings": list(self.warnings)}
        if self.reframe is not None:
            out["reframe"] = [dict(shot) for shot in self.reframe]
        if self.subjects is not None:
            out["subjects"] = _subjects_json(self.subjects)
        return out


@dataclass(frozen=True, slots=True)
class StoredCover(StoredEntry):
    """A stored cover, as its ``meta.json`` keeps it (a frame's carries its timestamp)."""

    timestamp_ms: int | None = None

    FIELDS: ClassVar[frozenset[str]] = frozenset({
        "key", "mime", "bytes", "sha256", "width", "height", "warnings"})

    @classmethod
    def from_json(cls, data: object, content_key: str) -> StoredCover:
        """The entry a ``meta.json`` document describes.

        Raises:
            ValueError: it does not describe a cover of ``content_key``.
        """
        common = _common(data, content_key, cls.FIELDS)
        assert isinstance(data, dict)  # checked by _common
        return cls(**common, timestamp_ms=_int(data, "timestamp_ms", optional=True))

    def to_dict(self) -> dict[str, Any]:
        """The ``meta.json`` document (and the manifest's source for this cover)."""
        out: dict[str, Any] = {"key": self.key, "mime": self.mime, "bytes": self.bytes,
                               "sha256": self.sha256, "width": self.width,
                               "height": self.height, "warnings": list(self.warnings)}
        if self.timestamp_ms is not None:
            out["timestamp_ms"] = self.timestamp_ms
        return out


Entry = TypeVar("Entry", StoredRendition, StoredCover)


def find_stored(storage: Storage, content_key: str, local: Path,
                parse: Callable[[object, str], Entry], *,
                max_bytes: int | None = None) -> Entry | None:
    """The entry of an output an earlier run finished, if it is intact; else ``None``.

    ``meta.json`` is written after its asset, so it only exists once the asset is stored; a
    crash between the two leaves no meta and the output is simply made again. The asset is
    then checked against the meta: it must sit in this output's folder, have the recorded
    size, and (where the store recorded one at upload, i.e. S3) the recorded sha256, so a
    reused entry reports exactly the bytes that are stored. Anything else is made again.

    Args:
        storage: the destination.
        content_key: the output's content address.
        local: where the meta document is fetched to.
        parse: ``StoredRendition.from_json`` or ``StoredCover.from_json``.
        max_bytes: the smallest byte cap of everyone sharing the output in this job (an
            earlier job may have shared it with other platforms only).

    Raises:
        StorageError: the store could not be asked (after retries).
    """
    key = meta_key(content_key)
    try:
        storage.get_file(key, local)  # no HEAD first: a missing meta is one 404
    except StorageNotFound:
        return None
    try:
        entry = parse(json.loads(local.read_text(encoding="utf-8")), content_key)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("%s is unreadable; making the output again", storage.uri(key))
        return None
    except ValueError:
        log.warning("%s does not describe an output; making it again", storage.uri(key))
        return None
    if max_bytes is not None and entry.bytes > max_bytes:
        return None  # made for platforms with larger caps; this job needs a smaller one
    try:
        head = storage.head(entry.key)
    except ConfigError:
        return None  # a key this version would not write
    if head is None:
        return None
    if head.size_bytes != entry.bytes or (head.sha256 is not None
                                          and head.sha256 != entry.sha256):
        log.warning("%s does not match its meta.json; making it again", head.uri)
        return None
    return entry


def store_output(storage: Storage, path: Path, entry: StoredRendition | StoredCover,
                 content_key: str, origin: Mapping[str, str], *,
                 deadline: Deadline | None = None) -> StoredObject:
    """Store an output, then its meta.json: the meta's existence means the asset is whole.

    The asset is shared by every job (of any workspace) whose output has the same content
    key, and both it and its meta.json may be served publicly: ``entry`` and ``origin`` (the
    object's metadata, also kept in meta.json) must say nothing about the job that stored
    it first (see :func:`pipeline.outputs.rendition.object_metadata`).

    Both writes stop at the job's ``deadline``: an output still uploading when it passes
    fails with ``deadline_exceeded``, never ``succeeded`` late.

    Raises:
        DeadlineExceeded: the deadline passed while storing (nothing, or no meta, stored).
        StorageError: either write failed; without the meta a re-run makes the output again.
    """
    stored = storage.put_file(path, entry.key, content_type=entry.mime, cache_control=IMMUTABLE,
                              metadata=origin, deadline=deadline)
    # no-cache: unlike the asset, the meta is rewritten by --force or after a damaged upload
    storage.put_bytes(json.dumps({**entry.to_dict(), "origin": dict(origin)}).encode(),
                      meta_key(content_key), content_type="application/json",
                      cache_control="no-cache", deadline=deadline)
    return stored
