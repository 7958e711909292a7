"""Which URLs and addresses may be fetched: form checks, one DNS lookup, every address vetted.

Everything here is decided before a socket opens. A hop (the first URL or a redirect) is
checked for form (http/https, a host, a port, no credentials), its host resolved exactly
once, and every address judged against the refused networks; the download then connects to
one of those vetted addresses, never to the name (see :mod:`pipeline.netguard.client`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import DownloadFailed, DownloadRefused, UrlNotAllowed
from ..settings import IPNetwork

Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
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
# ``ipaddress`` properties that refuse an address the table above does not cover, in order.
_REFUSED_FLAGS = (
    ("is_unspecified", "unspecified"),
    ("is_loopback", "loopback"),
    ("is_link_local", "link-local"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)
# Prefixes whose addresses carry an IPv4 address that decides where the packets really go.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


def download_error(message: str, *, details: dict[str, object]) -> DownloadFailed:
    """A retryable ``DownloadFailed`` or, when it cannot pass by itself, ``DownloadRefused``."""
    cls = DownloadFailed if details.get("retryable", True) else DownloadRefused
    return cls(message, details=details)



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
    for flag, why in _REFUSED_FLAGS:
        if getattr(addr, flag):
            return why
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


def resolve_tcp(host: str, port: int) -> list[str]:
    """The default resolver: every address ``getaddrinfo`` returns for a TCP connection."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Hop:
    """One URL, checked and resolved, ready to be connected to."""

    url: str
    shown: str  # safe_url(url)
    scheme: str
    host: str
    port: int
    host_header: str
    target: str  # path and query, as sent on the request line
    addresses: tuple[str, ...]


def vet(url: str, allow_networks: tuple[IPNetwork, ...], resolve: Resolver) -> Hop:
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
        raise download_error(
            f"cannot resolve host {host!r} of {shown}",
            details={"url": shown, "retryable": not permanent, "error": type(err).__name__},
        ) from err
    addresses = tuple(dict.fromkeys(resolved))
    if not addresses:
        raise download_error(
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
    return Hop(final, shown, parts.scheme, host, port, host_header, target, addresses)


