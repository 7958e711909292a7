"""A real threaded HTTP(S) server on 127.0.0.1 for download and ingest tests.

Use the ``http_server`` fixture (import it into a test module with
``from tests.support.httpserver import http_server  # noqa: F401``), register routes, and point
the code under test at ``http_server.url(path)``::

    def test_fetch(http_server, tmp_path):
        http_server.route("/a.mp4", serve_bytes(b"...", content_type="video/mp4"))
        http_server.route("/old", redirect("/a.mp4"))
        ...
        assert http_server.hits["/a.mp4"] == 1
        assert http_server.last_request("/a.mp4").header("Host") == "..."

Remember that netguard refuses loopback by default: tests that download from this server pass
``allow_networks=LOOPBACK`` (or a fake resolver plus an allow-list).

A route handler is any ``Callable[[RequestHandler], None]``: it gets the live
``BaseHTTPRequestHandler`` and writes the whole response itself, so anything HTTP allows can be
served. The factories below cover the common cases (bytes, redirects, status codes, slow,
dripping and endless bodies, a per-hit sequence). Unknown paths answer 404 and are still
counted. The server speaks HTTP/1.1 but every helper closes the connection after one response.

For HTTPS use :func:`serve` with an ``ssl.SSLContext``; the SNI names clients sent are recorded
in ``sni_names``. Handlers that wait use ``server.stopping`` so teardown never hangs.
"""

from __future__ import annotations

import collections
import contextlib
import http.server
import ipaddress
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

RequestHandler = http.server.BaseHTTPRequestHandler
Route = Callable[[RequestHandler], None]

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
"""An ``allow_networks`` value that lets netguard reach this server."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    client_address: tuple[str, int]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # slow handlers must not make teardown wait for them

    def __init__(self, owner: LocalHTTPServer, ssl_context: ssl.SSLContext | None) -> None:
        self.owner = owner
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is not None:
            # Handshake in the worker thread, so a client that rejects our certificate (a test
            # of certificate checking) does not stall the accept loop.
            try:
                tls = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                self.owner.tls_failures += 1
                return
            with tls:
                super().finish_request(tls, client_address)
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-body (byte caps, timeouts) is expected, not an error.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests assert on ``requests`` and ``hits`` instead."""

    def _dispatch(self) -> None:
        owner = self.server.owner
        split = urllib.parse.urlsplit(self.path)
        route = owner.record(self, split.path, split.query)
        if route is None:
            status(404)(self)
        else:
            route(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch


class LocalHTTPServer:
    """The object the ``http_server`` fixture yields.

    Attributes:
        hits: How many requests reached each path (query string ignored); unknown paths too.
        requests: Every request in arrival order.
        sni_names: Server names sent in TLS ClientHello (HTTPS only; None when absent).
        tls_failures: TLS handshakes that failed (e.g. the client rejected the certificate).
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.scheme = "https" if ssl_context is not None else "http"
        self.hits: collections.Counter[str] = collections.Counter()
        self.requests: list[RecordedRequest] = []
        self.sni_names: list[str | None] = []
        self.tls_failures = 0
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        if ssl_context is not None:
            ssl_context.sni_callback = self._record_sni
        self._server = _Server(self, ssl_context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalHTTPServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close the socket."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- addresses -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on (always 127.0.0.1)."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The ephemeral port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def stopping(self) -> threading.Event:
        """Set when the server stops; waiting handlers should give up when it is."""
        return self._server.stopping

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        """An absolute URL for ``path`` on this server.

        Args:
            path: Path (and optional query) starting with ``/``.
            host: Name to put in the URL instead of 127.0.0.1, for tests with a fake resolver
                that maps that name to 127.0.0.1 (the port stays this server's).
        """
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    # --- routes and records --------------------------------------------------------------

    def route(self, path: str, handler: Route) -> None:
        """Serve ``path`` (exact match, query string ignored) with ``handler``."""
        with self._lock:
            self._routes[path] = handler

    def redirect_chain(self, prefix: str, length: int, final: Route, *, code: int = 302) -> str:
        """Register ``length`` redirects ending in ``final``; return the first path.

        ``prefix/<length>`` redirects to ``prefix/<length-1>`` and so on down to ``prefix/0``,
        which is served by ``final``. Following the whole chain takes ``length`` redirects.
        """
        for n in range(length, 0, -1):
            self.route(f"{prefix}/{n}", redirect(f"{prefix}/{n - 1}", code=code))
        self.route(f"{prefix}/0", final)
        return f"{prefix}/{length}"

    def last_request(self, path: str) -> RecordedRequest:
        """The most recent request for ``path``.

        Raises:
            LookupError: ``path`` was never requested.
        """
        with self._lock:
            for req in reversed(self.requests):
                if req.path == path:
                    return req
        raise LookupError(f"no request for {path!r}")

    def record(self, req: RequestHandler, path: str, query: str) -> Route | None:
        """Count and record a request; return its route (None for unknown paths)."""
        recorded = RecordedRequest(
            method=req.command,
            path=path,
            query=query,
            headers=tuple(req.headers.items()),
            client_address=(str(req.client_address[0]), int(req.client_address[1])),
        )
        with self._lock:
            self.hits[path] += 1
            self.requests.append(recorded)
            return self._routes.get(path)

    def _record_sni(
        self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext
    ) -> None:
        with self._lock:
            self.sni_names.append(name)


@contextlib.contextmanager
def serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[LocalHTTPServer]:
    """Run a :class:`LocalHTTPServer` for the duration of a ``with`` block.

    Args:
        ssl_context: A server-side context (``ssl.PROTOCOL_TLS_SERVER`` with a certificate
            loaded) to serve HTTPS; its ``sni_callback`` is replaced to record SNI names.
    """
    server = LocalHTTPServer(ssl_context).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_server() -> Iterator[LocalHTTPServer]:
    """A fresh plain-HTTP server on 127.0.0.1 with no routes (every path answers 404)."""
    with serve() as server:
        yield server


# --- route factories ---------------------------------------------------------------------------


def _stopping(req: RequestHandler) -> threading.Event:
    event = getattr(req.server, "stopping", None)
    return event if isinstance(event, threading.Event) else threading.Event()


def _start(
    req: RequestHandler,
    code: int,
    headers: Sequence[tuple[str, str]] = (),
    *,
    length: int | None = None,
    chunked: bool = False,
) -> None:
    req.close_connection = True
    req.send_response(code)
    for name, value in headers:
        req.send_header(name, value)
    if length is not None:
        req.send_header("Content-Length", str(length))
    if chunked:
        req.send_header("Transfer-Encoding", "chunked")
    req.send_header("Connection", "close")
    req.end_headers()


def _write_chunk(req: RequestHandler, data: bytes, *, chunked: bool) -> None:
    if chunked:
        req.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    else:
        req.wfile.write(data)
    req.wfile.flush()


def serve_bytes(
    body: bytes,
    *,
    content_type: str | None = "application/octet-stream",
    code: int = 200,
    headers: Sequence[tuple[str, str]] = (),
    content_length: int | None = None,
) -> Route:
    """Answer with ``body``.

    Args:
        body: The response body.
        content_type: ``Content-Type`` header, or None for none at all.
        code: Status code.
        headers: Extra headers.
        content_length: A ``Content-Length`` to announce instead of the true one (lying
            servers); the body sent is still ``body``.
    """
    extra = [*headers, *([("Content-Type", content_type)] if content_type else [])]

    def handler(req: RequestHandler) -> None:
        _start(req, code, extra, length=len(body) if content_length is None else content_length)
        if req.command != "HEAD":
            req.wfile.write(body)

    return handler


def status(code: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> Route:
    """Answer with a bare status code (404, 403, 500 ...)."""
    return serve_bytes(body, content_type="text/plain", code=code, headers=headers)


def redirect(location: str, *, code: int = 302) -> Route:
    """Redirect to ``location`` (absolute, relative, or any scheme such as ``file:///``)."""
    return serve_bytes(b"", content_type=None, code=code, headers=[("Location", location)])


def slow(delay_s: float, then: Route | None = None) -> Route:
    """Wait ``delay_s`` before answering (or before hanging up when ``then`` is None)."""

    def handler(req: RequestHandler) -> None:
        if _stopping(req).wait(delay_s):
            return
        if then is not None:
            then(req)

    return handler


def endless(
    *, chunk: bytes = b"\0" * 16384, chunked: bool = False, content_type: str | None = None
) -> Route:
    """Stream ``chunk`` forever, until the client hangs up (tests byte caps).

    Without ``chunked`` there is no ``Content-Length`` and the body ends only at close.
    """
    headers = [("Content-Type", content_type)] if content_type else []

    def handler(req: RequestHandler) -> None:
        _start(req, 200, headers, chunked=chunked)
        stopping = _stopping(req)
        with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError):
            while not stopping.is_set():
                _write_chunk(req, chunk, chunked=chunked)

    return handler


def drip(interval_s: float, *, chunk: bytes = b"x", total_bytes: int | None = None) -> Route:
    """Send ``chunk`` every ``interval_s`` (forever, or up to ``total_bytes``): a slowloris.

    Each read returns within ``interval_s``, so only an overall deadline stops it.
    """

    def handler(req: RequestHandler) -> None:
        _start(req, 200, [("Content-Type", "application/octet-stream")], length=total_bytes)
        stopping = _stopping(req)
        sent = 0
        with contextlib.suppress(ConnectionError, TimeoutError, ssl.SSLError):
            while total_bytes is None or sent < total_bytes:
                if stopping.wait(interval_s):
                    return
                piece = chunk if total_bytes is None else chunk[: total_bytes - sent]
                _write_chunk(req, piece, chunked=False)
                sent += len(piece)

    return handler


def sequence(*handlers: Route) -> Route:
    """Use ``handlers[i]`` for the i-th hit; the last one answers every later hit.

    ``sequence(status(500), serve_bytes(b"ok"))`` fails once, then succeeds.
    """
    if not handlers:
        raise ValueError("sequence() needs at least one handler")
    lock = threading.Lock()
    count = 0

    def handler(req: RequestHandler) -> None:
        nonlocal count
        with lock:
            index = min(count, len(handlers) - 1)
            count += 1
        handlers[index](req)

    return handler


def hang_up() -> Route:
    """Close the connection without answering (a connection reset / broken response)."""

    def handler(req: RequestHandler) -> None:
        req.close_connection = True
        with contextlib.suppress(OSError):
            req.connection.shutdown(socket.SHUT_RDWR)

    return handler


def unused_port() -> int:
    """A loopback TCP port with nothing listening on it (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout_s: float = 2.0) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes (server-side effects lag a bit)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


__all__ = [
    "LOOPBACK",
    "LocalHTTPServer",
    "RecordedRequest",
    "drip",
    "endless",
    "hang_up",
    "http_server",
    "redirect",
    "sequence",
    "serve",
    "serve_bytes",
    "slow",
    "status",
    "unused_port",
    "wait_for",
]
