"""Reading a batch: its sources (a JSON Lines file, a folder of job files, stdin, an ``s3://``
URI of either) and this process's shard of their entries.

Every entry is isolated: an unreadable line becomes an entry with its error and line number,
and the batch goes on. Jobs are parsed here, so an entry carries a :class:`~pipeline.models.Job`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, JobInvalid, PipelineError, StorageNotFound
from ..job import parse_job_text
from ..models import Job
from ..presets import PresetRegistry
from ..settings import Settings
from ..storage import open_storage

#: A Create-Post request is a few KB; a bigger entry is refused rather than read into memory.
MAX_JOB_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One entry of a batch source: a parsed job, or the reason it could not be read.

    Attributes:
        index: 1-based position in the source (the line number of a JSON Lines file).
        where: where it came from, for messages: ``jobs.jsonl:12``, ``jobs/post-1.json``.
        job: the parsed job, or ``None`` when the entry is unusable.
        error: why the entry is unusable (a :class:`JobInvalid`), else ``None``.
    """

    index: int
    where: str
    job: Job | None = None
    error: PipelineError | None = None

    @property
    def shard_key(self) -> str:
        """What decides the shard: the job id, or the position of an unusable entry.

        The position, not ``where``: every pod of a cluster job must agree, even when they
        spell the source's path differently.
        """
        return self.job.id if self.job is not None else f"entry:{self.index}"


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's share of a batch: entries whose key hashes to ``index`` mod ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard index must be in 0..count-1, got {self.index} of "
                              f"{self.count}")

    def owns(self, key: str) -> bool:
        """Whether the entry with this key belongs to this shard."""
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """The shard of a job id: stable across runs, machines and Python versions.

    sha256 rather than ``hash()``, which is salted per process.
    """
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


SHARD_INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX")


def shard_from_env(index: int | None, count: int | None,
                   environ: dict[str, str] | None = None) -> Shard:
    """Resolve ``--shard-index``/``--shard-count``, taking the index from the orchestrator.

    Kubernetes Indexed Jobs set ``JOB_COMPLETION_INDEX`` and AWS Batch array jobs set
    ``AWS_BATCH_JOB_ARRAY_INDEX``; neither says how many shards there are, so the count is
    always given (``--shard-count`` or ``CONFORM_SHARD_COUNT``).

    Raises:
        ConfigError: an index without a count, a value that is not a number, or out of range.
    """
    env = dict(os.environ if environ is None else environ)
    origin = "--shard-index"
    if index is None:
        for name in SHARD_INDEX_VARIABLES:
            if env.get(name, "") != "":
                index, origin = _int_var(env[name], name), name
                break
    if count is None and env.get("CONFORM_SHARD_COUNT", "") != "":
        count = _int_var(env["CONFORM_SHARD_COUNT"], "CONFORM_SHARD_COUNT")
    if index is None and count is None:
        return Shard()
    if count is None:
        raise ConfigError(f"the shard index comes from {origin}; give --shard-count too")
    return Shard(index or 0, count)


def _int_var(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError as err:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from err


# --------------------------------------------------------------------------- reading sources


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``.

    Raises:
        ConfigError: not an s3:// URI with a bucket.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"expected s3://bucket/key, got {uri!r}")
    return parts.netloc, unquote(parts.path).lstrip("/")


def read_job_uri(uri: str, *, settings: Settings, workdir: Path | None = None) -> str:
    """Read one job document from ``s3://bucket/key`` (``CONFORM_JOB_URI``, a queue message).

    Raises:
        JobInvalid: no such object, too big, or not UTF-8 text.
        ConfigError: not an s3:// URI.
        StorageError: the read failed (retryable ones may pass).
    """
    bucket, key = split_s3_uri(uri)
    if not key:
        raise ConfigError(f"the job URI names no object: {uri!r}")
    store = open_storage(f"s3://{bucket}", endpoint_url=settings.endpoint_url)
    where = workdir or settings.workdir
    where.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="conform-jobfile-", dir=where) as tmp:
        head = store.head(key)
        if head is None:
            raise JobInvalid([("", f"cannot read the job {uri}: no such object")])
        if head.size_bytes > MAX_JOB_BYTES:
            raise JobInvalid([("", f"the job {uri} is {head.size_bytes} bytes, over the "
                                   f"{MAX_JOB_BYTES}-byte limit")])
        try:
            local = store.get_file(key, Path(tmp) / "job.json")
        except StorageNotFound as err:
            raise JobInvalid([("", f"cannot read the job {uri}: no such object")]) from err
        try:
            return local.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise JobInvalid([("", f"the job {uri} is not UTF-8 text: {err}")]) from err


class JobSource:
    """A batch SOURCE opened for reading; :meth:`entries` can be iterated more than once.

    stdin and S3 sources are first copied to a spool folder in the workdir (disk, not memory),
    so that the total can be counted before the run and each entry is read only when its turn
    comes. Use as a context manager, or call :meth:`close`, to remove the spool.
    """

    def __init__(self, spec: str, *, presets: PresetRegistry, settings: Settings,
                 stdin: IO[bytes] | None = None) -> None:
        """Open ``spec`` (see the module docstring).

        Raises:
            ConfigError: no such file or folder, or an unusable URI.
            JobInvalid: an S3 URI that names nothing.
            StorageError: an S3 source could not be read.
        """
        self.spec = spec
        self.presets = presets
        self.workspace = settings.workspace
        self._spool: Path | None = None
        self._label = spec
        if spec == "-":
            self._label = "<stdin>"
            self._path = self._spool_dir(settings) / "stdin.jsonl"
            try:
                with self._path.open("wb") as out:
                    shutil.copyfileobj(stdin or sys.stdin.buffer, out)
            except BaseException:
                self.close()
                raise
        elif spec.lower().startswith("s3://"):
            try:
                self._path = self._download(spec, settings)
            except BaseException:
                self.close()
                raise
        elif "://" in spec:
            raise ConfigError(f"batch source must be a file, a folder, - or s3://, got {spec!r}")
        else:
            self._path = Path(spec)
            if not self._path.exists():
                raise ConfigError(f"batch source {spec!r}: no such file or folder")

    def __enter__(self) -> JobSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the spooled copy of a stdin or S3 source."""
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def _spool_dir(self, settings: Settings) -> Path:
        settings.workdir.mkdir(parents=True, exist_ok=True)
        self._spool = Path(tempfile.mkdtemp(prefix="conform-batch-", dir=settings.workdir))
        return self._spool

    def _download(self, uri: str, settings: Settings) -> Path:
        bucket, key = split_s3_uri(uri)
        store = open_storage(f"s3://{bucket}", endpoint_url=settings.endpoint_url)
        spool = self._spool_dir(settings)
        if key and not key.endswith("/") and store.exists(key):
            return store.get_file(key, spool / "source.jsonl")
        prefix = key if not key or key.endswith("/") else key + "/"
        folder = spool / "source"
        folder.mkdir()
        found = 0
        for name in store.list(prefix):
            rel = name[len(prefix):]
            if rel.endswith(".json") and "/" not in rel:
                store.get_file(name, folder / rel)
                found += 1
        if not found:
            raise JobInvalid([("", f"batch source {uri}: no such object and no .json files "
                                   f"under {prefix or 'the bucket'}")])
        self._label = uri.rstrip("/")
        return folder

    def entries(self) -> Iterator[BatchEntry]:
        """Every entry of the source, in order, parsed (or with the reason it is unusable).

        Raises:
            ConfigError: the source can no longer be read.
        """
        if self._path.is_dir():
            return self._folder_entries()
        return self._line_entries()

    def _folder_entries(self) -> Iterator[BatchEntry]:
        try:
            files = sorted(p for p in self._path.iterdir() if p.suffix == ".json" and p.is_file())
        except OSError as err:
            raise ConfigError(f"batch source {self.spec!r}: {err}") from err
        for index, path in enumerate(files, start=1):
            where = f"{self._label.rstrip('/')}/{path.name}"
            try:
                if path.stat().st_size > MAX_JOB_BYTES:
                    raise JobInvalid([("", f"over the {MAX_JOB_BYTES}-byte limit for a job")])
                text = path.read_bytes()
            except OSError as err:
                yield BatchEntry(index, where, error=JobInvalid([("", f"unreadable: {err}")]))
                continue
            except JobInvalid as err:
                yield BatchEntry(index, where, error=err)
                continue
            yield self._entry(index, where, text)

    def _line_entries(self) -> Iterator[BatchEntry]:
        try:
            fh = self._path.open("rb")
        except OSError as err:
            raise ConfigError(f"batch source {self.spec!r}: {err}") from err
        with fh:
            number = 0
            while True:
                line = fh.readline(MAX_JOB_BYTES + 1)
                if not line:
                    return
                number += 1
                where = f"{self._label}:{number}"
                if len(line) > MAX_JOB_BYTES and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # skip the rest of the line
                        line = fh.readline(1 << 20)
                    yield BatchEntry(number, where, error=JobInvalid(
                        [("", f"line longer than the {MAX_JOB_BYTES}-byte limit for a job")]))
                    continue
                if not line.strip():
                    continue
                yield self._entry(number, where, line)

    def _entry(self, index: int, where: str, text: bytes) -> BatchEntry:
        try:
            return BatchEntry(index, where, job=parse_job_text(text, self.presets,
                                                               workspace=self.workspace))
        except JobInvalid as err:
            return BatchEntry(index, where, error=err)
