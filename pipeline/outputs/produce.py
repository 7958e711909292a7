"""Making a job's outputs, in order: reuse → shared decodes → renditions → covers.

Each step hands the next a typed, read-only result: what earlier runs stored (looked up once
per content key), the first passes of the encodes that share one decode, what each rendition
became (:class:`~pipeline.outputs.rendition.Made`, with the local file a cover frame is taken from).
A failing output never stops the others: it becomes its manifest error in :func:`_guard`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from .. import cover, probe
from ..errors import CorruptMedia, DeadlineExceeded, FFmpegTimeout, Interrupted, PipelineError
from ..files import sha256_file
from ..image import HeifCache
from ..manifest import Output
from ..models import ErrorInfo, MediaRef
from ..plan import CoverPlan, JobPlan, Rendition, VideoTarget
from ..vision import coversubject
from .rendition import LocalFile, Made, make_rendition, object_metadata, reuse
from .run import Run
from .stored import StoredCover, StoredRendition, asset_key, find_stored, store_output

log = logging.getLogger(__name__)

T = TypeVar("T")

#: What the reuse step found for a rendition: its stored entry, or why it could not look.
Looked = StoredRendition | ErrorInfo


def produce(run: Run, jobplan: JobPlan) -> dict[str, Output]:
    """Make (or reuse) every rendition, then every cover: what each content key became.

    Raises:
        Interrupted: stopped by a signal. Anything else fails its output (see :func:`_guard`).
    """
    stored = _find_reusable(run, jobplan.renditions)
    first = _render_shared_decodes(run, jobplan, stored)
    progress = _Progress(run, len(jobplan.renditions) + len(jobplan.covers))
    outputs, made = _make_renditions(run, jobplan, stored, first, progress)
    outputs.update(_make_covers(run, jobplan, outputs, made, progress))
    run.emit("render", "done", 1.0)
    return outputs


class _Progress:
    """Outputs started so far, as the fraction the ``start`` events report."""

    def __init__(self, run: Run, total: int) -> None:
        self._emit, self._total, self._done = run.emit, max(total, 1), 0

    def start(self, stage: str, detail: str | None = None) -> None:
        self._emit(stage, "start", self._done / self._total, detail)
        self._done += 1


def _failure(err: BaseException, job_id: str, what: str) -> ErrorInfo:
    """An output's error as the manifest reports it (logged: expected, or our bug)."""
    if isinstance(err, PipelineError):
        log.warning("job %s: %s failed: %s", job_id, what, err.message)
    else:
        log.error("job %s: unexpected error producing %s", job_id, what, exc_info=err)
    return ErrorInfo.from_error(err)


def _guard(make: Callable[[], T], run: Run, what: str, *, stage: str) -> T | ErrorInfo:
    """Run one output's production; errors become the manifest's, never a traceback.

    The deadline is checked first: past it, the output fails with ``deadline_exceeded``
    and the manifest is still written, so a caller sees a permanent failure, not a crash.
    """
    try:
        run.deadline.check(stage)
        return make()
    except Interrupted:
        raise
    except Exception as err:
        return _failure(err, run.job.id, what)


# --------------------------------------------------------------------------- the steps


def _find_reusable(run: Run, renditions: Iterable[Rendition]) -> Mapping[str, Looked]:
    """What earlier runs stored, looked up once per rendition before anything is made.

    A rendition missing here is made; one whose lookup failed (the store, the deadline)
    fails with that error. ``--force`` looks nothing up.
    """
    if run.settings.force:
        return MappingProxyType({})
    found: dict[str, Looked] = {}
    for r in renditions:
        looked = _guard(functools.partial(
            find_stored, run.storage, r.key, run.paths.meta(r.key), StoredRendition.from_json,
            max_bytes=r.target.max_bytes), run, r.name, stage="render")
        if looked is not None:
            found[r.key] = looked
    return MappingProxyType(found)


@dataclass(frozen=True, slots=True)
class FirstPasses:
    """What the shared decodes left: first passes to finish, renditions already failed."""

    paths: Mapping[str, Path]
    failed: Mapping[str, ErrorInfo]


def _render_shared_decodes(run: Run, jobplan: JobPlan,
                           stored: Mapping[str, Looked]) -> FirstPasses:
    """First passes of the encodes planned to share one decode (``jobplan.decodes``).

    Each group runs as one ffmpeg process (decode once, ``split``, several encoders) and
    writes every output where :func:`~pipeline.outputs.rendition.make_rendition` expects it (see
    :meth:`~pipeline.outputs.run.WorkPaths.output`), which then only checks the byte cap,
    verifies and stores. Outputs an earlier run stored are left out. A failed group is not
    an error by itself: its members are encoded one by one, except when the source is corrupt
    or time ran out, which would fail each of them the same way: they fail here.
    """
    paths: dict[str, Path] = {}
    failed: dict[str, ErrorInfo] = {}
    by_key = {r.key: r for r in jobplan.renditions}
    for keys in jobplan.decodes:
        todo = [by_key[k] for k in keys if k not in stored]
        if len(todo) < 2:
            continue
        if run.deadline.expired():
            break  # each output then fails on its own with deadline_exceeded
        try:
            paths.update(_render_shared(run, todo))
        except Interrupted:
            raise
        except (CorruptMedia, FFmpegTimeout, DeadlineExceeded) as err:
            failed.update({r.key: _failure(err, run.job.id, r.name) for r in todo})
        except (PipelineError, ValueError) as err:
            # ValueError: targets the graph builder will not put behind one split (a planning
            # slip); encoding them one by one is always possible.
            log.warning("job %s: shared decode of %s failed, encoding each on its own: %s",
                        run.job.id, "+".join(r.name for r in todo),
                        getattr(err, "message", err))
    return FirstPasses(MappingProxyType(paths), MappingProxyType(failed))


def _render_shared(run: Run, todo: list[Rendition]) -> dict[str, Path]:
    """Encode ``todo`` (video renditions of one source) from one decode.

    Raises:
        PipelineError: the encode failed. ValueError: the targets can't share one split.
    """
    from ..video import render_shared

    src, info = run.source_of(todo[0].ref)
    outs: list[tuple[VideoTarget, Path]] = []
    for r in todo:
        assert isinstance(r.target, VideoTarget)
        outs.append((r.target, run.paths.output(r.key, r.name)))
    names = "+".join(r.name for r in todo)
    run.emit("render", "start", None, f"{names} (one decode)")
    render_shared(src.path, info.format_name, outs, duration_s=info.duration_s or 0.0,
                  timeout_s=run.tool_timeout_s(),
                  on_progress=lambda f: run.emit("encode", "progress", f, names))
    return {r.key: path for r, (_, path) in zip(todo, outs, strict=True)}


def _by_source(renditions: Iterable[Rendition]) -> list[list[Rendition]]:
    """Renditions grouped by their source, sources in order of first appearance."""
    groups: dict[MediaRef, list[Rendition]] = {}
    for r in renditions:
        groups.setdefault(r.ref, []).append(r)
    return list(groups.values())


def _make_renditions(run: Run, jobplan: JobPlan, stored: Mapping[str, Looked],
                     first: FirstPasses, progress: _Progress
                     ) -> tuple[dict[str, Output], Mapping[str, Made]]:
    """Every rendition's output, and what was delivered (the cover step reads it)."""
    outputs: dict[str, Output] = {}
    made: dict[str, Made] = {}
    for group in _by_source(jobplan.renditions):
        # One cache per source, its outputs made together: a decoded HEIC is held only
        # while they are made (and decoded once for all of them).
        heif_cache = HeifCache()
        try:
            for r in group:
                progress.start("render", r.name)
                result = _rendition(run, r, stored.get(r.key), first, heif_cache)
                if isinstance(result, ErrorInfo):
                    outputs[r.key] = Output(error=result)
                else:
                    made[r.key] = result
                    outputs[r.key] = result.output()
        finally:
            heif_cache.clear()  # on a deadline or a signal too: it holds decode budget
    return outputs, MappingProxyType(made)


def _rendition(run: Run, r: Rendition, looked: Looked | None, first: FirstPasses,
               heif_cache: HeifCache) -> Made | ErrorInfo:
    """One rendition: failed before (lookup, shared decode), reused, or made now."""
    if isinstance(looked, ErrorInfo):
        return looked
    if r.key in first.failed:
        return first.failed[r.key]
    make: Callable[[], Made] = (
        functools.partial(reuse, run, r, looked) if looked is not None else functools.partial(
            make_rendition, run, r, first_pass=first.paths.get(r.key), heif_cache=heif_cache))
    return _guard(make, run, r.name, stage="render")


def _make_covers(run: Run, jobplan: JobPlan, outputs: Mapping[str, Output],
                 made: Mapping[str, Made], progress: _Progress) -> dict[str, Output]:
    """Every cover's output; a frame cover needs its video delivered."""
    covers: dict[str, Output] = {}
    for c in jobplan.covers:
        progress.start("cover")
        failed = outputs.get(c.rendition_key, Output()).error
        if c.target.source == "frame" and failed is not None:
            # The frame comes from the delivered video: no video, no cover (same code, so a
            # retryable video failure keeps the account retryable).
            covers[c.key] = Output(error=ErrorInfo(
                failed.code, f"not made: the video it is taken from failed ({failed.message})",
                failed.http_status, retryable=failed.retryable))
            continue
        result = _guard(functools.partial(_make_cover, run, c, made), run, "cover",
                        stage="cover")
        covers[c.key] = Output(error=result) if isinstance(result, ErrorInfo) else Output(
            *result)
    return covers


def _make_cover(run: Run, c: CoverPlan, made: Mapping[str, Made]) -> tuple[StoredCover, str]:
    """Reuse or make one cover; its stored entry and URI."""
    if not run.settings.force:
        found = find_stored(run.storage, c.key, run.paths.meta(c.key), StoredCover.from_json,
                            max_bytes=c.target.max_bytes)
        if found is not None:
            return found, run.storage.uri(found.key)
    folder = run.paths.cover_folder(c.key)
    t = c.target
    if t.source == "frame":
        assert t.at_ms is not None
        video = _delivered_video(run, c, made, folder)
        result = cover.make_frame_cover(video.path, video.info, t.at_ms, t, folder,
                                        timeout_s=run.tool_timeout_s())
        result = _with_subject_check(run, c, t.at_ms, result)
    else:
        # By the job's reference, not by bytes: the thumbnail may also be one of the media.
        assert c.thumbnail is not None  # planned: a cover not from a frame has a thumbnail
        result = cover.make_thumbnail_cover(run.sources[c.thumbnail].path,
                                            run.thumbs[c.thumbnail], t, folder)
    entry = StoredCover(
        key=asset_key(c.key, f"cover.{result.path.suffix.lstrip('.')}"), mime=result.mime,
        bytes=result.path.stat().st_size, sha256=sha256_file(result.path),
        width=result.width, height=result.height, warnings=tuple(result.warnings),
        timestamp_ms=t.at_ms if t.source == "frame" else None)
    # A cover is shared like a rendition: its metadata names the bytes it was made from only.
    stored = store_output(run.storage, result.path, entry, c.key,
                          object_metadata(c.thumbnail_sha256 or c.video().source_sha256),
                          deadline=run.deadline)
    return entry, stored.uri


def _with_subject_check(run: Run, c: CoverPlan, at_ms: int,
                        result: cover.CoverResult) -> cover.CoverResult:
    """A smart-framed video's frame cover, warned when the window cuts its subject off
    (:mod:`pipeline.vision.coversubject`: looked for in the source, around the requested time)."""
    target = c.video().target
    if not isinstance(target, VideoTarget) or not target.reframe:
        return result
    source, info = run.source_of(c.video().ref)
    warning = coversubject.subject_cut_warning(source.path, info, target, at_ms,
                                               timeout_s=run.tool_timeout_s(),
                                               deadline=run.deadline)
    return replace(result, warnings=(*result.warnings, warning)) if warning else result


def _delivered_video(run: Run, c: CoverPlan, made: Mapping[str, Made],
                     folder: Path) -> LocalFile:
    """The delivered video a frame cover is taken from: made now, or fetched back.

    Never the source: the frame must show rotation, scaling, padding and tone mapping. A
    reused video is not on local disk; its stored entry says where it is (an earlier job may
    have stored it under another variant's name).
    """
    video = made[c.rendition_key]
    if video.local is not None:
        return video.local
    local = run.storage.get_file(video.entry.key, folder / c.video().name)
    return LocalFile(local, probe.probe(local, timeout_s=run.settings.probe_timeout_s))

