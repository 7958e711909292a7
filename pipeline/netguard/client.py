"""The download itself: requests to vetted addresses, redirects by hand, capped bodies.

Each hop comes from :func:`pipeline.netguard.vet.vet`; the connection goes to one of its
vetted IPs while the original name travels in the ``Host`` header and, for https, in SNI and
the certificate check. Bodies are streamed to disk under a byte cap and one monotonic
deadline. urllib3 exceptions never leave this module; callers see only
:mod:`pipeline.errors` types.
"""

from __future__ import annotations

import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.ssl_match_hostname import CertificateError as Urllib3CertificateError

from ..deadline import Deadline
from ..errors import SourceNotFound, TooLarge
from ..files import HashingWriter, write_whole
from ..settings import IPNetwork
from ..version import __version__
from .vet import Hop, Resolver, check_url, download_error, resolve_tcp, safe_url, vet

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
USER_AGENT = f"conform-pipeline/{__version__}"
# Longest single back-off sleep; the overall deadline bounds the sum anyway.
MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A source fetched to local disk.

    Attributes:
        path: Where the body was written (the ``dest`` given to :func:`download`).
        size_bytes: Bytes on the wire, which are the bytes on disk (no content decoding).
        sha256: Hex digest of the body.
        final_url: The URL of the last redirect hop, fragment removed.
        content_type: The server's ``Content-Type`` header; informational only, media is
            identified by probing, never by this header.
    """

    path: Path
    size_bytes: int
    sha256: str
    final_url: str
    content_type: str | None


class _Transient(Exception):
    """A failure worth retrying: connection trouble or a 5xx answer."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    allow_networks: tuple[IPNetwork, ...] = (),
    connect_timeout_s: float = 10.0,
    read_timeout_s: float = 30.0,
    deadline_s: float = 900.0,
    max_redirects: int = 5,
    retries: int = 3,
    backoff_s: float = 0.5,
    resolve: Resolver | None = None,
) -> Downloaded:
    """Download ``url`` to ``dest`` without letting the URL reach internal networks.

    Every hop, redirects included, is vetted (:func:`pipeline.netguard.vet.vet`) and then
    requested from a vetted IP. The body goes to a temporary file renamed over ``dest`` only
    when complete. Connection errors and 5xx answers are retried with exponential back-off
    (``backoff_s``, doubled each time) within ``retries`` and the overall deadline.

    Args:
        url: An http or https URL; the query string is sent but never printed.
        dest: Where to write the body; its directory must exist.
        max_bytes: Largest body accepted, counted on the wire (``Accept-Encoding: identity``).
        allow_networks: Networks the operator explicitly allows (e.g. a local test server).
        connect_timeout_s: Timeout for each TCP/TLS connection.
        read_timeout_s: Longest wait for any single read from the server.
        deadline_s: Wall-clock budget for everything, retries and redirects included.
        max_redirects: Redirects followed before giving up.
        retries: Extra attempts after connection errors or 5xx answers, for the whole download.
        backoff_s: First back-off sleep; doubled on each further retry.
        resolve: ``(host, port) -> [ip, ...]`` (default ``getaddrinfo``); tests pass a fake.

    Returns:
        What was downloaded, where, and its SHA-256.

    Raises:
        UrlNotAllowed: A hop has a refused scheme, credentials, or resolves to a refused address.
        SourceNotFound: The server answered 404 or 410.
        TooLarge: The body (or its announced ``Content-Length``) exceeds ``max_bytes``.
        DownloadFailed: Retries exhausted, deadline passed, too many redirects, DNS failure,
            TLS verification failure or another 4xx; ``details["retryable"]`` says whether
            trying again later may help (False for 4xx other than 408/429, for TLS
            verification and for redirect loops; the class attribute ``retryable`` is True).
        OSError: ``dest`` cannot be written.
    """
    shown = safe_url(url)
    check_url(url)
    deadline = Deadline(deadline_s, lambda _: download_error(
        f"download of {shown} exceeded its {deadline_s:g} s deadline",
        # permanent, like every deadline: the same server is as slow on a retry
        details={"url": shown, "retryable": False, "reason": "deadline"}))
    limits = _Limits(max_bytes, connect_timeout_s, read_timeout_s, deadline)
    policy = _Policy(allow_networks, max_redirects, max(0, retries), backoff_s,
                     resolve or resolve_tcp)
    # Every failure path, KeyboardInterrupt included, leaves no partial file behind.
    with write_whole(Path(dest), fsync=True) as sink:
        final_url, content_type = _fetch(url, sink, limits, policy)
    return Downloaded(Path(dest), sink.size_bytes, sink.sha256, final_url, content_type)


@dataclass(frozen=True, slots=True)
class _Limits:
    """What bounds one download: its body size, each wait, and the whole."""

    max_bytes: int
    connect_timeout_s: float
    read_timeout_s: float
    deadline: Deadline


@dataclass(frozen=True, slots=True)
class _Policy:
    """Where a download may go and how hard it tries: the same for every hop."""

    allow_networks: tuple[IPNetwork, ...]
    max_redirects: int
    retries: int
    backoff_s: float
    resolve: Resolver


class _Retries:
    """The retries one download has left, shared by all its hops."""

    def __init__(self, policy: _Policy) -> None:
        self.policy = policy
        self.left = policy.retries
        self.attempts = 0

    def back_off(self, err: _Transient, hop: Hop, deadline: Deadline) -> None:
        """Sleep before the next attempt, or raise when no retry (or time) is left.

        Raises:
            DownloadFailed: Retries exhausted, or the back-off would outlast the deadline.
        """
        cause = err.__cause__ or err
        if self.left == 0:
            raise download_error(
                f"download of {hop.shown} failed after {self.attempts} attempt(s): {err.reason}",
                details={
                    "url": hop.shown,
                    "retryable": True,
                    "attempts": self.attempts,
                    "http_status": err.status,
                },
            ) from cause
        self.left -= 1
        used = self.policy.retries - self.left
        delay = min(self.policy.backoff_s * 2 ** (used - 1), MAX_BACKOFF_S)
        if delay >= deadline.time_left():
            deadline.expire(cause)
        time.sleep(delay)


def _fetch(
    url: str, sink: HashingWriter, limits: _Limits, policy: _Policy
) -> tuple[str, str | None]:
    """Follow redirects and retry until a body is in ``sink``; return (final URL, type)."""
    retries = _Retries(policy)
    redirects = 0
    current = url
    while True:
        limits.deadline.time_left()  # resolution itself is not interruptible; don't start late
        hop = vet(current, policy.allow_networks, policy.resolve)
        location, content_type = _fetch_hop(hop, sink, limits, retries)
        if location is None:
            return hop.url, content_type
        redirects += 1
        if redirects > policy.max_redirects:
            raise download_error(
                f"download of {safe_url(url)} stopped after more than "
                f"{policy.max_redirects} redirects",
                details={"url": safe_url(url), "retryable": False, "reason": "too_many_redirects"},
            )
        current = urllib.parse.urljoin(hop.url, location)


def _fetch_hop(
    hop: Hop, sink: HashingWriter, limits: _Limits, retries: _Retries
) -> tuple[str | None, str | None]:
    """Request one hop until it answers: (redirect location, None) or (None, content type)."""
    hop_attempts = 0
    while True:
        # On retries, rotate through the vetted addresses (all of them passed the check).
        address = hop.addresses[hop_attempts % len(hop.addresses)]
        hop_attempts += 1
        retries.attempts += 1
        try:
            return _attempt(hop, address, sink, limits)
        except _Transient as err:
            retries.back_off(err, hop, limits.deadline)


def _pool(hop: Hop, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    """A one-connection pool aimed at the vetted IP, never at the name (no second lookup)."""
    if hop.scheme == "https":
        # SNI and the certificate check use the original name, as if we had connected by name.
        name = hop.host.rstrip(".")
        return urllib3.HTTPSConnectionPool(
            address,
            hop.port,
            timeout=timeout,
            maxsize=1,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=name,
            assert_hostname=name,
        )
    return urllib3.HTTPConnectionPool(address, hop.port, timeout=timeout, maxsize=1, retries=False)


def _attempt(
    hop: Hop, address: str, sink: HashingWriter, limits: _Limits
) -> tuple[str | None, str | None]:
    """One request to one address: (redirect location, None) or (None, content type).

    Raises:
        _Transient: Connection trouble or a 5xx answer; the caller decides on a retry.
    """
    left = limits.deadline.time_left()
    timeout = urllib3.Timeout(
        connect=min(limits.connect_timeout_s, left), read=min(limits.read_timeout_s, left)
    )
    headers = {
        "Host": hop.host_header,
        "Accept-Encoding": "identity",
        "Accept": "*/*",
        "User-Agent": USER_AGENT,
    }
    pool = _pool(hop, address, timeout)
    try:
        try:
            resp = pool.urlopen(
                "GET",
                hop.target,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=timeout,
                preload_content=False,
                decode_content=False,
                release_conn=False,
            )
        except Urllib3Error as err:
            raise _translate(err, hop, limits.deadline) from err
        try:
            return _handle(resp, hop, sink, limits)
        finally:
            resp.close()
    finally:
        pool.close()


def _handle(
    resp: urllib3.BaseHTTPResponse, hop: Hop, sink: HashingWriter, limits: _Limits
) -> tuple[str | None, str | None]:
    """Act on the status, then stream a 2xx body into ``sink``."""
    status = resp.status
    details: dict[str, object] = {"url": hop.shown, "http_status": status}
    if status in REDIRECT_STATUSES:
        location = resp.headers.get("Location")
        if not location:
            raise download_error(
                f"{hop.shown}: HTTP {status} redirect without a Location header",
                details={**details, "retryable": False},
            )
        return location, None
    if status >= 500:
        raise _Transient(f"HTTP {status}", status)
    if status in (404, 410):
        raise SourceNotFound(f"{hop.shown}: HTTP {status}", details=details)
    if not 200 <= status < 300 or status == 206:
        # 408 and 429 say "later"; every other 4xx will answer the same way again.
        raise download_error(
            f"{hop.shown}: server answered HTTP {status}",
            details={**details, "retryable": status in (408, 429)},
        )
    announced = _content_length(resp)
    if announced is not None and announced > limits.max_bytes:
        raise TooLarge(
            f"{hop.shown}: Content-Length {announced} exceeds the {limits.max_bytes}-byte cap",
            details={**details, "max_bytes": limits.max_bytes, "content_length": announced},
        )
    sink.reset()
    while True:
        # Bound every read by both the read timeout and what is left of the deadline, so a
        # server dripping one byte at a time cannot outlast the deadline. read1 does at most
        # one socket read, so the bound holds per call.
        _set_socket_timeout(resp, min(limits.read_timeout_s, limits.deadline.time_left()))
        try:
            data = resp.read1(CHUNK_BYTES, decode_content=False)
        except Urllib3Error as err:
            raise _translate(err, hop, limits.deadline) from err
        if not data:
            break
        if sink.size_bytes + len(data) > limits.max_bytes:
            raise TooLarge(
                f"{hop.shown}: body exceeds the {limits.max_bytes}-byte cap",
                details={**details, "max_bytes": limits.max_bytes},
            )
        sink.write(data)
    return None, resp.headers.get("Content-Type")


def _content_length(resp: urllib3.BaseHTTPResponse) -> int | None:
    raw = resp.headers.get("Content-Length")
    if raw is None:
        return None
    try:
        # Duplicated headers arrive joined ("10, 10"); the largest claim is the one to refuse.
        return max(int(v) for v in raw.split(","))
    except ValueError:
        return None


def _set_socket_timeout(resp: urllib3.BaseHTTPResponse, timeout_s: float) -> None:
    sock = getattr(resp.connection, "sock", None)
    if isinstance(sock, socket.socket):
        sock.settimeout(max(timeout_s, 0.001))


def _translate(err: Urllib3Error, hop: Hop, deadline: Deadline) -> Exception:
    """Map a urllib3 error to a retryable ``_Transient`` or a final ``DownloadFailed``.

    Raises:
        DownloadFailed: The deadline passed while waiting.
    """
    deadline.time_left()  # a timeout caused by the deadline is reported as the deadline
    if isinstance(err, SSLError) and _is_certificate_error(err):
        return download_error(
            f"{hop.shown}: TLS certificate verification failed for {hop.host!r}",
            details={"url": hop.shown, "retryable": False, "reason": "tls_verification"},
        )
    if isinstance(err, Urllib3Timeout) and not isinstance(err, NewConnectionError):
        return _Transient("timed out")
    if isinstance(err, NewConnectionError):
        return _Transient("could not connect")
    if isinstance(err, (ProtocolError, SSLError)):
        return _Transient("connection broken")
    return download_error(
        f"{hop.shown}: request failed ({type(err).__name__})",
        details={"url": hop.shown, "retryable": False, "error": type(err).__name__},
    )


def _is_certificate_error(err: BaseException) -> bool:
    """Whether a TLS failure is a certificate problem (which retrying will not fix)."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        exc = stack.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, (ssl.SSLCertVerificationError, Urllib3CertificateError)):
            return True
        stack.extend(a for a in exc.args if isinstance(a, BaseException))
        stack.extend(c for c in (exc.__cause__, exc.__context__) if c is not None)
    return False
