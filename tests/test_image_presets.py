"""Every image variant of every platform, for every real phone and camera image in the corpus.

Each output is judged the way the platform would judge it (format, bytes, size, shape, no
metadata, sRGB; tests/support/imagecheck.py reads it back independently of the engine), and its
picture is compared with the source decoded, turned upright and colour-managed to sRGB.
The 200 MP HEIC has its own tests in test_image.py (one decode shared by every variant).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
from PIL import Image

from pipeline import probe
from pipeline.errors import CorruptMedia, TooLarge
from pipeline.image import DecodedBuffer, decode_heif_buffer, render_decoded, render_image
from pipeline.models import MediaInfo
from pipeline.outputs import verify
from pipeline.plan import plan_image
from pipeline.presets import load_presets
from pipeline.rules import animation_fits
from pipeline.settings import Settings
from tests.support.imagecheck import content_error, platform_problems, upright_reference

PRESETS = load_presets()
IMAGE_VARIANTS = [v.id for p in PRESETS for v in p.variants.values() if v.kind == "image"]
CORPUS_IMAGES = [
    "Landscape_6.jpg", "RGBA_16__128x128.png", "arrow.heic", "cat.hif",
    "exif_imagemagick_orientation.png", "hopper_orientation_6.webp", "icc_profile_big.jpg",
    "iss634.apng", "iss634.gif", "iss634.webp", "pil123p.png", "pil_sample_cmyk.jpg",
    "pixel-motion-photo-shortened.jpg", "pug.heic", "rot1mir0.avif", "sample-xyb.jpg",
    "ultraHDR.jpg", "xmp_test.jpg",
]
ACTIONS = {"rotated", "converted_colour", "flattened_alpha", "resized", "cropped", "padded",
           "blurred", "converted_format", "first_frame", "recompressed", "stripped_metadata",
           "passed_through"}
WARNINGS = {"upscaled", "quality_floor_reached", "downscaled_for_byte_budget"}
# Mean per-channel error (0-255) against the upright sRGB reference, compared at 128 px: JPEG
# and resampling stay well under it; a wrong orientation, a missing colour conversion or a
# misplaced crop is far over it (see the sensitivity checks in test_image.py).
MAX_ERROR = 6.0


@pytest.fixture(scope="module", autouse=True)
def _pillow() -> None:
    probe.setup_pillow(Settings().max_image_pixels)


@lru_cache(maxsize=2)
def probe_source(src: Path) -> MediaInfo:
    """Probe each source once for its eleven variants, as a job does."""
    return probe.probe(src)


@lru_cache(maxsize=1)
def heif_buffer(src: Path) -> DecodedBuffer:
    """Decode a HEIC once for its eleven variants (render_image's HEIF path does exactly
    decode_heif_buffer then render_decoded; decoding is what costs)."""
    return decode_heif_buffer(src)


def test_the_matrix_covers_every_platform_with_images() -> None:
    platforms = {vid.split("-")[0] for vid in IMAGE_VARIANTS}
    assert platforms == {"instagram", "facebook", "twitter", "linkedin", "tiktok", "pinterest",
                         "threads", "telegram", "bluesky"}
    assert {"instagram-feed-image", "instagram-stories-image", "pinterest-image",
            "pinterest-carousel"} <= set(IMAGE_VARIANTS)


@pytest.mark.parametrize(("name", "variant_id"),
                         [(n, v) for n in CORPUS_IMAGES for v in IMAGE_VARIANTS])
def test_corpus_image_on_every_image_variant(corpus: Path, tmp_path: Path, name: str,
                                             variant_id: str) -> None:
    found = PRESETS.find_variant(variant_id)
    assert found is not None
    preset, variant = found
    spec = variant.image
    assert spec is not None
    src = corpus / "images" / name
    info = probe_source(src)
    assert info.image is not None
    max_bytes = min(spec.max_bytes, preset.limits.max_image_bytes or spec.max_bytes)
    # A post of this one image: an animation stays one where the variant takes it.
    keep = info.animated and animation_fits(info, spec)
    target, actions, warnings = plan_image(info, spec, max_bytes=max_bytes, keep_animation=keep)
    out_path = tmp_path / f"out.{target.format}"
    if info.format_name == "heif":
        result = render_decoded(heif_buffer(src), target, out_path)
    else:
        result = render_image(src, info.format_name, target, out_path)

    out = result.path
    assert platform_problems(out, spec, max_bytes) == []
    out_info = probe.probe(out)
    assert verify.check_image(out_info, spec, target) == []
    assert (out_info.width, out_info.height) == (result.width, result.height)
    assert out_info.animated == keep

    done = [*actions, *result.extra_actions]
    assert set(done) <= ACTIONS and set([*warnings, *result.warnings]) <= WARNINGS
    assert ("passed_through" in done) == target.passthrough
    if target.passthrough:
        assert set(done) <= {"passed_through", "stripped_metadata"}
    if info.image.exif_orientation != 1:
        assert "rotated" in done
    if info.image.has_gps or info.image.has_exif or info.image.has_xmp:
        assert "stripped_metadata" in done

    g = target.geometry
    if "upscaled" in warnings:
        # only ever up to a platform minimum width (Instagram, Threads: 320)
        assert spec.min_upscale_width and result.width == spec.min_upscale_width
    else:
        assert g.content_width <= g.crop_width and g.content_height <= g.crop_height

    with Image.open(out) as im:
        assert im.size == (result.width, result.height)
    err = content_error(out, upright_reference(src), g, spec.background)
    assert err < MAX_ERROR, f"{name} -> {variant_id}: differs from the reference by {err:.1f}"


def test_truncated_jpeg_is_a_typed_error(corpus: Path) -> None:
    with pytest.raises(CorruptMedia) as caught:
        probe.probe(corpus / "images" / "truncated_jpeg.jpg")
    assert caught.value.code == "corrupt_media" and caught.value.http_status == 400


def test_decompression_bomb_is_a_typed_error(corpus: Path) -> None:
    with pytest.raises(TooLarge) as caught:
        probe.probe(corpus / "images" / "decompression_bomb.gif")
    assert caught.value.code == "too_large"
