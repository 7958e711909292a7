"""Issue #21 items 5 and 13: smart framing of images looks at a small decode of any format.

The analysis used to read the source with the preview sheet's reader, which knows only the
formats an output can be (so HEIC and AVIF photos were never framed and got a misleading
``no_subject`` warning) and decodes at full size. It now reads the source the way an output is
made (:func:`pipeline.image.decode_preview`): upright, decoded as small as the format allows,
inside the decode budget. Checked on the delivered pixels: the face, framed in pure green,
is wholly in the crop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from pipeline import probe
from pipeline.cli import main
from pipeline.errors import CorruptMedia
from pipeline.image import decode_preview
from tests.support.bigjpeg import grey_jpeg

FACE_SOURCE = "images/hopper_orientation_6.webp"  # Grace Hopper (Pillow's test image)
FACE_PX = 200  # the face's side in the 1200x400 photo, inside a 6 px green frame
GREEN = (0, 255, 0)


@pytest.fixture(scope="module")
def photo(corpus: Path) -> Image.Image:
    """A 3:1 photo with a framed face at its left edge: a centre crop to 1.91:1 cuts it."""
    with Image.open(corpus / FACE_SOURCE) as img:
        face = (ImageOps.exif_transpose(img) or img).convert("RGB")
    picture = Image.new("RGB", (1200, 400), (120, 130, 140))
    picture.paste(Image.new("RGB", (FACE_PX + 12, FACE_PX + 12), GREEN), (24, 94))
    picture.paste(face.resize((FACE_PX, FACE_PX), Image.Resampling.LANCZOS), (30, 100))
    return picture


def _save(picture: Image.Image, path: Path) -> Path:
    if path.suffix == ".heic":
        pillow_heif.from_pillow(picture).save(path, quality=90)
    else:
        picture.save(path, quality=90)
    return path


def _conform(tmp: Path, media: str) -> dict[str, Any]:
    job = {"workspace_id": "ws", "id": "frame", "content": [{"media": [media]}],
           "accounts": [{"id": "ig", "platform": "instagram"}], "conform": {"fit": "smart"}}
    (tmp / "job.json").write_text(json.dumps(job))
    result = CliRunner().invoke(main, ["run", str(tmp / "job.json"), "--library",
                                       f"file://{tmp}/{{id}}", "--dest", str(tmp / "out"),
                                       "--workdir", str(tmp), "--no-progress"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def _green_columns(path: Path) -> tuple[int, int] | None:
    with Image.open(path) as img:
        out = np.asarray(img.convert("RGB")).astype(int)
    r, g, b = out[..., 0], out[..., 1], out[..., 2]
    cols = np.flatnonzero(((g > 180) & (r < 90) & (b < 90)).sum(axis=0) >= 3)
    return (int(cols[0]), int(cols[-1])) if cols.size else None


@pytest.mark.parametrize("suffix", [".heic", ".avif", ".jpg"])
def test_smart_framing_keeps_the_face_in_every_source_format(
        photo: Image.Image, tmp_path: Path, suffix: str) -> None:
    _save(photo, tmp_path / f"wide{suffix}")
    manifest = _conform(tmp_path, f"wide{suffix}")
    (account,) = manifest["accounts"]
    assert account["status"] == "ok", account["errors"]
    (medium,) = account["media"]
    assert "reframed" in medium["actions"]
    assert not any(w.startswith("no_subject") for w in medium["warnings"])
    path = Path(medium["uri"][len("file://"):])
    box = _green_columns(path)
    scale = medium["height"] / 400
    # The whole framed face is in the picture: its frame's left edge is not cut off.
    assert box is not None and box[0] > 0
    assert box[1] - box[0] >= 0.95 * (FACE_PX + 12) * scale


def test_the_analysis_decode_is_small_whatever_the_source(tmp_path: Path) -> None:
    huge = probe.probe(grey_jpeg(tmp_path / "huge.jpg", 28000, 14000))
    pic = decode_preview(tmp_path / "huge.jpg", huge, max_side=768)
    assert pic.size == (768, 384) and pic.mode == "RGB"
    assert pic.getpixel((100, 100)) == (128, 128, 128)


def test_the_analysis_decode_turns_the_picture_upright(tmp_path: Path) -> None:
    stored = Image.new("RGB", (300, 100), (20, 20, 20))
    stored.paste(Image.new("RGB", (50, 100), (250, 250, 250)), (0, 0))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the white band ends up on top
    stored.save(tmp_path / "turned.jpg", quality=95, exif=exif)
    info = probe.probe(tmp_path / "turned.jpg")
    pic = decode_preview(tmp_path / "turned.jpg", info, max_side=150)
    assert pic.size == (50, 150)
    top, bottom = pic.getpixel((25, 5)), pic.getpixel((25, 145))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert min(top) > 200 and max(bottom) < 60


def test_a_damaged_source_is_a_typed_error_for_the_analysis(photo: Image.Image,
                                                            tmp_path: Path) -> None:
    path = _save(photo, tmp_path / "cut.jpg")
    info = probe.probe(path)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(CorruptMedia):
        decode_preview(path, info, max_side=768)
