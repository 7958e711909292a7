"""Container structure checks that ffprobe does not make: truncation, faststart, edit lists.

ffprobe reads the movie header and the start of a file, so a file cut short still probes
"fine" and would fail much later, in the encoder. These walk the ISO-BMFF boxes
(:func:`pipeline.bmff.top_level_boxes`) or the Matroska/WebM (EBML) element headers instead.
"""

from __future__ import annotations

from pathlib import Path

from ..bmff import top_level_boxes
from ..errors import CorruptMedia

# Top-level boxes that hold the movie itself; one that runs past the end of the file means the
# file was cut short (an interrupted upload). ffprobe reads only the moov, so a faststart file
# cut in half still probes "fine" and would fail much later, in the encoder.
_ESSENTIAL_BOXES = {b"moov", b"mdat", b"moof"}


def check_bmff_complete(path: Path) -> None:
    """Refuse an MP4/MOV whose moov, mdat or moof box runs past the end of the file.

    Raises:
        CorruptMedia: the file is truncated.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        for kind, start, box_size in top_level_boxes(fh, size):
            if kind in _ESSENTIAL_BOXES and start + box_size > size:
                raise CorruptMedia(
                    f"truncated file: the {kind.decode('latin-1')!r} box needs "
                    f"{start + box_size} bytes, the file has {size}",
                    details={"box": kind.decode("latin-1"), "needed_bytes": start + box_size,
                             "size_bytes": size},
                )


# Matroska/WebM (EBML) element IDs: the Segment holds the movie, Clusters hold the frames.
_EBML_SEGMENT = 0x18538067
_EBML_CLUSTER = 0x1F43B675
# Past this many elements the Matroska check stops, inconclusive (ffprobe still reads the file).
_EBML_SCAN_LIMIT = 1_000_000


def _ebml_header(head: bytes) -> tuple[int, int | None, int] | None:
    """Parse an EBML element header: (ID, data size or None if unknown, header length).

    Returns None when ``head`` ends inside the header.

    Raises:
        ValueError: not an element header (no length marker in a first byte).
    """
    if not head:
        return None
    id_len = 9 - head[0].bit_length()
    if id_len > 4:
        raise ValueError("no EBML element here")
    if len(head) <= id_len:
        return None
    size_len = 9 - head[id_len].bit_length()
    if size_len > 8:
        raise ValueError("no EBML element size here")
    if len(head) < id_len + size_len:
        return None
    ident = int.from_bytes(head[:id_len], "big")
    mask = (1 << (7 * size_len)) - 1
    size = int.from_bytes(head[id_len:id_len + size_len], "big") & mask
    return ident, (None if size == mask else size), id_len + size_len


def check_matroska_complete(path: Path) -> None:
    """Refuse a Matroska/WebM file cut short: an element that runs past the end of the file.

    The element headers are walked from the top (the Segment's children, and the blocks of a
    Cluster whose size is unknown); a Segment or Cluster of unknown size (a live recording)
    is fine as long as every element with a size fits. ffprobe reads only the start of a
    Matroska file, so a file cut in half would otherwise probe "fine" and fail in the
    encoder.

    Raises:
        CorruptMedia: the file is truncated.
    """
    size = path.stat().st_size
    pos = 0
    with path.open("rb") as fh:
        for _ in range(_EBML_SCAN_LIMIT):
            if pos >= size:
                return
            fh.seek(pos)
            try:
                element = _ebml_header(fh.read(12))
            except ValueError:
                return  # not an element: ffprobe judges the rest
            if element is None:
                raise CorruptMedia(f"truncated file: it ends inside an element header at "
                                   f"byte {pos}", details={"size_bytes": size})
            ident, data_size, header = element
            if data_size is None:
                if ident not in (_EBML_SEGMENT, _EBML_CLUSTER):
                    return  # an unknown-size element we do not walk into: inconclusive
                pos += header  # live recording: walk its children
                continue
            end = pos + header + data_size
            if end > size:
                raise CorruptMedia(
                    f"truncated file: an element at byte {pos} needs {end} bytes, the file "
                    f"has {size}", details={"element_id": f"{ident:X}", "needed_bytes": end,
                                            "size_bytes": size})
            if ident == _EBML_SEGMENT:
                return  # the whole Segment is there
            pos = end


def moov_first(path: Path) -> bool | None:
    """True when the moov box comes before mdat (what `+faststart` produces)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        for kind, _, _ in top_level_boxes(fh, size):
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
    return None


def has_edit_list(path: Path) -> bool:
    """Whether any track carries an edit list (Instagram and Threads refuse them)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        for kind, start, box_size in top_level_boxes(fh, size):
            if kind != b"moov":
                continue
            fh.seek(start)
            data = fh.read(min(box_size, 64 * 1024 * 1024))
            return b"elst" in data
    return False


