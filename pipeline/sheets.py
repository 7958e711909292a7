"""Preview sheets of a batch's jobs: one page per job, in ``DIR/<workspace id>/<job id>/``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PipelineError
from .presets import PresetRegistry

if TYPE_CHECKING:
    from .batch import JobOutcome

log = logging.getLogger(__name__)


def sheet_writer(report_dir: Path, *, presets: PresetRegistry, endpoint_url: str | None
                 ) -> Callable[[JobOutcome], str | None]:
    """A callback that writes each finished job's sheet and returns the page's path.

    Scoped by workspace like the manifests: two tenants' ``post-42`` are two sheets. A sheet
    that cannot be made is logged and skipped (the callback returns ``None``): the batch goes
    on. Entries without a manifest get no sheet.
    """

    def write(outcome: JobOutcome) -> str | None:
        if outcome.manifest is None or outcome.job_id is None:
            return None
        # ids are safe path segments, but may be "." or ".."
        parts = [outcome.manifest.workspace_id, outcome.job_id]
        folder = report_dir.joinpath(
            *(p if not p.startswith(".") else "_" + p for p in parts if p))
        from .report import make_report

        try:
            written = make_report(outcome.manifest.uri or "", folder, presets=presets,
                                  endpoint_url=endpoint_url,
                                  manifest=outcome.manifest.to_dict())
        except PipelineError as err:  # the batch goes on; the job's line says no report
            log.warning("no preview sheet for %s: %s", outcome.job_id, err.message)
            return None
        return str(written.index_html)

    return write
