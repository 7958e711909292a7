"""The job, end to end, in one explicit sequence: ingest → probe → validate → plan → render →
verify → store → manifest (written last).

One failing medium or account never stops the others; the manifest says what happened to each.
The steps share one :class:`~pipeline.outputs.run.Run`; making the outputs (reuse, shared decodes,
renditions, covers) is :func:`pipeline.outputs.produce.produce`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass

from . import ingest, probe, workdir
from .deadline import Deadline
from .errors import ConfigError, Interrupted, JobInvalid, PipelineError, StorageError
from .manifest import Carried, Output, build_manifest
from .manifest import Manifest as Manifest
from .models import AccountCheck, Job, LocalMedia, MediaInfo, MediaRef, Probed
from .outputs import sidecars
from .outputs.produce import produce
from .outputs.run import EventCallback as EventCallback
from .outputs.run import Run as Run
from .outputs.run import WorkPaths, emitter
from .outputs.stored import asset_key as asset_key
from .plan import BurnSource, JobPlan, account_preset, plan_job
from .presets import PresetRegistry, load_presets
from .settings import Settings
from .storage import Storage, StoredObject, open_storage
from .validate import check_account
from .version import __version__
from .vision import framing

log = logging.getLogger(__name__)


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


def _with_urls(outputs: dict[str, Output], storage: Storage,
               settings: Settings) -> dict[str, Output]:
    """Every stored output with its ``url`` (public base URL or presigned GET), when asked."""
    if settings.public_base_url is None and settings.presign_s is None:
        return outputs
    return {key: out if out.stored is None else dataclasses.replace(
        out, url=storage.public_url(out.stored.key, base_url=settings.public_base_url,
                                    presign_s=settings.presign_s))
            for key, out in outputs.items()}


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
    emit = emitter(job.id, on_event)
    with workdir.run_folder(settings.workdir, f"{job.workspace_id[:20]}-{job.id[:40]}-"
                            ) as folder:
        # The steps, in order: ingest -> probe -> validate -> plan -> render -> store ->
        # manifest. Each past the first reads the one run record.
        paths = WorkPaths(folder)
        emit("ingest", "start")
        media = _ingest_all(job, presets, settings, paths, deadline)
        emit("ingest", "done")
        run = Run(job=job, settings=settings, presets=presets, storage=storage, paths=paths,
                  deadline=deadline, emit=emit, sources=media.sources, probed=media.probed,
                  thumbs=media.thumbs)
        jobplan = _plan_with_framing(job, _validate(run), media, settings, deadline)
        outputs = _with_urls(produce(run, jobplan), storage, settings)
        return _publish(run, jobplan, outputs, _captions(run, jobplan, media.captions))


def _validate(run: Run) -> list[AccountCheck]:
    """Every account judged on its own (counts, variants, durations, covers)."""
    return [check_account(run.job, acc, account_preset(acc, run.presets), run.probed)
            for acc in run.job.accounts]


def _captions(run: Run, jobplan: JobPlan, parsed: sidecars.Parsed) -> Carried:
    """Each account's caption files, stored beside its outputs (URLs added when asked for).

    Raises:
        Interrupted: stopped by a signal; a caption problem fails only its accounts.
    """
    settings = run.settings
    if not parsed:
        return {}

    def url_of(key: str) -> str | None:
        if settings.public_base_url is None and settings.presign_s is None:
            return None
        return run.storage.public_url(key, base_url=settings.public_base_url,
                                      presign_s=settings.presign_s)

    return sidecars.carry_captions(run.job, jobplan.accounts, parsed, run.storage, url_of)


def _publish(run: Run, jobplan: JobPlan, outputs: dict[str, Output],
             captions: Carried) -> Manifest:
    """Build the manifest and store it last: the job's commit marker.

    Raises:
        StorageError: the manifest could not be written.
    """
    manifest = build_manifest(run.job, jobplan, outputs, run.presets,
                              pipeline_version=__version__, captions=captions)
    run.emit("manifest", "start")
    stored = _store_manifest(manifest, run.storage)
    run.emit("manifest", "done")
    return dataclasses.replace(manifest, uri=stored.uri)


def dry_run(job: Job, *, settings: Settings | None = None,
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
        media = _ingest_all(job, presets, settings, WorkPaths(folder), deadline)
        probed = media.probed
        checks = [check_account(job, acc, account_preset(acc, presets), probed)
                  for acc in job.accounts]
        return _plan_with_framing(job, checks, media, settings, deadline)


def _plan_with_framing(job: Job, checks: list[AccountCheck], media: Ingested,
                       settings: Settings, deadline: Deadline) -> JobPlan:
    burn, unburnable = sidecars.burn_sources(job, media.captions)
    return _plan_framed(job, sidecars.fail_unburnable(checks, unburnable), media, settings,
                        deadline, burn)


def _plan_framed(job: Job, checks: list[AccountCheck], media: Ingested, settings: Settings,
                 deadline: Deadline, burn: dict[int, BurnSource]) -> JobPlan:
    """Plan the outputs; smart-framed ones are analysed first, then planned with their path.

    Raises:
        Interrupted: stopped by a signal while analysing.
    """
    sources, thumbs = media.sources, media.thumbs
    sha_of = {ref: local.sha256 for ref, local in sources.items()}
    jobplan = plan_job(checks, sha_of=sha_of, thumb_infos=thumbs,
                       x264_preset=settings.x264_preset, fit=job.fit, burn=burn)
    needed = framing.framing_jobs(jobplan)
    if not needed:
        return jobplan
    if deadline.expired():
        # Out of time: every output then fails as deadline_exceeded, and the manifest says so
        # (a raise here would lose the manifest; see _guard).
        return jobplan
    infos = {ref: info for ref, info in media.probed.items() if isinstance(info, MediaInfo)}
    found = framing.analyse(needed, {ref: local.path for ref, local in sources.items()}, infos,
                            deadline=deadline, timeout_s=settings.ffmpeg_timeout_s)
    return plan_job(checks, sha_of=sha_of, thumb_infos=thumbs, x264_preset=settings.x264_preset,
                    fit=job.fit, reframes=found, burn=burn)


# --------------------------------------------------------------------------- ingest


@dataclass(frozen=True, slots=True)
class Ingested:
    """The job's media as ingest left them: fetched, probed (or failed), the cover thumbnail.

    ``probed`` keeps each medium's error in place of its probe: validation fails the accounts
    that use it, and only those.
    """

    sources: dict[MediaRef, LocalMedia]
    probed: dict[MediaRef, Probed]
    thumbs: dict[MediaRef, MediaInfo]
    captions: sidecars.Parsed


def _used_items(job: Job, presets: PresetRegistry) -> range:
    """The content items at least one account publishes: all of a thread, else the first."""
    threads = any((p := presets.get(a.platform)) is not None and p.limits.thread
                  for a in job.accounts)
    return range(len(job.content) if threads else 1)


def _needed_refs(job: Job, presets: PresetRegistry) -> tuple[list[MediaRef], MediaRef | None]:
    """Media that at least one account will publish, and the cover thumbnail if one is used."""
    items = [job.content[i] for i in _used_items(job, presets)]
    refs: list[MediaRef] = []
    for item in items:
        for ref in item.media:
            if ref not in refs:
                refs.append(ref)
    first_cover = job.content[0].cover
    thumb = first_cover.thumbnail if first_cover else None
    return refs, thumb


def _ingest_all(job: Job, presets: PresetRegistry, settings: Settings, paths: WorkPaths,
                deadline: Deadline) -> Ingested:
    refs, thumb = _needed_refs(job, presets)
    sources: dict[MediaRef, LocalMedia] = {}
    probed: dict[MediaRef, Probed] = {}
    by_sha: dict[str, Probed] = {}
    thumbs: dict[MediaRef, MediaInfo] = {}
    for ref in [*refs, *([thumb] if thumb else [])]:
        if ref in probed:
            continue
        try:
            # Inside the try: a medium the deadline left no time for fails its accounts in
            # the manifest, like any other source problem.
            deadline.check("ingest")
            local = ingest.fetch(ref, paths.sources, settings=settings,
                                 workspace_id=job.workspace_id,
                                 deadline_s=deadline.remaining())
            sources[ref] = local
            if local.sha256 in by_sha:  # the same bytes under another name: probe once
                probed[ref] = by_sha[local.sha256]
                continue
            info = probe.probe_with_limits(
                local.path, settings,
                timeout_s=min(settings.probe_timeout_s, deadline.remaining()))
            probed[ref] = by_sha[local.sha256] = info
        except Interrupted:
            raise
        except PipelineError as err:
            log.info("job %s: %s: %s", job.id, ref, err.message)
            probed[ref] = err
    if thumb is not None and isinstance(thumb_info := probed.get(thumb), MediaInfo):
        thumbs[thumb] = thumb_info
    captions = sidecars.read_captions(
        sidecars.caption_refs(job, _used_items(job, presets)), paths.sources / "captions",
        settings=settings, workspace_id=job.workspace_id, deadline=deadline)
    return Ingested(sources, probed, thumbs, captions)
