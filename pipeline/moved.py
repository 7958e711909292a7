"""Where modules went when the top level was grouped by role; their old import paths still work.

``import pipeline.batch`` or ``from pipeline.batch import process_batch`` gives the module under
its new name (``pipeline.fleet.batch``: the same module object, so a patch through either name
is seen by both) with a ``DeprecationWarning`` that names the new path. The aliases go with the
next major version; the library's own names (``from pipeline import process_batch``) never
moved and are the API to use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED = {
    "pipeline.batch": "pipeline.fleet.batch",
    "pipeline.batchsource": "pipeline.fleet.sources",
    "pipeline.worker": "pipeline.fleet.worker",
    "pipeline.queuejob": "pipeline.fleet.messages",
    "pipeline.batchjob": "pipeline.fleet.jobs",
    "pipeline.jobprocess": "pipeline.fleet.childprocess",
    "pipeline.sheets": "pipeline.fleet.previews",
    "pipeline.metrics": "pipeline.fleet.metrics",
    "pipeline.statusserver": "pipeline.fleet.status",
    "pipeline.jobrun": "pipeline.outputs.run",
    "pipeline.produce": "pipeline.outputs.produce",
    "pipeline.rendition": "pipeline.outputs.rendition",
    "pipeline.verify": "pipeline.outputs.verify",
    "pipeline.stored": "pipeline.outputs.stored",
    "pipeline.sidecars": "pipeline.outputs.sidecars",
    "pipeline.frames": "pipeline.vision.sampling",
    "pipeline.subject": "pipeline.vision.subject",
    "pipeline.framing": "pipeline.vision.framing",
    "pipeline.cuts": "pipeline.vision.cuts",
    "pipeline.camera": "pipeline.vision.camera",
    "pipeline.coversubject": "pipeline.vision.coversubject",
    "pipeline.plan.geometry": "pipeline.geometry",
    "pipeline.image.geometry": "pipeline.image.canvas",
}


class _Alias(importlib.abc.Loader):
    """Loads an old name by putting the module of its new name in its place."""

    def __init__(self, new_name: str) -> None:
        self.new_name = new_name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return None  # a placeholder the import system makes; exec_module replaces it

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(f"{module.__name__} moved to {self.new_name}; import it from there",
                      DeprecationWarning, stacklevel=2)
        # The import system returns whatever sys.modules holds for the name once this returns.
        sys.modules[module.__name__] = importlib.import_module(self.new_name)


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Asked last (after the real files were looked for), and only for the old names."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        new_name = MOVED.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new_name))


def install() -> None:
    """Serve the old names (once per interpreter)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
