"""What an operator watches: /metrics, /healthz and /readyz of `conform worker` and `conform
batch` (--metrics-address), read over HTTP as Prometheus and the kubelet would."""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError, StorageError
from pipeline.fleet.metrics import Monitor
from pipeline.fleet.status import StatusServer, parse_address, serving
from pipeline.fleet.worker import Worker
from tests.support.jobkit import (
    conform_cmd,
    image_job,
    library_settings,
    subprocess_env,
    video_job,
    wait_for,
    write_jsonl,
)
from tests.test_worker import Queues, make_queues

# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, path: str, method: str = "GET", timeout: float = 5.0
         ) -> tuple[int, str]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value, from the text format."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CONFORM_REQUIRE_FFMPEG"):
            pytest.fail("promtool is missing: scripts/setup test installs Debian's prometheus")
        pytest.skip("promtool not installed (Debian's prometheus package)")
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def served() -> Iterator[tuple[Monitor, str]]:
    monitor = Monitor(idle_limit_s=60, job_limit_s=60)
    with serving("127.0.0.1:0", monitor) as server:
        assert server is not None
        yield monitor, server.url


# --------------------------------------------------------------------------- the monitor


def test_readiness_needs_every_part_and_turns_back_while_one_fails() -> None:
    monitor = Monitor(("queue", "destination"))
    verdict = monitor.readiness()
    assert not verdict.ok and "queue: not reached yet" in verdict.lines
    monitor.received(0.1, ok=True)
    assert not monitor.readiness().ok  # the destination is still unknown
    monitor.check_destination(lambda: None, force=True)
    assert monitor.readiness().ok
    monitor.received(2.0, ok=False, reason="AWS.SimpleQueueService.NonExistentQueue")
    verdict = monitor.readiness()
    assert not verdict.ok and any("NonExistentQueue" in line for line in verdict.lines)
    monitor.received(0.1, ok=True)

    def unreachable() -> None:
        raise StorageError("could not connect to the storage endpoint")

    monitor.check_destination(unreachable, force=True)
    verdict = monitor.readiness()
    assert not verdict.ok and any(line.startswith("destination: storage_failed")
                                  for line in verdict.lines)


def test_liveness_fails_when_the_loop_stops_turning_or_a_job_overstays() -> None:
    monitor = Monitor(idle_limit_s=0.2, job_limit_s=0.4)
    assert monitor.liveness().ok
    time.sleep(0.3)
    assert not monitor.liveness().ok  # no receive for longer than a turn may take
    monitor.beat()
    assert monitor.liveness().ok
    token = monitor.job_started()
    time.sleep(0.3)
    assert monitor.liveness().ok  # a job in hand has its own, longer allowance
    time.sleep(0.2)
    assert not monitor.liveness().ok
    monitor.job_finished(token, "succeeded", 0.5)
    assert monitor.liveness().ok
    monitor.loop_ended()
    assert monitor.liveness().lines == ("the loop has ended",)


def test_metrics_text_passes_promtool(tmp_path: Path) -> None:
    monitor = Monitor()
    token = monitor.job_started()
    monitor.job_finished(token, "failed", 2.5)
    monitor.received(0.3, ok=True)
    monitor.errors.labels("storage_failed").inc()
    text = monitor.metrics_text().decode()
    _promtool_check(text)
    samples = _samples(text)
    assert samples['conform_jobs_total{status="failed"}'] == 1
    assert samples["conform_job_duration_seconds_count"] == 1
    assert samples["conform_queue_receive_seconds_count"] == 1
    assert samples["conform_jobs_in_progress"] == 0
    assert samples['conform_outputs_total{action="made"}'] == 0
    assert "process_resident_memory_bytes" in samples


# --------------------------------------------------------------------------- the endpoint


def test_endpoint_serves_the_three_paths_and_nothing_else(served: tuple[Monitor, str]) -> None:
    monitor, url = served
    status, body = _get(url, "/metrics")
    assert status == 200 and "conform_jobs_in_progress 0.0" in body
    assert _get(url, "/healthz")[0] == 200
    status, body = _get(url, "/readyz")
    assert status == 503 and body.startswith("unavailable")
    monitor.mark("queue", True)
    monitor.mark("destination", True)
    assert _get(url, "/readyz") == (200, "ok\nqueue: ok\ndestination: ok\n")
    assert _get(url, "/metrics?x=1")[0] == 200
    for path in ("/", "/metrics/", "/../etc/passwd", "/healthz%00", "/debug"):
        assert _get(url, path)[0] == 404, path
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        assert _get(url, "/metrics", method=method)[0] == 405, method
    assert _get(url, "/healthz", method="HEAD") == (200, "")


def test_endpoint_survives_hostile_clients(served: tuple[Monitor, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = served
    host, port = url.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    # A request line far over http.server's 64 KiB cap is refused, not buffered.
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 414")
    # Too many headers: 431, and garbage: 400; the server carries on.
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 431")
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 400")
    # Silent clients hold at most the connection cap; the one past it is closed unanswered,
    # and a silent client is dropped after the request timeout.
    from pipeline.fleet import status

    silent = [socket.create_connection(address, timeout=10)
              for _ in range(status.MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # let the server take them all
        with socket.create_connection(address, timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            assert extra.recv(100) == b""  # closed, unanswered
        started = time.monotonic()
        assert silent[0].recv(100) == b""  # dropped after REQUEST_TIMEOUT_S
        assert time.monotonic() - started < status.REQUEST_TIMEOUT_S + 3
    finally:
        for sock in silent:
            sock.close()
    wait_for(lambda: _get(url, "/healthz")[0] == 200, 10, "the endpoint to answer again")


def test_a_dribbling_client_is_cut_off_at_the_connection_deadline(
        served: tuple[Monitor, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.fleet import status

    monkeypatch.setattr(status, "CONNECTION_DEADLINE_S", 1.0)
    _, url = served
    host, port = url.removeprefix("http://").rsplit(":", 1)
    request = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100
    started = time.monotonic()
    cut_after = None
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        for byte in request:  # one byte every 0.05 s: never silent, never a whole request
            try:
                sock.sendall(bytes([byte]))
                # Readable with nothing to read: the server closed the connection.
                if select.select([sock], [], [], 0)[0] and sock.recv(100) == b"":
                    cut_after = time.monotonic() - started
                    break
            except OSError:  # reset by the server
                cut_after = time.monotonic() - started
                break
            time.sleep(0.05)
    assert cut_after is not None, "a dribbling client kept its connection"
    assert 0.9 < cut_after < 3.0


def test_addresses() -> None:
    assert parse_address("9464") == ("127.0.0.1", 9464)
    assert parse_address(":9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("", "host", "example.com:80", "1.2.3.4:99999", "1.2.3.4:-1", "1.2.3.4:x"):
        with pytest.raises(ConfigError):
            parse_address(bad)
    with serving("127.0.0.1:0", Monitor()) as server:
        assert isinstance(server, StatusServer)
        taken = server.url.rsplit(":", 1)[1]
        with pytest.raises(ConfigError), serving(f"127.0.0.1:{taken}", Monitor()):
            pass


# --------------------------------------------------------------------------- the worker


def test_worker_readiness_follows_queue_and_destination(tmp_path: Path, library: Path,
                                                         s3_server: Any, moto_server: Any,
                                                         s3_bucket: str) -> None:
    q = make_queues(moto_server)
    settings = library_settings(tmp_path, library, dest="s3://conform-no-such-bucket/out")
    worker = Worker(q.jobs, settings=settings, wait_time_s=0, idle_exit_s=0.5)
    worker.run()
    verdict = worker.monitor.readiness()
    assert not verdict.ok
    assert "queue: ok" in verdict.lines
    assert any(line.startswith("destination: storage") for line in verdict.lines)
    assert worker.monitor.liveness().lines == ("the loop has ended",)
    good = library_settings(tmp_path, library, dest=f"s3://{s3_bucket}/out")
    worker = Worker(q.jobs, settings=good, wait_time_s=0, idle_exit_s=0.5)
    assert not worker.monitor.readiness().ok  # before the loop reached anything
    worker.run()
    assert worker.monitor.readiness().ok


class _StuckQueue:
    """An SQS client whose receive hangs until released, as one behind a dead connection."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.receiving = threading.Event()

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {"Attributes": {"VisibilityTimeout": "30"}}

    def receive_message(self, **_: Any) -> dict[str, Any]:
        self.receiving.set()
        self.release.wait(30)
        return {"Messages": []}


def test_a_stuck_receive_turns_healthz_to_503(tmp_path: Path, library: Path) -> None:
    stuck = _StuckQueue()
    monitor = Monitor(idle_limit_s=0.5, job_limit_s=60)
    settings = library_settings(tmp_path, library, dest=str(tmp_path / "out"))
    worker = Worker("https://sqs.eu-west-1.amazonaws.com/1/q", settings=settings, sqs=stuck,
                    wait_time_s=0, max_messages=1, idle_exit_s=0.1, monitor=monitor)
    with serving("127.0.0.1:0", monitor) as server:
        assert server is not None
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            assert stuck.receiving.wait(10)
            assert _get(server.url, "/healthz")[0] == 200  # just turned
            wait_for(lambda: _get(server.url, "/healthz")[0] == 503, 5, "healthz to turn 503")
            status, body = _get(server.url, "/healthz")
            assert "no turn of the loop" in body
            # Readiness is about what was reached: the destination was, the queue not yet.
            status, body = _get(server.url, "/readyz")
            assert status == 503 and "destination: ok" in body and "queue: not reached" in body
        finally:
            stuck.release.set()
            thread.join(10)
        assert _get(server.url, "/healthz") == (503, "unavailable\nthe loop has ended\n")


def _gated_ffmpeg(directory: Path, gate: Path) -> Path:
    """An ffmpeg whose encodes wait until ``gate`` exists (at most 60 s)."""
    real = shutil.which("ffmpeg")
    assert real
    script = directory / "ffmpeg-gated"
    script.write_text("#!/bin/sh\n"
                      f'case " $* " in *" -progress "*) n=0; while [ ! -e "{gate}" ] && '
                      f'[ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done;; esac\n'
                      f'exec "{real}" "$@"\n')
    script.chmod(0o755)
    return script


@pytest.mark.s3
@pytest.mark.ffmpeg
def test_worker_metrics_while_jobs_run_in_processes(tmp_path: Path, library: Path,
                                                    s3_server: Any, moto_server: Any,
                                                    s3_bucket: str) -> None:
    q: Queues = make_queues(moto_server, max_receives=3)
    for i in range(3):
        q.send(video_job(f"m-{i}"))
    q.send(image_job("m-img", "photo-1.jpg"))
    q.send("{not a job")
    gate = tmp_path / "gate"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        conform_cmd("worker", "--queue-url", q.jobs, "--dest", f"s3://{s3_bucket}/out",
                    "--library", f"file://{library}/{{id}}", "--workdir", str(tmp_path / "w"),
                    "--wait-time", "1", "--idle-exit", "20", "--retry-delay", "0",
                    "--workers", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(FFMPEG_PATH=str(_gated_ffmpeg(tmp_path, gate)),
                           CONFORM_METRICS_ADDRESS=f"127.0.0.1:{port}"))
    try:
        def metrics() -> dict[str, float]:
            try:
                status, body = _get(url, "/metrics")
            except OSError:
                return {}
            assert status == 200
            return _samples(body)

        # Two video jobs are held at their encode, one in each job process.
        wait_for(lambda: metrics().get("conform_jobs_in_progress") == 2, 60,
                 "two jobs in progress")
        assert _get(url, "/healthz")[0] == 200
        assert _get(url, "/readyz")[0] == 200
        gate.touch()
        wait_for(lambda: sum(v for k, v in metrics().items()
                             if k.startswith("conform_jobs_total")) == 5, 120, "five jobs")
        text = _get(url, "/metrics")[1]
        _promtool_check(text)
        samples = _samples(text)
        assert samples['conform_jobs_total{status="succeeded"}'] == 4
        assert samples['conform_jobs_total{status="invalid"}'] == 1
        assert samples['conform_errors_total{code="invalid_job"}'] == 1
        assert samples["conform_jobs_in_progress"] == 0
        assert samples["conform_job_duration_seconds_count"] == 5
        assert samples["conform_queue_receive_seconds_count"] >= 5
        assert samples["process_resident_memory_bytes"] > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(m["status"] for m in lines) == [
        "invalid", "succeeded", "succeeded", "succeeded", "succeeded"]
    # Each job's stored objects, counted once per job, as made now or reused.
    made = reused = 0
    for line in lines:
        media = {m["uri"]: "reused" in m["actions"]
                 for a in (line.get("manifest") or {}).get("accounts", []) for m in a["media"]}
        reused += sum(media.values())
        made += len(media) - sum(media.values())
    assert (made, reused) == (samples['conform_outputs_total{action="made"}'],
                              samples['conform_outputs_total{action="reused"}'])
    assert made + reused == 4 and reused >= 1  # the third video reuses the first two's output


# --------------------------------------------------------------------------- the batch


@pytest.mark.ffmpeg
def test_batch_serves_metrics_while_it_runs(tmp_path: Path, library: Path) -> None:
    gate = tmp_path / "gate"
    source = write_jsonl(tmp_path / "jobs.jsonl", [video_job("b-1"), image_job("b-2")])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        conform_cmd("batch", str(source), "--dest", str(tmp_path / "out"), "--workers", "2",
                    "--library", f"file://{library}/{{id}}", "--workdir", str(tmp_path / "w"),
                    "--no-progress", "--json", "--metrics-address", f"127.0.0.1:{port}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(FFMPEG_PATH=str(_gated_ffmpeg(tmp_path, gate))))
    try:
        def ready() -> bool:
            try:
                return _get(url, "/readyz")[0] == 200
            except OSError:
                return False

        wait_for(ready, 60, "the batch to be ready")
        body = _get(url, "/readyz")[1]
        assert "source: ok" in body and "destination: ok" in body
        wait_for(lambda: _samples(_get(url, "/metrics")[1]).get(
            'conform_jobs_total{status="succeeded"}') == 1, 60, "the image job")
        samples = _samples(_get(url, "/metrics")[1])
        assert samples["conform_jobs_in_progress"] == 1  # the video, held at its encode
        assert _get(url, "/healthz")[0] == 200
        gate.touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert sorted(json.loads(line)["status"] for line in out.splitlines()) == [
        "succeeded", "succeeded"]
    with pytest.raises(OSError):
        _get(url, "/healthz", timeout=2)  # the endpoint ends with the batch
