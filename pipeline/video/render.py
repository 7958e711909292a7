"""Running the video engine: pass-through copies, encodes, and byte-budget retries."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .. import ffmpeg
from ..bmff import UnsupportedLayout, strip_boxes
from ..deadline import Deadline
from ..errors import (
    CannotFit,
    CorruptMedia,
    DeadlineExceeded,
    FFmpegError,
    FFmpegTimeout,
    ProcessingFailed,
)
from ..geometry import Geometry, round_even
from ..plan import VideoTarget, budget_kbps
from ..probe import probe_video
from .brands import describe_brands
from .burnin import write_script
from .frames import FRAMES_FORMAT, discard_frames, write_frames
from .graph import (
    build_args,
    build_shared_args,
    decode_check_args,
    loudness_args,
    output_length,
)
from .loudness import Loudness, parse_loudness
from .tee import TEE_REFUSED, EncodeTap, tappable

log = logging.getLogger(__name__)

# Byte budget: two-pass encodes at a falling bitrate, then smaller pictures, until it fits.
MAX_BUDGET_ATTEMPTS = 8
SHRINK_STEP = 0.75
# Below ~0.02 bit per pixel x264 output breaks into blocks: a smaller picture at a sane
# bitrate looks better than a starved big one, so retries shrink first.
MIN_BITS_PER_PIXEL = 0.02
# Never deliver video below this, whatever the size: too_large instead.
MIN_VIDEO_KBPS = 48
# Retries never shrink the short side below 144 px (the smallest common video size).
MIN_SHORT_SIDE = 144
# Each retry aims this much under the size that would just fit (x264's rate control overshoots
# by a few per cent on short clips).
BUDGET_MARGIN = 0.94


@dataclass(frozen=True, slots=True)
class VideoResult:
    """A produced (or passed-through) video and what happened beyond the plan."""

    path: Path
    extra_actions: tuple[str, ...]
    warnings: tuple[str, ...]


def render_video(src: Path, src_format: str, t: VideoTarget, out: Path, *, duration_s: float,
                 timeout_s: float, on_progress: Callable[[float], None] | None = None,
                 first_pass: Path | None = None, tap: EncodeTap | None = None) -> VideoResult:
    """Produce ``out``, keeping it under the byte cap.

    A pass-through is the source rewritten with only the boxes a player needs
    (:func:`pipeline.bmff.strip_boxes`: same samples, same timing, no metadata or appended
    payloads); a layout that rewrite does not handle (fragmented MP4) is re-muxed instead.
    The rewrite stops at ``timeout_s`` like any tool run.

    Args:
        src: the fetched source.
        src_format: its sniffed format.
        t: the planned target.
        out: where to write the output (its folder must exist).
        duration_s: the source's duration.
        timeout_s: wall-clock limit for each ffmpeg run.
        on_progress: called with 0..1 during the main encode.
        first_pass: an output already encoded for this target (a shared decode), so the
            first encode is skipped and only the byte cap is checked.
        tap: the subject check's copy of the encode (:mod:`pipeline.vision.tap`): the
            first encode writes it too; abandoned when another encode replaces that one.

    Returns:
        Where the output is, and actions/warnings beyond the plan (byte-budget retries).

    Raises:
        CorruptMedia: the source cannot be decoded.
        FFmpegError: ffmpeg failed for another reason (``processing_failed``, stderr tail in
            the message).
        FFmpegTimeout: ffmpeg ran past ``timeout_s`` (``processing_timeout``).
        CannotFit: not even the smallest acceptable attempt fits the byte cap.
        ProcessingFailed: the pass-through copy could not be written.
        DeadlineExceeded: the pass-through rewrite ran past ``timeout_s``.
    """
    fallback: tuple[str, ...] = ()
    ends_at = time.monotonic() + timeout_s
    if t.action == "passthrough":
        deadline = Deadline(timeout_s, _rewrite_out_of_time)
        try:
            strip_boxes(src, out, check=lambda: deadline.check("the pass-through rewrite"))
            prove_decodes(out, t, timeout_s=max(0.1, ends_at - time.monotonic()))
            return VideoResult(out, (), ())
        except UnsupportedLayout as err:
            log.info("pass-through rewrite not possible (%s): re-muxing instead", err)
            t, fallback = replace(t, action="remux"), ("remuxed",)
        except OSError as err:
            raise ProcessingFailed(f"cannot write the pass-through copy: {err.strerror}") from err
    work = _Work(src, src_format, t, out, duration_s=duration_s, timeout_s=timeout_s, tap=tap)
    try:
        result = work.run(on_progress, first_pass)
        if t.action != "transcode":
            # A stream copy never decoded the picture: prove it plays, as an encode does.
            prove_decodes(result.path, t, timeout_s=max(0.1, ends_at - time.monotonic()))
        describe_brands(result.path)
        return replace(result, extra_actions=(*fallback, *result.extra_actions))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        work.cleanup()


def _rewrite_out_of_time(stage: str) -> DeadlineExceeded:
    return DeadlineExceeded(f"out of time during {stage}")


def prove_decodes(out: Path, t: VideoTarget, *, timeout_s: float) -> None:
    """Decode a stream-copied output whole (picture, and sound when it has any), stopping at
    the first error: a copy never decodes the stream, so a source whose frames are broken
    would otherwise ship as it is and be reported ok.

    The check reads the delivered file (for a pass-through, the rewritten one), so it proves
    what the platform gets. It is bounded by ``timeout_s`` (what the job has left): a clip
    too long to decode in time is ``processing_timeout``, like an encode would be.

    Raises:
        CorruptMedia: a stream does not decode (the output is removed).
        FFmpegTimeout: the decode ran past ``timeout_s`` (the output is removed).
    """
    args = decode_check_args(out, "mp4", audio=t.audio.action != "none")
    try:
        ffmpeg.run(args, timeout_s=timeout_s)
    except FFmpegTimeout:
        out.unlink(missing_ok=True)
        raise
    except FFmpegError as err:
        out.unlink(missing_ok=True)
        tail = err.stderr_tail.strip()
        raise CorruptMedia(f"the video does not decode: {tail[-300:] or 'ffmpeg failed'}",
                           details={"stderr": err.stderr_tail}) from err


def _decodable(src: Path, src_format: str, folder: Path, loops: int = 1, *,
               timeout_s: float) -> tuple[Path, str]:
    """The source as ffmpeg can read it: animated WebP, and any looped animation, become
    frames on disk and a list that plays them (:func:`pipeline.video.frames.write_frames`).

    ffmpeg 5.1's WebP decoder reads no animation (ANIM/ANMF chunks); Pillow does, and gives
    every frame already composited. Each frame keeps its own delay, as the probe measured it
    (browsers' rule for delays of 10 ms or less): a WebP frame's ``info["duration"]`` is only
    set once the frame is decoded, so it is not read from Pillow.

    ``loops`` > 1 lists the frames that many times over (each frame is written once).
    ``-stream_loop`` cannot be used: it restarts each loop one *average* frame after the last
    frame's start, not after that frame's own delay, so uneven delays shift every loop and
    the last one gets cut. Looping happens only to animations shorter than a platform's
    minimum (a few seconds). Writing the frames stops at ``timeout_s``.

    Raises:
        CorruptMedia: Pillow cannot read the animation.
        DeadlineExceeded: writing the frames ran past ``timeout_s``.
    """
    if src_format != "webp" and loops <= 1:
        return src, src_format
    deadline = Deadline(timeout_s, _rewrite_out_of_time)
    listed = write_frames(src, src_format, folder, loops=loops,
                          check=lambda: deadline.check("writing the animation's frames"))
    return listed, FRAMES_FORMAT


def _discard_readable(readable: Path, src: Path) -> None:
    """Remove what :func:`_decodable` wrote (nothing when the source was read as it is)."""
    if readable != src:
        discard_frames(readable)


def render_shared(src: Path, src_format: str, outputs: Sequence[tuple[VideoTarget, Path]], *,
                  duration_s: float, timeout_s: float,
                  on_progress: Callable[[float], None] | None = None) -> None:
    """Encode several targets of one source in one ffmpeg process (one decode).

    The outputs are first passes: :func:`render_video` with ``first_pass`` then checks each
    against its byte cap (and re-encodes the ones over it on their own).

    Raises:
        CorruptMedia: the source cannot be decoded.
        FFmpegError, FFmpegTimeout: ffmpeg failed or took too long (no output is left).
        ValueError: the targets cannot share a decode.
    """
    # loudnorm measures the whole track; a trimmed output would measure only its part, so
    # trims and loudness normalisation are encoded one by one.
    if any(t.audio.loudnorm for t, _ in outputs):
        raise ValueError("loudness-normalised targets are encoded on their own")
    readable, fmt = _decodable(src, src_format, outputs[0][1].parent, outputs[0][0].loops,
                               timeout_s=timeout_s)
    args = build_shared_args(readable, fmt, outputs, progress=on_progress is not None,
                             duration_s=duration_s)
    longest = max(output_length(t, duration_s) for t, _ in outputs)
    try:
        _run_encode(args, readable, fmt, timeout_s=timeout_s, on_progress=on_progress,
                    duration_s=longest)
    except BaseException:
        for _, out in outputs:
            out.unlink(missing_ok=True)
        raise
    finally:
        _discard_readable(readable, src)


class _Work:
    """One target's encode attempts and the files they leave behind."""

    def __init__(self, src: Path, src_format: str, t: VideoTarget, out: Path, *,
                 duration_s: float, timeout_s: float, tap: EncodeTap | None = None) -> None:
        self.original = src
        self.src, self.fmt, self.t, self.out = src, src_format, t, out
        self.duration_s, self.timeout_s = duration_s, timeout_s  # the source's duration
        self.length_s = output_length(t, duration_s)  # the output's: loops and trim applied
        self.passlog = out.with_name(out.stem + "-passlog")
        self.tap = tap
        self.loudness: Loudness | None = None
        self.captions = (write_script(t.burn_in, t.geometry.width, t.geometry.height,
                                      out.with_name(out.stem + "-captions.ass"))
                         if t.burn_in is not None else None)

    def run(self, on_progress: Callable[[float], None] | None,
            first_pass: Path | None) -> VideoResult:
        t = self.t
        self.src, self.fmt = _decodable(self.src, self.fmt, self.out.parent, t.loops,
                                        timeout_s=self.timeout_s)
        if t.audio.loudnorm and t.audio.action == "encode":
            self.loudness = _measure_loudness(self.src, self.fmt, trim_s=t.trim_s,
                                              timeout_s=self.timeout_s)
        if t.action != "transcode":
            return self._copy(on_progress)
        return self._transcode(on_progress, first_pass)

    def _copy(self, on_progress: Callable[[float], None] | None) -> VideoResult:
        """A stream copy: the bytes are what they are, so over the cap is final."""
        self._encode(self._first_args(bool(on_progress)), on_progress)
        size = self.out.stat().st_size
        if size > self.t.max_bytes:
            raise CannotFit(f"the video is {size} bytes without re-encoding, over the "
                            f"{self.t.max_bytes}-byte cap")
        return VideoResult(self.out, (), ())

    def _transcode(self, on_progress: Callable[[float], None] | None,
                   first_pass: Path | None) -> VideoResult:
        """One constant-quality encode (or the shared decode's), then retries if over a cap."""
        t = self.t
        audio_kbps = t.audio.bitrate_kbps if t.audio.action != "none" else 0
        budget = budget_kbps(t.max_bytes, self.length_s, audio_kbps)
        if budget < _floor_kbps(t.geometry, t):
            # The cap cannot hold this picture at a watchable bitrate: skip the doomed
            # constant-quality pass and go straight to smaller two-pass encodes.
            return self._fit_budget(budget)
        if first_pass is None or not first_pass.exists():
            self._first_encode(on_progress)
        elif first_pass != self.out:
            first_pass.replace(self.out)
        size = self.out.stat().st_size
        over_rate = self._over_bitrate_cap()
        if size <= t.max_bytes and over_rate is None:
            return VideoResult(self.out, (), ())
        if self.tap is not None:
            self.tap.abandon("a byte-budget retry replaces the tapped encode")
        log.info("%s is %d bytes (cap %d), %s kbps video (cap %s): two-pass retries",
                 self.out.name, size, t.max_bytes, over_rate, t.spec_max_bitrate_kbps)
        rate = min(budget, int(t.maxrate_kbps * t.max_bytes / size * BUDGET_MARGIN))
        if over_rate is not None and t.spec_max_bitrate_kbps:
            # The VBV bounds peaks, not the average of a short clip: aim under the cap.
            rate = min(rate, int(t.spec_max_bitrate_kbps * BUDGET_MARGIN))
        return self._fit_budget(rate)

    def _first_args(self, progress: bool, tap_fd: int | None = None) -> list[str]:
        """The first attempt's argv: the plan as it is, one pass."""
        return build_args(self.src, self.fmt, self.t, self.out, loudness=self.loudness,
                          captions=self.captions, duration_s=self.duration_s,
                          progress=progress, tap_fd=tap_fd)

    def _first_encode(self, on_progress: Callable[[float], None] | None) -> None:
        """The constant-quality encode, writing the subject check's copy too when tapped."""
        fd = self.tap.writer() if self.tap is not None and tappable(self.out) else None
        try:
            args = self._first_args(bool(on_progress), fd)
        except BaseException:
            if fd is not None:
                os.close(fd)  # else the tap's decoder would wait for a copy that never comes
            raise
        try:
            _run_encode(args, self.src, self.fmt, timeout_s=self.timeout_s,
                        on_progress=on_progress, duration_s=self.length_s,
                        hand_over=(fd,) if fd is not None else ())
        except FFmpegError as err:
            if fd is None or self.tap is None or TEE_REFUSED not in err.stderr_tail:
                raise
            # An ffmpeg built without the tee muxer: the encode as it is, the check after it.
            self.tap.abandon("this ffmpeg has no tee muxer")
            self._encode(self._first_args(bool(on_progress)), on_progress)

    def _over_bitrate_cap(self) -> int | None:
        """The output's video kbps when it is over the preset's bitrate cap, else None."""
        cap = self.t.spec_max_bitrate_kbps
        if not cap:
            return None
        out = probe_video(self.out, "mp4", timeout_s=self.timeout_s)
        kbps = (out.video.bitrate_kbps if out.video else None) or out.bitrate_kbps or 0
        return kbps if kbps > cap else None

    def _fit_budget(self, rate: int) -> VideoResult:
        """Two-pass average-bitrate retries, then smaller pictures, until the file fits."""
        t = self.t
        geometry = t.geometry
        extra: list[str] = []
        analysed: Geometry | None = None
        for _attempt in range(MAX_BUDGET_ATTEMPTS):
            while rate < _floor_kbps(geometry, t):
                smaller = _shrink(geometry, t)
                if smaller is None:
                    raise CannotFit(
                        f"cannot fit the video under {t.max_bytes} bytes: it would need "
                        f"{rate} kbps at {geometry.width}x{geometry.height} or less "
                        f"(at least {_floor_kbps(geometry, t)} kbps is needed)")
                geometry = smaller
                if "resized" not in extra:
                    extra.append("resized")
            if analysed != geometry:  # the analysis pass depends on the picture, not the rate
                self._encode(build_args(self.src, self.fmt, t, self.out, maxrate_kbps=rate,
                                        geometry=geometry, two_pass=1, passlog=self.passlog,
                                        duration_s=self.duration_s, captions=self.captions),
                             None)
                analysed = geometry
            self._encode(build_args(self.src, self.fmt, t, self.out, maxrate_kbps=rate,
                                    geometry=geometry, two_pass=2, passlog=self.passlog,
                                    loudness=self.loudness, duration_s=self.duration_s,
                                    captions=self.captions), None)
            size = self.out.stat().st_size
            over_rate = self._over_bitrate_cap()
            if size <= t.max_bytes and over_rate is None:
                return VideoResult(self.out, tuple(extra), ("reencoded_for_byte_budget",))
            shrink = t.max_bytes / size
            if over_rate is not None and t.spec_max_bitrate_kbps:
                shrink = min(shrink, t.spec_max_bitrate_kbps / over_rate)
            rate = int(rate * shrink * BUDGET_MARGIN)
        raise CannotFit(f"cannot fit the video under {t.max_bytes} bytes after "
                        f"{MAX_BUDGET_ATTEMPTS} attempts")

    def _encode(self, args: list[str], on_progress: Callable[[float], None] | None) -> None:
        _run_encode(args, self.src, self.fmt, timeout_s=self.timeout_s, on_progress=on_progress,
                    duration_s=self.length_s)

    def cleanup(self) -> None:
        for p in self.passlog.parent.glob(self.passlog.name + "*"):
            p.unlink(missing_ok=True)
        _discard_readable(self.src, self.original)  # a WebP's or looped animation's frames
        if self.captions is not None:
            self.captions.unlink(missing_ok=True)


def _run_encode(args: list[str], src: Path, src_format: str, *, timeout_s: float,
                on_progress: Callable[[float], None] | None, duration_s: float,
                hand_over: tuple[int, ...] = ()) -> None:
    """Run an encode; a failure on a source that does not decode is ``corrupt_media``, on an
    ffmpeg without an encoder we use a ``ConfigError`` (asked only then: ``ffmpeg -encoders``
    costs a process start, and an encode that worked had its encoders)."""
    try:
        ffmpeg.run(args, timeout_s=timeout_s, on_progress=on_progress, duration_s=duration_s,
                   hand_over=hand_over)
    except FFmpegTimeout:
        raise
    except FFmpegError as err:
        with contextlib.suppress(FFmpegError):  # no list either: the encode's error stands
            ffmpeg.require_capabilities()
        _raise_if_undecodable(src, src_format, timeout_s=timeout_s, cause=err)
        raise


def _raise_if_undecodable(src: Path, src_format: str, *, timeout_s: float,
                          cause: FFmpegError) -> None:
    """Tell a broken source from our own failure: decode it alone, stopping at any error.

    Raises:
        CorruptMedia: the source's video does not decode.
    """
    try:
        ffmpeg.run(decode_check_args(src, src_format), timeout_s=timeout_s)
    except FFmpegTimeout:
        return  # inconclusive: report the original failure
    except FFmpegError as err:
        raise CorruptMedia(f"the video cannot be decoded: {err.stderr_tail.strip()[-300:]}",
                           details={"stderr": err.stderr_tail,
                                    "encode_stderr": cause.stderr_tail}) from cause


def _measure_loudness(src: Path, src_format: str, *, trim_s: float | None,
                      timeout_s: float) -> Loudness | None:
    """First loudnorm pass; None for silence (nothing to normalise).

    Raises:
        ProcessingFailed: loudnorm printed no measurement.
        FFmpegError, FFmpegTimeout: ffmpeg failed.
    """
    done = ffmpeg.run(loudness_args(src, src_format, trim_s=trim_s), timeout_s=timeout_s)
    return parse_loudness(done.stderr_tail)



def _floor_kbps(g: Geometry, t: VideoTarget) -> int:
    fps = float(t.fps or 30)
    return max(MIN_VIDEO_KBPS, int(g.width * g.height * fps * MIN_BITS_PER_PIXEL / 1000))


def _shrink(g: Geometry, t: VideoTarget) -> Geometry | None:
    """The same picture 25 % smaller, or None at the preset's (or our) minimum size."""
    floor = max(t.min_width / g.width, t.min_height / g.height,
                MIN_SHORT_SIDE / min(g.width, g.height))
    step = max(SHRINK_STEP, floor)
    if step >= 1.0:
        return None

    def s(n: int) -> int:
        return round_even(n * step)

    new = replace(g, width=s(g.width), height=s(g.height), content_width=s(g.content_width),
                  content_height=s(g.content_height))
    if (new.width, new.height) == (g.width, g.height):
        return None
    return new
