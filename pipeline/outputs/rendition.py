"""One rendition, made: render (video or image engine) → probe → verify → store.

Every variant that shares the output must accept it (``Rendition.variants``); the stored entry
(:class:`~pipeline.outputs.stored.StoredRendition`) is what ``meta.json`` and the manifest report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .. import probe
from ..files import sha256_file
from ..image import HeifCache, render_image
from ..manifest import Output
from ..models import MediaInfo
from ..plan import (
    ENCODER_VERSION,
    ImageTarget,
    Rendition,
    VideoTarget,
    low_resolution_warning,
)
from ..presets import Variant
from ..vision.sampling import KEYFRAME_PASS_MAX_S
from ..vision.subject import (
    SAMPLE_FRAMES,
    Subjects,
    looks_at,
    picture_region,
    sample_subjects,
    surface_warnings,
    warm_up,
)
from ..vision.tap import SubjectTap
from . import verify
from .run import Run
from .stored import StoredRendition, asset_key, store_output


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A delivered file on local disk and what probing it found."""

    path: Path
    info: MediaInfo


@dataclass(frozen=True, slots=True)
class Made:
    """A rendition this run has for its accounts: made now, or reused from storage.

    ``local`` is the file made now (a cover frame is taken from it); a reused rendition has
    none, and its cover fetches the stored file named by ``entry.key``. ``surface_warnings``
    are this job's ``subject_under_ui`` warnings: they name its surfaces, so they go to its
    manifest only, never into the shared stored entry.
    """

    entry: StoredRendition
    uri: str
    local: LocalFile | None = None
    surface_warnings: tuple[str, ...] = ()

    def output(self) -> Output:
        """The output as the manifest reads it: the stored entry, with this job's surface
        warnings added, and where it is."""
        warnings = tuple(dict.fromkeys([*self.entry.warnings, *self.surface_warnings]))
        return Output(dataclasses.replace(self.entry, warnings=warnings), self.uri)


@dataclass(frozen=True, slots=True)
class _Rendered:
    """What an engine wrote, probed, with what it did beyond the plan."""

    path: Path
    info: MediaInfo
    mime: str
    actions: tuple[str, ...]
    warnings: tuple[str, ...]


def make_rendition(run: Run, r: Rendition, *, first_pass: Path | None,
                   heif_cache: HeifCache) -> Made:
    """Render ``r``, check it against every variant sharing it, and store it.

    Args:
        run: the job's run.
        r: the planned rendition.
        first_pass: its first pass, when a shared decode already encoded it.
        heif_cache: the decoded HEIF picture of its source, shared by that source's outputs.

    Raises:
        PipelineError: rendering, verification or storing failed (see :func:`produce._guard`).
    """
    variants = list(r.variants)
    out = run.paths.output(r.key, r.name)
    target = r.target
    tap = _tap(run, r, target, first_pass, variants)
    try:
        if isinstance(target, VideoTarget):
            done = _render_video(run, r, target, out, first_pass, variants, tap)
        else:
            done = _render_image(run, r, target, out, heif_cache, variants)
        # a face under a surface's UI warns, never fails
        subjects = _tapped(tap, done, variants, run.tool_timeout_s()) or sample_subjects(
            done.path, done.info, variants, timeout_s=run.tool_timeout_s(),
            picture=picture_region(target.geometry))
    finally:
        if tap is not None:
            tap.close()
    entry = _entry(r, done, subjects)
    stored = store_output(run.storage, done.path, entry, r.key,
                          object_metadata(r.source_sha256), deadline=run.deadline)
    return Made(entry, stored.uri, LocalFile(done.path, done.info),
                surface_warnings(subjects or (), variants))


TAP_WAIT_S = 5.0  # the most the check waits for the tap after the encode


def _tap(run: Run, r: Rendition, target: VideoTarget | ImageTarget, first_pass: Path | None,
         variants: list[Variant]) -> SubjectTap | None:
    """The subject check's copy of the encode, for a video it will look at that this
    rendition encodes itself (:mod:`pipeline.vision.tap`); OpenCV starts loading now too."""
    if not isinstance(target, VideoTarget) or not looks_at(variants, target.geometry.width,
                                                           target.geometry.height):
        return None
    from ..video import output_length

    warm_up()  # OpenCV loads during the encode, not after it
    _, info = run.source_of(r.ref)
    length_s = output_length(target, info.duration_s or 0.0)
    fps = target.fps or (info.video.fps if info.video else None)
    if (target.action != "transcode" or first_pass is not None or not fps
            or not 0 < length_s <= KEYFRAME_PASS_MAX_S
            # a slice shorter than the keyframe interval: the file is decoded whole after
            # all (sampling.keyframe_in_every_slice), so the tap would only cost
            or target.gop_frames / float(fps) > length_s / SAMPLE_FRAMES):
        return None
    return SubjectTap(target.geometry.width, target.geometry.height, length_s,
                      timeout_s=run.tool_timeout_s(), picture=picture_region(target.geometry))


def _tapped(tap: SubjectTap | None, done: _Rendered, variants: list[Variant],
            timeout_s: float) -> Subjects | None:
    """The check's boxes from the tap, when it has them for the delivered file (the same
    boxes the file gives: :mod:`pipeline.vision.tap`); None sends the check to the file."""
    if tap is None or not looks_at(variants, done.info.width, done.info.height):
        return None
    # the decoder ends with the encode; a face search not done by then is done again
    return tap.subjects(done.info, timeout_s=min(TAP_WAIT_S, timeout_s))


def reuse(run: Run, r: Rendition, entry: StoredRendition) -> Made:
    """A rendition an earlier run stored, standing in for a fresh one (``reused`` first).

    The earlier run may belong to another workspace: the stored entry names no surface, and
    this job's UI warnings come from the subject boxes it recorded.
    """
    return Made(dataclasses.replace(entry, actions=("reused", *entry.actions)),
                run.storage.uri(entry.key),
                surface_warnings=surface_warnings(entry.subjects or (), r.variants))


def _render_video(run: Run, r: Rendition, target: VideoTarget, out: Path,
                  first_pass: Path | None, variants: list[Variant],
                  tap: SubjectTap | None) -> _Rendered:
    from ..video import render_video

    src, info = run.source_of(r.ref)
    result = render_video(
        src.path, info.format_name, target, out,
        duration_s=info.duration_s or 0.0, timeout_s=run.tool_timeout_s(),
        on_progress=lambda f: run.emit("encode", "progress", f, r.name),
        first_pass=first_pass, tap=tap,
    )
    out_info = probe.probe(result.path, timeout_s=run.settings.probe_timeout_s,
                           own_output=True)
    for variant in variants:
        assert variant.video is not None
        verify.require(verify.check_video(out_info, variant.video, target,
                                          info.duration_s or 0.0), r.name)
    mime = "video/quicktime" if out_info.format_name == "mov" else "video/mp4"
    return _Rendered(result.path, out_info, mime, result.extra_actions, result.warnings)


def _render_image(run: Run, r: Rendition, target: ImageTarget, out: Path,
                  heif_cache: HeifCache, variants: list[Variant]) -> _Rendered:
    src, info = run.source_of(r.ref)
    result = render_image(src.path, info.format_name, target, out, heif_cache=heif_cache)
    out_info = probe.probe(result.path, max_pixels=run.settings.max_image_pixels)
    for variant in variants:
        assert variant.image is not None
        verify.require(verify.check_image(out_info, variant.image, target), r.name)
    return _Rendered(result.path, out_info, result.mime, result.extra_actions, result.warnings)


def _entry(r: Rendition, done: _Rendered, subjects: Subjects | None) -> StoredRendition:
    """The stored entry: the plan's actions and warnings, then what rendering added.

    Every job whose output has this content key shares it, so nothing in it may depend on
    the job beyond the key: the file is named after its kind (``video.mp4``), not after the
    variant of the job that happened to make it first.
    """
    actions = list(dict.fromkeys([*r.actions, *done.actions]))
    if "passed_through" in actions and len(actions) > 1 and done.actions:
        actions.remove("passed_through")
    video = r.target if isinstance(r.target, VideoTarget) else None
    warnings = [*r.warnings, *done.warnings]
    if video and (done.info.width, done.info.height) != (video.geometry.width,
                                                          video.geometry.height):
        warnings = _size_warnings(warnings, (done.info.width, done.info.height), r.variants)
    return StoredRendition(
        key=asset_key(r.key, asset_name(r)), kind="video" if video else "image", mime=done.mime,
        bytes=done.path.stat().st_size, sha256=sha256_file(done.path),
        width=done.info.width, height=done.info.height,
        duration_ms=done.info.duration_ms if video else None, actions=tuple(actions),
        warnings=tuple(dict.fromkeys(warnings)),
        reframe=tuple(shot.to_dict(video.geometry) for shot in video.reframe)
        if video and video.reframe else None, subjects=subjects)


def _size_warnings(warnings: list[str], size: tuple[int, int],
                   variants: Iterable[Variant]) -> list[str]:
    """The warnings with ``low_resolution`` told from the delivered file's ``size``.

    A byte-budget retry delivers a smaller picture than planned (``resized``), which can take
    it below a surface's recommended size: the plan's warnings described the planned size.
    """
    kept = [w for w in warnings if not w.startswith("low_resolution:")]
    return kept + [w for v in variants if v.video is not None
                   and (w := low_resolution_warning(size, v.video, v.id)) is not None]


def asset_name(r: Rendition) -> str:
    """The stored file's name: its kind and the extension planned for it (``video.mp4``)."""
    kind = "video" if isinstance(r.target, VideoTarget) else "image"
    return f"{kind}{Path(r.name).suffix}"


def object_metadata(source_sha256: str) -> dict[str, str]:
    """What a stored output carries about its origin (S3 user metadata; also in meta.json).

    An output is stored once for every job, of any workspace, whose output has the same
    content key, and anyone it is served to may read its metadata and meta.json. So they hold
    only inputs of the content key (the source's bytes, the encoder version) and never the
    workspace, job, account, preset or variant that made it first; the job's own manifest
    (under ``manifests/<workspace>/``) records those for its tenant alone.
    """
    return {"source-sha256": source_sha256, "encoder-version": ENCODER_VERSION}
