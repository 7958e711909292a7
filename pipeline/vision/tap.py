"""The subject check's frames, decoded from the encode while it runs.

The ``subject_under_ui`` check looks at the delivered file's keyframes (the first at or after
each slice's middle: :func:`sampling.sample_video`). Decoding them after the encode and
searching them for faces was most of the time conform added to a one-output encode
(BENCHMARKS.md, "Overhead"). Instead, the encoder writes its packets a second time
(:func:`pipeline.video.graph.build_args`, ``tap_fd``): a fragmented MP4 on a pipe, the very
packets the delivered file holds. A second ffmpeg decodes that copy's keyframes as they
come, scaled as the check scales them, and each keyframe that a slice of the expected length
picks has its faces searched at once, on one thread, while x264 works.

After the encode the picks are made again from the delivered file's probed length. When they
are the frames already searched (the usual case), the check is done; when they are not, or
anything of the tap failed, :meth:`SubjectTap.subjects` says so (None) and the check decodes
the file as before. Either way the boxes are those of the delivered pixels: the same packets
through the same decoder and scaler, picked by the same rule (tested pixel for pixel).

What the tap holds is bounded: the RGB of at most ``SAMPLE_FRAMES`` small frames, and one
timestamp per keyframe (refused beyond ``MAX_KEYFRAMES``). Its decoder has the encode's
deadline, and it can never stall the encode: its pipe is drained to the end whatever happens
to the pictures, and a decoder that dies only drops the copy (the tee's ``onfail=ignore``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from typing import IO, TYPE_CHECKING

from .. import ffmpeg
from ..errors import PipelineError
from ..models import MediaInfo
from . import sampling
from .subject import (
    SAMPLE_FRAMES,
    SAMPLE_SIDE_PX,
    Region,
    SubjectBox,
    Subjects,
    faces_within,
    salient_of,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

# A 60 s clip has 31 keyframes at our 2 s GOP, 144 at the most x264 places (keyint_min 25
# at 60 fps): more than this is not an encode of ours.
MAX_KEYFRAMES = 1000
# How long a frame waits for its timestamp line (written before the frame itself).
_PAIRING_WAIT_S = 5.0
_SHOWINFO = re.compile(rb"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s")
_TIME_BASE = re.compile(rb"config in time_base:\s*(\d+)/(\d+)")


class SubjectTap:
    """One encode's copy, decoded as it is written; the check's answer from it afterwards.

    Use: :meth:`writer` gives the descriptor the encode writes its copy to (started only
    when an encode really runs); :meth:`subjects` after the encode; :meth:`close` always.
    """

    def __init__(self, width: int, height: int, expected_s: float, *, timeout_s: float,
                 picture: Region | None = None) -> None:
        """
        Args:
            width, height: the output's picture size (square pixels, as our encodes are).
            expected_s: the output's planned length: which keyframes to search early.
            timeout_s: the decoder's limit (the encode's).
            picture: where the picture sits on the canvas (faces are looked for there).
        """
        self._picture = picture
        self.size = sampling.fit_size(width, height, SAMPLE_SIDE_PX)
        self._expected = sampling.slice_targets(expected_s, SAMPLE_FRAMES)
        self._timeout_s = timeout_s
        self._lock = threading.Condition()
        self._time_base: Fraction | None = None
        self._pts: list[int] = []  # of every keyframe decoded, in order
        self._read = 0  # frames read from the decoder
        self._kept: dict[int, bytes] = {}  # frame index -> RGB, the expected picks only
        self._faces: dict[int, Future[tuple[SubjectBox, ...]]] = {}
        self._failed: str | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # ---------------------------------------------------------------- the encode's side

    def writer(self) -> int | None:
        """Start the decoder; the descriptor the encode's copy goes to (``pipe:N``).

        The descriptor is the caller's to hand to the encode (``ffmpeg.run(hand_over=)``),
        which closes it. None when no pipe could be made (the check then decodes the file).
        """
        if self._thread is not None:
            raise RuntimeError("a tap serves one encode")
        try:
            read_fd, write_fd = os.pipe()
        except OSError as err:
            self._fail(f"no pipe: {err.strerror}")
            return None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tap-faces")
        self._thread = threading.Thread(target=self._decode, args=(read_fd,),
                                        name="subject-tap", daemon=True)
        self._thread.start()
        return write_fd

    def abandon(self, why: str) -> None:
        """The delivered file is not the tapped encode (a byte-budget retry made another)."""
        self._fail(why)

    # --------------------------------------------------------------------- the answer

    def subjects(self, info: MediaInfo, *, timeout_s: float) -> Subjects | None:
        """The check's boxes for the delivered file ``info`` describes, or None when the tap
        cannot tell them (the check then samples the file itself).

        Waits at most ``timeout_s`` for the decoder (it ends with the encode's copy).
        """
        if self._thread is None:
            return None
        self._thread.join(timeout_s)
        with self._lock:
            picks = self._picks(info)
            if picks is None:
                return None
            faces = {k: self._faces[k] for k in picks}
            shots = {k: self._kept[k] for k in picks}
        try:
            found = {k: faces[k].result(timeout=max(0.1, timeout_s)) for k in picks}
        except Exception as err:
            log.debug("subject tap: the face search failed (%s): sampling the file", err)
            return None
        return tuple(found[k] or salient_of(self._array(shots[k], self.size)) for k in picks)

    def close(self) -> None:
        """Stop the face search and forget the frames (the decoder ends with the encode)."""
        self._fail("closed")
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(self._timeout_s)
        with self._lock:
            self._kept.clear()

    def _picks(self, info: MediaInfo) -> list[int] | None:
        """The frames the check picks from the file ``info`` describes, when the tap holds
        every one of them searched; None otherwise (caller holds the lock)."""
        why = self._unusable(info)
        if why is None:
            duration_s = max(info.duration_s or 0.0, 0.04)
            assert self._time_base is not None
            picks = sampling.pick_first_at_or_after(
                self._pts, self._time_base, sampling.slice_targets(duration_s, SAMPLE_FRAMES))
            if all(k in self._faces for k in picks):
                return picks
            why = "the file's length picks other frames than expected"
        log.debug("subject tap not used: %s", why)
        return None

    def _unusable(self, info: MediaInfo) -> str | None:
        """Why the tap cannot answer for this file, or None (caller holds the lock)."""
        if self._failed is not None:
            return self._failed
        if self._thread is not None and self._thread.is_alive():
            return "the decoder did not end in time"
        if (info.kind != "video" or (info.duration_s or 0.0) > sampling.KEYFRAME_PASS_MAX_S
                or not sampling.keyframe_in_every_slice(info, SAMPLE_FRAMES)):
            # what sample_video's one keyframe pass takes, and nothing else, is known here
            return "the file is not sampled by its keyframes in one pass"
        if sampling.fit_size(info.width, info.height, SAMPLE_SIDE_PX) != self.size:
            return "the file's picture is not the planned size"
        if self._time_base is None or len(self._pts) != self._read or not self._pts:
            return "the decoder's timestamps are missing"
        return None

    def _fail(self, why: str) -> None:
        with self._lock:
            if self._failed is None:
                self._failed = why
            self._lock.notify_all()

    # ------------------------------------------------------------------- the decoder

    def _decode(self, read_fd: int) -> None:
        width, height = self.size
        args = [*ffmpeg.ffmpeg_head("-loglevel", "info", "-nostats"), "-skip_frame", "nokey",
                *ffmpeg.pipe_input("mov"),
                # as sampling.sample_video scales (its select then picks; here Python does)
                "-vf", f"scale={width}:{height}:flags=area,setsar=1,showinfo",
                "-an", "-fps_mode", "passthrough", "-flush_packets", "1",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        try:
            ffmpeg.run(args, timeout_s=self._timeout_s, stdin_fd=read_fd,
                       read_stdout=self._read_frames, on_stderr_line=self._on_line)
        except PipelineError as err:
            self._fail(f"the decoder failed: {err.message}")
        except Exception as err:
            log.exception("subject tap decoder")
            self._fail(f"the decoder failed: {err}")

    def _on_line(self, line: bytes) -> None:
        shown = _SHOWINFO.search(line)
        with self._lock:
            if shown is not None:
                if len(self._pts) >= MAX_KEYFRAMES:
                    self._failed = self._failed or "more keyframes than an encode of ours has"
                elif int(shown.group(1)) != len(self._pts):
                    self._failed = self._failed or "the decoder's frames are out of order"
                else:
                    self._pts.append(int(shown.group(2)))
                self._lock.notify_all()
            elif (base := _TIME_BASE.search(line)) is not None and int(base.group(2)) > 0:
                self._time_base = Fraction(int(base.group(1)), int(base.group(2)))

    def _read_frames(self, stream: IO[bytes]) -> None:
        """Read every frame to the end of the stream (never stopping early: the decoder, and
        through it the encode, would stall); search the expected picks as they come."""
        frame_bytes = self.size[0] * self.size[1] * 3
        edges = None
        next_target = 0
        while len(data := stream.read(frame_bytes)) == frame_bytes:
            with self._lock:
                k = self._read
                self._read += 1
                if self._failed is not None:
                    continue
                if not self._lock.wait_for(functools.partial(self._has_timestamp, k),
                                           _PAIRING_WAIT_S):
                    self._failed = "a frame came without its timestamp"
                if self._failed is not None or self._time_base is None:
                    continue
                if edges is None:
                    edges = sampling.pick_edges(self._time_base, self._expected)
                since_first = self._pts[k] - self._pts[0]
                picked = False
                while next_target < len(edges) and since_first >= edges[next_target]:
                    next_target += 1
                    picked = True
                if picked:
                    self._kept[k] = data
                    assert self._pool is not None
                    self._faces[k] = self._pool.submit(faces_within, self._array(data, self.size),
                                                       self._picture)

    def _has_timestamp(self, k: int) -> bool:
        return len(self._pts) > k or self._failed is not None

    @staticmethod
    def _array(data: bytes, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
        import numpy as np

        width, height = size
        return np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()

