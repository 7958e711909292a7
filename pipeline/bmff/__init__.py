"""Rewrite an MP4/MOV keeping only what a player needs: pass-through without smuggled bytes.

A pass-through used to deliver the source file byte for byte, so anything a client appended
travelled with it: an XMP ``uuid`` box with GPS coordinates, a ``free`` box holding an HTML page
and a ZIP, a ``udta`` with a ``©xyz`` location inside the ``moov``, bytes in the ``mdat`` that no
sample points at. :func:`strip_boxes` writes a new file from an allow-list instead, every kept
box rebuilt from its parsed fields, never copied whole:

- top level: ``ftyp`` (written for what we deliver: ``isom``, or ``qt  `` for QuickTime),
  ``moov`` and one ``mdat``;
- inside the ``moov`` (:mod:`.headers`): the movie and track headers, edit lists, and each
  video or sound track's media header, handler (its free-text name emptied), media
  information and sample tables; reserved fields and timestamps zeroed, flags masked, tables
  cut to their entry counts; ``udta``, ``meta``, ``uuid``, ``free``, ``tref``, metadata
  tracks (GPS) and everything else unknown are dropped; sample groups other than roll,
  pre-roll, sync and random access are dropped; the data reference says "in this file";
- the sample description (:mod:`.entries`, :mod:`.configs`): the one entry the samples use,
  with only what a decoder reads (codec configuration, pixel aspect, colour code points,
  bitrate box), each parsed and written anew;
- the ``mdat`` (:mod:`.sampletables`): exactly the bytes of the chunks the sample tables point
  at, copied unchanged, streamed in file order; the chunk offsets are patched.

Sample bytes, sample sizes, timing and edit lists are the source's own (no ffmpeg runs).
The cost is linear in the file's boxes and samples, the memory is the sample tables' (a few
bytes per sample, the movie header under 64 MB), and the job's deadline is checked inside.

Anything this module does not understand (fragmented MP4, a compressed movie header, data in
another file, chunks outside the ``mdat`` or overlapping, a codec it does not rebuild) raises
:class:`UnsupportedLayout`; the caller then re-muxes with ffmpeg instead. Counts no real movie
has (boxes, samples, empty chunks past the limits in :mod:`.boxes`) are ``corrupt_media``.
"""

from __future__ import annotations

from .boxes import (
    MAX_EMPTY_CHUNKS,
    MAX_MOOV_BYTES,
    MAX_SAMPLES,
    MAX_TOP_LEVEL_BOXES,
    UnsupportedLayout,
    top_level_boxes,
)
from .rewrite import strip_boxes

__all__ = ["MAX_EMPTY_CHUNKS", "MAX_MOOV_BYTES", "MAX_SAMPLES", "MAX_TOP_LEVEL_BOXES",
           "UnsupportedLayout", "strip_boxes", "top_level_boxes"]
