"""Image conformance: decode, orientation, colour, geometry, byte budget, metadata, animation.

Outputs are checked the way a platform would check them (tests/support/imagecheck.py reads
them back without the engine) and compared by pixels with references built here: generated
pictures with a coloured marker in each quadrant, and corpus photos turned upright by their own
orientation rules and colour-managed with ImageCms.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image, ImageChops, ImageCms, ImageStat

from pipeline import probe
from pipeline.cli import main
from pipeline.errors import CannotFit, CorruptMedia, SourceError
from pipeline.geometry import Geometry
from pipeline.image import (
    DecodedBuffer,
    decode_heif_buffer,
    decode_image,
    render_decoded,
    render_image,
    scale_buffer,
    strip_metadata,
)
from pipeline.job import parse_job
from pipeline.models import MediaInfo, MediaRef
from pipeline.outputs import verify
from pipeline.plan import ImageTarget, plan_image, plan_job
from pipeline.presets import ImageSpec, load_presets
from pipeline.settings import Settings
from pipeline.validate import check_account
from tests.factories import image_info
from tests.support.imagecheck import (
    flatten,
    jpeg_scan_bytes,
    jpeg_segments,
    mean_error,
    platform_problems,
    png_chunks,
    to_srgb,
)

PRESETS = load_presets()
RED, GREEN, BLUE, GREY = (220, 30, 30), (30, 200, 40), (30, 40, 220), (128, 128, 128)


@pytest.fixture(scope="module", autouse=True)
def _pillow() -> None:
    probe.setup_pillow(Settings().max_image_pixels)


def variant_spec(variant_id: str) -> tuple[ImageSpec, int]:
    found = PRESETS.find_variant(variant_id)
    assert found is not None and found[1].image is not None
    preset, variant = found
    spec = variant.image
    return spec, min(spec.max_bytes, preset.limits.max_image_bytes or spec.max_bytes)


def conform_file(src: Path, variant_id: str, out_dir: Path, *, keep_animation: bool = False,
                 spec: ImageSpec | None = None) -> tuple[MediaInfo, ImageTarget, list[str],
                                                         list[str], Path]:
    """Plan and render one image for one variant; assert the platform accepts the result."""
    vspec, max_bytes = variant_spec(variant_id)
    spec = spec or vspec
    info = probe.probe(src)
    target, actions, warnings = plan_image(info, spec, max_bytes=max_bytes,
                                           keep_animation=keep_animation)
    result = render_image(src, info.format_name, target, out_dir / f"{variant_id}.{target.format}")
    assert platform_problems(result.path, spec, max_bytes) == []
    assert verify.check_image(probe.probe(result.path), spec, target) == []
    return (info, target, [*actions, *result.extra_actions], [*warnings, *result.warnings],
            result.path)


def quadrants(width: int = 96, height: int = 64) -> Image.Image:
    """An upright picture: red top-left, green top-right, blue bottom-left, grey bottom-right."""
    im = Image.new("RGB", (width, height))
    w2, h2 = width // 2, height // 2
    for colour, box in ((RED, (0, 0, w2, h2)), (GREEN, (w2, 0, width, h2)),
                        (BLUE, (0, h2, w2, height)), (GREY, (w2, h2, width, height))):
        im.paste(colour, box)
    return im


def quadrant_colours(im: Image.Image) -> list[tuple[int, ...]]:
    rgb = im.convert("RGB")
    w, h = rgb.size
    return [rgb.getpixel((x, y)) for x, y in ((w // 4, h // 4), (3 * w // 4, h // 4),  # type: ignore[misc]
                                               (w // 4, 3 * h // 4), (3 * w // 4, 3 * h // 4))]


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a[:3], b[:3], strict=True))


def noise(width: int, height: int, sigma: float = 60.0) -> Image.Image:
    bands = [Image.effect_noise((width, height), sigma) for _ in range(3)]
    return Image.merge("RGB", bands)  # type: ignore[arg-type]


# EXIF orientation n says how the stored rows map to the picture: stored = this transform of
# the upright picture (the inverse of what a viewer applies). From the EXIF 2.3 definitions:
# 2 mirrored, 3 upside down, 4 mirrored upside down, 5 transposed, 6 needs 90° clockwise to
# display (so it was stored 90° counter-clockwise), 7 transverse, 8 needs 90° counter-clockwise.
STORED_FROM_UPRIGHT = {
    1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270,
}


def save_with_orientation(upright: Image.Image, orientation: int, path: Path, fmt: str) -> None:
    method = STORED_FROM_UPRIGHT[orientation]
    stored = upright.transpose(method) if method is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    if fmt == "TIFF":
        stored.save(path, fmt, tiffinfo={0x0112: orientation})
    elif fmt == "JPEG":
        stored.save(path, fmt, exif=exif, quality=95, subsampling=0)
    else:
        stored.save(path, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_every_exif_orientation_comes_out_upright(tmp_path: Path, orientation: int,
                                                  fmt: str) -> None:
    upright = quadrants()
    src = tmp_path / f"o{orientation}.{fmt.lower()}"
    save_with_orientation(upright, orientation, src, fmt)
    info, _, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert (info.width, info.height) == upright.size  # probing resolved the displayed size
    with Image.open(out) as im:
        assert im.size == upright.size
        assert all(close(a, b) for a, b in zip(quadrant_colours(im), quadrant_colours(upright),
                                               strict=True)), quadrant_colours(im)
        assert not im.getexif()  # the tag is gone with the rotation applied
    assert ("rotated" in actions) == (orientation != 1)


def reference_error(out: Path, reference: Image.Image) -> float:
    with Image.open(out) as im:
        return mean_error(im, reference.resize(im.size))


@pytest.mark.parametrize(("name", "method"), [
    ("Landscape_6.jpg", Image.Transpose.ROTATE_270),            # EXIF 6: 90° clockwise
    ("hopper_orientation_6.webp", Image.Transpose.ROTATE_270),  # EXIF 6 in a WebP EXIF chunk
    ("exif_imagemagick_orientation.png", Image.Transpose.ROTATE_180),  # EXIF 3 in a tEXt chunk
])
def test_corpus_orientation_matches_the_rotated_stored_pixels(corpus: Path, tmp_path: Path,
                                                              name: str, method: Any) -> None:
    src = corpus / "images" / name
    with Image.open(src) as im:
        stored = im.convert("RGB")
    _, _, actions, _, out = conform_file(src, "facebook-feed-image", tmp_path)
    assert "rotated" in actions
    right = stored.transpose(method)
    wrong = stored.transpose(Image.Transpose.ROTATE_90 if method != Image.Transpose.ROTATE_90
                             else Image.Transpose.ROTATE_270)
    assert reference_error(out, right) < 4
    assert reference_error(out, stored.resize(right.size)) > 8  # not left as stored
    if wrong.size == right.size:
        assert reference_error(out, wrong) > 8


def _box_payload(data: bytes, kind: bytes) -> int:
    """First payload byte of an ISO-BMFF property box (irot: angle, imir: axis)."""
    at = data.index(kind)
    return data[at + 4]


def test_avif_rotation_and_mirror_applied_from_its_boxes(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "rot1mir0.avif"
    data = src.read_bytes()
    angle, axis = _box_payload(data, b"irot") & 3, _box_payload(data, b"imir") & 1
    assert (angle, axis) == (1, 0)
    with Image.open(src) as im:
        stored = im.convert("RGB")
    assert stored.size == (427, 640)
    # HEIF: irot rotates anti-clockwise by angle x 90°, then imir axis 0 exchanges top and bottom.
    reference = stored.rotate(90 * angle, expand=True)
    reference = reference.transpose(Image.Transpose.FLIP_TOP_BOTTOM if axis == 0
                                    else Image.Transpose.FLIP_LEFT_RIGHT)
    _, _, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    with Image.open(out) as im:
        assert im.size == (640, 427)
    assert "rotated" in actions and "converted_format" in actions
    assert reference_error(out, reference) < 4
    assert reference_error(out, stored.rotate(90, expand=True)) > 8  # the mirror matters


def arrow_points_up(im: Image.Image) -> bool:
    """The hand-drawn arrow's head (wide) is in the top half, its shaft (narrow) below."""
    grey = im.convert("L").resize((60, 80))
    dark = [[grey.getpixel((x, y)) < 100 for x in range(60)] for y in range(80)]  # type: ignore[operator]

    def spread(rows: range) -> int:
        cols = [x for y in rows for x in range(60) if dark[y][x]]
        return max(cols) - min(cols) if cols else 0

    return spread(range(10, 35)) > spread(range(45, 75)) * 1.5


def test_heic_rotated_once_not_twice(corpus: Path, tmp_path: Path) -> None:
    """arrow.heic carries irot=3 and EXIF orientation 6: libheif applies irot; EXIF is ignored."""
    src = corpus / "images" / "arrow.heic"
    data = src.read_bytes()
    assert _box_payload(data, b"irot") & 3 == 3
    info, _, actions, _, out = conform_file(src, "facebook-feed-image", tmp_path)
    assert (info.width, info.height) == (3024, 4032)
    with Image.open(out) as im:
        # stored 4032x3024: once rotated is portrait; none or twice would be landscape
        assert im.height > im.width
        assert arrow_points_up(im)
        assert not arrow_points_up(im.rotate(180))  # the check can fail
    assert "rotated" not in actions  # the container's rotation is part of decoding


def test_motion_photo_rotated_and_its_video_dropped(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "pixel-motion-photo-shortened.jpg"
    assert b"ftyp" in src.read_bytes()
    info, _, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert info.image is not None and info.image.has_gps
    assert {"rotated", "stripped_metadata"} <= set(actions)
    data = out.read_bytes()
    assert b"ftyp" not in data and b"GCamera" not in data
    with Image.open(out) as im:
        grey = im.convert("L").resize((40, 30))
        # stored with a black band along its top edge; EXIF 6 puts that edge on the right
        right = ImageStat.Stat(grey.crop((38, 0, 40, 30))).mean[0]
        left = ImageStat.Stat(grey.crop((0, 0, 2, 30))).mean[0]
        assert right < 60 < 100 < left


# --------------------------------------------------------------------------- colour


def unmanaged(src: Path) -> Image.Image:
    with Image.open(src) as im:
        return im.convert("RGB")


@pytest.mark.parametrize("name", ["sample-xyb.jpg", "xmp_test.jpg", "icc_profile_big.jpg"])
def test_icc_profiles_are_converted_to_srgb(corpus: Path, tmp_path: Path, name: str) -> None:
    src = corpus / "images" / name
    with Image.open(src) as im:
        managed = to_srgb(im)
    _, _, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert "converted_colour" in actions
    with Image.open(out) as im:
        assert "icc_profile" not in im.info  # untagged output is sRGB
    err = reference_error(out, managed)
    assert err < 3, err
    # ...and the conversion is what makes it right, not a no-op: the output is nearer the
    # managed reference than the pixels read without their profile.
    assert err < reference_error(out, unmanaged(src))


def test_xyb_jpeg_is_only_right_with_its_profile(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "sample-xyb.jpg"
    _, _, _, _, out = conform_file(src, "bluesky-image", tmp_path)
    assert reference_error(out, unmanaged(src)) > 15  # raw XYB values look nothing like it


def test_display_p3_heic_is_converted(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "pug.heic"
    with Image.open(src) as im:
        im.draft(None, (600, 450))  # its embedded thumbnail, same profile
        managed = to_srgb(im)
        raw = im.convert("RGB")
    _, _, actions, _, out = conform_file(src, "threads-image", tmp_path)
    assert "converted_colour" in actions and "converted_format" in actions
    assert reference_error(out, managed) < reference_error(out, raw)
    assert reference_error(out, managed) < 5


def test_cmyk_ycck_jpeg_is_not_inverted(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "pil_sample_cmyk.jpg"
    _, _, actions, _, out = conform_file(src, "instagram-feed-image", tmp_path)
    assert "converted_colour" in actions
    with Image.open(out) as im:
        assert im.mode == "RGB"
        rgb = im.convert("RGB").resize((100, 100))
        pixels = [rgb.getpixel((x, y)) for x in range(100) for y in range(100)]
    red = sum(1 for r, g, b in pixels if r > 150 and g < 90 and b < 90)  # type: ignore[misc]
    dark = sum(1 for p in pixels if max(p) < 60)  # type: ignore[arg-type]
    assert red > 500 and dark > 5000  # red lettering on black, not cyan on white


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = Image.new("I;16", (256, 8))
    for x in range(256):
        for y in range(8):
            ramp.putpixel((x, y), x * 257)
    src = tmp_path / "ramp16.png"
    ramp.save(src)
    info, _, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert info.image is not None and info.image.bits == 16
    assert "converted_colour" in actions
    with Image.open(out) as im:
        grey = im.convert("L")
        assert im.getextrema()  # decodes
        for x in (0, 64, 128, 200, 255):
            assert abs(grey.getpixel((x, 4)) - x) <= 1  # type: ignore[operator]


def test_alpha_is_flattened_on_the_preset_background(tmp_path: Path) -> None:
    im = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    im.paste((255, 0, 0, 128), (0, 0, 400, 200))  # top half: half-transparent red
    src = tmp_path / "alpha.png"
    im.save(src)
    _, _, actions, _, out = conform_file(src, "instagram-feed-image", tmp_path)
    assert "flattened_alpha" in actions
    with Image.open(out) as res:
        assert res.format == "JPEG"
        assert close(res.getpixel((200, 100)), (255, 127, 127), 6)  # type: ignore[arg-type]
        assert close(res.getpixel((200, 300)), (255, 255, 255), 6)  # type: ignore[arg-type]
    black = replace(variant_spec("instagram-feed-image")[0], background="#000000")
    (tmp_path / "black").mkdir()
    _, _, _, _, out = conform_file(src, "instagram-feed-image", tmp_path / "black", spec=black)
    with Image.open(out) as res:
        assert close(res.getpixel((200, 100)), (128, 0, 0), 6)  # type: ignore[arg-type]
        assert close(res.getpixel((200, 300)), (0, 0, 0), 6)  # type: ignore[arg-type]
    # PNG outputs keep the transparency
    _, _, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    with Image.open(out) as res:
        assert res.format == "PNG" and res.mode == "RGBA" and "flattened_alpha" not in actions


# --------------------------------------------------------------------------- geometry


def vertical_ramp(width: int, height: int) -> Image.Image:
    col = Image.linear_gradient("L").resize((1, height))
    return Image.merge("RGB", [col.resize((width, height))] * 3)


@pytest.mark.parametrize(("size", "expected"), [
    ((1080, 1920), Fraction(4, 5)),     # 9:16 phone screenshot: nearest allowed is 4:5
    ((3000, 1000), Fraction(191, 100)),  # 3:1 panorama: 1.91:1
    ((1500, 1000), Fraction(3, 2)),      # 3:2 is inside 4:5..1.91:1: kept
])
def test_instagram_feed_crops_to_the_nearest_allowed_shape(tmp_path: Path, size: tuple[int, int],
                                                           expected: Fraction) -> None:
    src = tmp_path / "in.jpg"
    vertical_ramp(*size).save(src, quality=95)
    info, target, actions, _, out = conform_file(src, "instagram-feed-image", tmp_path)
    g = target.geometry
    with Image.open(out) as im:
        w, h = im.size
        assert Fraction(4, 5) <= Fraction(w, h) <= Fraction(191, 100)  # exact, no tolerance
        assert abs(w / h - float(expected)) < 0.01
        assert w <= 1440 and h <= 1800
        if expected == Fraction(3, 2):
            assert "cropped" not in actions
            return
        assert "cropped" in actions
        # a centre crop: the same amount cut from both ends
        assert g.crop_x * 2 + g.crop_width in (info.width, info.width - 1)
        assert g.crop_y * 2 + g.crop_height in (info.height, info.height - 1)
        if size[1] > size[0]:  # the ramp's top and bottom rows show where the cut was
            top = im.convert("L").getpixel((w // 2, 0))
            assert abs(top - 255 * g.crop_y / info.height) < 6  # type: ignore[operator]


def test_pad_keeps_the_whole_photo_on_the_preset_colour(tmp_path: Path) -> None:
    src = tmp_path / "tall.png"
    Image.new("RGB", (100, 1500), (200, 30, 30)).save(src)  # 1:15, Threads takes 1:10 at most
    _, _, actions, warnings, out = conform_file(src, "threads-image", tmp_path)
    assert "padded" in actions
    with Image.open(out) as im:
        w, h = im.size
        assert Fraction(w, h) >= Fraction(1, 10) and w >= 320
        assert close(im.getpixel((2, h // 2)), (255, 255, 255), 2)  # type: ignore[arg-type]
        assert close(im.getpixel((w // 2, h // 2)), (200, 30, 30), 8)  # type: ignore[arg-type]
    assert "upscaled" in warnings  # 100 px wide: up to Threads' 320 minimum, the one exception


def test_blur_fills_with_the_picture_itself(tmp_path: Path) -> None:
    src = tmp_path / "wide.jpg"
    noise(1600, 900).save(src, quality=90)
    _, _, actions, _, out = conform_file(src, "instagram-stories-image", tmp_path)
    assert "blurred" in actions
    with Image.open(out) as im:
        assert im.size == (1080, 1920)
        band = ImageStat.Stat(im.crop((0, 0, 1080, 300)).convert("RGB"))
        middle = ImageStat.Stat(im.crop((0, 800, 1080, 1100)).convert("RGB"))
        assert all(20 < m < 235 for m in band.mean)  # not a solid pad colour...
        assert 0 < max(band.stddev) < max(middle.stddev) / 4  # ...but the picture, blurred
        assert max(middle.stddev) > 15  # the picture itself, sharp, in the middle


def test_never_upscaled_except_to_a_platform_minimum(tmp_path: Path) -> None:
    src = tmp_path / "small.jpg"
    noise(200, 150, 30).save(src, quality=90)
    for variant_id in ("facebook-feed-image", "twitter-image", "bluesky-image", "tiktok-photo"):
        _, _, actions, warnings, out = conform_file(src, variant_id, tmp_path)
        with Image.open(out) as im:
            assert im.size == (200, 150), variant_id
        assert "upscaled" not in warnings and "resized" not in actions
    for variant_id in ("instagram-feed-image", "threads-image"):
        _, _, actions, warnings, out = conform_file(src, variant_id, tmp_path)
        with Image.open(out) as im:
            assert im.size == (320, 240), variant_id
        assert "upscaled" in warnings and "resized" in actions


@pytest.mark.parametrize(("variant_id", "size", "check"), [
    ("tiktok-photo", (1086, 1448), lambda w, h: min(w, h) <= 1080),  # Postiz PR #1875's photo
    ("linkedin-image", (8000, 6000), lambda w, h: w * h <= 36_152_320),
    ("telegram-image", (9000, 3000), lambda w, h: w + h <= 10_000),
    ("bluesky-image", (4000, 3000), lambda w, h: max(w, h) <= 2000),
])
def test_size_caps(variant_id: str, size: tuple[int, int], check: Any) -> None:
    spec, max_bytes = variant_spec(variant_id)
    target, actions, _ = plan_image(image_info(*size), spec, max_bytes=max_bytes)
    g = target.geometry
    assert check(g.width, g.height) and "resized" in actions
    assert abs(g.width / g.height - size[0] / size[1]) < 0.01


# --------------------------------------------------------------------------- carousels


def plan_post(files: dict[str, Path], platform: str, settings: dict[str, Any] | None = None
              ) -> tuple[Any, dict[str, Path]]:
    job = parse_job({"workspace_id": "w", "content": [{"media": list(files)}],
                     "accounts": [{"id": "a", "platform": platform,
                                   **({"settings": settings} if settings else {})}]}, PRESETS)
    probed = {MediaRef("library", k): probe.probe(p) for k, p in files.items()}
    preset = PRESETS.get(platform)
    assert preset is not None
    check = check_account(job, job.accounts[0], preset, probed)  # type: ignore[arg-type]
    assert check.ok, check.errors
    plan = plan_job([check], sha_of={MediaRef("library", k): f"sha-{k}" for k in files},
                    thumb_infos={})
    return plan, {f"library:{k}": p for k, p in files.items()}


def render_plan(plan: Any, sources: dict[str, Path], out_dir: Path) -> list[Path]:
    outs = []
    for sel, key in plan.accounts[0].media:
        r = next(x for x in plan.renditions if x.key == key)
        src = sources[r.ref_text]
        res = render_image(src, sel.info.format_name, r.target, out_dir / f"{key[:8]}.{r.name}")
        assert platform_problems(res.path, sel.variant.image, r.target.max_bytes) == []
        outs.append(res.path)
    return outs


def test_instagram_carousel_items_take_the_first_items_shape(tmp_path: Path) -> None:
    files = {}
    for name, size in (("a.jpg", (1600, 1200)), ("b.jpg", (1080, 1920)), ("c.jpg", (900, 900))):
        files[name] = tmp_path / name
        noise(*size, sigma=20).save(files[name], quality=85)
    plan, sources = plan_post(files, "instagram")
    outs = render_plan(plan, sources, tmp_path)
    sizes = [Image.open(p).size for p in outs]
    assert sizes[0] == (1440, 1080)  # the first item, 4:3, inside 4:5..1.91:1: kept
    for w, h in sizes:
        assert abs(w * 3 - h * 4) <= 4  # every item 4:3, to the pixel
    assert all(ap.check.ok for ap in plan.accounts)


def test_pinterest_carousel_items_are_one_size_without_upscaling(tmp_path: Path) -> None:
    files = {}
    for name, size in (("a.jpg", (1200, 1800)), ("b.jpg", (600, 600)), ("c.jpg", (3000, 2000))):
        files[name] = tmp_path / name
        noise(*size, sigma=20).save(files[name], quality=85)
    plan, sources = plan_post(files, "pinterest")
    assert {sel.variant.id for sel, _ in plan.accounts[0].media} == {"pinterest-carousel"}
    outs = render_plan(plan, sources, tmp_path)
    sizes = {Image.open(p).size for p in outs}
    assert sizes == {(400, 600)}  # 2:3 (nearest to the first), as big as the 600 px item allows
    for r in plan.renditions:
        assert not r.target.geometry.upscaled


# --------------------------------------------------------------------------- byte budget


def test_bluesky_noisy_photo_fits_one_megabyte(tmp_path: Path) -> None:
    src = tmp_path / "noisy.jpg"
    # sensor-like noise that survives the scaling to Bluesky's 2000 px box
    noise(2000, 1500, 80).resize((4000, 3000), Image.Resampling.NEAREST).save(src, quality=92)
    _, _, actions, warnings, out = conform_file(src, "bluesky-image", tmp_path)
    assert out.stat().st_size <= 1_000_000
    assert "downscaled_for_byte_budget" in warnings and "resized" in actions
    with Image.open(out) as im:
        w, h = im.size
    assert w < 2000 and abs(w * 3 - h * 4) <= 4  # smaller, same shape
    assert w >= 700  # the shrink is estimated from the overshoot, not a blind ladder


def jpeg_sizes(im: Image.Image, *qualities: int) -> list[int]:
    out = []
    for q in qualities:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q, subsampling="4:4:4")
        out.append(len(buf.getvalue()))
    return out


def small_target(width: int, height: int, cap: int, *, floor: int = 60,
                 min_width: int = 1) -> ImageTarget:
    spec = ImageSpec(formats=("jpeg",), max_bytes=cap, min_width=min_width, quality_floor=floor)
    target, _, _ = plan_image(image_info(width, height), spec, max_bytes=cap)
    return target


def test_quality_search_lowers_quality_before_size(tmp_path: Path) -> None:
    src = tmp_path / "n.png"
    picture = noise(400, 300, 30)
    picture.save(src)
    at60, at90 = jpeg_sizes(picture, 60, 90)
    cap = (at60 + at90) // 2
    res = render_image(src, "png", small_target(400, 300, cap), tmp_path / "o.jpg")
    assert res.path.stat().st_size <= cap
    assert (res.width, res.height) == (400, 300) and res.warnings == ()
    # just over the floor's size: the floor itself is used, and said so
    res = render_image(src, "png", small_target(400, 300, at60 + 200), tmp_path / "f.jpg")
    assert (res.width, res.height) == (400, 300)
    assert res.warnings == ("quality_floor_reached",)


def test_too_large_when_nothing_fits(tmp_path: Path) -> None:
    src = tmp_path / "n.png"
    noise(400, 300).save(src)
    with pytest.raises(CannotFit) as caught:
        render_image(src, "png", small_target(400, 300, 5_000, min_width=400), tmp_path / "o.jpg")
    assert caught.value.code == "too_large" and "5000 bytes" in caught.value.message
    # An output that cannot fit a cap is not a source error, and keeps the manifest's code
    # and status.
    assert not isinstance(caught.value, SourceError) and caught.value.http_status == 400


def test_photo_png_goes_out_as_jpeg_when_it_cannot_fit(tmp_path: Path) -> None:
    photo, graphic = tmp_path / "photo.png", tmp_path / "graphic.png"
    noise(1200, 900).save(photo)
    Image.new("RGB", (1200, 900), (10, 90, 200)).save(graphic)
    _, target, actions, _, _ = conform_file(photo, "bluesky-image", tmp_path)
    assert target.format == "jpeg" and "converted_format" in actions
    _, target, _, _, _ = conform_file(graphic, "bluesky-image", tmp_path)
    assert target.format == "png" and target.passthrough


# --------------------------------------------------------------------------- pass-through


def test_conforming_jpeg_passes_through_without_reencoding(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "ultraHDR.jpg"
    original = src.read_bytes()
    info, target, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert target.passthrough and actions == ["passed_through", "stripped_metadata"]
    data = out.read_bytes()
    assert jpeg_scan_bytes(data) == jpeg_scan_bytes(original)  # the compressed picture, as is
    with Image.open(src) as a, Image.open(out) as b:
        assert a.size == b.size and a.tobytes() == b.convert(a.mode).tobytes()
        assert not b.getexif()
    assert original.count(b"\xff\xd8\xff") > 1 and b"hdrgm" in original
    assert data.count(b"\xff\xd8\xff") == 1 and b"hdrgm" not in data  # the gain map is gone
    assert data.endswith(b"\xff\xd9") and len(data) < len(original)
    markers = {m for m, _ in jpeg_segments(data)}
    assert 0xE1 not in markers  # no EXIF (GPS) or XMP (hdrgm)
    assert info.image is not None and info.image.has_gps


def test_motion_photo_strip_keeps_the_picture_and_drops_the_video(corpus: Path) -> None:
    original = (corpus / "images" / "pixel-motion-photo-shortened.jpg").read_bytes()
    stripped = strip_metadata(original, "jpeg")
    assert jpeg_scan_bytes(stripped) == jpeg_scan_bytes(original)
    assert stripped.endswith(b"\xff\xd9") and b"ftyp" not in stripped and b"Exif" not in stripped
    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(stripped)) as b:
        assert a.tobytes() == b.tobytes()


def test_conforming_png_passes_through(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "pil123p.png"
    _, target, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert target.passthrough and actions == ["passed_through"]

    def idat(data: bytes) -> bytes:
        return b"".join(c for c in _png_chunk_bodies(data, b"IDAT"))

    assert idat(out.read_bytes()) == idat(src.read_bytes())
    with Image.open(src) as a, Image.open(out) as b:
        assert a.tobytes() == b.tobytes() and a.info.get("transparency") == b.info.get(
            "transparency")


def _png_chunk_bodies(data: bytes, kind: bytes) -> list[bytes]:
    import struct

    out, pos = [], 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        if data[pos + 4:pos + 8] == kind:
            out.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    return out


def test_png_metadata_chunks_are_dropped(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    meta.add_text("Comment", "secret location")
    meta.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>")
    src = tmp_path / "meta.png"
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.new("RGB", (64, 48), (1, 2, 3)).save(src, pnginfo=meta, exif=exif)
    _, target, actions, _, out = conform_file(src, "twitter-image", tmp_path)
    assert target.passthrough and "stripped_metadata" in actions
    kinds = png_chunks(out.read_bytes())
    assert not set(kinds) & {b"tEXt", b"iTXt", b"eXIf"} and b"secret" not in out.read_bytes()


def test_conforming_webp_passes_through(tmp_path: Path) -> None:
    src = tmp_path / "in.webp"
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "PhoneMaker"
    noise(300, 200, 20).save(src, "WEBP", quality=80, exif=exif, xmp=b"<x:xmpmeta>gps</x:xmpmeta>")
    _, target, actions, _, out = conform_file(src, "tiktok-photo", tmp_path)
    assert target.passthrough and actions == ["passed_through", "stripped_metadata"]
    data, original = out.read_bytes(), src.read_bytes()
    assert b"EXIF" not in data and b"XMP " not in data and b"PhoneMaker" not in data
    assert b"PhoneMaker" in original
    assert webp_chunk(data, b"VP8 ") == webp_chunk(original, b"VP8 ")  # the picture, as is
    with Image.open(src) as a, Image.open(out) as b:
        assert a.tobytes() == b.tobytes()


def webp_chunk(data: bytes, kind: bytes) -> bytes:
    import struct

    pos = 12
    while pos + 8 <= len(data):
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if data[pos:pos + 4] == kind:
            return data[pos:pos + 8 + size]
        pos += 8 + size + (size & 1)
    raise AssertionError(f"no {kind!r} chunk")


def make_gif(path: Path, frames: int, size: tuple[int, int] = (40, 30),
             duration_ms: int = 100, comment: bytes | None = None) -> None:
    images = [Image.new("RGB", size, ((i * 37) % 255, (i * 91) % 255, 120)) for i in range(frames)]
    extra = {"comment": comment} if comment else {}
    images[0].save(path, "GIF", save_all=True, append_images=images[1:], duration=duration_ms,
                   loop=0, **extra)


def test_animated_gif_is_kept_and_its_comment_stripped(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    make_gif(src, 12, comment=b"shot at 51.5N 0.1W")
    _, target, actions, _, out = conform_file(src, "facebook-feed-image", tmp_path,
                                              keep_animation=True)
    assert target.animated and target.passthrough and actions == ["passed_through"]
    data = out.read_bytes()
    assert b"51.5N" not in data
    with Image.open(src) as a, Image.open(out) as b:
        assert b.n_frames == a.n_frames == 12 and b.info.get("loop") == 0
        assert "comment" not in b.info
        for i in range(12):
            a.seek(i)
            b.seek(i)
            assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()


def test_animated_gif_is_reencoded_frame_by_frame_when_its_shape_must_change(
        tmp_path: Path) -> None:
    src = tmp_path / "strip.gif"
    make_gif(src, 5, size=(20, 500), duration_ms=80)  # 1:25; Telegram takes up to 1:20
    _, target, actions, _, out = conform_file(src, "telegram-image", tmp_path,
                                              keep_animation=True)
    assert target.animated and "padded" in actions
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 5 and im.size == (25, 500)
        assert im.info.get("duration") == 80


def test_corpus_gif_kept_on_x_within_15_mb(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "iss634.gif"
    _, target, _, _, out = conform_file(src, "twitter-image", tmp_path, keep_animation=True)
    assert target.animated and target.max_bytes == 15_000_000
    with Image.open(out) as im:
        assert im.n_frames == 42


# --------------------------------------------------------------------------- animation routing


def route(platform: str, media: dict[str, MediaInfo], settings: dict[str, Any] | None = None
          ) -> list[Any]:
    job = parse_job({"workspace_id": "w", "content": [{"media": list(media)}],
                     "accounts": [{"id": "a", "platform": platform,
                                   **({"settings": settings} if settings else {})}]}, PRESETS)
    preset = PRESETS.get(platform)
    assert preset is not None
    check = check_account(job, job.accounts[0], preset,  # type: ignore[arg-type]
                          {MediaRef("library", k): v for k, v in media.items()})
    assert check.ok, check.errors
    return list(check.items)


def test_animated_gif_routing(corpus: Path) -> None:
    gif = probe.probe(corpus / "images" / "iss634.gif")  # 42 frames, 2.7 s, 277 KB
    assert gif.animated and gif.duration_s is not None and gif.duration_s < 3
    for platform in ("twitter", "facebook", "linkedin", "telegram"):
        (sel,) = route(platform, {"g": gif})
        assert sel.variant.kind == "image" and not sel.still_only, platform  # kept as a GIF
    (sel,) = route("bluesky", {"g": gif})
    assert sel.as_video and sel.variant.id == "bluesky-video"  # a GIF on its own: a video
    # Shorter than a Reel's 3 s but looping forever: an endless clip, delivered as whole loops
    assert gif.image is not None and gif.image.loops_forever
    (sel,) = route("instagram", {"g": gif})
    assert sel.variant.id == "instagram-reels" and sel.as_video and sel.loops == 2
    # The same length played once: too short for a Reel, so the first frame
    assert gif.image is not None
    once = replace(gif, image=replace(gif.image, loops_forever=False))
    (sel,) = route("instagram", {"g": once})
    assert sel.variant.id == "instagram-feed-image" and sel.still_only
    long_gif = image_info(fmt="gif", frames=50)  # 5 s
    (sel,) = route("instagram", {"g": long_gif})
    assert sel.variant.id == "instagram-reels" and sel.as_video
    photo = image_info()
    items = route("instagram", {"g": long_gif, "p": photo})
    assert [s.variant.id for s in items] == ["instagram-feed-image"] * 2 and items[0].still_only
    # over a cap: LinkedIn's 250 frames, X's 15 MB
    (sel,) = route("linkedin", {"g": image_info(fmt="gif", frames=300)})
    assert sel.as_video
    (sel,) = route("twitter", {"g": image_info(fmt="gif", frames=40, size_bytes=20_000_000)})
    assert sel.as_video
    (sel,) = route("twitter", {"g": image_info(fmt="gif", frames=40, size_bytes=12_000_000)})
    assert not sel.as_video and not sel.still_only
    # X takes WebP photos but animates only GIF
    (sel,) = route("twitter", {"g": image_info(fmt="webp", frames=40)})
    assert sel.as_video


def test_mpo_stereo_jpeg_is_a_photo_not_an_animation(tmp_path: Path) -> None:
    """Instagram refuses extended JPEG (MPO): the first picture goes out as a plain JPEG."""
    src = tmp_path / "stereo.mpo"
    left, right = Image.new("RGB", (300, 200), RED), Image.new("RGB", (300, 200), BLUE)
    left.save(src, "MPO", save_all=True, append_images=[right])
    info = probe.probe(src)
    assert info.format_name == "jpeg" and info.animated  # Pillow counts both pictures
    (sel,) = route("bluesky", {"m": info})
    assert sel.variant.kind == "image" and not sel.as_video
    _, target, actions, _, out = conform_file(src, "instagram-feed-image", tmp_path)
    assert not target.passthrough and "first_frame" in actions
    data = out.read_bytes()
    assert data.count(b"\xff\xd8\xff") == 1 and b"MPF" not in data
    with Image.open(out) as im:
        assert im.format == "JPEG" and close(im.getpixel((150, 100)), RED, 8)  # type: ignore[arg-type]


def test_animation_kept_only_when_planned(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "images" / "iss634.gif"
    _, target, actions, _, out = conform_file(src, "instagram-feed-image", tmp_path)
    assert not target.animated and "first_frame" in actions
    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == 1 and im.format == "JPEG"


# --------------------------------------------------------------------------- decode


def test_jpeg_draft_decodes_a_24_mp_photo_at_a_quarter(tmp_path: Path) -> None:
    src = tmp_path / "24mp.jpg"
    vertical_ramp(6000, 4000).save(src, quality=90)
    info = probe.probe(src)
    spec, max_bytes = variant_spec("instagram-feed-image")
    target, _, _ = plan_image(info, spec, max_bytes=max_bytes)
    assert (target.geometry.width, target.geometry.height) == (1440, 960)
    decoded, _, _ = decode_image(src, "jpeg", target)
    assert decoded.size == (1500, 1000)  # libjpeg's 1/4 scale, not 6000x4000
    facebook, fb_bytes = variant_spec("facebook-feed-image")
    full, _, _ = plan_image(info, facebook, max_bytes=fb_bytes)
    assert decode_image(src, "jpeg", full)[0].size == (6000, 4000)  # full size when needed


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_bmp_and_tiff_are_decoded_and_converted(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / f"q.{fmt.lower()}"
    quadrants(300, 200).save(src, fmt)
    _, target, actions, _, out = conform_file(src, "facebook-feed-image", tmp_path)
    assert target.format == "jpeg" and "converted_format" in actions  # re-encoded for the feed
    with Image.open(out) as im:
        assert all(close(a, b, 6) for a, b in zip(quadrant_colours(im),
                                                  quadrant_colours(quadrants(300, 200)),
                                                  strict=True))


def test_truncated_and_broken_files_are_typed_errors(corpus: Path, tmp_path: Path) -> None:
    target = replace(small_target(100, 100, 1_000_000), passthrough=False)
    with pytest.raises(CorruptMedia):
        render_image(corpus / "images" / "truncated_jpeg.jpg", "jpeg", target, tmp_path / "o.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00" + b"\x00" * 40)
    with pytest.raises(CorruptMedia):
        render_image(bad, "jpeg", replace(target, passthrough=True), tmp_path / "p.jpg")
    with pytest.raises(CorruptMedia):
        strip_metadata(b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x2c", "gif")


# --------------------------------------------------------------------------- 200 MP


MEMORY_SCRIPT = r"""
import json, sys
from pathlib import Path
from pipeline import probe
from pipeline.image import render_image
from pipeline.plan import plan_image
from pipeline.presets import load_presets
from pipeline.settings import Settings

probe.setup_pillow(Settings().max_image_pixels)
src, out = Path(sys.argv[1]), Path(sys.argv[2])
preset, variant = load_presets().find_variant(sys.argv[3])
info = probe.probe(src)
cap = min(variant.image.max_bytes, preset.limits.max_image_bytes)
target, actions, warnings = plan_image(info, variant.image, max_bytes=cap)
result = render_image(src, info.format_name, target, out)
# VmHWM, not ru_maxrss: exec hands the child the high-water RSS of the process that spawned
# it (this test process, which may be large), while VmHWM belongs to this process's own memory.
hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
              if line.startswith("VmHWM:"))
print(json.dumps({"peak_mb": hwm_kb / 1024,
                  "size": [result.width, result.height], "actions": actions}))
"""
# 12240x16320 decoded to RGB by libheif is ~600 MB, and libheif itself peaks near 900 MB while
# decoding. The bound leaves ~250 MB for everything else: a second full-size copy (Pillow's
# 4-byte RGB is 800 MB) cannot fit under it.
PEAK_MB_200MP = 1150


@pytest.mark.slow
def test_200mp_heic_converts_in_bounded_memory(corpus: Path, tmp_path: Path) -> None:
    """The largest output (Facebook, 6144x8192 at full resolution) from the 200 MP photo."""
    src = corpus / "images" / "200MP.heic"
    out = tmp_path / "fb.jpg"
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(src), str(out),
                           "facebook-feed-image"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["peak_mb"] < PEAK_MB_200MP, report
    assert report["size"] == [6144, 8192]  # portrait: EXIF 6 and irot 3 applied once
    spec, max_bytes = variant_spec("facebook-feed-image")
    assert platform_problems(out, spec, max_bytes) == []


@pytest.mark.slow
def test_200mp_heic_on_every_image_variant(corpus: Path, tmp_path: Path) -> None:
    """The 200 MP photo planned for every variant, rendered from one decode.

    The full-resolution path is the memory test above; here the decoded buffer is first halved
    (band by band, as the engine scales) so eleven variants take seconds, not minutes. The
    planner still sees 12240x16320, and the engine maps its geometry onto the smaller buffer
    exactly as it does for a JPEG decoded in draft mode.
    """
    src = corpus / "images" / "200MP.heic"
    info = probe.probe(src)
    assert (info.width, info.height) == (12240, 16320) and info.image is not None
    assert info.image.has_gps and info.image.icc_profile and "P3" in info.image.icc_profile
    with Image.open(src) as im:
        im.draft(None, (300, 400))  # the embedded thumbnail (same irot, same profile)
        reference = to_srgb(im)
    full = decode_heif_buffer(src)
    half = Geometry(width=6120, height=8160, content_width=6120, content_height=8160, crop_x=0,
                    crop_y=0, crop_width=12240, crop_height=16320, fit="none",
                    source_width=12240, source_height=16320)
    halved, _ = scale_buffer(full, half)
    del full
    buf = DecodedBuffer("RGB", 6120, 8160, 6120 * 3, memoryview(halved.tobytes()),
                        halved.info.get("icc_profile"))
    del halved
    for preset in PRESETS:
        for variant in preset.variants.values():
            if variant.image is None:
                continue
            spec = variant.image
            max_bytes = min(spec.max_bytes, preset.limits.max_image_bytes or spec.max_bytes)
            target, actions, _ = plan_image(info, spec, max_bytes=max_bytes)
            assert {"converted_colour", "converted_format", "stripped_metadata"} <= set(actions)
            result = render_decoded(buf, target, tmp_path / f"{variant.id}.jpg")
            assert platform_problems(result.path, spec, max_bytes) == [], variant.id
            assert verify.check_image(probe.probe(result.path), spec, target) == [], variant.id
            with Image.open(result.path) as out:
                assert out.height > out.width or target.geometry.fit == "crop"  # portrait
                g = target.geometry
                s = out.size[0] / g.width
                picture = out.crop((round((g.width - g.content_width) // 2 * s),
                                    round((g.height - g.content_height) // 2 * s),
                                    round((g.width + g.content_width) // 2 * s),
                                    round((g.height + g.content_height) // 2 * s)))
                k = reference.size[0] / info.width
                expected = reference.crop((round(g.crop_x * k), round(g.crop_y * k),
                                           round((g.crop_x + g.crop_width) * k),
                                           round((g.crop_y + g.crop_height) * k)))
                assert mean_error(picture, expected) < 6, variant.id


# --------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_conform_run_image_post_to_every_image_platform(corpus: Path, tmp_path: Path) -> None:
    job = {
        "workspace_id": "ws", "id": "image-post",
        "content": [
            {"text": "three photos",
             "media": ["Landscape_6.jpg", "pixel-motion-photo-shortened.jpg", "xmp_test.jpg"]},
            {"text": "and an iPhone photo", "media": ["pug.heic"]},
        ],
        "accounts": [
            {"id": "ig", "platform": "instagram", "settings": {"post_type": "POST"}},
            {"id": "ig-story", "platform": "instagram", "settings": {"post_type": "STORIES"}},
            {"id": "fb", "platform": "facebook"}, {"id": "x", "platform": "x"},
            {"id": "li", "platform": "linkedin"}, {"id": "tt", "platform": "tiktok"},
            {"id": "pin", "platform": "pinterest"}, {"id": "th", "platform": "threads"},
            {"id": "tg", "platform": "telegram"}, {"id": "bs", "platform": "bluesky"},
        ],
    }
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    dest = tmp_path / "out"
    (tmp_path / "work").mkdir()
    result = CliRunner().invoke(main, ["run", str(job_file), "--library",
                                       f"file://{corpus / 'images'}/{{id}}", "--dest", str(dest),
                                       "--workdir", str(tmp_path / "work"), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["status"] == "succeeded"
    accounts = {a["account_id"]: a for a in manifest["accounts"]}
    assert set(accounts) == {a["id"] for a in job["accounts"]}
    for account in accounts.values():
        assert account["status"] == "ok", account["errors"]
        preset = PRESETS.get(account["platform"])
        assert preset is not None
        expected = 4 if preset.limits.thread else 3
        assert len(account["media"]) == expected, account["account_id"]
        for medium in account["media"]:
            path = Path(medium["uri"][len("file://"):])
            variant = next(v for v in preset.variants.values()
                           if v.id in account["variant"].split("+")
                           and v.image is not None and (medium["kind"] == "image"))
            spec = variant.image
            assert spec is not None
            cap = min(spec.max_bytes, preset.limits.max_image_bytes or spec.max_bytes)
            assert platform_problems(path, spec, cap) == [], (account["account_id"], medium)
            with Image.open(path) as im:
                assert im.size == (medium["width"], medium["height"])
            assert medium["mime"] in ("image/jpeg", "image/png")
            assert "stripped_metadata" in medium["actions"]
            if medium["source"] in ("Landscape_6.jpg", "pixel-motion-photo-shortened.jpg"):
                assert "rotated" in medium["actions"]
    ig = [(m["width"], m["height"]) for m in accounts["ig"]["media"]]
    assert accounts["ig"]["variant"] == "instagram-feed-image"
    first = Fraction(*ig[0])
    assert all(abs(Fraction(w, h) - first) < Fraction(1, 200) for w, h in ig)
    pins = {(m["width"], m["height"]) for m in accounts["pin"]["media"]}
    assert accounts["pin"]["variant"] == "pinterest-carousel" and len(pins) == 1
    assert all(m["mime"] == "image/jpeg" for m in accounts["ig"]["media"])
    assert all(m["mime"] == "image/jpeg" for m in accounts["tt"]["media"])


def test_unmanaged_reference_helper_differs(corpus: Path) -> None:
    """The colour checks above can fail: an unmanaged XYB decode is far from the managed one."""
    src = corpus / "images" / "sample-xyb.jpg"
    with Image.open(src) as im:
        managed = to_srgb(im)
    raw = unmanaged(src)
    diff = ImageStat.Stat(ImageChops.difference(flatten(managed), raw)).mean
    assert sum(diff) / 3 > 15
    assert ImageCms.getProfileDescription(
        ImageCms.ImageCmsProfile(io.BytesIO(Image.open(src).info["icc_profile"]))).startswith("XYB")
