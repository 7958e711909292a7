"""Video engine: ffmpeg argv built with ffmpeg-python's graph builder (pure), run by our runner.

ffmpeg-python is used in :mod:`.graph` only, and only to assemble filter graphs and argv; it never
runs anything (:mod:`pipeline.ffmpeg` does). Every encode is H.264 High / yuv420p / CFR /
closed GOP / BT.709 / AAC-LC in an MP4 with the moov atom first and no edit list; a plan that
says ``passthrough`` or ``remux`` keeps the streams untouched.

The picture goes through one chain, in this order: the decoder's autorotate (ffmpeg 5.1
applies every display matrix, mirrored ones included, as transpose/hflip/vflip, and the output
then carries none), deinterlace, square pixels, constant frame rate, crop, scale (with the
colour matrix and range conversion), tone-map or gamut conversion, fill (pad or blur), and
the encoder. Several encodes of one source share everything before the per-output ``split``
(:func:`build_shared_args`): one decode, several outputs.

The package keeps each concern in its own module: :mod:`.graph` builds the argv (the only
user of ffmpeg-python), :mod:`.render` runs encodes and the byte-budget retries,
:mod:`.loudness` reads loudnorm's measurement and :mod:`.brands` rewrites the MP4 brands.
"""

from __future__ import annotations

from .brands import OWN_BRANDS, describe_brands, own_brands
from .graph import (
    APNG_INPUT,
    build_args,
    build_shared_args,
    decode_check_args,
    loudness_args,
    output_length,
)
from .loudness import Loudness, parse_loudness
from .render import VideoResult, render_shared, render_video

__all__ = [
    "APNG_INPUT",
    "OWN_BRANDS",
    "Loudness",
    "VideoResult",
    "build_args",
    "build_shared_args",
    "decode_check_args",
    "describe_brands",
    "loudness_args",
    "output_length",
    "own_brands",
    "parse_loudness",
    "render_shared",
    "render_video",
]
