"""SSRF-safe HTTP(S) download: the only place ingest touches the network.

Every hop (the first URL and each redirect) is checked the same way: http/https only, no
credentials, the host resolved exactly once, every resolved address vetted, then the connection
is made to the vetted IP itself while the original name travels in the ``Host`` header and, for
https, in SNI and the certificate check. A second DNS lookup never happens, so a name that
re-resolves to an internal address between check and connect (DNS rebinding) gets nowhere.
This is the Python counterpart of imgproxy's ``dialer.Control`` check (STYLE.md B.8).

Bodies are streamed to disk under a byte cap and one monotonic deadline. urllib3 exceptions
never leave this module; callers see only :mod:`pipeline.errors` types.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError, ProtocolError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.ssl_match_hostname import CertificateError as Urllib3CertificateError

from . import __version__
from .deadline import Deadline
from .errors import DownloadFailed, DownloadRefused, SourceNotFound, TooLarge, UrlNotAllowed
from .files import HashingWriter, write_whole
from .settings import IPNetwork

__all__ = ["Downloaded", "check_address", "check_url", "download", "safe_url"]

Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024
USER_AGENT = f"conform-pipeline/{__version__}"
# Longest single back-off sleep; the overall deadline bounds the sum anyway.
MAX_BACKOFF_S = 30.0
# Shown instead of a URL path that is too long to be useful in a message.
MAX_SAFE_URL_CHARS = 200

_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?$")

# Refused unless an operator allow-lists them. ``is_global`` alone is not enough: Python says
# 224.0.0.1, ff02::1 and ::7f00:1 are global, and its answers differ between patch releases.
# The list follows Postiz's webhook validator and the IANA special-purpose registries.
_REFUSED_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/8", "reserved (incl. IPv4-compatible)"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignment (incl. Teredo)"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
# Prefixes whose addresses carry an IPv4 address that decides where the packets really go.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def _download_error(message: str, *, details: dict[str, object]) -> DownloadFailed:
    """A retryable ``DownloadFailed`` or, when it cannot pass by itself, ``DownloadRefused``."""
    cls = DownloadFailed if details.get("retryable", True) else DownloadRefused
    return cls(message, details=details)


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


# --- URL and address checks ---------------------------------------------------------------


def safe_url(url: str) -> str:
    """A URL fit for messages and logs: no credentials, no query string, no fragment.

    Presigned URLs carry their signature in the query string, so it must never appear in an
    error message or a log line. Other modules (ingest, the manifest) use this too.

    Args:
        url: Any string; it need not be a valid URL.

    Returns:
        ``scheme://host[:port]/path``, shortened to 200 characters; never raises.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    text = f"{parts.scheme}://{netloc}{parts.path}" if netloc else f"{parts.scheme}:{parts.path}"
    if len(text) > MAX_SAFE_URL_CHARS:
        text = text[: MAX_SAFE_URL_CHARS - 3] + "..."
    return text


def check_url(url: str) -> urllib.parse.SplitResult:
    """Check a URL's form before anything touches the network.

    Only ``http`` and ``https`` are accepted, the URL must name a host (a DNS name or an IP
    literal) and a valid port, and it must not carry credentials (``user:pass@``).

    Args:
        url: The URL as given by the job or by a ``Location`` header.

    Returns:
        The parsed URL (scheme in lower case).

    Raises:
        UrlNotAllowed: Any of the checks fails. The message never contains the query string.
    """
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url.strip()):
        raise UrlNotAllowed(f"URL contains control characters or spaces: {safe_url(url)}")
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as err:
        raise UrlNotAllowed(f"URL cannot be parsed: {safe_url(url)}") from err
    if parts.scheme not in ALLOWED_SCHEMES:
        shown = repr(parts.scheme) if parts.scheme else "missing"
        raise UrlNotAllowed(f"URL scheme {shown} is not allowed; use http or https")
    if "@" in parts.netloc:
        raise UrlNotAllowed(f"URL must not carry credentials: {safe_url(url)}")
    _host_of(parts)
    _port_of(parts)
    return parts


def check_address(ip: str, allow_networks: tuple[IPNetwork, ...] = ()) -> None:
    """Refuse an address that is not on the public internet.

    Loopback, private (RFC 1918), link-local (incl. 169.254.169.254), CGNAT, benchmarking,
    documentation, multicast, reserved and unspecified addresses are refused, for IPv4 and IPv6.
    IPv4-mapped, NAT64 and 6to4 IPv6 addresses are unwrapped and judged by the IPv4 address
    inside. An address inside one of ``allow_networks`` passes regardless.

    Args:
        ip: A textual IP address, as returned by ``getaddrinfo``.
        allow_networks: The operator's explicit allow-list (``CONFORM_ALLOW_NETWORK``).

    Raises:
        UrlNotAllowed: The address is refused, or is not an IP address at all.
    """
    reason = _refusal(ip, allow_networks)
    if reason is not None:
        raise UrlNotAllowed(f"address {ip} is not allowed: {reason}", details={"address": ip})


def _refusal(ip: str, allow_networks: tuple[IPNetwork, ...]) -> str | None:
    """Why ``ip`` is refused, or None when it may be connected to."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "not an IP address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
        return "scoped IPv6 address"
    if any(addr in net for net in allow_networks):
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            # The socket really goes to the IPv4 address, so the allow-list applies to it too.
            inner = _refusal(str(addr.ipv4_mapped), allow_networks)
            return None if inner is None else f"IPv4-mapped {inner}"
        embedded = _embedded_ipv4(addr)
        if embedded is not None:
            inner = _refusal(str(embedded), ())
            return None if inner is None else f"embeds {embedded}, {inner}"
    for net, why in _REFUSED_NETWORKS:
        if addr in net:
            return why
    # Belt and braces for anything the table above misses.
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if not addr.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or NAT64 address forwards to, if it is one."""
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64_WELL_KNOWN or addr in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _host_of(parts: urllib.parse.SplitResult) -> str:
    """The URL's host in ASCII (IDNA for international names, bare form for IPv6)."""
    host = parts.hostname
    if not host:
        raise UrlNotAllowed(f"URL has no host: {safe_url(parts.geturl())}")
    if ":" in host or parts.netloc.startswith("["):
        try:
            literal = ipaddress.IPv6Address(host)
            if literal.scope_id:  # zone IDs only make sense for link-local, refused anyway
                raise ValueError("IPv6 zone identifiers are not accepted")
            return str(literal)
        except ValueError as err:
            raise UrlNotAllowed(
                f"URL has an invalid IPv6 host: {safe_url(parts.geturl())}"
            ) from err
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as err:
        raise UrlNotAllowed(f"URL has an invalid host name: {safe_url(parts.geturl())}") from err
    if not _HOSTNAME_RE.match(ascii_host):
        raise UrlNotAllowed(f"URL has an invalid host name: {safe_url(parts.geturl())}")
    return ascii_host.lower()


def _port_of(parts: urllib.parse.SplitResult) -> int:
    try:
        port = parts.port
    except ValueError as err:
        raise UrlNotAllowed(f"URL has an invalid port: {safe_url(parts.geturl())}") from err
    if port is None:
        return DEFAULT_PORTS[parts.scheme]
    if port == 0:
        raise UrlNotAllowed(f"URL has an invalid port: {safe_url(parts.geturl())}")
    return port


# --- resolution -------------------------------------------------------------------------------


def _getaddrinfo(host: str, port: int) -> list[str]:
    """The default resolver: every address ``getaddrinfo`` returns for a TCP connection."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class _Hop:
    """One URL, checked and resolved, ready to be connected to."""

    url: str
    shown: str  # safe_url(url)
    scheme: str
    host: str
    port: int
    host_header: str
    target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]


def _vet(url: str, allow_networks: tuple[IPNetwork, ...], resolve: Resolver) -> _Hop:
    """Check a URL, resolve its host once and vet every address.

    Raises:
        UrlNotAllowed: Bad URL, or any resolved address is refused.
        DownloadFailed: The host cannot be resolved.
    """
    parts = check_url(url)
    host = _host_of(parts)
    port = _port_of(parts)
    shown = safe_url(url)
    try:
        resolved = resolve(host, port)
    except (OSError, UnicodeError) as err:
        # EAI_NONAME: the name does not exist, asking again will not help.
        permanent = isinstance(err, socket.gaierror) and err.errno == socket.EAI_NONAME
        raise _download_error(
            f"cannot resolve host {host!r} of {shown}",
            details={"url": shown, "retryable": not permanent, "error": type(err).__name__},
        ) from err
    addresses = tuple(dict.fromkeys(resolved))
    if not addresses:
        raise _download_error(
            f"host {host!r} of {shown} resolved to no address",
            details={"url": shown, "retryable": False},
        )
    for address in addresses:
        reason = _refusal(address, allow_networks)
        if reason is not None:
            raise UrlNotAllowed(
                f"{shown}: host {host!r} resolves to a refused address ({reason})",
                details={"url": shown, "address": address},
            )
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if parts.port is None else f"{bracketed}:{port}"
    # Percent-encode what cannot go on a request line as is; existing escapes are kept, so a
    # presigned URL's signature survives untouched.
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = urllib.parse.quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    target = f"{path}?{query}" if query else path
    final = urllib.parse.urlunsplit(parts._replace(fragment=""))
    return _Hop(final, shown, parts.scheme, host, port, host_header, target, addresses)


# --- the download -----------------------------------------------------------------------------


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

    Each hop is checked with :func:`check_url`, its host resolved once (``resolve``, default
    ``socket.getaddrinfo``) and every address checked with :func:`check_address`; the request
    then goes to a vetted IP with the original ``Host`` header, SNI and certificate name.
    Redirects are followed by hand and re-checked. The body is streamed to a temporary file
    next to ``dest`` and renamed over ``dest`` only when complete, so a failure never leaves a
    partial file. Connection errors and 5xx answers are retried with exponential back-off
    (``backoff_s``, doubled each time) within ``retries`` retries and the overall deadline.

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
        resolve: ``(host, port) -> [ip, ...]``; tests pass a fake one.

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
    deadline = Deadline(deadline_s, lambda _: _download_error(
        f"download of {shown} exceeded its {deadline_s:g} s deadline",
        details={"url": shown, "retryable": True, "reason": "deadline"}))
    dest = Path(dest)
    # Every failure path, KeyboardInterrupt included, leaves no partial file behind.
    with write_whole(dest, fsync=True) as sink:
        final_url, content_type = _fetch(
            url,
            sink,
            _Limits(
                max_bytes=max_bytes,
                connect_timeout_s=connect_timeout_s,
                read_timeout_s=read_timeout_s,
                deadline=deadline,
            ),
            allow_networks=allow_networks,
            max_redirects=max_redirects,
            retries=max(0, retries),
            backoff_s=backoff_s,
            resolve=resolve or _getaddrinfo,
        )
    return Downloaded(dest, sink.size_bytes, sink.sha256, final_url, content_type)


@dataclass(frozen=True, slots=True)
class _Limits:
    max_bytes: int
    connect_timeout_s: float
    read_timeout_s: float
    deadline: Deadline


def _fetch(
    url: str,
    sink: HashingWriter,
    limits: _Limits,
    *,
    allow_networks: tuple[IPNetwork, ...],
    max_redirects: int,
    retries: int,
    backoff_s: float,
    resolve: Resolver,
) -> tuple[str, str | None]:
    """Follow redirects and retry until a body is in ``sink``; return (final URL, type)."""
    retries_left = retries
    attempts = 0
    redirects = 0
    current = url
    while True:
        limits.deadline.time_left()  # resolution itself is not interruptible; don't start late
        hop = _vet(current, allow_networks, resolve)
        hop_attempts = 0
        while True:
            # On retries, rotate through the vetted addresses (all of them passed the check).
            address = hop.addresses[hop_attempts % len(hop.addresses)]
            hop_attempts += 1
            attempts += 1
            try:
                location, content_type = _attempt(hop, address, sink, limits)
            except _Transient as err:
                cause = err.__cause__ or err
                if retries_left == 0:
                    raise _download_error(
                        f"download of {hop.shown} failed after {attempts} attempt(s): {err.reason}",
                        details={
                            "url": hop.shown,
                            "retryable": True,
                            "attempts": attempts,
                            "http_status": err.status,
                        },
                    ) from cause
                retries_left -= 1
                delay = min(backoff_s * 2 ** (retries - retries_left - 1), MAX_BACKOFF_S)
                if delay >= limits.deadline.time_left():
                    limits.deadline.expire(cause)
                time.sleep(delay)
                continue
            break
        if location is None:
            return hop.url, content_type
        redirects += 1
        if redirects > max_redirects:
            raise _download_error(
                f"download of {safe_url(url)} stopped after more than {max_redirects} redirects",
                details={"url": safe_url(url), "retryable": False, "reason": "too_many_redirects"},
            )
        current = urllib.parse.urljoin(hop.url, location)


def _pool(hop: _Hop, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
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
    hop: _Hop, address: str, sink: HashingWriter, limits: _Limits
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
    resp: urllib3.BaseHTTPResponse, hop: _Hop, sink: HashingWriter, limits: _Limits
) -> tuple[str | None, str | None]:
    """Act on the status, then stream a 2xx body into ``sink``."""
    status = resp.status
    details: dict[str, object] = {"url": hop.shown, "http_status": status}
    if status in REDIRECT_STATUSES:
        location = resp.headers.get("Location")
        if not location:
            raise _download_error(
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
        raise _download_error(
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


def _translate(err: Urllib3Error, hop: _Hop, deadline: Deadline) -> Exception:
    """Map a urllib3 error to a retryable ``_Transient`` or a final ``DownloadFailed``.

    Raises:
        DownloadFailed: The deadline passed while waiting.
    """
    deadline.time_left()  # a timeout caused by the deadline is reported as the deadline
    if isinstance(err, SSLError) and _is_certificate_error(err):
        return _download_error(
            f"{hop.shown}: TLS certificate verification failed for {hop.host!r}",
            details={"url": hop.shown, "retryable": False, "reason": "tls_verification"},
        )
    if isinstance(err, Urllib3Timeout) and not isinstance(err, NewConnectionError):
        return _Transient("timed out")
    if isinstance(err, NewConnectionError):
        return _Transient("could not connect")
    if isinstance(err, (ProtocolError, SSLError)):
        return _Transient("connection broken")
    return _download_error(
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
