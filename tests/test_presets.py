"""Presets: every bundled file loads and is sane; bad files fail loudly with file and key."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import PresetError
from pipeline.presets import (
    CAROUSEL_POLICIES,
    FIT_POLICIES,
    REPO_PRESETS_DIR,
    load_preset_file,
    load_presets,
)

PLATFORMS = {"twitter", "facebook", "instagram", "linkedin", "youtube", "tiktok", "pinterest",
             "threads", "telegram", "bluesky"}


def test_all_ten_platforms_load() -> None:
    registry = load_presets()
    assert {p.platform for p in registry} == PLATFORMS
    assert registry.get("x") is registry.get("twitter")


@pytest.mark.parametrize("path", sorted(REPO_PRESETS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_each_file_is_valid_and_consistent(path: Path) -> None:
    preset = load_preset_file(path)
    assert preset.platform == path.stem
    assert preset.version and preset.sources
    limits = preset.limits
    for mode in preset.modes.values():
        for name in (mode.image, mode.video, mode.carousel):
            if name:
                assert name in preset.variants
    for variant in preset.variants.values():
        if variant.image:
            spec = variant.image
            # a variant's cap never exceeds the post limit of the API's table (stricter wins)
            if limits.max_image_bytes:
                assert spec.max_bytes <= limits.max_image_bytes
            assert spec.quality_floor <= spec.quality
        if variant.video:
            v = variant.video
            if limits.max_video_bytes:
                assert v.max_bytes <= limits.max_video_bytes
            assert v.audio.max_channels <= 2
            assert "h264" in v.codecs  # what we encode to must be accepted
            assert v.gop_max_s <= 2.0
            assert v.fps_min <= v.fps_max <= 60


def test_known_platform_facts() -> None:
    r = load_presets()
    ig = r.get("instagram")
    assert ig is not None
    feed = ig.variant("feed-image").image
    assert feed is not None
    assert feed.formats == ("jpeg",)
    assert feed.aspect_min == Fraction(4, 5) and feed.aspect_max == Fraction(191, 100)
    assert r.get("bluesky").variant("image").image.max_bytes == 1_000_000  # type: ignore[union-attr]
    assert r.get("youtube").limits.max_images == 0  # type: ignore[union-attr]
    tiktok_photo = r.get("tiktok").variant("photo").image  # type: ignore[union-attr]
    assert "png" not in tiktok_photo.formats  # type: ignore[union-attr]
    assert r.get("tiktok").variant("video").cover.source == "frame"  # type: ignore[union-attr]
    # a total over images and videos together where a post mixes them (platform-specs 3a,
    # 8, 9); none where kinds never mix
    assert {p.platform: p.limits.max_items for p in r if p.limits.max_items} == {
        "instagram": 10, "threads": 10, "telegram": 10}
    assert all(p.limits.allow_mixed for p in r if p.limits.max_items)


def test_digest_is_stable_and_changes_with_content(tmp_path: Path) -> None:
    a = load_preset_file(REPO_PRESETS_DIR / "bluesky.toml")
    b = load_preset_file(REPO_PRESETS_DIR / "bluesky.toml")
    assert a.digest() == b.digest()
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text().replace("max_bytes = 1_000_000",
                                                                     "max_bytes = 900_000")
    (tmp_path / "bluesky.toml").write_text(text)
    assert load_preset_file(tmp_path / "bluesky.toml").digest() != a.digest()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_bad_preset_lists_every_problem_with_file_and_key(tmp_path: Path) -> None:
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text()
    text = text.replace('fps_max = 60', 'fps_max = 60\nbogus_key = 1')
    text = text.replace('aspect_max = "3:1"', 'aspect_max = "1:4"\nfit_mode = "x"', 1)
    text = text.replace('max_images = 4', 'max_images = -1')
    path = _write(tmp_path, "bluesky", text)
    with pytest.raises(PresetError) as info:
        load_preset_file(path)
    message = info.value.message
    assert str(path) in message
    assert "variants.video.video.bogus_key: unknown key" in message
    assert "variants.video.video.fit_mode: unknown key" in message
    assert "limits.max_images: must be >= 0" in message
    assert "aspect_min" in message and "greater than aspect_max" in message


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (('platform = "bluesky"', 'platform = "other"'), "must equal the file name"),
        (('schema = 1', 'schema = 9'), "unsupported schema"),
        (('image = "image"', 'image = "nope"'), "no variant 'nope'"),
        (('image = "image"', 'image = "video"'), "is not an image variant"),
        (('formats = ["jpeg", "png"]', 'formats = ["jpeg", "psd"]'), "unknown value 'psd'"),
        (('max_bytes = 1_000_000', 'max_bytes = "1MB"'), "expected an integer"),
        (('kind = "video"', 'kind = "audio"'), "unknown value 'audio'"),
        (('aspect_min = "1:3"', 'aspect_min = "wide"'), "expected a ratio"),
        (('allow_mixed = false', 'allow_mixed = false\nmax_items = 0'), "max_items: must be >= 1"),
    ],
)
def test_each_kind_of_mistake_is_reported(tmp_path: Path, change: tuple[str, str],
                                          needle: str) -> None:
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text()
    assert change[0] in text
    path = _write(tmp_path, "bluesky", text.replace(change[0], change[1], 1))
    with pytest.raises(PresetError) as info:
        load_preset_file(path)
    assert needle in info.value.message


def test_closed_sets_come_from_their_literal_types(tmp_path: Path) -> None:
    # A Literal field is read through Reader.choice: a bad value names every allowed one (taken
    # from the Literal, so the checker and the type agree) and the field keeps its default.
    assert FIT_POLICIES == ("crop", "pad", "blur", "smart")
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text()
    path = _write(tmp_path, "bluesky", text.replace('fit = "pad"', 'fit = "stretch"', 1))
    with pytest.raises(PresetError) as info:
        load_preset_file(path)
    assert ("variants.image.image.fit: unknown value 'stretch' (one of crop, pad, blur, smart)"
            in info.value.message)
    preset = load_preset_file(REPO_PRESETS_DIR / "bluesky.toml")
    image = preset.variant("image").image
    assert image is not None and image.fit == "pad" and image.carousel in CAROUSEL_POLICIES


def test_broken_toml(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"broken\.toml"):
        load_preset_file(_write(tmp_path, "broken", "schema = [\n"))


def test_user_dir_adds_and_overrides(tmp_path: Path) -> None:
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text()
    _write(tmp_path, "bluesky", text.replace('version = "', 'version = "custom-', 1))
    _write(tmp_path, "mastodon", text.replace('platform = "bluesky"', 'platform = "mastodon"')
           .replace('label = "Bluesky"', 'label = "Mastodon"'))
    registry = load_presets(tmp_path)
    assert registry.get("bluesky").version.startswith("custom-")  # type: ignore[union-attr]
    assert registry.get("mastodon") is not None
    assert registry.get("mastodon").origin == str(tmp_path / "mastodon.toml")  # type: ignore[union-attr]


def test_invalid_user_file_fails_the_whole_load(tmp_path: Path) -> None:
    _write(tmp_path, "bad", "schema = 1\n")
    with pytest.raises(PresetError, match=r"bad\.toml"):
        load_presets(tmp_path)


def test_missing_user_dir(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="not found"):
        load_presets(tmp_path / "nope")


# --------------------------------------------------------------------------- UI safe zones

VERTICAL_SURFACES = {"tiktok-video", "instagram-reels", "instagram-stories-image",
                     "instagram-stories-video", "facebook-reels", "youtube-short"}


def test_vertical_surfaces_carry_ui_zones_with_sources() -> None:
    registry = load_presets()
    with_zones = {v.id for p in registry for v in p.variants.values() if v.ui_zones}
    assert with_zones == VERTICAL_SURFACES
    for preset in registry:
        for variant in preset.variants.values():
            for zone in variant.ui_zones:
                assert 0 < zone.fraction <= 0.5
                assert zone.source.startswith("safe-zones.md")
                assert zone.what
    tiktok = {z.edge: z for z in registry.get("tiktok").variant("video").ui_zones}  # type: ignore[union-attr]
    # safe-zones.md: TikTok 13 % top, 22 % bottom, 16 % right (the action rail), nothing left
    assert (tiktok["top"].fraction, tiktok["bottom"].fraction, tiktok["right"].fraction) == (
        0.13, 0.22, 0.16)
    assert "left" not in tiktok
    assert tiktok["bottom"].name == "bottom: caption, name, music"
    reels = {z.edge: z.fraction for z in registry.get("instagram").variant("reels").ui_zones}  # type: ignore[union-attr]
    assert reels == {"top": 0.14, "bottom": 0.35, "left": 0.06, "right": 0.06}


_ZONE = '\n[variants.video.ui_zones.bottom]\nfraction = 0.2\nwhat = "caption"\nsource = "s"\n'


@pytest.mark.parametrize(
    ("zone", "needle"),
    [
        (_ZONE.replace("bottom]", "middle]"), "ui_zones.middle: unknown edge"),
        (_ZONE.replace("0.2", "0.7"), "ui_zones.bottom.fraction: must be in (0, 0.5]"),
        (_ZONE.replace("0.2", "0"), "ui_zones.bottom.fraction: must be in (0, 0.5]"),
        (_ZONE.replace("0.2", '"20%"'), "ui_zones.bottom.fraction: expected a number"),
        (_ZONE.replace('source = "s"\n', ""), "ui_zones.bottom.source: missing"),
        (_ZONE.replace('source = "s"', 'source = " "'),
         "ui_zones.bottom.source: must not be empty"),
        (_ZONE.replace("fraction = 0.2\n", ""), "ui_zones.bottom.fraction: missing"),
        (_ZONE + "colour = 1\n", "ui_zones.bottom.colour: unknown key"),
    ],
)
def test_bad_ui_zone_is_reported_with_its_key(tmp_path: Path, zone: str, needle: str) -> None:
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text() + zone
    with pytest.raises(PresetError) as info:
        load_preset_file(_write(tmp_path, "bluesky", text))
    assert needle in info.value.message


def test_good_ui_zone_parses(tmp_path: Path) -> None:
    text = (REPO_PRESETS_DIR / "bluesky.toml").read_text() + _ZONE
    preset = load_preset_file(_write(tmp_path, "bluesky", text))
    (zone,) = preset.variant("video").ui_zones
    assert (zone.edge, zone.fraction, zone.what, zone.source) == ("bottom", 0.2, "caption", "s")
