"""Cut detection (``pipeline.vision.cuts``) on edits made at test time from real footage: every hard
cut, jump cut and short dissolve found on its frame, and no cut where there is none (a pan, a
flash, a talking head's own motion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import probe
from pipeline.vision import cuts, sampling
from tests.support.edits import Edit, Piece, make_edit

FACE = "videos/face.mp4"  # a real talking head (MIT, see SOURCES.md)
BBB = "videos/bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4"  # 4 s; cuts at 0.2, 2.5 s
ROAD = "videos/roadtrip-vp92-10bit.webm"  # outdoors, 3 s, a cut at 1.75 s


def found(edit: Edit) -> list[int]:
    tiny, rate = sampling.every_frame(edit.path, probe.probe(edit.path), max_side=cuts.CUT_SIDE_PX,
                                    max_frames=cuts.MAX_FRAMES, timeout_s=60)
    assert abs(rate - edit.fps) < 1e-6 and len(tiny) == edit.frames
    return cuts.find_cuts(tiny, rate=rate)


@pytest.mark.ffmpeg
def test_jump_cuts_of_a_talking_head_are_found_on_their_frame(
        corpus: Path, tmp_path: Path) -> None:
    """Same room, same person, the framing jumps left/right/in: colours barely change."""
    face = corpus / FACE
    edit = make_edit([Piece(face, 0.0, 2.0, zoom=0.7, crop_x=0.0),
                      Piece(face, 2.0, 2.0, zoom=0.7, crop_x=1.0),
                      Piece(face, 4.0, 1.5, zoom=0.7, crop_x=0.0),
                      Piece(face, 5.5, 2.0, zoom=0.85, crop_x=0.5),
                      Piece(face, 7.5, 1.0, zoom=0.7, crop_x=0.2)], tmp_path / "jump.mp4")
    assert found(edit) == list(edit.cuts)


@pytest.mark.ffmpeg
def test_hard_cuts_and_short_dissolves_are_found_on_their_frame(
        corpus: Path, tmp_path: Path) -> None:
    """Indoor to cartoon to outdoor and back by hard cuts, then two 0.4 s dissolves: a hard
    cut on its first frame, a dissolve on its middle frame (within one frame)."""
    face, bbb, road = corpus / FACE, corpus / BBB, corpus / ROAD
    hard = make_edit([Piece(face, 0.0, 2.0), Piece(bbb, 0.4, 2.0), Piece(road, 0.0, 1.6),
                      Piece(face, 5.0, 2.0)], tmp_path / "hard.mp4")
    assert found(hard) == list(hard.cuts)
    soft = make_edit([Piece(face, 0.0, 2.5), Piece(bbb, 0.4, 2.0, join="dissolve"),
                      Piece(face, 6.0, 2.5, zoom=0.7, crop_x=0.0, join="dissolve")],
                     tmp_path / "dissolve.mp4")
    seen = found(soft)
    assert len(seen) == len(soft.cuts)
    assert all(abs(a - b) <= 1 for a, b in zip(seen, soft.cuts, strict=True)), (seen, soft.cuts)


@pytest.mark.ffmpeg
def test_a_pan_a_zoomed_talking_head_and_flashes_are_not_cuts(
        corpus: Path, tmp_path: Path) -> None:
    face, road = corpus / FACE, corpus / ROAD
    pan = make_edit([Piece(face, 0.0, 4.0, zoom=0.5, crop_x=0.0, pan_to_x=1.0),
                     Piece(road, 0.0, 1.6, zoom=0.6, crop_x=1.0, pan_to_x=0.0)],
                    tmp_path / "pan.mp4")
    assert found(pan) == list(pan.cuts)  # the one real cut between them, nothing in the pans
    edit = make_edit([Piece(face, 0.0, 3.0, zoom=0.6, crop_x=0.4)], tmp_path / "head.mp4")
    tiny, rate = sampling.every_frame(edit.path, probe.probe(edit.path), max_side=cuts.CUT_SIDE_PX,
                                    max_frames=cuts.MAX_FRAMES, timeout_s=60)
    flashed = tiny.copy()
    flashed[20] = 255  # a one-frame camera flash
    flashed[50:52] = 250  # a two-frame strobe
    assert cuts.find_cuts(flashed, rate=rate) == []
