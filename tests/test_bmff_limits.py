"""Issue #21 items 6 and 7: the pass-through rewrite cannot be made to spin or to swell.

A crafted layout (100 k empty ``mdat`` boxes, 100 k chunks holding no sample) used to cost
chunks x boxes in pure Python, past any deadline; a big movie header took ~44x the file in
memory. The rewrite is now linear, bounded (absurd counts are ``corrupt_media``), checks the
job's deadline inside, and its peak memory is measured here in a child process.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pipeline import bmff
from pipeline.errors import CorruptMedia, DeadlineExceeded
from pipeline.job import parse_job
from pipeline.plan import plan_video
from pipeline.presets import load_presets
from pipeline.probe import probe
from pipeline.runner import process
from pipeline.settings import Settings
from pipeline.video import render_video
from tests.support.media import stream_packets, top_level_boxes
from tests.support.mp4craft import Movie, Node, box, synthetic_movie
from tests.support.mp4tools import mp4box
from tests.test_video import X264, spec_of

pytestmark = pytest.mark.ffmpeg

ROOT = Path(__file__).resolve().parent.parent
PEAK_RSS_LIMIT_MB = 600


def _with_empty_boxes_and_chunks(base: Path, out: Path, *, mdats: int, chunks: int) -> Path:
    """``base`` with ``mdats`` empty mdat boxes just before its own and ``chunks`` chunks
    holding no sample at the end of its video track (where ffmpeg, reading the source,
    ignores them), pointing at those boxes."""
    movie = Movie(base.read_bytes())
    real = next(i for i, n in enumerate(movie.top) if n.kind == b"mdat")
    old_mdat_at = sum(len(n.to_bytes()) for n in movie.top[:real])
    movie.top[real:real] = [Node(b"mdat") for _ in range(mdats)]
    tables = []
    for trak in movie.moov.find(b"trak"):
        stco, stsc = trak.first(b"stco"), trak.first(b"stsc")
        count = struct.unpack(">I", stco.payload[4:8])[0]
        offsets = list(struct.unpack(f">{count}I", stco.payload[8:]))
        runs = struct.unpack(f">{3 * struct.unpack('>I', stsc.payload[4:8])[0]}I",
                             stsc.payload[8:])
        empty = chunks if trak.first(b"hdlr").payload[8:12] == b"vide" else 0
        if empty:
            runs = (*runs, len(offsets) + 1, 0, 1)
        stsc.payload = stsc.payload[:4] + struct.pack(f">I{len(runs)}I", len(runs) // 3, *runs)
        stco.payload = stco.payload[:4] + struct.pack(f">I{len(offsets) + empty}I",
                                                      len(offsets) + empty,
                                                      *offsets, *[0] * empty)
        tables.append((stco, offsets, empty))
    # The sizes are final: place the offsets (the real chunks moved by what came before).
    starts, at = [], 0
    for node in movie.top:
        starts.append(at)
        at += len(node.to_bytes())
    shift = starts[real + mdats] - old_mdat_at
    empties = [starts[real + i] + 8 for i in range(mdats)] or [starts[real + mdats] + 16]
    for stco, offsets, empty in tables:
        values = [o + shift for o in offsets]
        values += [empties[i % len(empties)] for i in range(empty)]
        stco.payload = stco.payload[:8] + struct.pack(f">{len(values)}I", *values)
    out.write_bytes(b"".join(n.to_bytes() for n in movie.top))
    return out


def _base(make_clip: Any) -> Path:
    path: Path = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False)
    return path


def test_spinning_layout_is_refused_as_corrupt_within_the_job_deadline(make_clip: Any,
                                                                       tmp_path: Path) -> None:
    src = _with_empty_boxes_and_chunks(_base(make_clip), tmp_path / "spin.mp4",
                                       mdats=100_000, chunks=100_000)
    assert src.stat().st_size < 2_000_000
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "clip.mp4").write_bytes(src.read_bytes())
    presets = load_presets(None)
    job = parse_job({"workspace_id": "w", "id": "spin", "content": [{"media": ["clip.mp4"]}],
                     "accounts": [{"id": "x", "platform": "x"}]}, presets)
    settings = Settings(workdir=tmp_path / "work", library=f"file://{lib}/{{id}}",
                        dest=str(tmp_path / "out"), x264_preset=X264, job_deadline_s=30)
    manifest = process(job, settings=settings, presets=presets).to_dict()
    errors = [e for a in manifest["accounts"] for e in a["errors"]]
    assert [e["code"] for e in errors] == ["corrupt_media"], errors
    assert "MP4 layout refused" in errors[0]["message"]  # by the rewrite, not by a decode


@pytest.mark.parametrize(("mdats", "chunks"), [(100_000, 0), (0, 100_000)])
def test_each_absurd_count_is_corrupt_media(make_clip: Any, tmp_path: Path, mdats: int,
                                            chunks: int) -> None:
    src = _with_empty_boxes_and_chunks(_base(make_clip), tmp_path / "spin.mp4", mdats=mdats,
                                       chunks=chunks)
    with pytest.raises(CorruptMedia):
        bmff.strip_boxes(src, tmp_path / "out.mp4")
    assert not list(tmp_path.glob("*out.mp4*"))


def test_many_empty_boxes_and_chunks_under_the_limits_are_rewritten(make_clip: Any,
                                                                    tmp_path: Path) -> None:
    base = _base(make_clip)
    src = _with_empty_boxes_and_chunks(base, tmp_path / "many.mp4", mdats=5000, chunks=5000)
    out = tmp_path / "out.mp4"
    bmff.strip_boxes(src, out)
    assert top_level_boxes(out) == [b"ftyp", b"moov", b"mdat"]
    for stream in ("v:0", "a:0"):
        assert stream_packets(out, stream) == stream_packets(base, stream)
    assert mp4box(out)["samples"] == mp4box(base)["samples"]


def test_rewrite_stops_at_the_deadline_inside_its_loops(make_clip: Any, tmp_path: Path) -> None:
    src = _with_empty_boxes_and_chunks(_base(make_clip), tmp_path / "many.mp4", mdats=5000,
                                       chunks=0)
    calls = []

    def out_of_time() -> None:
        calls.append(1)
        raise DeadlineExceeded("out of time")

    with pytest.raises(DeadlineExceeded):
        bmff.strip_boxes(src, tmp_path / "out.mp4", check=out_of_time)
    assert calls == [1]  # while walking the top-level boxes, before any copy
    assert not list(tmp_path.glob("*out.mp4*"))


def test_passthrough_render_is_bounded_by_its_time(make_clip: Any, tmp_path: Path) -> None:
    src = make_clip(width=320, height=180, seconds=1.0, gop=30, edit_list=False)
    info = probe(src)
    target, actions, _ = plan_video(info, spec_of("twitter-video"), max_bytes=10**9,
                                    trim_s=None, from_image=False, x264_preset=X264)
    assert actions == ["passed_through"]
    out = tmp_path / "out.mp4"
    with pytest.raises(DeadlineExceeded):
        render_video(src, "mp4", target, out, duration_s=1.0, timeout_s=0.0)
    assert not list(tmp_path.glob("*out.mp4*"))


_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from pipeline.bmff import strip_boxes
    strip_boxes(Path(sys.argv[1]), Path(sys.argv[2]))
    # VmHWM, not ru_maxrss: exec hands a child the high-water RSS of the process that
    # spawned it (the test process); VmHWM is this process's own memory only.
    print(next(int(line.split()[1]) for line in open("/proc/self/status")
               if line.startswith("VmHWM:")) // 1024)
""")


def test_rewrite_memory_is_bounded_by_the_tables_not_the_file(tmp_path: Path) -> None:
    # The largest movie header the rewrite takes (under 64 MB: 7.5 M samples, a chunk each,
    # the worst case for its tables) in a file of 1.2 GB (a sparse gap nothing points at).
    samples, size = 7_500_000, 8
    src, out = tmp_path / "big.mp4", tmp_path / "out.mp4"
    synthetic_movie(src, sample_bytes=size, samples=samples, mdat_gap_bytes=1 << 30)
    assert src.stat().st_size > 1 << 30
    done = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(out)],
                          capture_output=True, text=True, timeout=600, check=False,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip())
    assert peak_mb < PEAK_RSS_LIMIT_MB, peak_mb
    assert top_level_boxes(out) == [b"ftyp", b"mdat", b"moov"]
    with out.open("rb") as fh:
        fh.seek(len(box(b"ftyp", bytes(24))))
        header = fh.read(8)
        assert struct.unpack(">I4s", header) == (8 + samples * size, b"mdat")
        digest = hashlib.sha256()
        left = samples * size
        while left:
            block = fh.read(min(1 << 20, left))
            digest.update(block)
            left -= len(block)
    pattern = bytes(range(256)) * 4096
    expected = hashlib.sha256()
    left = samples * size
    while left:
        expected.update(pattern[:min(len(pattern), left)])
        left -= min(len(pattern), left)
    assert digest.hexdigest() == expected.hexdigest()
