"""The published contracts: JSON Schemas of the job and the manifest, generated from the records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # the test extra
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.schema import SCHEMAS, schema_text
from tests.test_manifest import _manifest

REPO = Path(__file__).resolve().parent.parent


def _kept(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "schemas" / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_kept_schemas_are_generated_from_the_records(name: str) -> None:
    # A record that changes without `conform schema NAME > schemas/NAME.json` fails here.
    assert (REPO / "schemas" / f"{name}.json").read_text() == schema_text(name), (
        f"schemas/{name}.json is stale: regenerate it with `conform schema {name}`")
    jsonschema.Draft202012Validator.check_schema(_kept(name))


def test_conform_schema_prints_the_kept_schema() -> None:
    for name in SCHEMAS:
        result = CliRunner().invoke(main, ["schema", name], catch_exceptions=False)
        assert result.exit_code == 0 and json.loads(result.stdout) == _kept(name)


def test_the_sample_job_is_valid() -> None:
    job = json.loads((REPO / "examples" / "post.json").read_text())
    jsonschema.validate(job, _kept("job"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**job, "accounts": [{"platform": "x"}]}, _kept("job"))  # no id
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**job, "conform": {"fit": "stretch"}}, _kept("job"))


def test_the_sample_manifest_is_valid() -> None:
    manifest = json.loads((REPO / "tests" / "data" / "sample-manifest.json").read_text())
    for account in manifest["accounts"]:
        for entry in account["media"]:
            if entry["bytes"] == "ENCODED":  # the golden file's placeholder for encodes
                entry["bytes"], entry["sha256"] = 1, "0" * 64
    jsonschema.validate(manifest, _kept("manifest"))


def test_failed_accounts_and_urls_are_valid_and_strays_are_not() -> None:
    data = _manifest(()).to_dict()
    jsonschema.validate(data, _kept("manifest"))
    data["accounts"][0]["media"][0]["url"] = "https://cdn.example/a.mp4"
    jsonschema.validate(data, _kept("manifest"))
    bad = json.loads(json.dumps(data))
    bad["accounts"][0]["media"][0]["kind"] = "audio"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _kept("manifest"))
    bad = json.loads(json.dumps(data))
    bad["accounts"][1]["errors"] = [{"code": "x", "message": "m", "http_status": 500,
                                     "retryable": True}]  # retryable is never published
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _kept("manifest"))
