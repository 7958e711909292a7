"""The record of one job's run that every step after ingest reads, and its work folders.

Kept apart from :mod:`pipeline.runner` (which composes the steps) so the steps in
:mod:`pipeline.outputs.produce` can read it without importing the runner back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ..deadline import Deadline
from ..models import Job, JobEvent, LocalMedia, MediaInfo, MediaRef, Probed
from ..presets import PresetRegistry
from ..settings import Settings
from ..storage import Storage

EventCallback = Callable[[JobEvent], None]
EventKind = Literal["start", "progress", "done"]


class Emit(Protocol):
    """Report progress of a step (a no-op unless the caller asked for events)."""

    def __call__(self, stage: str, kind: EventKind, pct: float | None = None,
                 detail: str | None = None) -> None:
        """Emit one event."""
        ...


def emitter(job_id: str, on_event: EventCallback | None) -> Emit:
    """The run's :class:`Emit`: turns step progress into the caller's :class:`JobEvent`."""
    def emit(stage: str, kind: EventKind, pct: float | None = None,
             detail: str | None = None) -> None:
        if on_event is not None:
            on_event(JobEvent(job_id, stage, kind, pct, detail))
    return emit


@dataclass(frozen=True, slots=True)
class WorkPaths:
    """Where a run keeps its files: the one rule for every folder under the run's workdir.

    The shared decode writes its first passes to :meth:`output`, where making the rendition
    picks them up, so both must agree on the path; here they can't disagree.
    """

    root: Path

    @property
    def sources(self) -> Path:
        """Where fetched sources go."""
        return self.root / "src"

    def output(self, content_key: str, name: str) -> Path:
        """Where the rendition ``content_key`` is written (its folder is created)."""
        folder = self.root / "out" / content_key[:16]
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def cover_folder(self, content_key: str) -> Path:
        """The folder the cover ``content_key`` is made in (created)."""
        folder = self.root / "covers" / content_key[:16]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def meta(self, content_key: str) -> Path:
        """Where the ``meta.json`` an earlier run stored for ``content_key`` is fetched to."""
        return self.root / "meta" / f"{content_key}.json"


@dataclass(frozen=True, slots=True)
class Run:
    """One job's run: what every step after ingest reads (no step hands another a dict)."""

    job: Job
    settings: Settings
    presets: PresetRegistry
    storage: Storage
    paths: WorkPaths
    deadline: Deadline
    emit: Emit
    sources: dict[MediaRef, LocalMedia]
    probed: dict[MediaRef, Probed]
    thumbs: dict[MediaRef, MediaInfo]

    def source_of(self, ref: MediaRef) -> tuple[LocalMedia, MediaInfo]:
        """A planned output's source on disk and what probing found (planned: it probed)."""
        info = self.probed[ref]
        assert isinstance(info, MediaInfo)
        return self.sources[ref], info

    def tool_timeout_s(self) -> float:
        """Time a tool (ffmpeg) may take now: its own cap, or what the job has left."""
        return min(self.settings.ffmpeg_timeout_s, self.deadline.remaining())
