"""The operator's HTTP endpoint: ``GET /metrics``, ``/healthz`` and ``/readyz`` of a
:class:`~pipeline.fleet.metrics.Monitor`, on ``--metrics-address`` (loopback unless told otherwise).

It is an input surface, so it is kept small and hostile-safe: GET (and HEAD) on the three paths
only (anything else is 404 or 405, with no body read), a bounded request line and headers
(http.server's own caps: 64 KiB line, 100 headers), a socket timeout so a silent client is
dropped and a deadline per connection so a dribbling one is too, one request per connection,
and a cap on connections served at once (the rest are closed unanswered). Responses are a few
kilobytes, made from the monitor's state only: a request never reaches the queue or the storage.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError
from .metrics import CONTENT_TYPE, Monitor

__all__ = ["DEFAULT_HOST", "StatusServer", "parse_address", "serving"]

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Connections answered at once; Prometheus and the kubelet need one or two.
MAX_CONNECTIONS = 8
#: Seconds a client may stay silent while sending its request (or taking the response).
REQUEST_TIMEOUT_S = 5.0
#: Seconds a whole connection may last, however it dribbles: a client sending a byte every few
#: seconds would otherwise hold a connection slot for ever.
CONNECTION_DEADLINE_S = 10.0


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``:PORT`` or ``PORT`` (loopback) → ``(host, port)``.

    Raises:
        ConfigError: not an address with a port 0-65535 and an IP host (or ``localhost``).
    """
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = "", text.strip()
    host = host.strip("[]") or DEFAULT_HOST
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"--metrics-address {text!r}: expected HOST:PORT, e.g. "
                          f"127.0.0.1:9464")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError as err:
            raise ConfigError(f"--metrics-address {text!r}: the host must be an IP address "
                              f"(0.0.0.0 for every interface)") from err
    return host, int(port_text)


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD on /metrics, /healthz, /readyz; nothing else."""

    server: StatusServer
    timeout = REQUEST_TIMEOUT_S
    protocol_version = "HTTP/1.0"  # one request per connection
    default_request_version = "HTTP/1.0"  # errors to garbage get a status line too
    server_version = "conform"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self._watchdog = threading.Timer(CONNECTION_DEADLINE_S, self._cut)
        self._watchdog.daemon = True
        self._watchdog.start()

    def finish(self) -> None:
        self._watchdog.cancel()
        super().finish()

    def _cut(self) -> None:
        """The connection outlived its deadline: end it (the handler's read then fails)."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        monitor = self.server.monitor
        if path == "/metrics":
            self._send(200, monitor.metrics_text(), CONTENT_TYPE, with_body)
        elif path in ("/healthz", "/readyz"):
            verdict = monitor.liveness() if path == "/healthz" else monitor.readiness()
            self._send(200 if verdict.ok else 503, verdict.body(), "text/plain; charset=utf-8",
                       with_body)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", with_body)

    def _refuse_method(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def _send(self, status: int, body: bytes, content_type: str, with_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status endpoint: " + format, *args)


class StatusServer(http.server.ThreadingHTTPServer):
    """A threaded HTTP server for one monitor, with at most ``MAX_CONNECTIONS`` at once."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], monitor: Monitor) -> None:
        self.monitor = monitor
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed unanswered
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request is its own problem: no traceback on stderr.
        log.debug("status endpoint: request from %s failed", client_address, exc_info=True)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket (the port chosen when 0 was asked)."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"


@contextlib.contextmanager
def serving(address: str | None, monitor: Monitor) -> Iterator[StatusServer | None]:
    """Serve ``monitor`` on ``address`` in a background thread while the block runs; nothing
    when ``address`` is None.

    Raises:
        ConfigError: a bad address, or the port cannot be bound.
    """
    if address is None:
        yield None
        return
    host, port = parse_address(address)
    try:
        server = StatusServer((host, port), monitor)
    except OSError as err:
        raise ConfigError(f"--metrics-address {address}: cannot listen: {err}") from err
    thread = threading.Thread(target=server.serve_forever, name="conform-status",
                              kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    log.info("metrics and health on %s (/metrics, /healthz, /readyz)", server.url)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
