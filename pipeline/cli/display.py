"""How the command line shows results to a person or a log collector (never what it computes).

stdout carries machine-readable results; everything here that a person reads (progress lines,
the batch bar, tables) goes to stderr, except the tables of ``conform plan`` and ``probe``,
which are the command's result. Text that comes from a job (ids, sources, messages) is shown
with its control characters escaped: a terminal must not obey it.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..models import JobEvent

if TYPE_CHECKING:
    from ..fleet.batch import BatchSummary, JobOutcome
    from ..fleet.messages import MessageResult
    from ..manifest import Manifest


def json_line(message: str, **fields: Any) -> str:
    """A progress record in the shape of the JSON log lines (``--log-format json``)."""
    from .common import current_job, job_fields

    job_id = fields.pop("job_id", None)
    workspace_id = fields.pop("workspace_id", None)
    payload: dict[str, Any] = {"level": "info", "logger": "pipeline.progress",
                               "message": message, "time": round(time.time(), 3)}
    if workspace_id is None:
        this_job, this_workspace = current_job()
        workspace_id = this_workspace if job_id == this_job else None
    payload.update(job_fields(job_id, workspace_id))
    payload.update({k: v for k, v in fields.items() if v is not None})
    return json.dumps(payload)


def fmt_duration(seconds: float) -> str:
    """``75`` → ``1m15s``, ``3700`` → ``1h01m``: an ETA or a batch's wall time."""
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters (ESC, CR, BEL ...) shown as ``\\xNN`` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# --------------------------------------------------------------------------- job progress


def json_event_printer() -> Callable[[JobEvent], None]:
    """Each job event as one JSON object on stderr; encode progress in 10 % steps."""
    lock = threading.Lock()
    last_step: dict[tuple[str, str | None], int] = {}

    def show(event: JobEvent) -> None:
        if event.kind == "progress" and event.pct is not None:
            step = int(event.pct * 10)
            with lock:
                if last_step.get((event.job_id, event.detail), -1) >= step:
                    return
                last_step[(event.job_id, event.detail)] = step
        line = json_line(f"{event.stage} {event.kind}", job_id=event.job_id, stage=event.stage,
                         kind=event.kind, pct=None if event.pct is None
                         else round(event.pct, 3), detail=event.detail)
        with lock:
            click.echo(line, err=True)

    return show


def progress_printer(enabled: bool, log_format: str = "text"
                     ) -> Callable[[JobEvent], None] | None:
    """What ``conform run`` shows of a job's events: a bar per encode on a terminal."""
    if not enabled:
        return None
    if log_format == "json":
        return json_event_printer()
    tty = sys.stderr.isatty()

    def show(event: JobEvent) -> None:
        if event.stage == "encode" and event.pct is not None:
            if tty:
                bar = "#" * int(event.pct * 30)
                click.echo(f"\r  encoding {event.detail or ''} [{bar:<30}] {event.pct:4.0%}",
                           err=True, nl=False)
                if event.pct >= 1:
                    click.echo("", err=True)
            return
        if event.kind == "start":
            click.echo(f"[{event.job_id}] {event.stage}" + (f": {event.detail}"
                                                            if event.detail else ""), err=True)

    return show


def message_printer(json_logs: bool) -> Callable[[MessageResult], None]:
    """``conform worker``: each handled message as a JSON line on stdout, and a log line.

    Called from the worker's loops (``--workers``): one lock keeps their lines whole.
    """
    lock = threading.Lock()

    def show(result: MessageResult) -> None:
        with lock:
            click.echo(json.dumps(result.to_dict(), separators=(",", ":")))
            click.echo(_message_log_line(result, json_logs), err=True)

    return show


def _message_log_line(result: MessageResult, json_logs: bool) -> str:
    if json_logs:
        return json_line(f"message {result.outcome}", job_id=result.job_id,
                         message_id=result.message_id, status=result.outcome,
                         deleted=result.deleted, heartbeats=result.heartbeats,
                         elapsed_s=round(result.elapsed_s, 3))
    error = f": [{result.error.code}] {result.error.message}" if result.error else ""
    job = f" {result.job_id}" if result.job_id else ""
    return f"message {result.message_id}: {result.outcome}{job}{error} in {result.elapsed_s:.1f}s"


# --------------------------------------------------------------------------- tables


def plan_table(data: dict[str, Any]) -> str:
    """``conform plan`` for a person: the outputs, then each account's verdict."""
    lines = [f"{len(data['outputs'])} output(s), {data['encodes']} encode(s) from "
             f"{data['decodes']} decode(s), {len(data['covers'])} cover(s)", ""]
    lines.append(f"{'OUTPUT':<14} {'ACTION':<12} {'SIZE':<11} {'VARIANTS':<40} DOES")
    for o in data["outputs"]:
        lines.append(f"{o['key'][:12]:<14} {o['action']:<12} "
                     f"{str(o['width']) + 'x' + str(o['height']):<11} "
                     f"{','.join(o['variants'])[:40]:<40} {', '.join(o['actions'])}"
                     + (f" [decode #{o['shared_decode']}, shared]" if o["shared_decode"] else ""))
    lines.append("")
    lines.append(f"{'ACCOUNT':<16} {'PLATFORM':<10} {'STATUS':<8} DETAILS")
    for a in data["accounts"]:
        details = "; ".join(f"{e['code']}: {e['message']}" for e in a["errors"]) or \
            ", ".join(sorted({m["variant"] for m in a["media"]}))
        lines.append(f"{a['account_id'][:16]:<16} {a['platform']:<10} "
                     f"{'ok' if a['ok'] else 'FAILED':<8} {details}")
        for limit in a.get("limits", []):
            lines.append(f"{'':<36} limit: {limit} (the account's)")
        for w in a["warnings"]:
            lines.append(f"{'':<36} warning: {w}")
    lines += _share_lines(data.get("shares", []))
    # Account ids, sources and messages come from the job: a terminal must not obey them.
    return "\n".join(printable(line) for line in lines)


def _share_lines(shares: list[dict[str, Any]]) -> list[str]:
    """Which account takes an output planned for another account, and why (or why not)."""
    if not shares:
        return []
    lines = ["", f"{'ACCOUNT':<16} {'TAKES':<14} WHY"]
    for s in shares:
        taken = s["output"][:12] if s["taken"] else "its own"
        lines.append(f"{s['account_id'][:16]:<16} {taken:<14} {s['reason']}")
    return lines


def probe_text(data: dict[str, Any]) -> str:
    """``conform probe`` for a person: one line per stream."""
    lines = [f"{data['source']}", f"  kind: {data['kind']} ({data['format_name']}), "
             f"{data['size_bytes']} bytes, {data['width']}x{data['height']} displayed"]
    if data.get("duration_s"):
        lines.append(f"  duration: {data['duration_s']:.3f} s")
    if data.get("bitrate_kbps"):
        lines.append(f"  bitrate: {data['bitrate_kbps']} kb/s")
    for part in ("video", "audio", "image"):
        if data.get(part):
            fields = ", ".join(f"{k}={v}" for k, v in data[part].items() if v not in (None, ""))
            lines.append(f"  {part}: {fields}")
    lines.append(f"  sha256: {data['sha256']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- batch


class BatchView:
    """Renders a batch: manifests on stdout, a live bar (TTY) or plain/JSON lines on stderr.

    ``on_event`` is called from worker threads, ``on_outcome`` from the main thread; one lock
    keeps their writes apart.
    """

    def __init__(self, total: int, *, mode: str, progress: bool, human: bool = False,
                 report: Callable[[JobOutcome], str | None] | None = None) -> None:
        self.total = total
        self.mode = mode  # "bar", "lines" or "json"
        self.progress = progress
        self.human = human  # stdout is a terminal: one readable line per job, not JSON
        self.report = report  # writes a job's preview sheet, returns where
        self.done = self.failed = self.skipped = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # job id -> what it is doing
        self._encode: dict[str, tuple[str, float]] = {}  # job id -> (output, fraction)
        self._drawn_at = 0.0
        self._json_events = json_event_printer() if mode == "json" and progress else None

    def on_event(self, event: JobEvent) -> None:
        """A job's progress: JSON lines, or the bar's state (redrawn)."""
        if self._json_events is not None:
            self._json_events(event)
            return
        with self._lock:
            if event.stage == "encode" and event.pct is not None:
                self._encode[event.job_id] = (event.detail or "", event.pct)
            elif event.kind == "start":
                self._running[event.job_id] = event.stage
                self._encode.pop(event.job_id, None)  # that encode is over
            self._draw(force=event.pct is not None and event.pct >= 1)

    def on_outcome(self, outcome: JobOutcome) -> None:
        """A finished entry: its stdout line, its report, the counts and its stderr line."""
        page = self.report(outcome) if self.report is not None else None
        shown = outcome.status not in ("skipped", "interrupted")
        if shown and not self.human:
            click.echo(json.dumps(outcome.to_dict(), separators=(",", ":")))
        with self._lock:
            if outcome.status != "interrupted":
                self.done += 1
            self.failed += outcome.failed
            self.skipped += outcome.status == "skipped"
            if outcome.job_id is not None:
                self._running.pop(outcome.job_id, None)
                self._encode.pop(outcome.job_id, None)
            if self.human and shown:
                if self.mode == "bar":
                    click.echo("\r\x1b[2K", err=True, nl=False)  # the bar shares the terminal
                click.echo(human_line(outcome, self.done, self.total, page))
            if not (self.human and self.mode == "bar"):
                self._report(outcome)
            self._draw(force=True)

    def _report(self, outcome: JobOutcome) -> None:
        if self.mode == "json":
            click.echo(json_line(f"job {outcome.status}", job_id=outcome.job_id,
                                 workspace_id=outcome.workspace_id,
                                 status=outcome.status, source=outcome.where,
                                 done=self.done, total=self.total,
                                 elapsed_s=round(outcome.elapsed_s, 3),
                                 error=outcome.error.to_dict() if outcome.error else None,
                                 note=outcome.note), err=True)
            return
        if self.mode == "bar" and not outcome.failed:
            return  # the bar counts it; only failures get a line of their own
        line = printable(self._status_line(outcome))  # ids, sources, messages: job text
        click.echo("\r\x1b[2K" + line if self.mode == "bar" else line, err=True)

    def _status_line(self, outcome: JobOutcome) -> str:
        what = outcome.job_id or outcome.where
        detail = _outcome_detail(outcome)
        where = f" ({outcome.where})" if outcome.job_id and outcome.where else ""
        status = outcome.status.upper() if outcome.failed else outcome.status
        return (f"[{self.done}/{self.total}] {status} {what}{where}"
                + (f": {detail}" if detail else "")
                + (f" in {outcome.elapsed_s:.1f}s" if outcome.status in
                   ("succeeded", "partial", "failed") else ""))

    def _draw(self, *, force: bool = False) -> None:
        """Redraw the bar (TTY only), at most ten times a second."""
        if self.mode != "bar" or not self.progress:
            return
        now = time.monotonic()
        if not force and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        width = 24
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * width)
        parts = [f"[{bar:<{width}}] {self.done}/{self.total} jobs"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self._encode:
            name, pct = next(reversed(self._encode.values()))
            more = f" (+{len(self._encode) - 1})" if len(self._encode) > 1 else ""
            parts.append(f"encoding {name} {pct:.0%}{more}")
        elif self._running:
            parts.append(f"{len(self._running)} running")
        processed = self.done - self.skipped
        if processed and self.done < self.total:
            eta = (now - self.started) / processed * (self.total - self.done)
            parts.append(f"ETA {fmt_duration(eta)}")
        columns = shutil.get_terminal_size((100, 20)).columns
        click.echo("\r\x1b[2K" + " | ".join(parts)[: columns - 1], err=True, nl=False)

    def finish(self, summary: BatchSummary) -> None:
        """The batch's closing line: counts by status and the wall time."""
        if self.mode == "bar":
            click.echo("\r\x1b[2K", err=True, nl=False)
        counts = {"succeeded": summary.succeeded, "partial": summary.partial,
                  "failed": summary.failed, "invalid": summary.invalid,
                  "errors": summary.errors, "skipped": summary.skipped,
                  "not_started": summary.not_started}
        if self.mode == "json":
            click.echo(json_line("batch interrupted" if summary.interrupted else "batch done",
                                 total=self.total, **counts, interrupted=summary.interrupted,
                                 elapsed_s=round(summary.elapsed_s, 3)), err=True)
            return
        text = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()
                         if v or k == "succeeded")
        state = "interrupted" if summary.interrupted else "done"
        click.echo(f"batch {state}: {self.total} job(s): {text} "
                   f"in {fmt_duration(summary.elapsed_s)}", err=True)


def _outcome_detail(outcome: JobOutcome) -> str:
    """Why an entry ended as it did: its error, its accounts' error codes, or its note."""
    if outcome.error is not None:
        return f"[{outcome.error.code}] {outcome.error.message}"
    if outcome.manifest is not None and outcome.failed:
        return ", ".join(sorted({e.code for a in outcome.manifest.accounts for e in a.errors}))
    return outcome.note or ""


def human_line(outcome: JobOutcome, done: int, total: int, page: str | None) -> str:
    """One line a person reads for a finished job (``conform batch`` with stdout on a TTY)."""
    what = outcome.job_id or outcome.where
    status = outcome.status.upper() if outcome.failed else outcome.status
    line = f"[{done}/{total}] {status} {what}"
    manifest = outcome.manifest
    if manifest is not None:
        line += _accounts_summary(manifest)
    elif outcome.error is not None:
        line += (f" ({outcome.where})" if outcome.job_id else "") + (
            f": [{outcome.error.code}] {outcome.error.message}")
    if page:
        line += f"; report {page}"
    # ids, sources, messages and URIs come from jobs and manifests: a terminal must not obey them
    return printable(line + f" in {outcome.elapsed_s:.1f}s")


def _accounts_summary(manifest: Manifest) -> str:
    ok = sum(1 for a in manifest.accounts if a.status == "ok")
    warnings = sum(len(a.warnings) + sum(len(m.warnings) for m in a.media)
                   for a in manifest.accounts)
    codes = sorted({e.code for a in manifest.accounts for e in a.errors})
    text = (f": {ok} account(s) ok, {len(manifest.accounts) - ok} failed"
            + (f" ({', '.join(codes)})" if codes else "")
            + f", {warnings} warning(s)")
    if manifest.uri:
        text += f"; manifest {manifest.uri}"
    return text
