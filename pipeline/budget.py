"""Image decode memory: what one decode costs in bytes, and one budget shared by every thread.

A pixel cap alone does not bound memory: a 19999x19999 PNG is under 400 MP, yet 8-bit RGB
took 2.4 GB and 16-bit 3.8 GB. The cost of a decode is estimated from the header (size, mode,
bit depth, format) as the peak bytes per decoded pixel of a whole render, measured with
``ru_maxrss`` on solid-colour images rendered at full size (Pillow stores RGB in 4 bytes a
pixel, widens 16-bit grey to 32-bit ``I``, converts to 8-bit RGB and keeps an output copy;
libwebp and libheif hold their own buffers besides).

A decode over ``max_decode_bytes`` is refused (``too_large``) before it starts. Decodes also
draw their cost from one process-wide :class:`DecodeBudget` of the same size, so jobs on
threads (``batch``, ``worker``) wait for each other instead of adding up past the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import TooLarge

# Default limit: a 200 MP phone HEIC (12240x16320, ~1.2 GB by the table below, measured peak
# under 1.15 GB) still converts; 8-bit RGB stops near 178 MP, 16-bit near 125 MP.
MAX_DECODE_BYTES = 1_250_000_000

# Peak bytes per decoded pixel, by format, then by Pillow mode (measured; see above).
_FORMAT_BYTES_PER_PIXEL = {"webp": 16, "heif": 6, "avif": 6}
_MODE_BYTES_PER_PIXEL = {"1": 3, "L": 3, "P": 6, "PA": 6, "CMYK": 8, "I": 10, "F": 10,
                         "I;16": 10, "I;16B": 10, "I;16L": 10, "I;16N": 10}
_DEFAULT_BYTES_PER_PIXEL = 7  # RGB, RGBA, LA, YCbCr: 6.85 measured for a 200 MP JPEG
_SIXTEEN_BIT_BYTES_PER_PIXEL = 10  # 16-bit samples of any layout: 9.5 measured


def decode_cost_bytes(width: int, height: int, *, fmt: str, mode: str, bits: int = 8) -> int:
    """Estimated peak memory to decode and render a ``width`` x ``height`` picture.

    Args:
        width: decoded width (after any JPEG draft reduction).
        height: decoded height.
        fmt: the sniffed format (``webp``, ``heif`` ... have their own decoders' buffers).
        mode: Pillow's mode from the header.
        bits: bits per sample (16 for 16-bit PNG/TIFF).

    Returns:
        Bytes.

    Raises:
        Nothing.
    """
    per_pixel = _FORMAT_BYTES_PER_PIXEL.get(fmt) or _MODE_BYTES_PER_PIXEL.get(
        mode, _DEFAULT_BYTES_PER_PIXEL)
    if bits > 8:
        per_pixel = max(per_pixel, _SIXTEEN_BIT_BYTES_PER_PIXEL)
    return max(0, width) * max(0, height) * per_pixel


class DecodeBudget:
    """Bytes of image decoding that may be in flight at once in this process (all threads)."""

    def __init__(self, total_bytes: int) -> None:
        self._total = total_bytes
        self._used = 0
        self._cond = threading.Condition()
        self._held = threading.local()  # bytes this thread holds

    @property
    def total_bytes(self) -> int:
        """The budget's size."""
        return self._total

    @property
    def used_bytes(self) -> int:
        """Bytes reserved right now."""
        with self._cond:
            return self._used

    def resize(self, total_bytes: int) -> None:
        """Change the budget's size (waiting decodes re-check it)."""
        with self._cond:
            self._total = total_bytes
            self._cond.notify_all()

    @contextmanager
    def reserve(self, nbytes: int, what: str = "image") -> Iterator[None]:
        """Hold ``nbytes`` of the budget for the duration of the block, waiting for room.

        Raises:
            TooLarge: ``nbytes`` is more than the whole budget (it could never run).
        """
        self.acquire(nbytes, what)
        try:
            yield
        finally:
            self.release(nbytes)

    def acquire(self, nbytes: int, what: str = "image") -> None:
        """Take ``nbytes`` (pair with :meth:`release`), waiting until they are free.

        A thread that already holds part of the budget (a decoded HEIC kept for its next
        output, while the last output is probed) is let through at once: it would otherwise
        wait for itself.

        Raises:
            TooLarge: ``nbytes`` is more than the whole budget.
        """
        held = getattr(self._held, "nbytes", 0)
        with self._cond:
            if nbytes > self._total:
                raise too_large(what, nbytes, self._total)
            while not held and self._used + nbytes > self._total:
                self._cond.wait(timeout=1.0)
                if nbytes > self._total:
                    raise too_large(what, nbytes, self._total)
            self._used += nbytes
        self._held.nbytes = held + nbytes

    def release(self, nbytes: int) -> None:
        """Give back what :meth:`acquire` took."""
        self._held.nbytes = max(0, getattr(self._held, "nbytes", 0) - nbytes)
        with self._cond:
            self._used = max(0, self._used - nbytes)
            self._cond.notify_all()


def too_large(what: str, nbytes: int, limit: int, **details: object) -> TooLarge:
    """The error for a decode over the limit (``too_large``, permanent).

    Raises:
        Nothing: it returns the error for the caller to raise.
    """
    return TooLarge(
        f"{what} needs about {_mb(nbytes)} MB to decode, over the {_mb(limit)} MB limit "
        "(CONFORM_MAX_DECODE_BYTES)",
        details={**details, "decode_bytes": nbytes, "max_decode_bytes": limit},
    )


def _mb(nbytes: int) -> int:
    return round(nbytes / 1_000_000)


# The one budget of this process; :func:`pipeline.probe.setup_pillow` sizes it from settings.
BUDGET = DecodeBudget(MAX_DECODE_BYTES)

_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
_MMAP_THRESHOLD_BYTES = 1024 * 1024
_malloc_tuned = False


def return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the system (once per process).

    glibc raises its mmap threshold each time a big block is freed, so later picture blocks
    (Pillow allocates 16 MB at a time) come from per-thread heaps that keep the memory after
    the picture is gone: four threads decoding one after the other then hold four pictures'
    worth, and the budget bounds nothing. A fixed 1 MB threshold keeps every large block
    mapped on its own, returned when freed (measured: 4 sequential 7000x7000 decodes on 4
    threads, 815 MB peak before, 234 MB after, the same as one). Elsewhere than glibc this
    does nothing.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    # The symbols already loaded into this process (libc's among them): no library search,
    # which would run ldconfig in a subprocess. Not glibc: its own allocator decides.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)

__all__ = ["BUDGET", "MAX_DECODE_BYTES", "DecodeBudget", "decode_cost_bytes",
           "return_freed_memory", "too_large"]
