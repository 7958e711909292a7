"""Preview sheets of a batch's jobs: one page per job, in ``DIR/<workspace id>/<job id>/``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, Interrupted, PipelineError
from ..presets import PresetRegistry

if TYPE_CHECKING:
    from .batch import JobOutcome

log = logging.getLogger(__name__)


def sheet_writer(report_dir: Path, *, presets: PresetRegistry, endpoint_url: str | None
                 ) -> Callable[[JobOutcome], str | None]:
    """A callback that writes each finished job's sheet and returns the page's path.

    Scoped by workspace like the manifests: two tenants' ``post-42`` are two sheets. A sheet
    that cannot be made (a pipeline error, or the machine's: a full disk, a folder that
    can't be written) is a warning on that job and the callback returns ``None``: the batch
    goes on. Entries without a manifest get no sheet.
    """

    def write(outcome: JobOutcome) -> str | None:
        if outcome.manifest is None or outcome.job_id is None:
            return None
        # ids are safe path segments, but may be "." or ".."
        parts = [outcome.manifest.workspace_id, outcome.job_id]
        folder = report_dir.joinpath(
            *(p if not p.startswith(".") else "_" + p for p in parts if p))
        from ..report import make_report

        try:
            _refuse_links(report_dir, folder)
            written = make_report(outcome.manifest.uri or "", folder, presets=presets,
                                  endpoint_url=endpoint_url,
                                  manifest=outcome.manifest)
        except Interrupted:
            raise
        except (PipelineError, OSError) as err:  # the batch goes on; the job has no report
            why = err.message if isinstance(err, PipelineError) else (
                f"{err.strerror or err} ({err.filename})" if err.filename else str(err))
            log.warning("job %r: no preview sheet: %r", outcome.job_id, why)
            return None
        return str(written.index_html)

    return write


def _refuse_links(report_dir: Path, folder: Path) -> None:
    """The workspace folder between ``DIR`` and a job's sheet must not be a link (the sheet's
    own folder is checked by the report itself).

    Raises:
        ConfigError: one is.
    """
    path = report_dir
    for name in folder.relative_to(report_dir).parts[:-1]:
        path = path / name
        if os.path.islink(path):
            raise ConfigError(f"{path} is a link; links in the report folder are not followed")
