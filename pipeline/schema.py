"""JSON Schemas of the job and the manifest, generated from the typed records.

A publish service validates against these (``conform schema job|manifest``; the repository
keeps them in ``schemas/``). Each record's fields become an object's properties; the few
places where the JSON differs from the record (a medium is a string, ``cover`` is
``cover_image``, the job's knobs sit under ``conform``) are named in the tables below, so a
new field of a record shows up in the schema (and ``tests/test_schema.py`` fails until the
kept files are regenerated).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from .job import MAX_ALT_CHARS
from .manifest import CaptionFile, CoverEntry, Manifest, MediaEntry
from .models import (
    Account,
    CaptionRequest,
    ContentItem,
    CoverRequest,
    ErrorInfo,
    Job,
    MediaRef,
)

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"

# Record fields the JSON does not carry (kept for the caller, not published).
_HIDDEN = {(Manifest, "uri"), (Manifest, "extra"), (ErrorInfo, "retryable"),
           (Job, "duration_policy"), (Job, "fit"),
           # carried inside the request's own shapes: a medium's {"src", "alt"} and an
           # account's "conform": {"limits"} (added by job_schema)
           (ContentItem, "alts"), (Account, "limits"), (CaptionFile, "key")}
# Fields written only when they have a value.
_OMITTED_WHEN_NONE = {(MediaEntry, "url"), (MediaEntry, "reframe"), (MediaEntry, "alt"),
                      (MediaEntry, "captions"), (CaptionFile, "url"), (CoverEntry, "url"),
                      (CoverEntry, "timestamp_ms"), (CoverEntry, "source"),
                      (ErrorInfo, "content_index"), (ErrorInfo, "media_index")}
# Job fields under another name in the request.
_JSON_NAMES = {(ContentItem, "cover"): "cover_image", (CaptionRequest, "ref"): "src",
               (CoverRequest, "timestamp_ms"): "video_cover_timestamp_ms"}
# Job fields the request may leave out (an id is derived from the request, a post may be
# text only, settings and covers are optional).
_OPTIONAL_IN_JOB = {(Job, "id"), (ContentItem, "text"), (ContentItem, "media"),
                    (ContentItem, "cover"), (Account, "mode"), (Account, "settings"),
                    (CoverRequest, "thumbnail"), (CoverRequest, "timestamp_ms"),
                    (ContentItem, "captions"), (CaptionRequest, "burn_in")}
# Job fields the request does not carry at all (derived from the platform's settings).
_DERIVED_IN_JOB = {(Account, "mode")}
_ID = {"type": ["string", "integer"]}


def _type_schema(hint: Any, defs: dict[str, Any], *, job: bool) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is type(None):
        return {"type": "null"}
    if origin in (Union, types.UnionType):
        options = [_type_schema(a, defs, job=job) for a in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple or origin is list:
        return {"type": "array", "items": _type_schema(args[0], defs, job=job)}
    if origin in (dict, Mapping):
        return {"type": "object"}
    if hint is MediaRef:
        return {"type": "string", "description": "a media-library ID or an http(s) URL"}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = _record_schema(hint, defs, job=job)
        return {"$ref": f"#/$defs/{name}"}
    simple = {str: "string", int: "integer", bool: "boolean", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    if hint is Any:
        return {}
    raise TypeError(f"no JSON Schema for {hint!r}")


def _record_schema(record: type, defs: dict[str, Any], *, job: bool) -> dict[str, Any]:
    hints = typing.get_type_hints(record)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(record):
        key = (record, f.name)
        if key in _HIDDEN or (job and key in _DERIVED_IN_JOB):
            continue
        name = _JSON_NAMES.get(key, f.name)
        schema = _type_schema(hints[f.name], defs, job=job)
        if name in ("id", "workspace_id") and record in (Job, Account):
            schema = dict(_ID)
        props[name] = schema
        optional = key in (_OPTIONAL_IN_JOB if job else _OMITTED_WHEN_NONE)
        if not optional:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if (record.__doc__ or "").strip():
        out["description"] = (record.__doc__ or "").strip().splitlines()[0]
    # A job may carry every other field of the Create-Post API (ignored); a manifest is ours.
    out["additionalProperties"] = job
    return out


def manifest_schema() -> dict[str, Any]:
    """The manifest's schema (``manifests/<workspace_id>/<job_id>.json``).

    Raises:
        Nothing.
    """
    defs: dict[str, Any] = {}
    root = _record_schema(Manifest, defs, job=False)
    root["properties"]["pipeline_version"] = {"type": "string"}
    root["required"].append("pipeline_version")
    return {"$schema": SCHEMA_DRAFT, "$id": "conform-pipeline/manifest.json",
            "title": "conform-pipeline manifest", **root, "$defs": dict(sorted(defs.items()))}


def job_schema() -> dict[str, Any]:
    """The job's schema (a Create-Post request, as far as the pipeline reads it).

    Raises:
        Nothing.
    """
    defs: dict[str, Any] = {}
    root = _record_schema(Job, defs, job=True)
    root["properties"]["conform"] = {
        "type": "object",
        "properties": {
            "duration_policy": _type_schema(typing.get_type_hints(Job)["duration_policy"], defs,
                                            job=True),
            "fit": _type_schema(typing.get_type_hints(Job)["fit"], defs, job=True),
        },
    }
    defs["ContentItem"]["properties"]["media"] = {"type": "array", "items": {"anyOf": [
        _type_schema(MediaRef, defs, job=True), _MEDIUM_WITH_ALT]}}
    defs["Account"]["properties"]["conform"] = {
        "type": "object", "properties": {"limits": _ACCOUNT_LIMITS}}
    return {"$schema": SCHEMA_DRAFT, "$id": "conform-pipeline/job.json",
            "title": "conform-pipeline job", **root, "$defs": dict(sorted(defs.items()))}


# A medium given with its alt text (a plain reference stays what it is).
_MEDIUM_WITH_ALT: dict[str, Any] = {
    "type": "object", "description": "a medium with its alt text",
    "properties": {"src": {"type": ["string", "integer"],
                           "description": "a media-library ID or an http(s) URL"},
                   "alt": {"type": "string", "maxLength": MAX_ALT_CHARS}},
    "required": ["src"], "additionalProperties": False}
# An account's own limits (accounts[].conform.limits), held to each variant's ceiling.
_ACCOUNT_LIMITS: dict[str, Any] = {
    "type": "object", "description": "the account's own limits, as its platform reported them",
    "properties": {"max_duration_s": {"type": "number", "exclusiveMinimum": 0},
                   "max_video_bytes": {"type": "integer", "exclusiveMinimum": 0},
                   "max_image_bytes": {"type": "integer", "exclusiveMinimum": 0}},
    "additionalProperties": False}


SCHEMAS = {"job": job_schema, "manifest": manifest_schema}


def schema_text(name: str) -> str:
    """The schema as the repository keeps it (``schemas/<name>.json``).

    Raises:
        KeyError: no such schema.
    """
    return json.dumps(SCHEMAS[name](), indent=2) + "\n"
