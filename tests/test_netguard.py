"""netguard: SSRF refusals, DNS pinning, redirects, caps, timeouts and retries (loopback only)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import (
    DownloadFailed,
    PipelineError,
    SourceNotFound,
    TooLarge,
    UrlNotAllowed,
)
from pipeline.netguard import Downloaded, check_address, check_url, download, safe_url
from pipeline.settings import IPNetwork
from tests.support import httpserver
from tests.support.httpserver import (
    LOOPBACK,
    LocalHTTPServer,
    drip,
    endless,
    hang_up,
    redirect,
    sequence,
    serve,
    serve_bytes,
    slow,
    status,
    unused_port,
)

# The fixture is bound by assignment rather than imported by name: ruff reports an imported
# fixture as F811 in every test that requests it (astral-sh/ruff#10662).
http_server = httpserver.http_server

BODY = bytes(range(256)) * 40  # 10 KiB, every byte value
ONLY_127_0_0_1 = (ipaddress.ip_network("127.0.0.1/32"),)
FAST = {"connect_timeout_s": 1.0, "read_timeout_s": 1.0, "deadline_s": 10.0, "backoff_s": 0.01}


class FakeResolver:
    """Maps names to addresses, passes IP literals through, and counts calls."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host in self.table:
            return list(self.table[host])
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def fetch(url: str, dest: Path, **kwargs: object) -> Downloaded:
    options: dict[str, object] = {"max_bytes": 1_000_000, **FAST, **kwargs}
    return download(url, dest, **options)  # type: ignore[arg-type]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- check_address ------------------------------------------------------------------------


REFUSED = [
    "127.0.0.1",
    "127.1.2.3",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "198.18.0.1",
    "198.19.255.255",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",
    "::",
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:0.0.0.0",
    "::7f00:1",  # IPv4-compatible form of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 around 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    "64:ff9b:1::a00:1",  # local-use NAT64 around 10.0.0.1
    "2001::1",  # Teredo
    "2001:db8::1",
    "not-an-ip",
    "",
]


@pytest.mark.parametrize("ip", REFUSED)
def test_check_address_refuses_non_public(ip: str) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        check_address(ip)
    assert info.value.code == "url_not_allowed"


@pytest.mark.parametrize(
    "ip",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:81a::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 around a public address
        "64:ff9b::808:808",  # NAT64 around a public address
    ],
)
def test_check_address_accepts_public(ip: str) -> None:
    check_address(ip)


@pytest.mark.parametrize(
    ("ip", "networks"),
    [
        ("127.0.0.1", ["127.0.0.0/8"]),
        ("127.0.0.1", ["127.0.0.1/32"]),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"]),  # same destination as 127.0.0.1
        ("10.1.2.3", ["10.1.0.0/16"]),
        ("::1", ["::1/128"]),
        ("fd00::5", ["fd00::/8"]),
    ],
)
def test_allow_networks_opens_exactly_those_networks(ip: str, networks: list[str]) -> None:
    nets: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in networks)
    with pytest.raises(UrlNotAllowed):
        check_address(ip)
    check_address(ip, nets)


def test_allow_networks_does_not_leak_to_neighbours() -> None:
    nets = (ipaddress.ip_network("10.1.0.0/16"),)
    with pytest.raises(UrlNotAllowed):
        check_address("10.2.0.1", nets)
    with pytest.raises(UrlNotAllowed):
        check_address("127.0.0.2", ONLY_127_0_0_1)


# --- check_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "ftp://example.com/a.mp4",
        "gopher://example.com:70/_GET",
        "data:text/plain,hello",
        "javascript:alert(1)",
        "dict://example.com:11211/stat",
        "ws://example.com/",
        "s3://bucket/key",
        "//example.com/a.mp4",
        "example.com/a.mp4",
        "/etc/passwd",
        "",
    ],
)
def test_check_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@example.com/a.mp4",
        "http://user@example.com/a.mp4",
        "https://:secret@example.com/a.mp4",
        "http://example.com:80@evil.test/",
        "http://example.com\\@evil.test/",
    ],
)
def test_check_url_refuses_credentials(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "http:///a.mp4",
        "http://:80/a.mp4",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://example.com:abc/",
        "http://exa mple.com/",
        "http://example.com/a\x00b",
        "http://[::1/",
        "http://[fe80::1%25eth0]/",
        "http://exa$mple.com/",
        "http://" + "a" * 64 + ".example/",  # DNS labels are at most 63 bytes
        "http://a..b.example/",
    ],
)
def test_check_url_refuses_malformed(url: str) -> None:
    with pytest.raises(UrlNotAllowed):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/a.mp4",
        "https://example.com:8443/a.mp4?X-Amz-Signature=abc",
        "HTTPS://Example.COM/a.mp4",
        "http://[2606:4700::1111]/a.mp4",
        "http://93.184.216.34/a.mp4",
        "https://bücher.example/a.mp4",
    ],
)
def test_check_url_accepts_http_and_https(url: str) -> None:
    assert check_url(url).scheme in {"http", "https"}


def test_messages_never_show_query_or_credentials(tmp_path: Path) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        check_url("http://user:hunter2@example.com/a.mp4?X-Amz-Signature=SECRET")
    assert "hunter2" not in str(info.value)
    assert "SECRET" not in str(info.value)

    with pytest.raises(UrlNotAllowed) as info:
        fetch("http://127.0.0.1:9/a.mp4?X-Amz-Signature=SECRET#frag", tmp_path / "a")
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in repr(info.value.details)
    assert "/a.mp4" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.example:8443/a/b.mp4?sig=SECRET#f", "https://h.example:8443/a/b.mp4"),
        ("http://h.example/", "http://h.example/"),
        ("data:text/plain,hi", "data:text/plain,hi"),
        ("http://[::1", "<unparseable URL>"),
    ],
)
def test_safe_url(url: str, shown: str) -> None:
    assert safe_url(url) == shown


# --- refusal before any connection ----------------------------------------------------------


def _ipv6_loopback_resolves() -> bool:
    try:
        socket.getaddrinfo("::1", 80, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",  # decimal 127.0.0.1
        "0177.0.0.1",  # octal
        "0x7f.0.0.1",  # hex
        "127.1",  # short form
        "0.0.0.0",
        pytest.param(
            "[::1]",
            marks=pytest.mark.skipif(not _ipv6_loopback_resolves(), reason="no IPv6 loopback"),
        ),
    ],
)
def test_loopback_refused_by_default_with_real_resolver(
    http_server: LocalHTTPServer, tmp_path: Path, host: str
) -> None:
    http_server.route("/a.bin", serve_bytes(BODY))
    dest = tmp_path / "a.bin"
    with pytest.raises(UrlNotAllowed):
        fetch(f"http://{host}:{http_server.port}/a.bin", dest)
    assert http_server.hits["/a.bin"] == 0
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "172.31.0.1",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.1.1",
        "198.18.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "0.0.0.0",
        "::",
        "fd00::1",
        "fe80::1",
    ],
)
def test_name_resolving_to_refused_address_is_refused(tmp_path: Path, address: str) -> None:
    resolver = FakeResolver({"public.test": [address]})
    with pytest.raises(UrlNotAllowed) as info:
        fetch("http://public.test/a.mp4", tmp_path / "a", resolve=resolver)
    assert resolver.calls == [("public.test", 80)]
    assert info.value.details["address"] == address
    assert leftovers(tmp_path) == []


def test_any_refused_address_refuses_the_host(tmp_path: Path) -> None:
    resolver = FakeResolver({"public.test": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(UrlNotAllowed):
        fetch("https://public.test/a.mp4", tmp_path / "a", resolve=resolver)


def test_unresolvable_host_fails_without_retry(tmp_path: Path) -> None:
    resolver = FakeResolver({})
    with pytest.raises(DownloadFailed) as info:
        fetch("http://nowhere.test/a.mp4", tmp_path / "a", resolve=resolver)
    assert resolver.calls == [("nowhere.test", 80)]
    assert info.value.details["retryable"] is False


# --- successful downloads and DNS pinning ----------------------------------------------------


def test_allow_list_opens_loopback_and_reports_the_body(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    http_server.route("/clip.mp4", serve_bytes(BODY, content_type="video/mp4"))
    dest = tmp_path / "clip.mp4"
    got = fetch(http_server.url("/clip.mp4"), dest, allow_networks=LOOPBACK)
    assert got == Downloaded(
        path=dest,
        size_bytes=len(BODY),
        sha256=hashlib.sha256(BODY).hexdigest(),
        final_url=http_server.url("/clip.mp4"),
        content_type="video/mp4",
    )
    assert dest.read_bytes() == BODY
    assert leftovers(tmp_path) == ["clip.mp4"]


def test_connects_to_vetted_ip_with_original_host_header(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    http_server.route("/h.bin", serve_bytes(BODY))
    resolver = FakeResolver({"fake.example": ["127.0.0.1"]})
    url = http_server.url("/h.bin?X-Amz-Signature=ab%2Fcd&x=1", host="fake.example")
    got = fetch(url, tmp_path / "h.bin", allow_networks=ONLY_127_0_0_1, resolve=resolver)

    seen = http_server.last_request("/h.bin")
    assert seen.header("Host") == f"fake.example:{http_server.port}"
    assert seen.header("Accept-Encoding") == "identity"
    assert seen.query == "X-Amz-Signature=ab%2Fcd&x=1"  # presigned query sent untouched
    assert resolver.calls == [("fake.example", http_server.port)]  # one lookup, no second one
    assert got.final_url == url
    assert got.size_bytes == len(BODY)


def test_dns_rebinding_is_defeated_by_pinning(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    """The second answer (an internal address) is never asked for, even across a retry."""
    http_server.route("/r.bin", sequence(status(500), serve_bytes(BODY)))
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])

    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    got = fetch(
        http_server.url("/r.bin", host="rebind.test"),
        tmp_path / "r.bin",
        allow_networks=ONLY_127_0_0_1,
        resolve=rebinding,
    )
    assert got.size_bytes == len(BODY)
    assert calls == ["rebind.test"]
    assert http_server.hits["/r.bin"] == 2


def test_retries_rotate_through_vetted_addresses(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    # Nothing listens on 127.0.0.3:<port>, so the first attempt is refused.
    http_server.route("/m.bin", serve_bytes(BODY))
    resolver = FakeResolver({"multi.test": ["127.0.0.3", "127.0.0.1"]})
    got = fetch(
        http_server.url("/m.bin", host="multi.test"),
        tmp_path / "m.bin",
        allow_networks=LOOPBACK,
        resolve=resolver,
        retries=1,
    )
    assert got.size_bytes == len(BODY)
    assert len(resolver.calls) == 1


def test_content_type_is_reported_not_judged(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/wrong", serve_bytes(BODY, content_type="text/html; charset=utf-8"))
    http_server.route("/none", serve_bytes(BODY, content_type=None))
    wrong = fetch(http_server.url("/wrong"), tmp_path / "w", allow_networks=LOOPBACK)
    none = fetch(http_server.url("/none"), tmp_path / "n", allow_networks=LOOPBACK)
    assert wrong.content_type == "text/html; charset=utf-8"
    assert none.content_type is None
    assert wrong.sha256 == none.sha256 == hashlib.sha256(BODY).hexdigest()


def test_empty_body(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/empty", serve_bytes(b""))
    got = fetch(http_server.url("/empty"), tmp_path / "e", allow_networks=LOOPBACK)
    assert got.size_bytes == 0
    assert got.sha256 == hashlib.sha256(b"").hexdigest()


# --- redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_followed_and_final_url_reported(
    http_server: LocalHTTPServer, tmp_path: Path, code: int
) -> None:
    http_server.route("/old", redirect("/new#frag", code=code))
    http_server.route("/new", serve_bytes(BODY))
    got = fetch(http_server.url("/old"), tmp_path / "a", allow_networks=LOOPBACK)
    assert got.final_url == http_server.url("/new")
    assert got.size_bytes == len(BODY)


def test_redirect_to_other_loopback_address_is_refused(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    """The first host is allowed via the allow-list; the redirect target is re-checked."""
    http_server.route("/start", redirect(f"http://127.0.0.2:{http_server.port}/x"))
    http_server.route("/x", serve_bytes(BODY))
    resolver = FakeResolver({"public.test": ["127.0.0.1"]})
    with pytest.raises(UrlNotAllowed):
        fetch(
            http_server.url("/start", host="public.test"),
            tmp_path / "a",
            allow_networks=ONLY_127_0_0_1,
            resolve=resolver,
        )
    assert http_server.hits == {"/start": 1}
    assert resolver.calls[-1] == ("127.0.0.2", http_server.port)
    assert leftovers(tmp_path) == []


def test_redirect_to_name_resolving_to_metadata_is_refused(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    http_server.route("/start", redirect("http://metadata.test/latest/meta-data/"))
    resolver = FakeResolver({"public.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]})
    with pytest.raises(UrlNotAllowed):
        fetch(
            http_server.url("/start", host="public.test"),
            tmp_path / "a",
            allow_networks=ONLY_127_0_0_1,
            resolve=resolver,
        )
    assert resolver.calls == [("public.test", http_server.port), ("metadata.test", 80)]


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://example.com/a",
        "http://user:pw@public.test/a",
    ],
)
def test_redirect_to_refused_url_is_refused(
    http_server: LocalHTTPServer, tmp_path: Path, location: str
) -> None:
    http_server.route("/start", redirect(location))
    with pytest.raises(UrlNotAllowed):
        fetch(http_server.url("/start"), tmp_path / "a", allow_networks=LOOPBACK)
    assert leftovers(tmp_path) == []


def test_redirect_cap(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    five = http_server.redirect_chain("/five", 5, serve_bytes(BODY))
    six = http_server.redirect_chain("/six", 6, serve_bytes(BODY))
    got = fetch(http_server.url(five), tmp_path / "a", allow_networks=LOOPBACK, max_redirects=5)
    assert got.final_url == http_server.url("/five/0")
    with pytest.raises(DownloadFailed) as info:
        fetch(http_server.url(six), tmp_path / "b", allow_networks=LOOPBACK, max_redirects=5)
    assert info.value.details["retryable"] is False
    assert http_server.hits["/six/0"] == 0
    assert leftovers(tmp_path) == ["a"]


def test_redirect_loop_stops(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/loop", redirect("/loop"))
    with pytest.raises(DownloadFailed):
        fetch(http_server.url("/loop"), tmp_path / "a", allow_networks=LOOPBACK, max_redirects=3)
    assert http_server.hits["/loop"] == 4


def test_redirect_without_location_fails(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/r", status(302))
    with pytest.raises(DownloadFailed):
        fetch(http_server.url("/r"), tmp_path / "a", allow_networks=LOOPBACK)


# --- byte cap ------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_endless_body_stops_at_byte_cap(
    http_server: LocalHTTPServer, tmp_path: Path, chunked: bool
) -> None:
    http_server.route("/endless", endless(chunked=chunked))
    dest = tmp_path / "big.bin"
    with pytest.raises(TooLarge) as info:
        fetch(http_server.url("/endless"), dest, allow_networks=LOOPBACK, max_bytes=200_000)
    assert info.value.code == "too_large"
    assert not dest.exists()
    assert leftovers(tmp_path) == []  # the partial .part file is gone too


def test_body_exactly_at_cap_passes_one_more_byte_fails(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    http_server.route("/a", serve_bytes(BODY))
    got = fetch(http_server.url("/a"), tmp_path / "a", allow_networks=LOOPBACK, max_bytes=len(BODY))
    assert got.size_bytes == len(BODY)
    with pytest.raises(TooLarge):
        fetch(
            http_server.url("/a"), tmp_path / "b", allow_networks=LOOPBACK, max_bytes=len(BODY) - 1
        )
    assert leftovers(tmp_path) == ["a"]


def test_content_length_over_cap_refused_before_reading(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    # The body would take ages to arrive; refusing on the header returns at once.
    http_server.route("/huge", drip(5.0, total_bytes=10**9))
    started = time.monotonic()
    with pytest.raises(TooLarge) as info:
        fetch(http_server.url("/huge"), tmp_path / "a", allow_networks=LOOPBACK, max_bytes=1000)
    assert time.monotonic() - started < 1.0
    assert info.value.details["content_length"] == 10**9
    assert leftovers(tmp_path) == []


def test_failure_leaves_existing_dest_untouched(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    http_server.route("/endless", endless())
    dest = tmp_path / "keep.bin"
    dest.write_bytes(b"previous")
    with pytest.raises(TooLarge):
        fetch(http_server.url("/endless"), dest, allow_networks=LOOPBACK, max_bytes=50_000)
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == ["keep.bin"]


# --- timeouts and the deadline -------------------------------------------------------------


def test_read_timeout(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/slow", slow(3.0, serve_bytes(BODY)))
    started = time.monotonic()
    with pytest.raises(DownloadFailed) as info:
        fetch(
            http_server.url("/slow"),
            tmp_path / "a",
            allow_networks=LOOPBACK,
            read_timeout_s=0.2,
            retries=1,
        )
    assert time.monotonic() - started < 1.5
    assert info.value.retryable is True
    assert http_server.hits["/slow"] == 2  # a timeout is retried
    assert leftovers(tmp_path) == []


def test_deadline_stops_a_slow_drip(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    """Each byte arrives well within the read timeout; only the overall deadline ends it."""
    http_server.route("/drip", drip(0.05))
    started = time.monotonic()
    with pytest.raises(DownloadFailed) as info:
        fetch(
            http_server.url("/drip"),
            tmp_path / "a",
            allow_networks=LOOPBACK,
            read_timeout_s=1.0,
            deadline_s=0.5,
        )
    assert time.monotonic() - started < 1.5
    assert info.value.details["reason"] == "deadline"
    assert info.value.retryable is False  # a deadline is permanent: as slow again on a retry
    assert leftovers(tmp_path) == []


def test_deadline_covers_retries(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/down", status(503))
    started = time.monotonic()
    with pytest.raises(DownloadFailed) as info:
        fetch(
            http_server.url("/down"),
            tmp_path / "a",
            allow_networks=LOOPBACK,
            retries=50,
            backoff_s=0.1,
            deadline_s=0.5,
        )
    assert time.monotonic() - started < 1.5
    assert info.value.details["reason"] == "deadline"


# --- retries -------------------------------------------------------------------------------


def test_500_then_200_is_retried(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/flaky", sequence(status(500), status(502), serve_bytes(BODY)))
    got = fetch(http_server.url("/flaky"), tmp_path / "a", allow_networks=LOOPBACK, retries=3)
    assert got.sha256 == hashlib.sha256(BODY).hexdigest()
    assert http_server.hits["/flaky"] == 3


def test_broken_connection_is_retried(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/reset", sequence(hang_up(), serve_bytes(BODY)))
    got = fetch(http_server.url("/reset"), tmp_path / "a", allow_networks=LOOPBACK, retries=1)
    assert got.size_bytes == len(BODY)
    assert http_server.hits["/reset"] == 2


def test_truncated_body_is_retried_from_scratch(
    http_server: LocalHTTPServer, tmp_path: Path
) -> None:
    short = serve_bytes(BODY[:100], content_length=len(BODY))  # hangs up early
    http_server.route("/short", sequence(short, serve_bytes(BODY)))
    got = fetch(http_server.url("/short"), tmp_path / "a", allow_networks=LOOPBACK, retries=1)
    assert got.sha256 == hashlib.sha256(BODY).hexdigest()
    assert (tmp_path / "a").read_bytes() == BODY


def test_5xx_retries_exhausted(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/down", status(503))
    with pytest.raises(DownloadFailed) as info:
        fetch(http_server.url("/down"), tmp_path / "a", allow_networks=LOOPBACK, retries=2)
    assert http_server.hits["/down"] == 3
    assert info.value.retryable is True
    assert info.value.details["http_status"] == 503
    assert info.value.details["attempts"] == 3


def test_connection_refused_retried_then_fails(tmp_path: Path) -> None:
    port = unused_port()
    started = time.monotonic()
    with pytest.raises(DownloadFailed) as info:
        fetch(f"http://127.0.0.1:{port}/a", tmp_path / "a", allow_networks=LOOPBACK, retries=2)
    assert time.monotonic() - started < 2.0
    assert info.value.details["attempts"] == 3
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "retry_later"), [(400, False), (401, False), (403, False), (451, False), (429, True)]
)
def test_4xx_not_retried(
    http_server: LocalHTTPServer, tmp_path: Path, code: int, retry_later: bool
) -> None:
    http_server.route("/x", status(code))
    with pytest.raises(DownloadFailed) as info:
        fetch(http_server.url("/x"), tmp_path / "a", allow_networks=LOOPBACK, retries=3)
    assert http_server.hits["/x"] == 1
    assert info.value.details["http_status"] == code
    assert info.value.details["retryable"] is retry_later
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("code", [404, 410])
def test_not_found(http_server: LocalHTTPServer, tmp_path: Path, code: int) -> None:
    http_server.route("/gone", status(code))
    with pytest.raises(SourceNotFound) as info:
        fetch(http_server.url("/gone?sig=SECRET"), tmp_path / "a", allow_networks=LOOPBACK)
    assert info.value.code == "media_not_found"
    assert "SECRET" not in str(info.value)
    assert http_server.hits["/gone"] == 1


def test_only_pipeline_errors_escape(http_server: LocalHTTPServer, tmp_path: Path) -> None:
    http_server.route("/reset", hang_up())
    with pytest.raises(PipelineError) as info:
        fetch(http_server.url("/reset"), tmp_path / "a", allow_networks=LOOPBACK, retries=0)
    assert isinstance(info.value, DownloadFailed)
    assert info.value.__cause__ is not None  # the urllib3 error is chained, not raised


# --- HTTPS: SNI and certificate checked against the original name ----------------------------


def _make_certs(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf certificate for ``name``: (ca.pem, leaf.pem, leaf.key)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("netguard test CA", ca_key, "netguard test CA", ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = build(name, leaf_key, "netguard test CA", ca_key, False)

    ca_pem, leaf_pem, key_pem = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    leaf_pem.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, leaf_pem, key_pem


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_certs(tmp_path_factory.mktemp("tls"), "fake.example")


@pytest.fixture
def https_server(tls_files: tuple[Path, Path, Path]) -> Iterator[LocalHTTPServer]:
    _, leaf, key = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf, key)
    with serve(ctx) as server:
        yield server


@pytest.fixture
def trusting_test_ca(tls_files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib3 loads the default trust store, which OpenSSL reads from SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))


@pytest.mark.usefixtures("trusting_test_ca")
def test_https_sni_and_certificate_use_original_name(
    https_server: LocalHTTPServer, tmp_path: Path
) -> None:
    https_server.route("/s.bin", serve_bytes(BODY))
    resolver = FakeResolver({"fake.example": ["127.0.0.1"]})
    url = https_server.url("/s.bin", host="fake.example")
    got = fetch(url, tmp_path / "s.bin", allow_networks=ONLY_127_0_0_1, resolve=resolver)
    assert got.sha256 == hashlib.sha256(BODY).hexdigest()
    assert https_server.sni_names == ["fake.example"]
    assert https_server.last_request("/s.bin").header("Host") == f"fake.example:{https_server.port}"


@pytest.mark.usefixtures("trusting_test_ca")
def test_https_certificate_for_another_name_is_refused(
    https_server: LocalHTTPServer, tmp_path: Path
) -> None:
    https_server.route("/s.bin", serve_bytes(BODY))
    resolver = FakeResolver({"other.example": ["127.0.0.1"]})
    with pytest.raises(DownloadFailed) as info:
        fetch(
            https_server.url("/s.bin", host="other.example"),
            tmp_path / "s.bin",
            allow_networks=ONLY_127_0_0_1,
            resolve=resolver,
            retries=3,
        )
    assert info.value.details["reason"] == "tls_verification"
    assert info.value.details["retryable"] is False
    assert https_server.hits["/s.bin"] == 0
    assert leftovers(tmp_path) == []


def test_https_untrusted_certificate_is_refused(
    https_server: LocalHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    https_server.route("/s.bin", serve_bytes(BODY))
    resolver = FakeResolver({"fake.example": ["127.0.0.1"]})
    with pytest.raises(DownloadFailed) as info:
        fetch(
            https_server.url("/s.bin", host="fake.example"),
            tmp_path / "s.bin",
            allow_networks=ONLY_127_0_0_1,
            resolve=resolver,
        )
    assert info.value.details["reason"] == "tls_verification"
    assert https_server.hits["/s.bin"] == 0
