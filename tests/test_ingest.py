"""Ingest: the media library (file://, s3://, https://), URL sources through `conform run`,
hashing while reading, and each source fetched and probed once per job."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline import ingest
from pipeline.cli import main
from pipeline.deadline import Deadline
from pipeline.errors import (
    ConfigError,
    DeadlineExceeded,
    DownloadFailed,
    InvalidLibraryId,
    SourceNotFound,
    TooLarge,
    UrlNotAllowed,
)
from pipeline.models import LocalMedia, MediaRef
from pipeline.settings import Settings
from tests.support.httpserver import LOOPBACK, LocalHTTPServer, serve_bytes, status


def _jpeg(size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(workdir=tmp_path / "work").replace(**changes)


def _fetch(ref: MediaRef, tmp_path: Path, settings: Settings, workspace_id: str = "ws-1"
           ) -> LocalMedia:
    return ingest.fetch(ref, tmp_path / "src", settings=settings, workspace_id=workspace_id)


# --------------------------------------------------------------------------- library IDs


@pytest.mark.parametrize(
    "media_id",
    ["../x", "a/b", "/etc/passwd", ".hidden", "..", ".", "%2e%2e", "%2e%2e%2fx", "a..b",
     "x" * 129, "", "café.jpg", "\uff46\uff55\uff4c\uff4c", "a\n", "a\x00b", "a b", "a\\b",
     "~root", "a?b", "{id}", "a*"],
)
def test_invalid_library_ids(media_id: str) -> None:
    with pytest.raises(InvalidLibraryId) as info:
        ingest.check_library_id(media_id)
    assert info.value.code == "invalid_library_id" and info.value.http_status == 400


@pytest.mark.parametrize("media_id", ["a", "7", "photo.jpg", "A-b_c.9", "x" * 128, "a.b.c",
                                      "-dash", "_under"])
def test_valid_library_ids(media_id: str) -> None:
    assert ingest.check_library_id(media_id) == media_id


def test_template_placeholders() -> None:
    loc = ingest.library_location("s3://bucket/{workspace_id}/media/{id}", "p.jpg", "ws-1")
    assert loc == "s3://bucket/ws-1/media/p.jpg"
    assert ingest.library_location("file:///srv/{id}", "7", "anything goes") == "file:///srv/7"


@pytest.mark.parametrize(
    ("template", "error"),
    [("file:///srv/media", ConfigError),                  # no {id}
     ("ftp://host/{id}", ConfigError),                    # unsupported backend
     ("/srv/{id}", ConfigError),                          # no scheme
     ("s3://{workspace_id}/{id}", ConfigError),           # an ID must not pick the bucket
     ("https://{id}.example.com/x", ConfigError)],         # ... or the host
)
def test_bad_templates(template: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        ingest.library_location(template, "a", "ws")


def test_unsafe_workspace_id_in_template() -> None:
    with pytest.raises(InvalidLibraryId) as info:
        ingest.library_location("file:///srv/{workspace_id}/{id}", "a.jpg", "../other")
    assert "workspace_id" in info.value.message


# --------------------------------------------------------------------------- file:// backend


def test_file_library_copies_and_hashes(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "ws-1"
    lib.mkdir(parents=True)
    body = _jpeg()
    (lib / "p.jpg").write_bytes(body)
    settings = _settings(tmp_path, library=f"file://{tmp_path}/lib/{{workspace_id}}/{{id}}")
    got = _fetch(MediaRef("library", "p.jpg"), tmp_path, settings)
    assert got.path.read_bytes() == body and got.path.parent == tmp_path / "src"
    assert got.sha256 == hashlib.sha256(body).hexdigest() and got.size_bytes == len(body)
    assert [p.name for p in (tmp_path / "src").iterdir()] == [got.path.name]  # no leftovers


def test_file_library_missing_and_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "lib" / "adir").mkdir(parents=True)
    settings = _settings(tmp_path, library=f"file://{tmp_path}/lib/{{id}}")
    for media_id in ("missing.jpg", "adir"):
        with pytest.raises(SourceNotFound) as info:
            _fetch(MediaRef("library", media_id), tmp_path, settings)
        assert info.value.code == "media_not_found" and info.value.http_status == 404


def test_file_library_over_the_cap(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "big.bin").write_bytes(b"\0" * 5000)
    settings = _settings(tmp_path, library=f"file://{tmp_path}/lib/{{id}}", max_source_bytes=4096)
    with pytest.raises(TooLarge):
        _fetch(MediaRef("library", "big.bin"), tmp_path, settings)
    assert not list((tmp_path / "src").iterdir())


def test_file_library_refuses_symlinks_out_of_the_library(tmp_path: Path) -> None:
    # Issue #12 item 9: a link inside the library (to a file, through a linked directory, to
    # /proc/self/environ) was followed and its target published or copied to the work folder.
    lib = tmp_path / "lib"
    (lib / "ws-1").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = _jpeg(color="blue")
    (outside / "secret.jpg").write_bytes(secret)
    (lib / "ws-1" / "link.jpg").symlink_to(outside / "secret.jpg")
    (lib / "ws-1" / "env").symlink_to("/proc/self/environ")
    (lib / "ws-2").symlink_to(outside, target_is_directory=True)
    (lib / "ws-1" / "inside.jpg").write_bytes(_jpeg())
    (lib / "ws-1" / "alias.jpg").symlink_to(lib / "ws-1" / "inside.jpg")
    settings = _settings(tmp_path, library=f"file://{lib}/{{workspace_id}}/{{id}}")
    for media_id, workspace in (("link.jpg", "ws-1"), ("env", "ws-1"),
                                ("secret.jpg", "ws-2")):
        with pytest.raises(SourceNotFound) as info:
            _fetch(MediaRef("library", media_id), tmp_path, settings, workspace_id=workspace)
        assert info.value.code == "media_not_found"
        assert str(outside) not in info.value.message and "proc" not in info.value.message
    assert not list((tmp_path / "src").iterdir())  # nothing was copied into the work folder
    # A link that stays inside the library still works.
    got = _fetch(MediaRef("library", "alias.jpg"), tmp_path, settings)
    assert got.path.read_bytes() == (lib / "ws-1" / "inside.jpg").read_bytes()


def test_library_root_is_the_fixed_prefix(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "via").symlink_to(tmp_path / "real", target_is_directory=True)
    assert ingest.library_root(f"file://{tmp_path}/via/{{id}}") == tmp_path / "real"
    assert ingest.library_root(f"file://{tmp_path}/real/m-{{id}}") == tmp_path / "real"
    assert ingest.library_root("file://{id}") is None


def test_no_library_configured(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        _fetch(MediaRef("library", "a.jpg"), tmp_path, _settings(tmp_path))


@pytest.mark.parametrize(
    "value",
    ["file:///etc/passwd", "ftp://example.com/a.mp4", "gopher://127.0.0.1:70/_x",
     "data:image/png;base64,iVBORw0KGgo=", "FILE:///etc/passwd", "jar:file:///x!/y",
     "dict://127.0.0.1:11211/stat"],
)
def test_other_schemes_are_url_not_allowed(tmp_path: Path, value: str) -> None:
    settings = _settings(tmp_path, library=f"file://{tmp_path}/{{id}}")
    for kind in ("url", "library"):  # {"url": ...} and a bare string both
        with pytest.raises(UrlNotAllowed) as info:
            _fetch(MediaRef(kind, value), tmp_path, settings)  # type: ignore[arg-type]
        assert info.value.code == "url_not_allowed"


# --------------------------------------------------------------------------- s3:// backend


@pytest.mark.s3
def test_s3_library(s3_server: Any, s3_bucket: str, tmp_path: Path) -> None:
    body = _jpeg(color="green")
    s3_server.client().put_object(Bucket=s3_bucket, Key="media/ws-1/p.jpg", Body=body)
    # No endpoint in the settings: the client must find moto through AWS_ENDPOINT_URL.
    settings = _settings(tmp_path, library=f"s3://{s3_bucket}/media/{{workspace_id}}/{{id}}")
    assert settings.endpoint_url is None
    got = _fetch(MediaRef("library", "p.jpg"), tmp_path, settings)
    assert got.path.read_bytes() == body
    assert got.sha256 == hashlib.sha256(body).hexdigest() and got.size_bytes == len(body)

    with pytest.raises(SourceNotFound) as info:
        _fetch(MediaRef("library", "nope.jpg"), tmp_path, settings)
    assert info.value.http_status == 404

    small = settings.replace(max_source_bytes=100)
    with pytest.raises(TooLarge):
        _fetch(MediaRef("library", "p.jpg"), tmp_path, small)

    with pytest.raises(InvalidLibraryId):
        _fetch(MediaRef("library", "../ws-2/p.jpg"), tmp_path, settings)


@pytest.mark.s3
def test_s3_library_missing_bucket(s3_server: Any, tmp_path: Path) -> None:
    settings = _settings(tmp_path, library="s3://conform-no-such-bucket-xyz/{id}")
    with pytest.raises(DownloadFailed) as info:
        _fetch(MediaRef("library", "p.jpg"), tmp_path, settings)
    assert info.value.code == "download_failed" and not info.value.retryable


# --------------------------------------------------------------------------- https:// backend


def test_http_library_through_the_ssrf_guard(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    body = _jpeg(color="blue")
    http_server.route("/lib/ws-1/p.jpg", serve_bytes(body, content_type="image/jpeg"))
    template = http_server.url("/lib/{workspace_id}/{id}")
    refused = _settings(tmp_path, library=template)
    with pytest.raises(UrlNotAllowed):
        _fetch(MediaRef("library", "p.jpg"), tmp_path, refused)
    assert http_server.hits["/lib/ws-1/p.jpg"] == 0

    allowed = refused.replace(allow_networks=LOOPBACK)
    got = _fetch(MediaRef("library", "p.jpg"), tmp_path, allowed)
    assert got.sha256 == hashlib.sha256(body).hexdigest()
    with pytest.raises(SourceNotFound):
        _fetch(MediaRef("library", "gone.jpg"), tmp_path, allowed)


def test_url_sha256_is_of_the_bytes_served(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    body = _jpeg((10, 10))
    http_server.route("/a", serve_bytes(body, content_type="text/plain"))
    got = _fetch(MediaRef("url", http_server.url("/a")), tmp_path,
                 _settings(tmp_path, allow_networks=LOOPBACK))
    assert got.sha256 == hashlib.sha256(got.path.read_bytes()).hexdigest()
    assert got.path.read_bytes() == body


# --------------------------------------------------------------------------- through `conform run`


def _run(tmp_path: Path, job: dict[str, Any], *args: str,
         env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    result = CliRunner().invoke(main, [
        "run", str(job_file), "--dest", str(tmp_path / "out"), "--workdir", str(tmp_path / "w"),
        "--no-progress", *args], env=env)
    assert isinstance(result.exception, SystemExit | None), result.exception  # no traceback
    return result.exit_code, json.loads(result.stdout)


def _errors(manifest: dict[str, Any]) -> list[tuple[str, str, int, int | None]]:
    return [(a["account_id"], e["code"], e["http_status"], e.get("content_index"))
            for a in manifest["accounts"] for e in a["errors"]]


@pytest.mark.ffmpeg
def test_run_url_source_needs_the_allow_list(http_server: LocalHTTPServer,
                                             tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("CONFORM_ALLOW_NETWORK", raising=False)
    body = _jpeg((120, 90))
    # A lying Content-Type: the bytes are probed, the header is ignored.
    http_server.route("/p", serve_bytes(body, content_type="application/x-shockwave-flash"))
    job = {"workspace_id": "ws", "id": "urljob", "content": [{"media": [http_server.url("/p")]}],
           "accounts": [{"id": "b", "platform": "bluesky"}]}

    code, manifest = _run(tmp_path, job)
    assert code == 1
    assert _errors(manifest) == [("b", "url_not_allowed", 400, 0)]
    assert http_server.hits["/p"] == 0

    code, manifest = _run(tmp_path, job, "--allow-network", "127.0.0.0/8", "--force")
    assert code == 0, manifest
    media = manifest["accounts"][0]["media"][0]
    assert media["kind"] == "image" and media["mime"] == "image/jpeg"
    out = Path(media["uri"].removeprefix("file://"))
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (120, 90)

    code, manifest = _run(tmp_path, job, "--force", env={"CONFORM_ALLOW_NETWORK": "127.0.0.1/32"})
    assert code == 0 and manifest["accounts"][0]["status"] == "ok"


@pytest.mark.ffmpeg
def test_run_refuses_other_schemes_per_account(tmp_path: Path) -> None:
    job = {"workspace_id": "ws", "id": "schemes",
           "content": [{"media": [{"url": "file:///etc/passwd"}]},
                       {"media": ["ftp://127.0.0.1/a.mp4"]},
                       {"media": [{"url": "gopher://127.0.0.1:70/_"}]},
                       {"media": ["data:image/png;base64,iVBORw0KGgo="]}],
           "accounts": [{"id": "x", "platform": "x"}, {"id": "t", "platform": "threads"}]}
    code, manifest = _run(tmp_path, job)
    assert code == 1  # the job ran; accounts failed (not a job-level exit 2)
    for account in ("x", "t"):
        got = {(c, ci) for a, c, _, ci in _errors(manifest) if a == account}
        assert got == {("url_not_allowed", i) for i in range(4)}


@pytest.mark.ffmpeg
def test_run_library_ids_invalid_and_missing(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ok.jpg").write_bytes(_jpeg())
    (tmp_path / "secret.jpg").write_bytes(_jpeg())
    ids = ["../secret.jpg", "a/b", ".hidden", "%2e%2e", "x" * 129, "café", "missing.jpg"]
    job = {"workspace_id": "ws", "id": "ids",
           "content": [{"media": [i]} for i in ids] + [{"media": [{"id": "ok.jpg"}]}],
           "accounts": [{"id": "x", "platform": "x"}]}
    code, manifest = _run(tmp_path, job, "--library", f"file://{lib}/{{id}}")
    assert code == 1
    got = {ci: (c, s) for _, c, s, ci in _errors(manifest)}
    expected = {i: ("invalid_library_id", 400) for i in range(len(ids) - 1)}
    expected[len(ids) - 1] = ("media_not_found", 404)
    assert got == expected  # content item 7 (ok.jpg) has no error


@pytest.mark.ffmpeg
def test_run_library_from_the_environment(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "ws"
    lib.mkdir(parents=True)
    (lib / "7").write_bytes(_jpeg())
    job = {"workspace_id": "ws", "id": "envlib", "content": [{"media": [{"id": 7}]}],
           "accounts": [{"id": "b", "platform": "bluesky"}]}
    template = f"file://{tmp_path}/lib/{{workspace_id}}/{{id}}"
    code, manifest = _run(tmp_path, job, env={"CONFORM_LIBRARY": template})
    assert code == 0, manifest


# ------------------------------------------------------------------ fetched and probed once


@pytest.mark.ffmpeg
def test_same_source_twice_is_fetched_and_probed_once(http_server: LocalHTTPServer,
                                                      tmp_path: Path, monkeypatch: Any) -> None:
    from pipeline import probe as probe_mod

    calls: list[Path] = []
    real_probe = probe_mod.probe

    def counting_probe(path: Path, **kw: Any) -> Any:
        if path.name.startswith("src-"):
            calls.append(path)
        return real_probe(path, **kw)

    monkeypatch.setattr(probe_mod, "probe", counting_probe)
    http_server.route("/same.jpg", serve_bytes(_jpeg((80, 60)), content_type="image/jpeg"))
    http_server.route("/copy.jpg", serve_bytes(_jpeg((80, 60)), content_type="image/jpeg"))
    url = http_server.url("/same.jpg")
    job = {"workspace_id": "ws", "id": "twice",
           "content": [{"media": [url, {"url": url}],
                        "cover_image": {"thumbnail": url}},
                       {"media": [url, http_server.url("/copy.jpg")]}],
           "accounts": [{"id": "x", "platform": "x"}, {"id": "b", "platform": "bluesky"},
                        {"id": "t", "platform": "threads"}]}
    code, manifest = _run(tmp_path, job, "--allow-network", "127.0.0.0/8")
    assert code == 0, _errors(manifest)
    assert http_server.hits["/same.jpg"] == 1
    assert http_server.hits["/copy.jpg"] == 1
    # /copy.jpg has the same bytes under another URL: fetched, but probed only once overall
    assert len(calls) == 1
    shas = {m["sha256"] for a in manifest["accounts"] for m in a["media"]}
    assert shas  # outputs exist and were made from that one probe


def test_failed_fetch_leaves_no_partial_file(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/err", status(500))
    settings = _settings(tmp_path, allow_networks=LOOPBACK, http_retries=0)
    with pytest.raises(DownloadFailed):
        _fetch(MediaRef("url", http_server.url("/err")), tmp_path, settings)
    assert list((tmp_path / "src").iterdir()) == []


def test_stream_cap_aborts_the_moment_it_is_passed(tmp_path: Path) -> None:
    """A source that grows past the cap while read (no trustworthy size up front)."""
    pulled = []

    def endless() -> Any:
        while True:
            pulled.append(1)
            yield b"\0" * 1000

    with pytest.raises(TooLarge):
        ingest._write_hashed(MediaRef("library", "grows"), endless(), tmp_path / "dest", 10_500,
                             Deadline(60))
    assert len(pulled) == 11  # stopped at the first chunk over the cap, not later
    assert list(tmp_path.iterdir()) == []  # no partial file


# ------------------------------------------------------------------ deadline of library reads


def test_file_library_read_stops_at_the_jobs_time_left(tmp_path: Path) -> None:
    """A library read gets the same deadline as a URL download (clipped to the job's time)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "big.jpg").write_bytes(b"\xff" * (3 * 1024 * 1024))  # three chunks
    settings = _settings(tmp_path, library=f"file://{tmp_path}/lib/{{id}}")
    with pytest.raises(DeadlineExceeded) as info:
        ingest.fetch(MediaRef("library", "big.jpg"), tmp_path / "src", settings=settings,
                     workspace_id="ws-1", deadline_s=1e-9)
    # the job's time ran out: permanent, like every deadline (exit 1, not 75)
    assert not info.value.retryable and info.value.details["reason"] == "deadline"
    assert info.value.code == "deadline_exceeded" and "deadline" in info.value.message
    assert not list((tmp_path / "src").iterdir())  # no partial source left behind
    got = ingest.fetch(MediaRef("library", "big.jpg"), tmp_path / "src", settings=settings,
                       workspace_id="ws-1", deadline_s=60.0)
    assert got.size_bytes == 3 * 1024 * 1024


@pytest.mark.s3
def test_s3_library_read_stops_at_the_jobs_time_left(s3_server: Any, s3_bucket: str,
                                                      tmp_path: Path) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="media/ws-1/big.jpg",
                                  Body=b"\xff" * (3 * 1024 * 1024))
    settings = _settings(tmp_path, library=f"s3://{s3_bucket}/media/{{workspace_id}}/{{id}}")
    with pytest.raises(DeadlineExceeded) as info:
        ingest.fetch(MediaRef("library", "big.jpg"), tmp_path / "src", settings=settings,
                     workspace_id="ws-1", deadline_s=1e-9)
    assert not info.value.retryable and info.value.details["reason"] == "deadline"
    assert not list((tmp_path / "src").iterdir())
