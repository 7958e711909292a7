"""Content keys come from an explicit list of fields; known keys are pinned.

A key names where an output is stored and lets later jobs reuse it. Changing keys by accident
(a new target field that silently joins every key) throws every stored output away, and two
targets that make different bytes must never share one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from fractions import Fraction

import pytest

from pipeline.plan.targets import (
    COVER_KEY_FIELDS,
    IMAGE_KEY_FIELDS,
    NOT_IN_KEY,
    VIDEO_KEY_FIELDS,
    AudioTarget,
    CoverTarget,
    Geometry,
    ImageTarget,
    ReframeShot,
    VideoTarget,
    target_key,
)

G = Geometry(width=1080, height=1920, content_width=1080, content_height=608, crop_x=0,
             crop_y=0, crop_width=1920, crop_height=1080, fit="pad", source_width=1920,
             source_height=1080)
IMG = ImageTarget(format="jpeg", geometry=G, background="#000000", max_bytes=8_000_000,
                  quality=90, quality_floor=60, animated=False, passthrough=False,
                  orientation=1, to_srgb=False)
VID = VideoTarget(action="transcode", geometry=G, pad_color="black", fps=Fraction(30000, 1001),
                  gop_frames=60, tonemap=False, deinterlace=False, full_to_limited=False,
                  max_bytes=50_000_000, maxrate_kbps=6000, trim_s=None,
                  audio=AudioTarget("encode"), from_image=False, x264_preset="veryfast",
                  level="4.0")
COVER = CoverTarget(source="frame", at_ms=1000, format="jpeg", width=1080, height=1920,
                    fit="crop", max_bytes=1_000_000, min_width=320)
SRC = "ab" * 32

# Computed before the key's fields were listed explicitly (issue #14): they must not move.
PINNED = [
    ("image", IMG, "", "8dbda9d7a7f74d684e2e3f544335b6c3ed2046c6341e6e6b526bf6495ce1a625"),
    ("video", VID, "", "35cbd4afd23360384b7ef211749cd53423782aac5f9d85555fae5285599702ea"),
    ("remux", replace(VID, action="remux", source_codec="h264"), "",
     "f88bdddd0649d9ee0006843e07eba322773ac42050e32b9c3967557937468d77"),
    ("looped", replace(VID, loops=3, from_image=True), "",
     "57e56edfa32cdb4b071f6bf8c52f43721c5aad81d4a01bd201f4fb4c1f1b966d"),
    ("reframed", replace(VID, reframe=(ReframeShot(0.0, 2.0, "pan", "x",
                                                   ((0.0, 0), (2.0, 120))),)), "",
     "c7be2f5dd4b84f02c89aa72a7be9bbb0d03f9781f27fc4babffd673cedb04bc5"),
    ("cover", COVER, "x", "e011c85b940961ada19f12ec568291e8384be79ac35218abc22e0b6469e8bf19"),
]


@pytest.mark.parametrize(("name", "target", "extra", "key"), PINNED, ids=[p[0] for p in PINNED])
def test_known_keys_do_not_change(name: str, target: ImageTarget | VideoTarget | CoverTarget,
                                  extra: str, key: str) -> None:
    assert target_key(SRC, target, extra) == key


@pytest.mark.parametrize(("record", "listed", "left_out"), [
    (ImageTarget, IMAGE_KEY_FIELDS, NOT_IN_KEY["image"]),
    (VideoTarget, VIDEO_KEY_FIELDS, NOT_IN_KEY["video"]),
    (CoverTarget, COVER_KEY_FIELDS, NOT_IN_KEY["cover"]),
])
def test_every_target_field_is_either_in_the_key_or_left_out_on_purpose(
        record: type, listed: tuple[str, ...], left_out: tuple[str, ...]) -> None:
    # A new field must be added to one list or the other: a deliberate act.
    names = {f.name for f in dataclasses.fields(record)}
    assert names == set(listed) | set(left_out)
    assert not set(listed) & set(left_out)


def test_caps_that_do_not_change_the_bytes_are_not_in_a_video_key() -> None:
    assert target_key(SRC, replace(VID, max_bytes=1_000_000, min_width=320)) == \
        target_key(SRC, VID)
    assert target_key(SRC, replace(VID, maxrate_kbps=5000)) != target_key(SRC, VID)
    # a stream copy keys on what it copies, not on the encode's settings
    remux = replace(VID, action="remux", source_codec="h264")
    assert target_key(SRC, replace(remux, maxrate_kbps=5000)) == target_key(SRC, remux)
