"""The job, end to end, in one explicit sequence: ingest → probe → validate → plan → render →
verify → store → manifest (written last).

One failing medium or account never stops the others; the manifest says what happened to each.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, cover, framing, ingest, probe, verify, workdir
from .deadline import Deadline
from .errors import (
    ConfigError,
    CorruptMedia,
    DeadlineExceeded,
    FFmpegTimeout,
    Interrupted,
    JobInvalid,
    PipelineError,
    StorageError,
    StorageNotFound,
)
from .files import sha256_file
from .image import HeifCache, render_image
from .manifest import Manifest as Manifest
from .manifest import Output, build_manifest
from .models import (
    AccountCheck,
    ErrorInfo,
    Job,
    JobEvent,
    LocalMedia,
    MediaInfo,
    MediaRef,
    Probed,
)
from .plan import (
    ENCODER_VERSION,
    CoverPlan,
    JobPlan,
    Rendition,
    Use,
    VideoTarget,
    account_preset,
    plan_job,
)
from .presets import PresetRegistry, load_presets
from .settings import Settings
from .storage import IMMUTABLE, Storage, StoredObject, open_storage
from .validate import check_account

log = logging.getLogger(__name__)

EventCallback = Callable[[JobEvent], None]


def asset_key(key: str, name: str) -> str:
    """Storage key of a content-addressed output."""
    return f"assets/{key[:2]}/{key[2:]}/{name}"


def _meta_key(key: str) -> str:
    return f"assets/{key[:2]}/{key[2:]}/meta.json"


def manifest_key(workspace_id: str, job_id: str) -> str:
    """Storage key of a job's manifest: scoped by workspace, so tenants never share one.

    Job ids are chosen by the client: ``post-42`` of two workspaces are two jobs. A job
    without a workspace (a :class:`Job` a library caller built with ``workspace_id=""``;
    parsed jobs always have one) keeps the unscoped key of earlier versions.
    """
    return f"manifests/{workspace_id}/{job_id}.json" if workspace_id else \
        f"manifests/{job_id}.json"


def _check_workspace(job: Job, settings: Settings) -> None:
    """Refuse a job of another workspace than the pinned one (a library caller's Job too).

    Raises:
        JobInvalid: the job names another workspace than ``settings.workspace``.
    """
    if settings.workspace is not None and job.workspace_id != settings.workspace:
        raise JobInvalid([("workspace_id", "not the workspace this conform serves")])


def _check_destination(storage: Storage, settings: Settings, job: Job) -> None:
    """Fail before any work when nothing could be stored, or the asked-for URLs can't be made.

    Raises:
        ConfigError: an unusable ``--public-base-url`` or ``--presign``, ``--presign`` on a
            destination that can't sign URLs, or a job id that makes no valid key.
        StorageRejected: no such bucket, or the destination is not a folder.
        StoragePermissionError: access denied, bad or missing credentials.
        StorageError: the store can't be reached (retryable).
    """
    key = manifest_key(job.workspace_id, job.id)
    storage.uri(key)  # validates the key
    if settings.public_base_url is not None or settings.presign_s is not None:
        url = storage.public_url(key, base_url=settings.public_base_url,
                                 presign_s=settings.presign_s)
        if url is None:
            raise ConfigError("--presign needs an s3:// destination: a local folder has no "
                              "URLs to sign (use --public-base-url for a folder served over "
                              "https)")
    storage.check()


def _object_metadata(job: Job, source_sha256: str, uses: Iterable[Use]) -> dict[str, str]:
    """What an object carries about its origin (S3 user metadata; also kept in meta.json).

    An object is stored once for every job that shares it, so this names the job and the
    presets that made it first.
    """
    uses = list(uses)
    presets = {u.platform: u.preset for u in uses}
    versions = [f"{p}={preset.version}" for p, preset in presets.items()]
    return {"source-sha256": source_sha256, "workspace-id": job.workspace_id, "job-id": job.id,
            "preset-id": ",".join(presets), "preset-version": ",".join(versions),
            "variant": ",".join(dict.fromkeys(u.variant_id for u in uses)),
            "encoder-version": ENCODER_VERSION, "pipeline-version": __version__}


def _add_urls(outputs: dict[str, Output], storage: Storage, settings: Settings) -> None:
    """Add ``url`` (public base URL or presigned GET) to every stored output, when asked."""
    if settings.public_base_url is None and settings.presign_s is None:
        return
    for out in outputs.values():
        if out.entry is None:
            continue
        url = storage.public_url(out.entry["key"], base_url=settings.public_base_url,
                                 presign_s=settings.presign_s)
        if url is not None:
            out.entry["url"] = url


def _store_manifest(manifest: Manifest, storage: Storage) -> StoredObject:
    """Write the manifest, the job's commit marker: every output it names is already stored.

    Raises:
        StorageError: it could not be written (retryable or not, as the store said); the
            outputs stay stored and a re-run reuses them.
    """
    body = json.dumps(manifest.to_dict(), indent=2, sort_keys=False).encode() + b"\n"
    try:
        # no-cache: unlike the assets, a manifest is rewritten by every run of the job
        return storage.put_bytes(body, manifest_key(manifest.workspace_id, manifest.job_id),
                                 content_type="application/json", cache_control="no-cache")
    except StorageError as err:
        raise type(err)(f"the manifest was not written, so no output of job {manifest.job_id} "
                        f"is published: {err.message}", details=err.details) from err


# --------------------------------------------------------------------------- the job


def process(job: Job, *, settings: Settings | None = None, presets: PresetRegistry | None = None,
            storage: Storage | None = None, on_event: EventCallback | None = None) -> Manifest:
    """Run one job and store its outputs and manifest.

    Args:
        job: a parsed job (see :func:`pipeline.job.parse_job`).
        settings: configuration; defaults to :meth:`Settings.from_env`.
        presets: the preset registry; defaults to the bundled presets plus ``settings.presets_dir``.
        storage: where outputs go; defaults to ``open_storage(settings.dest)``.
        on_event: progress callback.

    Returns:
        The manifest (also stored at ``manifests/<workspace_id>/<job_id>.json``). A job that
        runs out of ``settings.job_deadline_s`` still gets one: the outputs not made by then
        fail their accounts with ``deadline_exceeded`` (not retryable: the same job would
        run out again).

    Raises:
        JobInvalid: the job names another workspace than the pinned ``settings.workspace``.
        ConfigError: ffmpeg missing or unusable settings (destination, ``public_base_url``,
            ``presign_s``).
        StorageError: the destination is unusable (checked before any work: no such bucket,
            access denied, unreachable) or the manifest itself could not be written. A
            failed output is not raised: it fails its accounts in the manifest.
        Interrupted: stopped by a signal.
    """
    settings = settings or Settings.from_env()
    presets = presets or load_presets(settings.presets_dir)
    _check_workspace(job, settings)
    storage = storage or open_storage(settings.dest, endpoint_url=settings.endpoint_url)
    _check_destination(storage, settings, job)
    probe.setup_pillow(settings.max_image_pixels, settings.max_decode_bytes)
    deadline = Deadline(settings.job_deadline_s)
    emit = _emitter(job.id, on_event)
    with workdir.run_folder(settings.workdir, f"{job.workspace_id[:20]}-{job.id[:40]}-"
                            ) as folder:
        # The steps, in order: ingest -> probe -> validate -> plan -> render -> store ->
        # manifest. Each past the first reads the one run record.
        emit("ingest", "start")
        sources, probed, thumbs = _ingest_all(job, presets, settings, folder, deadline)
        emit("ingest", "done")
        run = Run(job=job, settings=settings, presets=presets, storage=storage, workdir=folder,
                  deadline=deadline, emit=emit, sources=sources, probed=probed, thumbs=thumbs)
        jobplan = _plan_with_framing(job, _validate(run), sources, probed, thumbs,
                                     settings=settings, deadline=deadline)
        outputs = _produce(run, jobplan)
        _add_urls(outputs, storage, settings)
        return _publish(run, jobplan, outputs)


@dataclass(frozen=True, slots=True)
class Run:
    """One job's run: what every step after ingest reads (no step hands another a dict)."""

    job: Job
    settings: Settings
    presets: PresetRegistry
    storage: Storage
    workdir: Path
    deadline: Deadline
    emit: Callable[..., None]
    sources: dict[str, LocalMedia]
    probed: dict[MediaRef, Probed]
    thumbs: dict[str, MediaInfo]


def _validate(run: Run) -> list[AccountCheck]:
    """Every account judged on its own (counts, variants, durations, covers)."""
    return [check_account(run.job, acc, account_preset(acc, run.presets), run.probed)
            for acc in run.job.accounts]


def _publish(run: Run, jobplan: JobPlan, outputs: dict[str, Output]) -> Manifest:
    """Build the manifest and store it last: the job's commit marker.

    Raises:
        StorageError: the manifest could not be written.
    """
    manifest = build_manifest(run.job, jobplan, outputs, run.presets,
                              pipeline_version=__version__)
    run.emit("manifest", "start")
    stored = _store_manifest(manifest, run.storage)
    run.emit("manifest", "done")
    return dataclasses.replace(manifest, uri=stored.uri)


def plan(job: Job, *, settings: Settings | None = None,
         presets: PresetRegistry | None = None) -> JobPlan:
    """Fetch and probe the job's media, validate every account and plan the outputs.

    Nothing is written to the destination: this is what ``conform plan`` shows.

    Raises:
        JobInvalid: the job names another workspace than the pinned ``settings.workspace``.
        ConfigError: ffmpeg missing or unusable settings.
        Interrupted: stopped by a signal.
    """
    settings = settings or Settings.from_env()
    _check_workspace(job, settings)
    presets = presets or load_presets(settings.presets_dir)
    probe.setup_pillow(settings.max_image_pixels, settings.max_decode_bytes)
    deadline = Deadline(settings.job_deadline_s)
    with workdir.run_folder(settings.workdir, f"plan-{job.id[:40]}-") as folder:
        sources, probed, thumbs = _ingest_all(job, presets, settings, folder, deadline)
        checks = [check_account(job, acc, account_preset(acc, presets), probed)
                  for acc in job.accounts]
        return _plan_with_framing(job, checks, sources, probed, thumbs, settings=settings,
                                  deadline=deadline)


def _plan_with_framing(job: Job, checks: list[AccountCheck], sources: dict[str, LocalMedia],
                       probed: dict[MediaRef, Probed], thumbs: dict[str, MediaInfo], *,
                       settings: Settings, deadline: Deadline) -> JobPlan:
    """Plan the outputs; smart-framed ones are analysed first, then planned with their path.

    Raises:
        Interrupted: stopped by a signal while analysing.
    """
    sha_of = {k: v.sha256 for k, v in sources.items()}
    jobplan = plan_job(checks, sha_of=sha_of, thumb_infos=thumbs,
                       x264_preset=settings.x264_preset, fit=job.fit)
    needed = framing.framing_jobs(jobplan)
    if not needed:
        return jobplan
    if deadline.remaining() <= 0:
        # Out of time: every output then fails as deadline_exceeded, and the manifest says so
        # (a raise here would lose the manifest; see _guard).
        return jobplan
    infos = {str(k): v for k, v in probed.items() if isinstance(v, MediaInfo)}
    found = framing.analyse(needed, {k: v.path for k, v in sources.items()}, infos,
                            timeout_s=min(settings.ffmpeg_timeout_s, deadline.remaining()))
    return plan_job(checks, sha_of=sha_of, thumb_infos=thumbs, x264_preset=settings.x264_preset,
                    fit=job.fit, reframes=found)


def _emitter(job_id: str, on_event: EventCallback | None) -> Callable[..., None]:
    def emit(stage: str, kind: str, pct: float | None = None, detail: str | None = None) -> None:
        if on_event is not None:
            on_event(JobEvent(job_id, stage, kind, pct, detail))  # type: ignore[arg-type]
    return emit


# --------------------------------------------------------------------------- ingest


def _needed_refs(job: Job, presets: PresetRegistry) -> tuple[list[MediaRef], MediaRef | None]:
    """Media that at least one account will publish, and the cover thumbnail if one is used."""
    threads = any((p := presets.get(a.platform)) is not None and p.limits.thread
                  for a in job.accounts)
    items = job.content if threads else job.content[:1]
    refs: list[MediaRef] = []
    for item in items:
        for ref in item.media:
            if ref not in refs:
                refs.append(ref)
    first_cover = job.content[0].cover
    thumb = first_cover.thumbnail if first_cover else None
    return refs, thumb


def _ingest_all(job: Job, presets: PresetRegistry, settings: Settings, workdir: Path,
                deadline: Deadline
                ) -> tuple[dict[str, LocalMedia], dict[MediaRef, Probed], dict[str, MediaInfo]]:
    refs, thumb = _needed_refs(job, presets)
    sources: dict[str, LocalMedia] = {}
    probed: dict[MediaRef, Probed] = {}
    by_sha: dict[str, Probed] = {}
    thumbs: dict[str, MediaInfo] = {}
    for ref in [*refs, *([thumb] if thumb else [])]:
        if ref in probed:
            continue
        try:
            # Inside the try: a medium the deadline left no time for fails its accounts in
            # the manifest, like any other source problem.
            deadline.check("ingest")
            local = ingest.fetch(ref, workdir / "src", settings=settings,
                                 workspace_id=job.workspace_id,
                                 deadline_s=deadline.remaining())
            sources[str(ref)] = local
            if local.sha256 in by_sha:  # the same bytes under another name: probe once
                probed[ref] = by_sha[local.sha256]
                continue
            info = probe.probe(local.path, timeout_s=min(settings.probe_timeout_s,
                                                         deadline.remaining()),
                               max_pixels=settings.max_image_pixels,
                               max_frames=settings.max_animation_frames,
                               max_video_side_px=settings.max_video_side_px,
                               max_video_pixels=settings.max_video_pixels,
                               max_decode_bytes=settings.max_decode_bytes)
            probed[ref] = by_sha[local.sha256] = info
        except Interrupted:
            raise
        except PipelineError as err:
            log.info("job %s: %s: %s", job.id, ref, err.message)
            probed[ref] = err
    if thumb is not None and isinstance(probed.get(thumb), MediaInfo):
        thumbs[str(thumb)] = probed[thumb]  # type: ignore[assignment]
    return sources, probed, thumbs


# --------------------------------------------------------------------------- produce


def _produce(run: Run, jobplan: JobPlan) -> dict[str, Output]:
    """Make (or reuse) every rendition, then every cover: what each content key became.

    Raises:
        Interrupted: stopped by a signal. Anything else fails its output (see :func:`_guard`).
    """
    job, deadline, emit = run.job, run.deadline, run.emit
    outputs: dict[str, Output] = {}
    delivered: dict[str, tuple[Path, MediaInfo]] = {}
    total = len(jobplan.renditions) + len(jobplan.covers)
    done = 0
    prerendered = _render_shared_decodes(run, jobplan)
    heif_cache = HeifCache()
    # Outputs of one source are made one after the other, so a decoded HEIC is held only while
    # its own outputs are made (and decoded once for all of them).
    first_seen = {ref: i for i, ref in reversed(list(enumerate(
        r.ref_text for r in jobplan.renditions)))}
    ordered = sorted(jobplan.renditions, key=lambda r: first_seen[r.ref_text])
    try:
        for index, rendition in enumerate(ordered):
            if index and ordered[index - 1].ref_text != rendition.ref_text:
                heif_cache.clear()
            emit("render", "start", done / max(total, 1), rendition.name)
            outputs[rendition.key] = _guard(
                functools.partial(_make_rendition, run, rendition, delivered=delivered,
                                  prerendered=prerendered, heif_cache=heif_cache),
                job.id, rendition.name, deadline=deadline, stage="render")
            done += 1
    finally:
        heif_cache.clear()  # on a deadline or a signal too: it holds decode budget
    for cplan in jobplan.covers:
        emit("cover", "start", done / max(total, 1))
        failed = outputs.get(cplan.rendition_key, Output()).error
        if cplan.target.source == "frame" and failed is not None:
            # The frame comes from the delivered video: no video, no cover (same code, so a
            # retryable video failure keeps the account retryable).
            outputs[cplan.key] = Output(error=ErrorInfo(
                failed.code, f"not made: the video it is taken from failed ({failed.message})",
                failed.http_status, retryable=failed.retryable))
        else:
            outputs[cplan.key] = _guard(
                functools.partial(_make_cover, run, cplan, jobplan, delivered=delivered),
                job.id, "cover", deadline=deadline, stage="cover")
        done += 1
    emit("render", "done", 1.0)
    return outputs


def _render_shared_decodes(run: Run, jobplan: JobPlan) -> dict[str, Path | PipelineError]:
    """First passes of the encodes planned to share one decode (``jobplan.decodes``).

    Each group runs as one ffmpeg process (decode once, ``split``, several encoders) and
    writes every output where :func:`_make_rendition` expects it, which then only checks the
    byte cap, verifies and stores. Outputs an earlier run stored are left out. A failed group
    is not an error by itself: its members are encoded one by one, except when the source is
    corrupt or time ran out, which would fail each of them the same way.
    """
    from .video import render_shared

    job, settings, storage, workdir = run.job, run.settings, run.storage, run.workdir
    deadline, emit, sources, probed = run.deadline, run.emit, run.sources, run.probed
    made: dict[str, Path | PipelineError] = {}
    by_key = {r.key: r for r in jobplan.renditions}
    for keys in jobplan.decodes:
        todo = [by_key[k] for k in keys if settings.force or _load_meta(
            storage, k, workdir, max_bytes=by_key[k].target.max_bytes) is None]
        if len(todo) < 2:
            continue
        if deadline.expired():
            break  # each output then fails on its own with deadline_exceeded
        src = sources[todo[0].ref_text]
        info = probed[todo[0].ref]
        assert isinstance(info, MediaInfo)
        outs: list[tuple[VideoTarget, Path]] = []
        for r in todo:
            assert isinstance(r.target, VideoTarget)
            out_dir = workdir / "out" / r.key[:16]
            out_dir.mkdir(parents=True, exist_ok=True)
            outs.append((r.target, out_dir / r.name))
        names = "+".join(r.name for r in todo)
        emit("render", "start", None, f"{names} (one decode)")

        def progress(fraction: float, names: str = names) -> None:
            emit("encode", "progress", fraction, names)

        try:
            render_shared(src.path, info.format_name, outs, duration_s=info.duration_s or 0.0,
                          timeout_s=min(settings.ffmpeg_timeout_s, deadline.remaining()),
                          on_progress=progress)
        except Interrupted:
            raise
        except (CorruptMedia, FFmpegTimeout, DeadlineExceeded) as err:
            made.update({r.key: err for r in todo})
            continue
        except (PipelineError, ValueError) as err:
            # ValueError: targets the graph builder will not put behind one split (a planning
            # slip); encoding them one by one is always possible.
            log.warning("job %s: shared decode of %s failed, encoding each on its own: %s",
                        job.id, names, getattr(err, "message", err))
            continue
        made.update({r.key: path for r, (_, path) in zip(todo, outs, strict=True)})
    return made


def _guard(make: Callable[[], dict[str, Any]], job_id: str, what: str, *,
           deadline: Deadline, stage: str) -> Output:
    """Run one output's production; errors become the manifest's, never a traceback.

    The deadline is checked first: past it, the output fails with ``deadline_exceeded``
    and the manifest is still written, so a caller sees a permanent failure, not a crash.
    """
    try:
        deadline.check(stage)
        return Output(entry=make())
    except Interrupted:
        raise
    except PipelineError as err:
        log.warning("job %s: %s failed: %s", job_id, what, err.message)
        return Output(error=ErrorInfo.from_error(err))
    except Exception as err:
        log.exception("job %s: unexpected error producing %s", job_id, what)
        return Output(error=ErrorInfo.from_error(err))


#: What a reused entry must carry to stand in for a fresh one in the manifest.
_RENDITION_FIELDS = frozenset({"key", "kind", "mime", "bytes", "sha256", "width", "height",
                               "duration_ms", "actions", "warnings"})
_COVER_FIELDS = frozenset({"key", "mime", "bytes", "sha256", "width", "height", "warnings"})


def _load_meta(storage: Storage, key: str, workdir: Path, *,
               fields: frozenset[str] = _RENDITION_FIELDS,
               max_bytes: int | None = None) -> dict[str, Any] | None:
    """The entry of an output an earlier run finished, if it is intact; else ``None``.

    ``meta.json`` is written after its asset, so it only exists once the asset is stored; a
    crash between the two leaves no meta and the output is simply made again. The asset is
    then checked against the meta: it must sit in this output's folder, have the recorded
    size, and (where the store recorded one at upload, i.e. S3) the recorded sha256, so a
    reused entry reports exactly the bytes that are stored. Anything else is made again.

    Args:
        storage: the destination.
        key: the output's content address.
        workdir: where the meta document is fetched to.
        fields: what the entry must contain.
        max_bytes: the smallest byte cap of everyone sharing the output in this job (an
            earlier job may have shared it with other platforms only).

    Raises:
        StorageError: the store could not be asked (after retries).
    """
    meta_key = _meta_key(key)
    local = workdir / "meta" / f"{key}.json"
    try:
        storage.get_file(meta_key, local)  # no HEAD first: a missing meta is one 404
    except StorageNotFound:
        return None
    try:
        data = json.loads(local.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("%s is unreadable; making the output again", storage.uri(meta_key))
        return None
    folder = meta_key.rsplit("/", 1)[0] + "/"
    if (not isinstance(data, dict) or not fields <= data.keys()
            or not isinstance(data["key"], str) or not data["key"].startswith(folder)
            or "/" in data["key"][len(folder):] or data["key"] == meta_key
            or not isinstance(data["bytes"], int) or not isinstance(data["sha256"], str)):
        log.warning("%s does not describe an output; making it again", storage.uri(meta_key))
        return None
    if max_bytes is not None and data["bytes"] > max_bytes:
        return None  # made for platforms with larger caps; this job needs a smaller one
    try:
        head = storage.head(data["key"])
    except ConfigError:
        return None  # a key this version would not write
    if head is None:
        return None
    if head.size_bytes != data["bytes"] or (head.sha256 is not None
                                            and head.sha256 != data["sha256"]):
        log.warning("%s does not match its meta.json; making it again", head.uri)
        return None
    data["uri"] = head.uri
    return data


def _make_rendition(run: Run, r: Rendition, *, delivered: dict[str, tuple[Path, MediaInfo]],
                    prerendered: dict[str, Path | PipelineError] | None = None,
                    heif_cache: HeifCache | None = None) -> dict[str, Any]:
    job, settings, storage = run.job, run.settings, run.storage
    workdir, deadline, emit = run.workdir, run.deadline, run.emit
    sources, probed = run.sources, run.probed
    if not settings.force:
        meta = _load_meta(storage, r.key, workdir, max_bytes=r.target.max_bytes)
        if meta is not None:
            return {**meta, "uri": storage.uri(meta["key"]),
                    "actions": ["reused", *meta.get("actions", [])]}
    src = sources[r.ref_text]
    info = probed[r.ref]
    assert isinstance(info, MediaInfo)
    out_dir = workdir / "out" / r.key[:16]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / r.name
    extra_actions: tuple[str, ...] = ()
    extra_warnings: tuple[str, ...] = ()
    target = r.target
    if isinstance(target, VideoTarget):
        from .video import render_video

        shared = (prerendered or {}).get(r.key)
        if isinstance(shared, PipelineError):
            raise shared  # the shared decode found the source broken or ran out of time
        result = render_video(
            src.path, info.format_name, target, out,
            duration_s=info.duration_s or 0.0,
            timeout_s=min(settings.ffmpeg_timeout_s, deadline.remaining()),
            on_progress=lambda f: emit("encode", "progress", f, r.name),
            first_pass=shared,
        )
        out, extra_actions, extra_warnings = result.path, result.extra_actions, result.warnings
        out_info = probe.probe(out, timeout_s=settings.probe_timeout_s)
        for variant in r.variants:
            assert variant.video is not None
            verify.require(verify.check_video(out_info, variant.video, target,
                                                info.duration_s or 0.0), r.name)
        mime = "video/quicktime" if out_info.format_name == "mov" else "video/mp4"
    else:
        iresult = render_image(src.path, info.format_name, target, out, heif_cache=heif_cache)
        extra_actions, extra_warnings = iresult.extra_actions, iresult.warnings
        out = iresult.path
        out_info = probe.probe(out, max_pixels=settings.max_image_pixels)
        for variant in r.variants:
            assert variant.image is not None
            verify.require(verify.check_image(out_info, variant.image, target), r.name)
        mime = iresult.mime
    from .subject import ui_warnings  # a face under a surface's UI warns, never fails

    extra_warnings += ui_warnings(out, out_info, list(r.variants),
                                  timeout_s=min(settings.ffmpeg_timeout_s, deadline.remaining()))
    sha = sha256_file(out)
    key = asset_key(r.key, r.name)
    actions = list(dict.fromkeys([*r.actions, *extra_actions]))
    if "passed_through" in actions and len(actions) > 1 and extra_actions:
        actions.remove("passed_through")
    entry: dict[str, Any] = {
        "key": key, "kind": "video" if isinstance(target, VideoTarget) else "image",
        "mime": mime, "bytes": out.stat().st_size, "sha256": sha,
        "width": out_info.width, "height": out_info.height,
        "duration_ms": out_info.duration_ms if isinstance(target, VideoTarget) else None,
        "actions": actions, "warnings": list(dict.fromkeys([*r.warnings, *extra_warnings])),
    }
    if isinstance(target, VideoTarget) and target.reframe:
        entry["reframe"] = [shot.to_dict() for shot in target.reframe]  # also in meta.json
    origin = _object_metadata(job, r.source_sha256, r.uses)
    stored = _store_output(storage, out, key, r.key, entry, mime, origin)
    delivered[r.key] = (out, out_info)
    return {**entry, "uri": stored.uri}


def _make_cover(run: Run, c: CoverPlan, jobplan: JobPlan, *,
                delivered: dict[str, tuple[Path, MediaInfo]]) -> dict[str, Any]:
    job, settings, storage = run.job, run.settings, run.storage
    workdir, deadline, sources, thumbs = run.workdir, run.deadline, run.sources, run.thumbs
    if not settings.force:
        meta = _load_meta(storage, c.key, workdir, fields=_COVER_FIELDS,
                          max_bytes=c.target.max_bytes)
        if meta is not None:
            return {**meta, "uri": storage.uri(meta["key"])}
    cdir = workdir / "covers" / c.key[:16]
    cdir.mkdir(parents=True, exist_ok=True)
    t = c.target
    if t.source == "frame":
        # Always the delivered file (made now, or reused from storage and fetched back), never
        # the source: the frame must show rotation, scaling, padding and tone mapping.
        video_path, video_info = delivered.get(c.rendition_key) or _fetch_delivered(
            c.rendition_key, jobplan, storage, cdir, settings)
        assert t.at_ms is not None
        result = cover.make_frame_cover(video_path, video_info, t.at_ms, t, cdir,
                                        timeout_s=min(settings.ffmpeg_timeout_s,
                                                      deadline.remaining()))
    else:
        # By the job's reference, not by bytes: the thumbnail may also be one of the media.
        thumb = (sources.get(c.thumbnail_ref) if c.thumbnail_ref else None) or next(
            s for s in sources.values() if s.sha256 == c.thumbnail_sha256)
        result = cover.make_thumbnail_cover(thumb.path, thumbs[c.thumbnail_ref or str(thumb.ref)],
                                            t, cdir)
    name = f"cover.{result.path.suffix.lstrip('.')}"
    key = asset_key(c.key, name)
    entry: dict[str, Any] = {"key": key, "mime": result.mime, "bytes": result.path.stat().st_size,
                             "sha256": sha256_file(result.path),
                             "width": result.width, "height": result.height,
                             "warnings": list(result.warnings)}
    if t.source == "frame":
        entry["timestamp_ms"] = t.at_ms
    stored = _store_output(storage, result.path, key, c.key, entry, result.mime,
                           _cover_metadata(c, jobplan, job))
    return {**entry, "uri": stored.uri}


def _store_output(storage: Storage, path: Path, key: str, content_key: str,
                  entry: dict[str, Any], mime: str, origin: dict[str, str]) -> StoredObject:
    """Store an output, then its meta.json: the meta's existence means the asset is whole.

    Raises:
        StorageError: either write failed; without the meta a re-run makes the output again.
    """
    stored = storage.put_file(path, key, content_type=mime, cache_control=IMMUTABLE,
                              metadata=origin)
    # no-cache: unlike the asset, the meta is rewritten by --force or after a damaged upload
    storage.put_bytes(json.dumps({**entry, "origin": origin}).encode(), _meta_key(content_key),
                      content_type="application/json", cache_control="no-cache")
    return stored


def _cover_metadata(c: CoverPlan, jobplan: JobPlan, job: Job) -> dict[str, str]:
    """Origin metadata of a cover: the thumbnail (or the video) it was made from, its users."""
    r = next((x for x in jobplan.renditions if x.key == c.rendition_key), None)
    uses = [u for u in (r.uses if r else ()) if u.account_id in c.accounts]
    return _object_metadata(job, c.thumbnail_sha256 or (r.source_sha256 if r else ""), uses)


def _fetch_delivered(rkey: str, jobplan: JobPlan, storage: Storage, cdir: Path,
                     settings: Settings) -> tuple[Path, MediaInfo]:
    """A reused video is not on local disk: fetch it back to take the cover frame from it."""
    r = next(x for x in jobplan.renditions if x.key == rkey)
    # An earlier job may have stored it under another variant's name: its meta says where.
    meta = _load_meta(storage, rkey, cdir)
    local = storage.get_file(meta["key"] if meta else asset_key(rkey, r.name), cdir / r.name)
    return local, probe.probe(local, timeout_s=settings.probe_timeout_s)

