"""A loopback HTTP proxy in front of the S3 test server that holds chosen requests.

A request the ``stall`` predicate picks is held, its body unread, until :meth:`release` (or
teardown): to the client it is a store that stopped answering mid-upload. Everything else is
forwarded as is. Used to check that uploads stop at the job deadline.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

_HOP_HEADERS = {"connection", "transfer-encoding", "keep-alive", "content-length"}


class StallProxy:
    """``with StallProxy(upstream, stall) as proxy:`` and point the client at ``proxy.url``."""

    def __init__(self, upstream: str, stall: Callable[[str, str], bool]) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.stall = stall
        self.released = threading.Event()
        self.held: list[tuple[str, str]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _forward(self) -> None:
                if proxy.stall(self.command, self.path):
                    proxy.held.append((self.command, self.path))
                    proxy.released.wait(120)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1",
                                                  proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_HEADERS | {"expect"}}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_HEADERS:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def release(self) -> None:
        """Let held requests (and later ones) through."""
        self.released.set()

    def __enter__(self) -> StallProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
