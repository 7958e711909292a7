"""The bundled sample post (``scripts/demo``) gives the same manifest as before the restructuring.

``tests/data/sample-manifest.json`` is the manifest the code produced before issue #14's
refactor (commit 73a1641), with only what legitimately varies normalised: the output folder in
the URIs, and the bytes and hash of x264 encodes (threaded encoding is not byte-reproducible;
their keys, sizes, durations and actions still must match).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # the test extra
from click.testing import CliRunner

from pipeline.cli import main

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "sample-manifest.json"


def normalise(manifest: dict[str, Any], dest: Path) -> dict[str, Any]:
    """The manifest with the output folder and encode bytes replaced by placeholders."""
    text = json.dumps(manifest).replace(dest.resolve().as_posix(), "DEST")
    data: dict[str, Any] = json.loads(text)
    for account in data["accounts"]:
        for entry in account["media"]:
            if "transcoded" in entry["actions"]:
                entry["bytes"] = entry["sha256"] = "ENCODED"
    return data


def test_sample_post_manifest_is_unchanged(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "run", str(REPO / "examples" / "post.json"),
        "--library", f"file://{REPO}/examples/media/{{id}}", "--dest", str(dest),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    # The stored manifest is the one printed.
    stored = json.loads((dest / "manifests" / "demo" / "sample-post.json").read_text())
    assert stored == manifest
    jsonschema.validate(manifest, json.loads((REPO / "schemas" / "manifest.json").read_text()))
    assert normalise(manifest, dest) == json.loads(GOLDEN.read_text(encoding="utf-8"))
