"""Colour: any decoded picture to 8-bit RGB/RGBA/L in sRGB, alpha flattened where needed."""

from __future__ import annotations

import io
import logging
from typing import Any

from ..plan import ImageTarget

log = logging.getLogger(__name__)

def to_srgb_8bit(im: Any, target: ImageTarget, warnings: list[str]) -> Any:
    """8-bit RGB/RGBA/L in sRGB; alpha kept only where the output format has it."""
    from PIL import ImageCms

    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's convert("L") clips 16-bit values; scale 0..65535 to 0..255 instead.
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif im.mode in ("F", "1"):
        im = im.convert("L")
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif im.mode in ("RGBX", "YCbCr", "HSV"):
        im = im.convert("RGB")
    if icc and target.to_srgb and im.mode in ("RGB", "RGBA", "L", "CMYK"):
        try:
            src_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
            im = ImageCms.profileToProfile(im, src_profile, ImageCms.createProfile("sRGB"),
                                           renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                           outputMode=out_mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as err:
            log.warning("unusable ICC profile (%s): colours converted without it", err)
            warnings.append("colour_profile_ignored")
    if im.mode == "CMYK":
        # No profile: Pillow's conversion (its JPEG decoder has already undone Adobe's
        # inverted CMYK/YCCK), as browsers without colour management show it.
        im = im.convert("RGB")
    elif im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
    if im.mode == "RGBA":
        alpha_min = im.getchannel("A").getextrema()[0]
        if alpha_min == 255:
            im = im.convert("RGB")  # an alpha channel with nothing transparent in it
        elif target.format not in ("png", "webp", "gif"):
            im = flatten_alpha(im, target.background)
    im.info.clear()  # no EXIF/XMP/ICC reaches the encoder by accident
    return im


def flatten_alpha(im: Any, background: str) -> Any:
    """Composite an RGBA picture onto a solid background colour (for formats without alpha)."""
    from PIL import Image

    base = Image.new("RGBA", im.size, background)
    base.alpha_composite(im)
    return base.convert("RGB")

