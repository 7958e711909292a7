"""The deployment examples in deploy/ and the Dockerfile: they parse, and every command line they
contain is a valid `conform` invocation consistent with the rest of the file."""

from __future__ import annotations

import json
import re
import subprocess
import warnings
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import ExitStatus
from pipeline.fleet.batch import SHARD_INDEX_VARIABLES
from pipeline.fleet.status import parse_address

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
EXIT_CODES = {int(status) for status in ExitStatus}


def parse_conform(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``conform ARGV`` exactly as the CLI would, without running anything.

    Returns the subcommand's name and its parsed parameters; raises click's usage errors.
    """
    ctx = main.make_context("conform", list(argv))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click 9 folds these into args
        rest = [*getattr(ctx, "protected_args", []), *ctx.args]
    name, command, args = main.resolve_command(ctx, rest)
    assert name is not None and command is not None
    sub = command.make_context(name, args, parent=ctx)
    return name, sub.params


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec["containers"]
    assert "command" not in container, "the image's ENTRYPOINT is conform; give args only"
    return container


def _entrypoint() -> list[str]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", (REPO / "Dockerfile").read_text(), re.M)
    assert match, "Dockerfile has no exec-form ENTRYPOINT"
    return list(json.loads(match.group(1)))


def test_the_checker_rejects_bad_command_lines() -> None:
    with pytest.raises(click.UsageError):
        parse_conform(["batch"])  # SOURCE missing
    with pytest.raises(click.UsageError):
        parse_conform(["batch", "jobs.jsonl", "--shards", "4"])
    with pytest.raises(click.UsageError):
        parse_conform(["worker", "--dest", "s3://b/out"])  # --queue-url missing
    with pytest.raises(click.UsageError):
        parse_conform(["frobnicate"])
    assert parse_conform(["run", "-"])[0] == "run"


def test_dockerfile_builds_the_container_job() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert _entrypoint() == ["conform"]
    assert re.search(r"^ARG BASE_IMAGE=docker\.io/library/python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}", text, re.M)
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "must not run as root"
    assert "--no-install-recommends ffmpeg" in text
    assert re.search(r"PYTHONUNBUFFERED=1", text)
    assert re.search(r"CONFORM_PRESETS_DIR=/app/presets", text)
    assert re.search(r"^COPY presets /app/presets$", text, re.M)
    assert re.search(r'^VOLUME \["/work"\]$', text, re.M)
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    assert cmd and parse_conform(json.loads(cmd.group(1)))[0] == "run"


def test_kubernetes_indexed_job_shards_the_batch() -> None:
    (job,) = _docs("k8s-indexed-job.yaml")
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    pod = spec["template"]["spec"]
    container = _container(pod)
    name, params = parse_conform(container["args"])
    assert name == "batch"
    # Kubernetes gives each pod JOB_COMPLETION_INDEX, never the count: the count is a flag
    # and must match the number of completions, or jobs would be lost or run twice.
    assert "JOB_COMPLETION_INDEX" in SHARD_INDEX_VARIABLES
    assert params["shard_index"] is None
    assert params["shard_count"] == spec["completions"]
    assert spec["parallelism"] <= spec["completions"]
    assert params["source"].startswith("s3://") and params["dest"].startswith("s3://")
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    codes = {code for rule in spec["podFailurePolicy"]["rules"]
             for code in rule.get("onExitCodes", {}).get("values", [])}
    assert codes <= EXIT_CODES
    assert {r["action"] for r in spec["podFailurePolicy"]["rules"]
            if 2 in r.get("onExitCodes", {}).get("values", [])} == {"FailJob"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert "{id}" in env["CONFORM_LIBRARY"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/work" in mounts  # the image's CONFORM_WORKDIR volume


def test_keda_scaled_workers_match_the_worker_flags() -> None:
    docs = {d["kind"]: d for d in _docs("keda-sqs-worker.yaml")}
    assert set(docs) == {"Deployment", "ScaledObject", "TriggerAuthentication"}
    deployment, scaled = docs["Deployment"], docs["ScaledObject"]
    pod = deployment["spec"]["template"]["spec"]
    name, params = parse_conform(_container(pod)["args"])
    assert name == "worker"
    assert params["idle_exit_s"] is None and params["max_messages"] is None  # a Deployment
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] == 0
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"]["queueURL"] == params["queue_url"]
    assert trigger["metadata"]["awsRegion"] in params["queue_url"]
    assert trigger["authenticationRef"]["name"] == docs["TriggerAuthentication"]["metadata"]["name"]
    # The pod must outlive the worker's grace period, or a kill would skip the release.
    assert pod["terminationGracePeriodSeconds"] > params["grace_s"]
    assert params["dest"].startswith("s3://")


def test_keda_workers_are_probed_and_scraped_where_the_worker_serves() -> None:
    deployment = next(d for d in _docs("keda-sqs-worker.yaml") if d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    container = _container(template["spec"])
    _, params = parse_conform(container["args"])
    host, port = parse_address(params["metrics_address"])
    assert host == "0.0.0.0"  # the kubelet and Prometheus reach the pod's address
    (declared,) = container["ports"]
    assert declared["containerPort"] == port
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {p["port"] for p in probes.values()} == {declared["name"]}
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    # Liveness must not kill a worker sooner than its receive loop may legitimately pause.
    live = container["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= params["wait_time_s"] + 60


KUBERNETES_FILES = ["keda-sqs-worker.yaml", "k8s-indexed-job.yaml"]


@pytest.mark.parametrize("name", KUBERNETES_FILES)
def test_kubernetes_examples_validate_strictly(name: str) -> None:
    # Against the Kubernetes API schemas (kubernetes-validate --strict: unknown fields are
    # errors). KEDA's own kinds have no schema there; their fields are checked above.
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for doc in _docs(name):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        checked += 1
    assert checked >= 1


def test_strict_validation_catches_a_misplaced_field() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = next(d for d in _docs("keda-sqs-worker.yaml") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["pth"] = "/healthz"  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(),
                                     strict=True)


def test_aws_batch_array_job_definition() -> None:
    (definition,) = _docs("aws-batch-job-definition.yaml")
    assert definition["type"] == "container"
    defaults = definition["parameters"]
    command = [re.sub(r"^Ref::(\w+)$", lambda m: defaults[m.group(1)], part)
               for part in definition["containerProperties"]["command"]]
    assert not [part for part in command if "Ref::" in part], "every Ref:: needs a default"
    name, params = parse_conform(command)
    assert name == "batch"
    assert "AWS_BATCH_JOB_ARRAY_INDEX" in SHARD_INDEX_VARIABLES
    assert params["shard_index"] is None
    assert params["shard_count"] == int(defaults["shards"])
    # The documented submit command uses the same array size as the shard count.
    text = (DEPLOY / "aws-batch-job-definition.yaml").read_text()
    size = re.search(r"--array-properties size=(\d+)", text)
    shards = re.search(r"shards=(\d+)", text)
    assert size and shards and size.group(1) == shards.group(1) == defaults["shards"]
    rules = definition["retryStrategy"]["evaluateOnExit"]
    assert {int(r["onExitCode"]) for r in rules if "onExitCode" in r} <= EXIT_CODES
    assert {r["action"] for r in rules if r.get("onExitCode") == "2"} == {"EXIT"}
    assert rules[-1] == {"onReason": "*", "action": "RETRY"}


def test_ci_runs_the_container_proof_after_the_tests() -> None:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines.index("bash scripts/test") < lines.index("bash scripts/container-test")
    script = REPO / "scripts" / "container-test"
    subprocess.run(["bash", "-n", str(script)], check=True)  # it parses
    text = script.read_text()
    for needed in ("debootstrap", 'runtime = "runc"', "default_ulimits", "--network host",
                   "update-ca-certificates", "--build-arg BASE_IMAGE=", "CONFORM_JOB_URI",
                   "--version", "tests.support.seaweed"):
        assert needed in text, needed
