"""One list of rules: the planner keeps a stream or an image only when the verifier passes it."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest

from pipeline import rules
from pipeline.models import MediaInfo
from pipeline.outputs import verify
from pipeline.plan import plan_image, plan_video, video_streams_conform
from pipeline.presets import ImageSpec, VideoSpec, load_presets
from tests.factories import image_info, video_info

PRESETS = load_presets()
VIDEO_VARIANTS = [(preset.platform, variant.id, variant.video)
                  for preset in PRESETS for variant in preset.variants.values()
                  if variant.video is not None]


def _sources() -> list[tuple[str, MediaInfo]]:
    """Edge cases around each rule's edge: rates either side of the standard ones, shapes."""
    cases: list[tuple[str, MediaInfo]] = []
    for fps in (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001),
                Fraction(30), Fraction(3020, 100), Fraction(2985, 100), Fraction(60000, 1001),
                Fraction(60), Fraction(6050, 100), Fraction(12), Fraction(120)):
        cases.append((f"1080x1920@{float(fps):.3f}", video_info(1080, 1920, fps=fps,
                                                                 size_bytes=2_000_000)))
    for w, h in ((1920, 1080), (1080, 1350), (1080, 1080), (1080, 1920), (1078, 1920),
                 (1080, 1922), (720, 1280), (1081, 1920), (4000, 3000), (240, 426)):
        cases.append((f"{w}x{h}", video_info(w, h, size_bytes=2_000_000)))
    base = video_info(1080, 1920, size_bytes=2_000_000)
    assert base.video is not None
    for label, stream in (("main", replace(base.video, profile="Main")),
                          ("baseline", replace(base.video, profile="Baseline")),
                          ("full-range", replace(base.video, color_range="pc")),
                          ("yuvj", replace(base.video, pix_fmt="yuvj420p")),
                          ("gop 2.5 s", replace(base.video, max_keyframe_interval_s=2.5)),
                          ("gop 10 s", replace(base.video, max_keyframe_interval_s=10.0))):
        cases.append((label, replace(base, video=stream)))
    cases.append(("hdr", video_info(1080, 1920, pix_fmt="yuv420p10le", hdr=True,
                                    size_bytes=2_000_000)))
    return cases


SOURCES = _sources()


@pytest.mark.parametrize(("platform", "variant_id", "spec"), VIDEO_VARIANTS,
                         ids=[v[1] for v in VIDEO_VARIANTS])
def test_a_stream_the_planner_keeps_passes_the_verifier(platform: str, variant_id: str,
                                                        spec: VideoSpec) -> None:
    kept = 0
    for label, info in SOURCES:
        target, _, _ = plan_video(info, spec, max_bytes=spec.max_bytes, trim_s=None,
                                  from_image=False, x264_preset="veryfast")
        if target.action not in ("passthrough", "remux"):
            continue
        kept += 1
        # The kept stream is the output: the verifier must agree it conforms.
        problems = verify.check_video(info, spec, target, info.duration_s or 0.0)
        assert problems == [], (platform, variant_id, label, problems)
    assert kept, f"{variant_id}: no edge case was kept, so nothing was compared"


def test_the_verifier_allows_rounding_the_planner_does_not() -> None:
    spec = next(v for _, vid, v in VIDEO_VARIANTS if vid == "tiktok-video")
    over = video_info(1080, 1920, fps=spec.fps_max * Fraction(1005, 1000), size_bytes=2_000_000)
    # 0.5 % over the maximum rate: not kept as it is (the planner re-times it) ...
    assert any("fps" in p for p in video_streams_conform(over, spec, spec.max_bytes))
    # ... but an output measured there is a rounding of the maximum, and ships.
    assert rules.video_stream_problems(over, spec, max_bytes=spec.max_bytes,
                                       tolerance=rules.OUTPUT) == []
    far = video_info(1080, 1920, fps=spec.fps_max * Fraction(103, 100), size_bytes=2_000_000)
    assert any("fps" in p for p in rules.video_stream_problems(
        far, spec, max_bytes=spec.max_bytes, tolerance=rules.OUTPUT))


def test_aspect_tolerance_is_exact_for_the_planner() -> None:
    lo, hi = Fraction(9, 16), Fraction(9, 16)
    assert rules.aspect_ok(1080, 1920, lo, hi, rules.EXACT)
    assert not rules.aspect_ok(1078, 1920, lo, hi, rules.EXACT)
    assert rules.aspect_ok(1078, 1920, lo, hi, rules.OUTPUT)   # one 2-pixel step off
    assert not rules.aspect_ok(1000, 1920, lo, hi, rules.OUTPUT)


# --------------------------------------------------------------------------- images

IMAGE_VARIANTS = [(preset.platform, variant.id, variant.image)
                  for preset in PRESETS for variant in preset.variants.values()
                  if variant.image is not None]


def _image_sources(spec: ImageSpec) -> list[tuple[str, MediaInfo]]:
    """Images around each rule's edge for this variant: sizes, shapes, bytes, formats, colour."""
    w = min(spec.max_width, 1080)
    h = w
    if spec.aspect_min is not None and Fraction(w, h) < spec.aspect_min:
        h = int(w / spec.aspect_min)
    if spec.aspect_max is not None and Fraction(w, h) > spec.aspect_max:
        h = math.ceil(w / spec.aspect_max)
    base = image_info(w, h, size_bytes=min(spec.max_bytes, 200_000))
    assert base.image is not None
    cases = [("base", base),
             ("at byte cap", replace(base, size_bytes=spec.max_bytes)),
             ("over byte cap", replace(base, size_bytes=spec.max_bytes + 1)),
             ("max width", replace(base, width=spec.max_width)),
             ("over max width", replace(base, width=spec.max_width + 1)),
             ("under min", replace(base, width=max(1, spec.min_width - 1))),
             ("one pixel taller", replace(base, height=h + 1)),
             ("one pixel wider", replace(base, width=w + 1))]
    for fmt in ("png", "webp", "gif", "heif", "bmp"):
        cases.append((fmt, replace(base, format_name=fmt)))
    for label, facts in (("rotated", replace(base.image, exif_orientation=6)),
                         ("16 bits", replace(base.image, bits=16)),
                         ("CMYK", replace(base.image, mode="CMYK")),
                         ("P3 profile", replace(base.image, icc_profile="Display P3")),
                         ("sRGB profile", replace(base.image, icc_profile="sRGB IEC61966-2.1")),
                         ("EXIF and GPS", replace(base.image, has_exif=True, has_gps=True)),
                         ("I;16 mode", replace(base.image, mode="I;16"))):
        cases.append((label, replace(base, image=facts)))
    gif = image_info(w, h, fmt="gif", frames=12, size_bytes=min(spec.max_bytes, 300_000))
    cases.append(("animated gif", gif))
    return cases


def _stripped(info: MediaInfo) -> MediaInfo:
    """The source as a pass-through ships it: the engine strips its metadata, nothing else."""
    assert info.image is not None
    return replace(info, image=replace(info.image, has_exif=False, has_gps=False,
                                       has_xmp=False))


@pytest.mark.parametrize(("platform", "variant_id", "spec"), IMAGE_VARIANTS,
                         ids=[v[1] for v in IMAGE_VARIANTS])
def test_an_image_the_planner_keeps_passes_the_verifier(platform: str, variant_id: str,
                                                        spec: ImageSpec) -> None:
    kept = 0
    for label, info in _image_sources(spec):
        for keep_animation in (False, True):
            target, actions, _ = plan_image(info, spec, max_bytes=spec.max_bytes,
                                            keep_animation=keep_animation)
            if not target.passthrough:
                continue
            kept += 1
            assert "passed_through" in actions
            problems = verify.check_image(_stripped(info), spec, target)
            assert problems == [], (platform, variant_id, label, problems)
    assert kept, f"{variant_id}: no edge case was kept, so nothing was compared"


@pytest.mark.parametrize(("platform", "variant_id", "spec"), IMAGE_VARIANTS,
                         ids=[v[1] for v in IMAGE_VARIANTS])
def test_an_image_the_verifier_refuses_is_never_kept(platform: str, variant_id: str,
                                                     spec: ImageSpec) -> None:
    for label, info in _image_sources(spec):
        problems = rules.image_problems(info, spec, max_bytes=spec.max_bytes, animation=False,
                                        tolerance=rules.IMAGE_EXACT, metadata=False)
        target, _, _ = plan_image(info, spec, max_bytes=spec.max_bytes)
        if problems:
            assert not target.passthrough, (platform, variant_id, label, problems)


def test_image_metadata_is_stripped_not_a_reason_to_reencode() -> None:
    spec = next(s for _, _, s in IMAGE_VARIANTS if "jpeg" in s.formats)
    info = image_info(1080, 1080, size_bytes=100_000)
    assert info.image is not None
    tagged = replace(info, image=replace(info.image, has_exif=True, has_xmp=True))
    target, actions, _ = plan_image(tagged, spec, max_bytes=spec.max_bytes)
    assert target.passthrough and actions == ["passed_through", "stripped_metadata"]
    # ... but an output that still carries it does not ship.
    assert verify.check_image(tagged, spec, target) == ["EXIF metadata left in the output",
                                                        "XMP metadata left in the output"]


def test_image_aspect_tolerance_is_exact_for_the_planner() -> None:
    lo = hi = Fraction(9, 16)
    assert rules.image_aspect_ok(1080, 1920, lo, hi, rules.IMAGE_EXACT)
    # 128 wide cannot be 9:16 in whole pixels: the output is 128x228 (0.5614 < 0.5625) ...
    assert not rules.image_aspect_ok(128, 228, lo, hi, rules.IMAGE_EXACT)
    assert rules.image_aspect_ok(128, 228, lo, hi, rules.IMAGE_OUTPUT)
    # ... and anything further off than half a pixel a side is refused by both.
    assert not rules.image_aspect_ok(128, 230, lo, hi, rules.IMAGE_OUTPUT)
    four_five = Fraction(4, 5)
    assert not rules.image_aspect_ok(790, 1000, four_five, None, rules.IMAGE_OUTPUT)


def test_an_animation_where_a_still_is_wanted_breaks_the_rules() -> None:
    spec = next(s for _, _, s in IMAGE_VARIANTS if "gif" in s.animated_formats)
    gif = image_info(480, 480, fmt="gif", frames=12, size_bytes=100_000)
    still = rules.image_problems(gif, spec, max_bytes=spec.max_bytes, animation=False,
                                 tolerance=rules.IMAGE_EXACT)
    assert any("where a still was planned" in p for p in still)
    assert rules.image_problems(gif, spec, max_bytes=spec.max_bytes, animation=True,
                                tolerance=rules.IMAGE_EXACT) == []
