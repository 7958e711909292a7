"""Reading a stored manifest back: capped in size, parsed, checked against the published
manifest schema, then the typed :class:`~pipeline.manifest.Manifest`.

The one reader for the batch and the queue worker (is this job done already?) and for
``conform report``. A manifest is data that comes back from an API and can be handed to an
operator by anyone: it is treated like a job, never trusted for its types. A bad one is one
line naming the JSON path (``$.accounts[0].media[0].width: 'x' is not of type 'integer'``).
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, ManifestInvalid, StorageNotFound
from .manifest import Manifest
from .storage import Storage

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

MAX_MANIFEST_BYTES = 8 * 1024 * 1024  # a job of hundreds of accounts is well under 1 MB
SAFE_INT = 2**53 - 1  # I-JSON (RFC 7493): the integers every JSON reader gets exactly
_SHOWN_CHARS = 160


def shown(text: str, limit: int = _SHOWN_CHARS) -> str:
    """``text`` for a message: control and other unprintable characters escaped, cut short.

    Text from a manifest ends up on the operator's terminal (errors, log lines): a terminal
    must not obey it.
    """
    out = "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace")
                  .decode("ascii") for c in text[: limit + 1])
    return out[:limit] + "…" if len(out) > limit else out


def read_manifest(storage: Storage, key: str, *, source: str | None = None,
                  workdir: Path | None = None) -> Manifest:
    """The manifest stored at ``key``, checked and typed.

    Args:
        storage: where it is stored.
        key: its key (``manifests/<workspace_id>/<job_id>.json`` for a job's).
        source: how messages name it (default: the object's URI).
        workdir: where it is fetched to (a temporary folder inside; default: the system's).

    Raises:
        StorageNotFound: nothing is stored at ``key``.
        ManifestInvalid: too large, not JSON, or not the shape of ``schemas/manifest.json``.
        StorageError: the store could not be asked. ConfigError: an unusable key.
    """
    source = source if source is not None else storage.uri(key)
    head = storage.head(key)
    if head is None:
        raise StorageNotFound(f"no manifest at {shown(source)}", details={"key": key})
    if head.size_bytes > MAX_MANIFEST_BYTES:
        raise _invalid(source, "$", f"larger than {MAX_MANIFEST_BYTES} bytes")
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conform-manifest-", dir=workdir) as tmp:
        path = storage.get_file(key, Path(tmp) / "manifest.json")
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_MANIFEST_BYTES + 1)
        except OSError as err:
            raise ConfigError(f"cannot read {shown(source)}: {err.strerror or err}") from err
    return parse_manifest(raw, source=source)


def parse_manifest(raw: bytes, *, source: str) -> Manifest:
    """The manifest in ``raw`` (a stored document's bytes), checked and typed.

    Raises:
        ManifestInvalid: too large, not UTF-8 JSON, or not the published shape.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise _invalid(source, "$", f"larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _invalid(source, "$", f"not UTF-8 ({err.reason} at byte {err.start})") from err
    except RecursionError as err:
        raise _invalid(source, "$", "nested too deeply") from err
    except ValueError as err:  # JSONDecodeError, or an integer of thousands of digits
        raise _invalid(source, "$", f"not JSON: {shown(str(err))}") from err
    return Manifest.from_dict(check_manifest(data, source=source))


def check_manifest(data: Any, *, source: str) -> dict[str, Any]:
    """``data`` when it is a manifest of the published shape, else the first problem found.

    On top of the schema: integers fit in 53 bits and strings are valid Unicode (no lone
    surrogates), so nothing downstream overflows or fails to encode.

    Raises:
        ManifestInvalid: with the JSON path of the problem.
    """
    from jsonschema.exceptions import best_match

    if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
        raise _invalid(source, "$.accounts", "no accounts list")
    try:
        error = best_match(_validator().iter_errors(data))
    except RecursionError as err:
        raise _invalid(source, "$", "nested too deeply") from err
    if error is not None:
        raise _invalid(source, error.json_path, _reason(error))
    _check_values(data, source)
    return data


def _reason(error: ValidationError) -> str:
    """The schema's message with the offending value cut short (it may be long markup)."""
    full = repr(error.instance)
    short = full if len(full) <= 40 else full[:36] + "…" + full[0]
    return error.message.replace(full, short, 1)


@functools.cache
def _validator() -> Draft202012Validator:
    # jsonschema is imported on first use: a batch that finds no stored manifest never pays
    from jsonschema import Draft202012Validator

    from .schema import manifest_schema  # the records' schema: schemas/manifest.json

    return Draft202012Validator(manifest_schema())


def _check_values(data: Any, source: str) -> None:
    """Integers in the safe range and encodable strings, anywhere (``reframe`` is free-form).

    Walks with a stack, not recursion: a deep free-form value must not blow the stack.
    """
    stack: list[tuple[Any, str]] = [(data, "$")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path, source)
                stack.append((item, f"{path}.{key}"))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path, source)
        elif isinstance(value, int | float) and not isinstance(value, bool) and (
                value != value or abs(value) > SAFE_INT):  # NaN, infinities, huge numbers
            raise _invalid(source, path, "number out of range")


def _check_text(text: str, path: str, source: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _invalid(source, shown(path), "not valid Unicode (a lone surrogate)") from err


def _invalid(source: str, path: str, reason: str) -> ManifestInvalid:
    return ManifestInvalid(f"{shown(source)} is not a manifest: {shown(path)}: {shown(reason)}")
