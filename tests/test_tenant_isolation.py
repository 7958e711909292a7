"""Tenants share bytes, never facts: a reused output says nothing about who made it first.

Outputs are content-addressed, so a second workspace that submits the same bytes gets the
object the first one stored. Everything that second tenant can read (its manifest, the object's
key and metadata, the ``meta.json`` beside it, the covers) must be free of the first tenant's
workspace, job, accounts and platforms: that is checked here from the stored files themselves,
on a folder and on an S3 server.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.outputs.stored import StoredRendition, asset_key
from tests import test_runner_storage as rs
from tests import test_subject as ts
from tests.support import s3server

# the shared fixtures, re-exported so pytest finds them in this module
s3_server = s3server.s3_server
s3_bucket = s3server.s3_bucket
dest = rs.dest
run = rs.run
library = rs.library
presets = rs.presets
face = ts.face

pytestmark = pytest.mark.ffmpeg

FIRST: dict[str, Any] = {**rs.JOB, "workspace_id": "acme-secret-ws", "id": "acme-launch-job"}
# Only YouTube: the video the first job named after X's variant, the cover it made from the
# same thumbnail, both reused.
SECOND: dict[str, Any] = {
    "workspace_id": "ws-b", "id": "job-b",
    "content": [{"media": ["clip.mp4"], "cover_image": {"thumbnail": "photo.jpg"}}],
    "accounts": [{"id": "yt-9", "platform": "youtube", "settings": {"video_type": "video"}}],
}
# What the second tenant must not learn: the first one's ids, and that it posted to X or
# Telegram (its variant names, its presets).
SECRETS = ("acme-secret-ws", "acme-launch-job", "x-1", "yt-1", "tg-1", "twitter", "telegram")


def readable_by_second(d: rs.Dest, manifest: dict[str, Any], tmp: Path) -> dict[str, str]:
    """Everything the second tenant can read, by where it was read from."""
    # (presets_version lists every preset installed, whoever uses them)
    seen = {"manifest": json.dumps({k: v for k, v in manifest.items() if k != "presets_version"})}
    for entry in rs.entries(manifest):
        key = d.key_of(entry["uri"])
        seen[key] = key
        meta = d.store.get_file(key.rsplit("/", 1)[0] + "/meta.json",
                                tmp / f"meta-{uuid.uuid4().hex}.json")
        seen[f"{key} meta.json"] = meta.read_text()
        if d.name == "s3":
            head = d.raw.head_object(Bucket=d.bucket, Key=f"{d.prefix}/{key}")
            seen[f"{key} metadata"] = json.dumps(head["Metadata"])
    return seen


def test_a_reused_output_names_no_other_tenant(dest: rs.Dest, run: rs.Run,
                                               tmp_path: Path) -> None:
    first = run(dest, doc=FIRST).to_dict()
    second = run(dest, doc=SECOND).to_dict()
    assert second["status"] == "succeeded"
    (account,) = second["accounts"]
    # the bytes are shared: the same objects, reused
    assert account["media"][0]["actions"][0] == "reused"
    first_uris = {e["uri"] for e in rs.entries(first)}
    assert {e["uri"] for e in rs.entries(second)} <= first_uris
    rs.check_stored(dest, second, tmp_path)
    for where, text in readable_by_second(dest, second, tmp_path).items():
        leaked = [s for s in SECRETS if s in text.lower()]
        assert leaked == [], f"{where} names the first tenant: {leaked}: {text[:400]}"


def test_stored_metadata_is_the_content_key_s_inputs_only(dest: rs.Dest, run: rs.Run,
                                                           tmp_path: Path) -> None:
    """Whatever made an object first, its metadata and meta.json origin are the same."""
    manifest = run(dest, doc=FIRST).to_dict()
    for entry in rs.entries(manifest):
        key = dest.key_of(entry["uri"])
        meta = json.loads(dest.store.get_file(key.rsplit("/", 1)[0] + "/meta.json",
                                              tmp_path / f"m-{uuid.uuid4().hex}").read_text())
        assert sorted(meta["origin"]) == ["encoder-version", "source-sha256"]
        assert key.rsplit("/", 1)[1].split(".")[0] in ("video", "image", "cover")
        if dest.name == "s3":
            head = dest.raw.head_object(Bucket=dest.bucket, Key=f"{dest.prefix}/{key}")
            assert sorted(head["Metadata"]) == ["encoder-version", "sha256", "source-sha256"]


def run_as(tmp: Path, workspace: str, job_id: str,
           accounts: list[dict[str, Any]]) -> dict[str, Any]:
    doc = {"workspace_id": workspace, "id": job_id, "content": [{"media": ["clip.mp4"]}],
           "accounts": accounts}
    (tmp / f"{job_id}.json").write_text(json.dumps(doc))
    result = ts.run_cli(["run", str(tmp / f"{job_id}.json"), "--library", f"file://{tmp}/{{id}}",
                         "--dest", str(tmp / "out"), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    manifest: dict[str, Any] = json.loads(result.stdout)
    return manifest


def test_ui_warnings_are_the_reusing_job_s_own(face: Path, tmp_path: Path) -> None:
    """The shared file keeps the subject's place, never a surface's name; each job that
    reuses it is warned about its own surfaces' UI."""
    ts.face_clip(face, ts.CAPTION_Y, tmp_path / "clip.mp4")
    first = run_as(tmp_path, "acme-secret-ws", "acme-launch-job",
                   [{"id": "tt", "platform": "tiktok"}, {"id": "x", "platform": "x"}])
    assert ts.subject_warnings(first, "tt") == [
        "subject_under_ui: bottom: caption, name, music (tiktok-video)"]
    uri = first["accounts"][0]["media"][0]["uri"]
    meta = (Path(uri.removeprefix("file://")).parent / "meta.json").read_text()
    assert "subject_under_ui" not in meta and "tiktok" not in meta and "acme" not in meta
    # X only, in another workspace: the same file, no UI, no word of TikTok
    second = run_as(tmp_path, "ws-b", "job-b", [{"id": "x9", "platform": "x"}])
    assert second["accounts"][0]["media"][0]["uri"] == uri
    told = json.dumps(second["accounts"])
    assert "tiktok" not in told and "acme" not in told
    # TikTok in a third workspace: reused, and warned from the recorded subject
    third = run_as(tmp_path, "ws-c", "job-c", [{"id": "tt9", "platform": "tiktok"}])
    media = third["accounts"][0]["media"][0]
    assert media["uri"] == uri and media["actions"][0] == "reused"
    assert ts.subject_warnings(third, "tt9") == [
        "subject_under_ui: bottom: caption, name, music (tiktok-video)"]


HOSTILE_SUBJECTS = {
    "string": "not a list", "flat": [["face", 0, 0, 1, 1, 1]],
    "kind": [[["alien", 0, 0, 1, 1, 1]]], "text": [[["face", "0", 0, 1, 1, 1]]],
    "short": [[["face", 0, 0, 1, 1]]], "bool": [[["face", True, 0, 1, 1, 1]]],
    "frames": [[]] * 65, "boxes": [[["face", 0, 0, 1, 1, 1]] * 1025],
}


@pytest.mark.parametrize("name", list(HOSTILE_SUBJECTS))
def test_hostile_subjects_do_not_describe_an_output(name: str) -> None:
    """The subject boxes come back from the store: anything but what a run writes (shape,
    types, more frames or boxes than any run records) is not an entry to reuse."""
    key = "ab" * 32
    good = {"key": asset_key(key, "video.mp4"), "kind": "video", "mime": "video/mp4",
            "bytes": 1, "sha256": "0" * 64, "width": 2, "height": 2, "duration_ms": 1,
            "actions": [], "warnings": [], "subjects": [[["face", 0.1, 0.7, 0.4, 0.9, 0.8]]]}
    assert StoredRendition.from_json(good, key).subjects is not None
    with pytest.raises(ValueError):
        StoredRendition.from_json({**good, "subjects": HOSTILE_SUBJECTS[name]}, key)


def test_a_meta_json_with_hostile_subjects_is_made_again(face: Path, tmp_path: Path) -> None:
    """End to end: such a meta.json makes the output again, no traceback."""
    ts.face_clip(face, ts.CAPTION_Y, tmp_path / "clip.mp4")
    first = run_as(tmp_path, "ws-a", "job-a", [{"id": "tt", "platform": "tiktok"}])
    uri = first["accounts"][0]["media"][0]["uri"]
    meta_path = Path(uri.removeprefix("file://")).parent / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["subjects"]  # the run recorded where the face is
    meta_path.write_text(json.dumps({**meta, "subjects": HOSTILE_SUBJECTS["boxes"]}))
    again = run_as(tmp_path, "ws-b", "job-b", [{"id": "tt", "platform": "tiktok"}])
    media = again["accounts"][0]["media"][0]
    assert media["uri"] == uri and "reused" not in media["actions"]
    assert ts.subject_warnings(again, "tt") == [
        "subject_under_ui: bottom: caption, name, music (tiktok-video)"]
