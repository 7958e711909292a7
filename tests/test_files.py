"""The one temp-write-hash-rename: a file is whole or untouched, and hashed on the way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline.files import sha256_file, write_whole


def test_a_written_file_is_renamed_into_place_with_its_hash(tmp_path: Path) -> None:
    dest = tmp_path / "a.bin"
    with write_whole(dest, fsync=True) as out:
        out.write(b"abc")
        out.write(b"def")
        assert not dest.exists()  # not before it is whole
    assert dest.read_bytes() == b"abcdef"
    assert (out.size_bytes, out.sha256) == (6, hashlib.sha256(b"abcdef").hexdigest())
    assert sha256_file(dest) == out.sha256
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), write_whole(dest) as out:
        out.write(b"new, half")
        raise RuntimeError("broke off")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_reset_forgets_a_partial_attempt(tmp_path: Path) -> None:
    with write_whole(tmp_path / "b.bin") as out:
        out.write(b"partial")
        out.reset()
        out.write(b"whole")
    assert (tmp_path / "b.bin").read_bytes() == b"whole"
    assert out.sha256 == hashlib.sha256(b"whole").hexdigest()
