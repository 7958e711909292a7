"""Read our MP4s with tools nobody here wrote: AtomicParsley and mp4box.js (GPAC's parser).

``scripts/setup test`` installs both (AtomicParsley from Debian, mp4box.js with npm into
``.test-tools/``, run with node). A test that needs one skips, saying why, only when it is
missing; under CI (``CONFORM_REQUIRE_FFMPEG=1``) a missing tool fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MP4BOX_MODULES = ROOT / ".test-tools" / "node_modules"
MP4BOX_SCRIPT = Path(__file__).with_name("mp4box_check.cjs")


def _missing(what: str) -> None:
    message = f"{what} is not installed (scripts/setup test installs it)"
    if os.environ.get("CONFORM_REQUIRE_FFMPEG"):
        pytest.fail(message)
    pytest.skip(message)


def atomicparsley(path: Path, *flags: str) -> str:
    """AtomicParsley's output for ``path`` (``-T`` tree by default); fails the test when it
    refuses the file (it exits 0 even then, so its words are checked too)."""
    exe = shutil.which("AtomicParsley")
    if exe is None:
        _missing("AtomicParsley")
    assert exe is not None
    done = subprocess.run([exe, str(path), *(flags or ("-T",))], capture_output=True,
                          text=True, timeout=60, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "error" not in text.lower() and "unsupported" not in text.lower(), text
    return text


def mp4box(path: Path) -> dict[str, Any]:
    """What mp4box.js reads from ``path``: ftyp brands, tracks, and per track its sample count,
    timing list ([dts, cts, size, sync]) and the SHA-256 of its sample bytes."""
    node = shutil.which("node")
    if node is None or not (MP4BOX_MODULES / "mp4box" / "package.json").exists():
        _missing("mp4box.js (node and .test-tools/node_modules/mp4box)")
    assert node is not None
    done = subprocess.run([node, str(MP4BOX_SCRIPT), str(path)], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "NODE_PATH": str(MP4BOX_MODULES)})
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_tools_accept(path: Path) -> dict[str, Any]:
    """AtomicParsley (MP4 only: it refuses every QuickTime file) and mp4box.js both read
    ``path`` without an error, and both see ``isom`` (``qt  `` for QuickTime) as its major
    brand; returns mp4box.js's reading."""
    seen = mp4box(path)
    assert seen["errors"] == [], seen["errors"]
    if seen["ftyp_major"] != "qt  ":
        assert seen["ftyp_major"] == "isom", seen["ftyp_major"]
        tree = atomicparsley(path)
        assert "Atom moov" in tree and "Atom mdat" in tree, tree
        atomicparsley(path, "-t")
    assert seen["tracks"] and all(t["nb_samples"] > 0 for t in seen["tracks"]), seen["tracks"]
    return seen
