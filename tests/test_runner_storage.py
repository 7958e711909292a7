"""The runner's storage contract end to end, ONE suite over a local folder and real S3 (SeaweedFS).

What is checked, the way a publisher reading the manifest would see it: every output the
manifest names exists with the reported bytes, sha256 and size (HEAD, download, probe); the
manifest is the last write; a re-run writes nothing but the manifest and reports the same keys
as ``reused``; ``--force`` writes again; identical targets are stored once across jobs; failures
while storing (a failing part, a reset connection, a 503 burst, a full disk) are retried or end
in a typed ``storage_failed`` with nothing partial left and no manifest naming a missing object;
a destination that can't work fails before any work with a clear error and a sensible exit code.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
import urllib3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ConnectionClosedError
from click.testing import CliRunner, Result
from PIL import Image

from pipeline.cli import main
from pipeline.errors import ConfigError, StorageError
from pipeline.job import parse_job_text
from pipeline.presets import PresetRegistry, load_presets
from pipeline.probe import probe
from pipeline.runner import Manifest, process
from pipeline.settings import Settings
from pipeline.storage import (
    IMMUTABLE,
    LocalStorage,
    S3Storage,
    Storage,
    make_s3_client,
    open_storage,
    s3_client,
)
from pipeline.storage import local as storage_local
from pipeline.storage import s3 as storage_s3
from tests.support import s3server
from tests.support.s3server import S3Server, count_puts, error_response

# the shared fixtures, re-exported so pytest finds them in this module
s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
no_retry_sleep = s3server.no_retry_sleep

pytestmark = pytest.mark.ffmpeg

MiB = 1024 * 1024
ASSET_KEY = r"^assets/[0-9a-f]{2}/[0-9a-f]{62}/[a-z0-9-]+\.[a-z0-9]+$"

# Three accounts: one remuxed video shared by all three, a thread image for X, a YouTube cover
# from the thumbnail: three assets, no encode (fast).
JOB: dict[str, Any] = {
    "workspace_id": "ws",
    "id": "store-1",
    "content": [
        {"media": ["clip.mp4"], "cover_image": {"thumbnail": "photo.jpg"}},
        {"media": ["photo.jpg"]},
    ],
    "accounts": [
        {"id": "x-1", "platform": "x"},
        {"id": "yt-1", "platform": "youtube", "settings": {"video_type": "video"}},
        {"id": "tg-1", "platform": "telegram"},
    ],
}
# A Pinterest pin takes its cover from a frame of the delivered video.
FRAME_JOB: dict[str, Any] = {
    "workspace_id": "ws",
    "id": "store-frame",
    "content": [{"media": ["clip.mp4"], "cover_image": {"video_cover_timestamp_ms": 1000}}],
    "accounts": [{"id": "p-1", "platform": "pinterest"}],
}


# --- media, presets -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media library folder: a 4 s 640x360 H.264/AAC clip and an 800x600 JPEG photo.

    The clip has a keyframe every second, so every platform here takes it without an encode.
    """
    folder = tmp_path_factory.mktemp("library")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=4",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30",
         "-c:a", "aac", "-shortest", "-movflags", "+faststart", str(folder / "clip.mp4")],
        check=True, capture_output=True,
    )
    Image.radial_gradient("L").resize((800, 600)).convert("RGB").save(
        folder / "photo.jpg", quality=90
    )
    return folder


@pytest.fixture(scope="module")
def presets() -> PresetRegistry:
    return load_presets()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the two destinations -----------------------------------------------------------------


@dataclass
class Dest:
    """A ``--dest`` under test and how to look inside it."""

    name: str
    url: str
    store: Storage  # opened the way the runner opens it
    root: Path | None = None  # local
    bucket: str = ""  # s3
    prefix: str = ""  # s3
    raw: Any = None  # s3: a plain client for arranging and asserting

    def key_of(self, uri: str) -> str:
        if self.name == "local":
            assert self.root is not None and uri.startswith("file:///")
            return Path(unquote(urlsplit(uri).path)).relative_to(self.root.resolve()).as_posix()
        start = f"s3://{self.bucket}/{self.prefix}/"
        assert uri.startswith(start), uri
        return uri[len(start):]

    def read(self, uri: str, tmp: Path) -> Path:
        return self.store.get_file(self.key_of(uri), tmp / f"got-{uuid.uuid4().hex}")

    def assets(self) -> list[str]:
        return [k for k in self.store.list("assets/") if not k.endswith("/meta.json")]

    def leftovers(self) -> list[str]:
        """Temp files (local) or unfinished multipart uploads (S3): partial writes."""
        if self.name == "local":
            assert self.root is not None
            return [str(p) for p in self.root.rglob(".conform-tmp-*")]
        uploads = self.raw.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]

    def delete(self, key: str) -> None:
        if self.name == "local":
            assert self.root is not None
            (self.root / key).unlink()
        else:
            self.raw.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")

    def requests(self) -> contextlib.AbstractContextManager[Any]:
        """Count the HTTP requests the runner's (shared) S3 client sends; None locally."""
        if self.name == "local":
            return contextlib.nullcontext(None)
        return count_puts(s3_client())


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> Dest:
    if request.param == "local":
        root = tmp_path / "out"
        return Dest("local", str(root), open_storage(str(root)), root=root)
    server: S3Server = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    url = f"s3://{bucket}/conform"
    return Dest("s3", url, open_storage(url), bucket=bucket, prefix="conform", raw=server.client())


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys written successfully (put_file / put_bytes on either backend), in order."""
    done: list[str] = []
    for cls in (LocalStorage, S3Storage):
        for name in ("put_file", "put_bytes"):
            original = getattr(cls, name)

            def wrapper(self: Any, first: Any, key: str, *args: Any,
                        _original: Any = original, **kwargs: Any) -> Any:
                result = _original(self, first, key, *args, **kwargs)
                done.append(key)
                return result

            monkeypatch.setattr(cls, name, wrapper)
    return done


Run = Callable[..., Manifest]


@pytest.fixture
def run(library: Path, presets: PresetRegistry, tmp_path: Path) -> Run:
    """``run(dest, doc=JOB, storage=None, **settings)``: process a job as ``conform run`` does."""

    def _run(dest: Dest, doc: dict[str, Any] = JOB, storage: Storage | None = None,
             **changes: Any) -> Manifest:
        settings = Settings(workdir=tmp_path / "work", library=f"file://{library}/{{id}}",
                            dest=dest.url, x264_preset="ultrafast", **changes)
        job = parse_job_text(json.dumps(doc), presets)
        return process(job, settings=settings, presets=presets, storage=storage)

    return _run


def entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stored output the manifest names: media entries and covers."""
    found = []
    for account in manifest["accounts"]:
        found.extend(account["media"])
        if account["cover"]:
            found.append(account["cover"])
    return found


def check_stored(dest: Dest, manifest: dict[str, Any], tmp: Path) -> None:
    """Every uri names an existing object whose bytes, sha256 and size are those reported."""
    for entry in entries(manifest):
        key = dest.key_of(entry["uri"])
        head = dest.store.head(key)
        assert head is not None, f"manifest names a missing object: {entry['uri']}"
        assert head.size_bytes == entry["bytes"]
        local = dest.read(entry["uri"], tmp)
        if "sha256" in entry:
            assert sha256_of(local) == entry["sha256"]
        info = probe(local, timeout_s=30)
        assert (info.width, info.height) == (entry["width"], entry["height"])
        if entry.get("kind") == "video":
            assert info.duration_ms is not None
            assert abs(info.duration_ms - entry["duration_ms"]) <= 50


def stored_manifest(dest: Dest, job_id: str, tmp: Path) -> dict[str, Any]:
    got = dest.store.get_file(f"manifests/ws/{job_id}.json", tmp / f"manifest-{uuid.uuid4().hex}")
    data: dict[str, Any] = json.loads(got.read_text())
    return data


def by_account(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["account_id"]: a for a in manifest["accounts"]}


# --- fault injection, the same faults on both backends ------------------------------------------


def _half_copy(fin: Any, out: Any, *_: Any) -> None:
    out.write(fin.read(1000))
    raise OSError(errno.ENOSPC, "No space left on device")


def _disk_full(out: Any, data: bytes) -> None:
    out.write(data[:10])
    raise OSError(errno.ENOSPC, "No space left on device")


@contextlib.contextmanager
def hooked(client: Any, event: str, handler: Callable[..., Any]) -> Iterator[None]:
    """Register a botocore hook on ``client`` (the runner's shared client) for the block."""
    uid = f"test-{uuid.uuid4().hex}"
    client.meta.events.register(event, handler, unique_id=uid)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=uid)


@contextlib.contextmanager
def failing_asset_writes(dest: Dest, monkeypatch: pytest.MonkeyPatch,
                         victim: str = "/assets/") -> Iterator[None]:
    """Storing an asset whose key contains ``victim`` fails every time, retryably.

    Locally the disk fills up half-way through the copy; on S3 every attempt gets a 503.
    """
    if dest.name == "local":
        original = LocalStorage.put_file

        def put_file(self: Any, src: Path, key: str, **kwargs: Any) -> Any:
            if victim.strip("/") in key:
                with monkeypatch.context() as mp:
                    mp.setattr(storage_local, "_copy", _half_copy)
                    return original(self, src, key, **kwargs)
            return original(self, src, key, **kwargs)

        with monkeypatch.context() as mp:
            mp.setattr(LocalStorage, "put_file", put_file)
            yield
        return

    def unavailable(request: Any, **_: Any) -> Any:
        if victim in request.url:
            return error_response(503, "ServiceUnavailable", url=request.url)
        return None

    with contextlib.ExitStack() as stack:
        for op in ("PutObject", "CreateMultipartUpload", "UploadPart"):
            stack.enter_context(hooked(s3_client(), f"before-send.s3.{op}", unavailable))
        yield


@contextlib.contextmanager
def failing_manifest_write(dest: Dest, monkeypatch: pytest.MonkeyPatch,
                           retryable: bool) -> Iterator[None]:
    """Writing the manifest fails: a full disk / 503 (retryable) or a permission error / 403."""
    if dest.name == "local":
        original = LocalStorage.put_bytes

        def denied(*_: Any, **__: Any) -> Any:
            raise PermissionError(errno.EACCES, "Permission denied")

        def put_bytes(self: Any, data: bytes, key: str, **kwargs: Any) -> Any:
            if key.startswith("manifests/"):
                with monkeypatch.context() as mp:
                    if retryable:
                        mp.setattr(storage_local, "_write_all", _disk_full)
                    else:
                        mp.setattr(storage_local.tempfile, "mkstemp", denied)
                    return original(self, data, key, **kwargs)
            return original(self, data, key, **kwargs)

        with monkeypatch.context() as mp:
            mp.setattr(LocalStorage, "put_bytes", put_bytes)
            yield
        return

    def refuse(request: Any, **_: Any) -> Any:
        if "/manifests/" in request.url:
            if retryable:
                return error_response(503, "SlowDown", url=request.url)
            return error_response(403, "AccessDenied", url=request.url)
        return None

    with hooked(s3_client(), "before-send.s3.PutObject", refuse):
        yield


# --- the contract, on both backends ---------------------------------------------------------------


def test_outputs_stored_whole_and_manifest_last(
    dest: Dest, run: Run, writes: list[str], tmp_path: Path, library: Path,
) -> None:
    manifest = run(dest)
    data = manifest.to_dict()
    assert manifest.ok, data
    assert manifest.uri == dest.store.uri("manifests/ws/store-1.json")
    # the manifest is the last write, every asset is followed by its meta.json
    assert writes[-1] == "manifests/ws/store-1.json"
    assets = [k for k in writes if not k.endswith("meta.json") and k.startswith("assets/")]
    assert len(assets) == 3  # one shared video, X's thread image, YouTube's cover
    for key in assets:
        assert writes.index(key.rsplit("/", 1)[0] + "/meta.json") > writes.index(key)
    assert sorted(dest.assets()) == sorted(assets)
    for key in assets:
        assert re.match(ASSET_KEY, key), key
    check_stored(dest, data, tmp_path)
    # what was printed is what was stored
    assert stored_manifest(dest, "store-1", tmp_path) == data
    # identical targets of different accounts share one object
    accounts = by_account(data)
    video_uris = {a["media"][0]["uri"] for a in accounts.values()}
    assert len(video_uris) == 1
    assert dest.leftovers() == []

    if dest.name == "s3":
        clip_sha = sha256_of(library / "clip.mp4")
        video = accounts["x-1"]["media"][0]
        head = dest.raw.head_object(Bucket=dest.bucket,
                                    Key=f"conform/{dest.key_of(video['uri'])}")
        assert head["ContentType"] == "video/mp4"
        assert head["CacheControl"] == IMMUTABLE
        # the store verified the bytes against the SHA-256 sent with them
        checked = dest.raw.head_object(Bucket=dest.bucket, ChecksumMode="ENABLED",
                                       Key=f"conform/{dest.key_of(video['uri'])}")
        assert checked["ChecksumSHA256"] == base64.b64encode(
            bytes.fromhex(video["sha256"])).decode()
        meta = head["Metadata"]
        assert meta["source-sha256"] == clip_sha
        assert meta["sha256"] == video["sha256"]
        # shared across jobs and workspaces: nothing about the job that stored it first
        assert sorted(meta) == ["encoder-version", "sha256", "source-sha256"]
        cover = accounts["yt-1"]["cover"]
        chead = dest.raw.head_object(Bucket=dest.bucket,
                                     Key=f"conform/{dest.key_of(cover['uri'])}")
        assert chead["ContentType"] == "image/jpeg" and chead["CacheControl"] == IMMUTABLE
        assert chead["Metadata"]["source-sha256"] == sha256_of(library / "photo.jpg")
        assert sorted(chead["Metadata"]) == ["encoder-version", "sha256", "source-sha256"]
        mhead = dest.raw.head_object(Bucket=dest.bucket, Key="conform/manifests/ws/store-1.json")
        assert mhead["ContentType"] == "application/json"
        assert mhead["CacheControl"] == "no-cache"  # rewritten by every run: never immutable


def test_identical_targets_stored_once_across_jobs(
    dest: Dest, run: Run, writes: list[str], tmp_path: Path
) -> None:
    first = run(dest).to_dict()
    assets_before = sorted(dest.assets())
    # Another post, other accounts, another order: Telegram first. The shared video is
    # named after its kind, whichever job stores it first.
    other = {**JOB, "id": "store-2", "workspace_id": "ws-2",
             "accounts": [{"id": "tg-9", "platform": "telegram"}, {"id": "x-9", "platform": "x"}]}
    writes.clear()
    second = run(dest, doc=other).to_dict()
    assert writes == ["manifests/ws-2/store-2.json"]
    assert sorted(dest.assets()) == assets_before
    first_uris = {e["uri"] for e in entries(first)}
    assert {e["uri"] for e in entries(second)} <= first_uris
    assert by_account(second)["tg-9"]["media"][0]["uri"].endswith("/video.mp4")
    check_stored(dest, second, tmp_path)


def test_crash_damage_and_loss_make_outputs_again(
    dest: Dest, run: Run, writes: list[str], tmp_path: Path
) -> None:
    """Only an intact asset with its meta.json is reused; everything else is made again."""
    first = run(dest).to_dict()
    accounts = by_account(first)
    video_key = dest.key_of(accounts["x-1"]["media"][0]["uri"])
    image_key = dest.key_of(accounts["x-1"]["media"][1]["uri"])
    cover_key = dest.key_of(accounts["yt-1"]["cover"]["uri"])
    # the image made it, the process died before its meta.json
    dest.delete(image_key.rsplit("/", 1)[0] + "/meta.json")
    # the video was replaced by something else; the cover was deleted, its meta left behind.
    # On S3 the impostor has the very same size: the sha256 recorded at upload gives it away
    # (a folder keeps no such record, so there only a different size can be noticed).
    size = accounts["x-1"]["media"][0]["bytes"] if dest.name == "s3" else 17
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(size))
    dest.store.put_file(junk, video_key, content_type="video/mp4")
    dest.delete(cover_key)
    writes.clear()
    second = run(dest).to_dict()
    assert sorted(writes[:-1]) == sorted(
        [key for asset in (video_key, image_key, cover_key)
         for key in (asset, asset.rsplit("/", 1)[0] + "/meta.json")])
    assert writes[-1] == "manifests/ws/store-1.json"
    assert [e["uri"] for e in entries(second)] == [e["uri"] for e in entries(first)]
    assert not any("reused" in m["actions"] for a in second["accounts"] for m in a["media"])
    check_stored(dest, second, tmp_path)


def test_frame_cover_made_from_a_reused_video(
    dest: Dest, run: Run, writes: list[str], tmp_path: Path
) -> None:
    first = run(dest, doc=FRAME_JOB).to_dict()
    pin = by_account(first)["p-1"]
    assert pin["cover"]["timestamp_ms"] == 1000
    cover_key = dest.key_of(pin["cover"]["uri"])
    dest.delete(cover_key.rsplit("/", 1)[0] + "/meta.json")
    writes.clear()
    second = run(dest, doc=FRAME_JOB).to_dict()
    # the video is reused (fetched back to take the frame), only the cover is stored again
    assert writes == [cover_key, cover_key.rsplit("/", 1)[0] + "/meta.json",
                      "manifests/ws/store-frame.json"]
    again = by_account(second)["p-1"]
    assert again["media"][0]["actions"][0] == "reused"
    assert again["cover"]["uri"] == pin["cover"]["uri"]
    assert (again["cover"]["width"], again["cover"]["height"]) == (
        pin["cover"]["width"], pin["cover"]["height"])
    check_stored(dest, second, tmp_path)


#: meta.json, in the order earlier versions wrote it: a later run (of any version) reuses it.
RENDITION_META = ["key", "kind", "mime", "bytes", "sha256", "width", "height", "duration_ms",
                  "actions", "warnings", "origin"]
COVER_META = ["key", "mime", "bytes", "sha256", "width", "height", "warnings"]
# Only inputs of the content key: the object is shared by every job (and workspace) making it.
ORIGIN_META = ["source-sha256", "encoder-version"]


@pytest.mark.parametrize("doc", [JOB, FRAME_JOB], ids=["thumbnail", "frame"])
def test_meta_json_keeps_its_keys_and_the_manifest_values(
    doc: dict[str, Any], run: Run, tmp_path: Path
) -> None:
    root = tmp_path / "out"
    dest = Dest("local", str(root), open_storage(str(root)), root=root)
    manifest = run(dest, doc=doc).to_dict()

    def meta_of(entry: dict[str, Any]) -> dict[str, Any]:
        key = dest.key_of(entry["uri"])
        data: dict[str, Any] = json.loads((root / key).with_name("meta.json").read_text())
        assert data["key"] == key
        assert list(data["origin"]) == ORIGIN_META
        return data

    for account in manifest["accounts"]:
        for media in account["media"]:
            meta = meta_of(media)
            assert list(meta) == RENDITION_META
            assert {k: meta[k] for k in RENDITION_META[1:-1]} == {
                k: media[k] for k in RENDITION_META[1:-1]}
        if account["cover"] is not None:
            cover = account["cover"]
            meta = meta_of(cover)
            framed = ["timestamp_ms"] if "timestamp_ms" in cover else []
            assert list(meta) == [*COVER_META, *framed, "origin"]
            assert {k: meta[k] for k in ["mime", "bytes", "width", "height", *framed]} == {
                k: cover[k] for k in ["mime", "bytes", "width", "height", *framed]}


def test_failing_asset_store_fails_only_its_accounts(
    dest: Dest, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if dest.name == "s3":
        request.getfixturevalue("no_retry_sleep")
    with failing_asset_writes(dest, monkeypatch, victim="/image."):
        manifest = run(dest)
    data = manifest.to_dict()
    assert data["status"] == "partial"
    accounts = by_account(data)
    x = accounts["x-1"]
    assert x["status"] == "failed" and x["media"] == []
    assert [(e["code"], e["content_index"]) for e in x["errors"]] == [("storage_failed", 1)]
    assert manifest.retryable  # every failure may pass: `conform run` exits 75
    assert accounts["yt-1"]["status"] == accounts["tg-1"]["status"] == "ok"
    check_stored(dest, data, tmp_path)
    assert not any(k.endswith("/image.jpg") for k in dest.assets())  # nothing partial
    assert dest.leftovers() == []
    assert stored_manifest(dest, "store-1", tmp_path) == data
    # once the store works again, the re-run makes only what is missing
    healed = run(dest).to_dict()
    assert healed["status"] == "succeeded"
    assert by_account(healed)["x-1"]["media"][0]["actions"][0] == "reused"
    assert "reused" not in by_account(healed)["x-1"]["media"][1]["actions"]
    check_stored(dest, healed, tmp_path)


def test_store_down_for_every_asset(
    dest: Dest, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if dest.name == "s3":
        request.getfixturevalue("no_retry_sleep")
    with failing_asset_writes(dest, monkeypatch):
        manifest = run(dest)
    data = manifest.to_dict()
    assert data["status"] == "failed" and manifest.retryable
    for account in data["accounts"]:
        assert account["media"] == [] and account["cover"] is None
        assert {e["code"] for e in account["errors"]} == {"storage_failed"}
    assert dest.assets() == [] and dest.leftovers() == []
    assert stored_manifest(dest, "store-1", tmp_path) == data


@pytest.mark.parametrize("retryable", [True, False], ids=["temporary", "denied"])
def test_manifest_not_written_is_an_error(
    dest: Dest, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest, retryable: bool,
) -> None:
    if dest.name == "s3":
        request.getfixturevalue("no_retry_sleep")
    with failing_manifest_write(dest, monkeypatch, retryable), \
            pytest.raises(StorageError) as info:
        run(dest)
    err = info.value
    assert err.code == "storage_failed" and err.retryable is retryable
    assert "manifest was not written" in err.message
    assert not dest.store.exists("manifests/ws/store-1.json")
    assert dest.leftovers() == []
    # the outputs are stored whole and a re-run publishes them without making them again
    assert len(dest.assets()) == 3
    if retryable:
        again = run(dest).to_dict()
        assert all(m["actions"][0] == "reused" for a in again["accounts"] for m in a["media"])
        check_stored(dest, again, tmp_path)


def test_public_base_url(dest: Dest, run: Run, tmp_path: Path) -> None:
    base = "https://cdn.example.com/social/"
    data = run(dest, public_base_url=base).to_dict()
    found = entries(data)
    assert len(found) == 5  # the video for three accounts, X's image, YouTube's cover
    for entry in found:
        assert entry["url"] == base + quote(dest.key_of(entry["uri"]), safe="/")
        assert list(entry)[list(entry).index("uri") + 1] == "url"  # next to its uri
    assert stored_manifest(dest, "store-1", tmp_path) == data


def test_url_options_checked_before_any_work(
    dest: Dest, run: Run, writes: list[str]
) -> None:
    for changes in ({"public_base_url": "ftp://cdn.example.com"},
                    {"public_base_url": "https://user:pw@cdn.example.com"},
                    {"presign_s": 0}, {"presign_s": 8 * 24 * 3600}):
        with pytest.raises(ConfigError):
            run(dest, **changes)
    if dest.name == "local":
        with pytest.raises(ConfigError, match="presign"):
            run(dest, presign_s=600)  # a folder has nothing to sign
    assert writes == []


# --- S3 only: presigning, retries, multipart in a run ---------------------------------------------


@pytest.mark.s3
def test_presigned_urls_fetch_the_outputs(s3_dest: Dest, run: Run) -> None:
    data = run(s3_dest, presign_s=900).to_dict()
    http = urllib3.PoolManager()
    for entry in entries(data):
        query = dict(p.split("=", 1) for p in urlsplit(entry["url"]).query.split("&"))
        assert query.get("X-Amz-Expires") == "900" or "Expires" in query
        response = http.request("GET", entry["url"])
        assert response.status == 200
        assert len(response.data) == entry["bytes"]
        if "sha256" in entry:
            assert hashlib.sha256(response.data).hexdigest() == entry["sha256"]


@pytest.fixture
def s3_dest(s3_server: S3Server, s3_bucket: str) -> Dest:
    url = f"s3://{s3_bucket}/conform"
    return Dest("s3", url, open_storage(url), bucket=s3_bucket, prefix="conform",
                raw=s3_server.client())


@pytest.mark.s3
@pytest.mark.parametrize("fault", ["connection_reset", "503_burst"])
def test_transient_faults_are_retried(
    s3_dest: Dest, run: Run, tmp_path: Path, no_retry_sleep: None, fault: str
) -> None:
    dest = s3_dest
    left = {"n": 3}
    seen: list[str] = []

    def flaky(request: Any, **_: Any) -> Any:
        if "/assets/" not in request.url or not left["n"]:
            return None
        left["n"] -= 1
        seen.append(request.url)
        if fault == "connection_reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        return error_response(503, "SlowDown", "Please reduce your request rate.")

    with hooked(s3_client(), "before-send.s3.PutObject", flaky):
        data = run(dest).to_dict()
    assert left["n"] == 0 and len(seen) == 3
    assert data["status"] == "succeeded"
    check_stored(dest, data, tmp_path)


@pytest.mark.s3
def test_multipart_part_failures_in_a_run(
    s3_server: S3Server, s3_bucket: str, run: Run, tmp_path: Path, no_retry_sleep: None
) -> None:
    """Above the threshold the video goes up in parts: a flaky part is retried; a part that
    keeps failing fails the video's accounts cleanly, with the upload aborted."""
    client = make_s3_client()  # its own client, so the hooks stay in this test
    small = TransferConfig(multipart_threshold=64 * 1024, multipart_chunksize=5 * MiB,
                           preferred_transfer_client="classic")
    store = S3Storage(s3_bucket, "conform", client, transfer_config=small)
    dest = Dest("s3", f"s3://{s3_bucket}/conform", store, bucket=s3_bucket, prefix="conform",
                raw=s3_server.client())
    attempts = {"n": 0}

    def broken_part(request: Any, **_: Any) -> Any:
        attempts["n"] += 1
        return error_response(500, "InternalError", url=request.url)

    with hooked(client, "before-send.s3.UploadPart", broken_part):
        manifest = run(dest, storage=store)
    data = manifest.to_dict()
    assert attempts["n"] == 5  # the standard retry mode's attempts, then a clean failure
    assert data["status"] == "failed" and manifest.retryable
    for account in data["accounts"]:
        assert account["media"] == []
        assert "storage_failed" in {e["code"] for e in account["errors"]}
    assert dest.leftovers() == []  # the multipart upload was aborted
    assert not any(k.endswith(".mp4") for k in dest.assets())
    check_stored(dest, data, tmp_path)

    flaky = {"left": 2, "calls": 0}

    def flaky_part(request: Any, **_: Any) -> Any:
        flaky["calls"] += 1
        if flaky["left"]:
            flaky["left"] -= 1
            return error_response(503, "SlowDown", url=request.url)
        return None

    with count_puts(client) as requests, \
            hooked(client, "before-send.s3.UploadPart", flaky_part):
        data = run(dest, storage=store).to_dict()
    assert data["status"] == "succeeded" and flaky["calls"] == 3  # two refused, one stored
    assert requests.operations["CreateMultipartUpload"] == 1  # the video; the rest reused
    assert requests.operations["UploadPart"] == 3  # every attempt is counted
    assert requests.operations["CompleteMultipartUpload"] == 1
    check_stored(dest, data, tmp_path)
    assert dest.leftovers() == []


# --- `conform run` ------------------------------------------------------------------------------


def cli(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def job_file(tmp_path: Path, doc: dict[str, Any] = JOB) -> str:
    path = tmp_path / f"{doc['id']}.json"
    path.write_text(json.dumps(doc))
    return str(path)


def run_args(tmp_path: Path, library: Path | str, dest_url: str) -> list[str]:
    lib = library if isinstance(library, str) else f"file://{library}/{{id}}"
    return ["run", job_file(tmp_path), "--library", lib, "--dest", dest_url,
            "--workdir", str(tmp_path / "work"), "--no-progress"]


def test_conform_run_rerun_and_force(
    dest: Dest, tmp_path: Path, library: Path, writes: list[str]
) -> None:
    """`conform run` twice: the re-run uploads nothing but the manifest and reports the same
    stored objects as reused; --force uploads everything again under the same keys."""
    args = run_args(tmp_path, library, dest.url)
    first = cli(args)
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["status"] == "succeeded"
    check_stored(dest, data, tmp_path)

    writes.clear()
    with dest.requests() as requests:
        second = cli(args)
    assert second.exit_code == 0, second.stderr
    again = json.loads(second.stdout)
    assert writes == ["manifests/ws/store-1.json"]
    if requests is not None:  # on the server: one PUT, the manifest; no multipart at all
        assert requests.writes == 1 and requests.operations["PutObject"] == 1
        assert requests.operations["CreateMultipartUpload"] == 0
    before, after = entries(data), entries(again)
    assert [e["uri"] for e in after] == [e["uri"] for e in before]
    for old, new in zip(before, after, strict=True):
        for field in ("bytes", "sha256", "width", "height", "duration_ms", "mime"):
            assert new.get(field) == old.get(field)
        if "actions" in new:
            assert new["actions"] == ["reused", *old["actions"]]
    check_stored(dest, again, tmp_path)  # reused entries describe the stored bytes
    assert stored_manifest(dest, "store-1", tmp_path) == again

    writes.clear()
    with dest.requests() as requests:
        forced = cli([*args, "--force", "--public-base-url", "https://cdn.example.com"])
    assert forced.exit_code == 0, forced.stderr
    fdata = json.loads(forced.stdout)
    assets = [k for k in writes if k.startswith("assets/") and not k.endswith("meta.json")]
    assert len(assets) == 3 and len(writes) == 7  # 3 assets + 3 metas + the manifest
    if requests is not None:
        assert requests.operations["PutObject"] == 7
    assert [e["uri"] for e in entries(fdata)] == [e["uri"] for e in before]
    assert not any("reused" in m["actions"] for a in fdata["accounts"] for m in a["media"])
    assert all(e["url"].startswith("https://cdn.example.com/assets/") for e in entries(fdata))
    check_stored(dest, fdata, tmp_path)


def test_conform_run_exit_codes_on_storage_failures(
    dest: Dest, tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    if dest.name == "s3":
        request.getfixturevalue("no_retry_sleep")
    args = run_args(tmp_path, library, dest.url)
    with failing_asset_writes(dest, monkeypatch, victim="/image."):
        partial = cli(args)
    assert partial.exit_code == 75, partial.stderr  # every failure is temporary
    assert json.loads(partial.stdout)["status"] == "partial"

    with failing_manifest_write(dest, monkeypatch, retryable=True):
        temporary = cli(args)
    assert temporary.exit_code == 75
    assert temporary.stdout == ""  # nothing published: no manifest on stdout either
    assert "error: [storage_failed]" in temporary.stderr
    assert "manifest was not written" in temporary.stderr

    with failing_manifest_write(dest, monkeypatch, retryable=False):
        denied = cli(args)
    assert denied.exit_code == 1 and denied.stdout == ""
    assert "manifest was not written" in denied.stderr
    assert "Traceback" not in denied.stderr


def test_conform_run_refuses_unusable_url_options(
    dest: Dest, tmp_path: Path, library: Path
) -> None:
    args = run_args(tmp_path, library, dest.url)
    for extra in (["--public-base-url", "ftp://cdn.example.com"], ["--presign", "0"],
                  ["--presign", "abc"]):
        result = cli([*args, *extra])
        assert result.exit_code == 2, (extra, result.stderr)
        assert result.stdout == ""
    if dest.name == "local":
        result = cli([*args, "--presign", "60"])
        assert result.exit_code == 2 and "presign" in result.stderr
    assert not dest.store.exists("manifests/ws/store-1.json")


def test_conform_run_destination_not_a_folder(tmp_path: Path, library: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    result = cli(run_args(tmp_path, library, str(blocker)))
    assert result.exit_code == 1
    assert "not a folder" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.s3
def test_conform_run_missing_bucket(s3_server: S3Server, tmp_path: Path, library: Path) -> None:
    with count_puts(s3_client()) as requests:
        result = cli(run_args(tmp_path, library, "s3://conform-no-such-bucket/p"))
    assert result.exit_code == 1
    assert "'conform-no-such-bucket' does not exist" in result.stderr
    assert result.stdout == ""
    assert dict(requests.operations) == {"HeadBucket": 1}  # failed before any work


@pytest.mark.s3
def test_conform_run_bad_credentials(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, library: Path
) -> None:
    calls = {"n": 0}

    def invalid_key(request: Any, **_: Any) -> Any:
        calls["n"] += 1
        return error_response(403, "InvalidAccessKeyId",
                              "The AWS Access Key Id you provided does not exist.")

    with hooked(s3_client(), "before-send.s3", invalid_key):
        result = cli(run_args(tmp_path, library, f"s3://{s3_bucket}/p"))
    assert result.exit_code == 1
    assert "[storage_failed]" in result.stderr and "Traceback" not in result.stderr
    assert calls["n"] == 1  # not retried, nothing else tried


@pytest.mark.s3
def test_conform_run_no_credentials(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, library: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(storage_s3, "_clients", {})  # a fresh client resolves credentials
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = cli(run_args(tmp_path, library, f"s3://{s3_bucket}/p"))
    assert result.exit_code == 1
    assert "no AWS credentials" in result.stderr


@pytest.mark.s3
def test_conform_run_unreachable_endpoint(
    s3_server: S3Server, tmp_path: Path, library: Path, no_retry_sleep: None
) -> None:
    # port 9 on loopback: nothing listens, so every attempt is refused at once
    result = cli([*run_args(tmp_path, library, "s3://bucket/p"),
                  "--endpoint-url", "http://127.0.0.1:9"])
    assert result.exit_code == 75  # temporary: safe to retry
    assert "could not connect" in result.stderr


@pytest.mark.s3
def test_conform_run_s3_library_and_dest_share_one_client(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path, library: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Media from an S3 library, outputs to S3, the endpoint only from --endpoint-url."""
    raw = s3_server.client()
    for name in ("clip.mp4", "photo.jpg"):
        raw.upload_file(str(library / name), s3_bucket, f"library/ws/{name}")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    args = [*run_args(tmp_path, f"s3://{s3_bucket}/library/{{workspace_id}}/{{id}}",
                      f"s3://{s3_bucket}/out"),
            "--endpoint-url", s3_server.endpoint_url, "--presign", "300"]
    with count_puts(s3_client(endpoint_url=s3_server.endpoint_url)) as requests:
        result = cli(args)
    assert result.exit_code == 0, result.stderr
    assert requests.operations["GetObject"] >= 2  # the library reads ...
    assert requests.operations["PutObject"] == 7  # ... and the writes, on one client
    data = json.loads(result.stdout)
    dest = Dest("s3", f"s3://{s3_bucket}/out",
                S3Storage(s3_bucket, "out", s3_client(endpoint_url=s3_server.endpoint_url)),
                bucket=s3_bucket, prefix="out", raw=raw)
    check_stored(dest, data, tmp_path)
    clip_sha = sha256_of(library / "clip.mp4")
    video = by_account(data)["x-1"]["media"][0]
    head = raw.head_object(Bucket=s3_bucket, Key=f"out/{dest.key_of(video['uri'])}")
    assert head["Metadata"]["source-sha256"] == clip_sha
    assert urllib3.PoolManager().request("GET", video["url"]).status == 200


def test_storage_settings_from_the_environment() -> None:
    settings = Settings.from_env({"CONFORM_DEST": "s3://b/p", "AWS_ENDPOINT_URL": "http://e:9",
                                  "CONFORM_PUBLIC_BASE_URL": "https://cdn.example.com",
                                  "CONFORM_PRESIGN_S": "600"})
    assert (settings.dest, settings.endpoint_url) == ("s3://b/p", "http://e:9")
    assert (settings.public_base_url, settings.presign_s, settings.force) == (
        "https://cdn.example.com", 600, False)
    with pytest.raises(ConfigError):
        Settings.from_env({"CONFORM_PRESIGN_S": "ten minutes"})
