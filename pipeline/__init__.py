"""conform-pipeline: make every image and video fit each social platform before it is published.

The public library API (each front door of the CLI calls these)::

    from pipeline import load_presets, parse_job_text, process, process_batch, Settings, Worker

Heavy modules (the runner pulls in Pillow and boto3) are imported on first use, so that
``import pipeline`` and ``conform --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import moved
from .errors import (
    ConfigError,
    ExitStatus,
    Interrupted,
    JobInvalid,
    PipelineError,
    StorageError,
)
from .settings import Settings
from .version import __version__

moved.install()  # the old module paths (pipeline.batch, ...) keep working

if TYPE_CHECKING:
    from .fleet.batch import BatchEntry, BatchSummary, JobOutcome, JobSource, Shard, process_batch
    from .fleet.worker import MessageResult, Worker, WorkerSummary
    from .job import parse_job, parse_job_text
    from .manifest import Manifest
    from .models import Job, JobEvent
    from .presets import PresetRegistry, load_presets
    from .runner import process

# name -> module that defines it, imported when the name is first used (PEP 562).
_LAZY = {
    "process": "runner", "Manifest": "manifest",
    "process_batch": "fleet.batch", "JobSource": "fleet.batch", "BatchEntry": "fleet.batch",
    "BatchSummary": "fleet.batch", "JobOutcome": "fleet.batch", "Shard": "fleet.batch",
    "Worker": "fleet.worker", "MessageResult": "fleet.worker", "WorkerSummary": "fleet.worker",
    "parse_job": "job", "parse_job_text": "job",
    "load_presets": "presets", "PresetRegistry": "presets",
    "Job": "models", "JobEvent": "models",
}

__all__ = [
    "BatchEntry",
    "BatchSummary",
    "ConfigError",
    "ExitStatus",
    "Interrupted",
    "Job",
    "JobEvent",
    "JobInvalid",
    "JobOutcome",
    "JobSource",
    "Manifest",
    "MessageResult",
    "PipelineError",
    "PresetRegistry",
    "Settings",
    "Shard",
    "StorageError",
    "Worker",
    "WorkerSummary",
    "__version__",
    "load_presets",
    "parse_job",
    "parse_job_text",
    "process",
    "process_batch",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
