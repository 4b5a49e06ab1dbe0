"""Host patterns, target normalisation and special addresses (plugbox.sdk.permissions.hosts)."""

from __future__ import annotations

import ipaddress
import platform
import re
import socket

import pytest

from plugbox.sdk.errors import PatternError, TargetError
from plugbox.sdk.permissions.hosts import (
    HostList,
    HostPattern,
    normalize_host,
    parse_host_pattern,
    special_address_reason,
    split_host_port,
)

FULLWIDTH_LOOPBACK = "\uff11\uff12\uff17.\uff10.\uff10.\uff11"  # 127.0.0.1 in fullwidth digits

# Every spelling of an IPv4 address that glibc's inet_aton (and so getaddrinfo) accepts.
IPV4_LITERALS = [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # one 32-bit decimal number
    ("0x7f000001", "127.0.0.1"),  # one hex number
    ("0X7F000001", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),  # hex first part
    ("0x7F.0.0.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),  # octal first part
    ("017700000001", "127.0.0.1"),  # one octal number
    ("127.1", "127.0.0.1"),  # short form: last part fills three bytes
    ("127.0.1", "127.0.0.1"),  # last part fills two bytes
    ("0x7f.1", "127.0.0.1"),
    ("0x0000007f.1", "127.0.0.1"),  # leading zeros after 0x
    ("00000000000000000000000177.1", "127.0.0.1"),
    ("127.0.0.01", "127.0.0.1"),
    ("010.0.0.1", "8.0.0.1"),  # the classic: a leading zero means octal, not decimal
    ("0", "0.0.0.0"),
    ("00", "0.0.0.0"),
    ("4294967295", "255.255.255.255"),
    ("0xffffffff", "255.255.255.255"),
    ("1.256", "1.0.1.0"),
    ("1.16777215", "1.255.255.255"),
    ("169.254.43518", "169.254.169.254"),  # cloud metadata in short form
    ("0xa9fea9fe", "169.254.169.254"),
]

# Numeric-looking hosts the resolver does not take as literals; we refuse them instead of guessing.
NOT_IPV4_LITERALS = [
    "1.2.3.4.5",
    "4294967296",
    "0x100000000",
    "256.1",
    "1.16777216",
    "1.2.3.256",
    "08",
    "09.0.0.1",
    "0x",
    "1.2.3.0x",
    "0x.1",
]


@pytest.mark.parametrize(("form", "expected"), IPV4_LITERALS)
def test_ipv4_literal_forms_become_the_dotted_quad(form: str, expected: str) -> None:
    assert normalize_host(form) == expected


@pytest.mark.parametrize("form", NOT_IPV4_LITERALS)
def test_numeric_hosts_that_are_not_literals_are_refused(form: str) -> None:
    with pytest.raises(TargetError, match="ends in a number but is not an IPv4 address"):
        normalize_host(form)


def _resolver_literal(form: str) -> str | None:
    """What the C resolver makes of ``form`` as a numeric host (no DNS); None if not one."""
    try:
        infos = socket.getaddrinfo(
            form, None, proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST
        )
    except (socket.gaierror, UnicodeError):
        return None
    addresses = {str(info[4][0]) for info in infos}
    assert len(addresses) == 1
    address = ipaddress.ip_address(addresses.pop())
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed


@pytest.mark.oracle
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc inet_aton semantics")
@pytest.mark.parametrize(
    "form",
    [form for form, _ in IPV4_LITERALS]
    + NOT_IPV4_LITERALS
    + [FULLWIDTH_LOOPBACK, "::ffff:127.0.0.1", "::ffff:7f00:1", "::1", "0:0:0:0:0:0:0:1"],
)
def test_normalisation_agrees_with_the_c_resolver(form: str) -> None:
    resolver = _resolver_literal(form)
    if resolver is None:
        with pytest.raises(TargetError):
            normalize_host(form)
    else:
        assert normalize_host(form) == resolver


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped, dotted spelling
        ("::ffff:7f00:1", "127.0.0.1"),  # IPv4-mapped, hex spelling
        ("[::ffff:7f00:1]", "127.0.0.1"),
        ("::FFFF:169.254.169.254", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("[0000:0000::0001]", "::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::127.0.0.1", "::7f00:1"),  # IPv4-compatible stays IPv6 (see the module docstring)
        ("127.0.0.1.", "127.0.0.1"),  # trailing dot on a literal
        (FULLWIDTH_LOOPBACK, "127.0.0.1"),  # fullwidth digits: IDNA maps them to ASCII
    ],
)
def test_ipv6_and_unusual_literals(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("API.OpenAI.COM", "api.openai.com"),
        ("api.openai.com.", "api.openai.com"),
        ("LOCALHOST.", "localhost"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("bücher.example.", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("example。com", "example.com"),  # ideographic full stop is a label separator in IDNA
        ("\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com", "example.com"),  # fullwidth letters
        ("faß.de", "fass.de"),  # IDNA 2003, as socket.getaddrinfo encodes it
        ("node1", "node1"),  # ends in a digit, but its last label is not a number
        ("db_1.internal", "db_1.internal"),
        ("a.0x1g", "a.0x1g"),  # not hex, so a name
    ],
)
def test_names_are_canonical(host: str, expected: str) -> None:
    assert normalize_host(host) == expected


def test_unicode_and_punycode_spellings_meet() -> None:
    spellings = {
        "bücher.example",
        "BÜCHER.EXAMPLE.",
        "xn--bcher-kva.example",
        "Xn--Bcher-Kva.Example.",
    }
    assert {normalize_host(s) for s in spellings} == {"xn--bcher-kva.example"}


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "empty host"),
        (".", "empty host"),
        ("a\x00b.com", "NUL"),
        (" example.com", "whitespace"),
        ("exa mple.com", "whitespace"),
        ("example.com\t", "whitespace"),
        ("exa\u200bmple.com", "control character"),  # IDNA would silently drop it
        ("user@example.com", "'@'"),
        ("example.com/path", "path separator"),
        ("example.com\\x", "path separator"),
        ("x" * 2000, "too long"),
        (("a" * 60 + ".") * 5 + "com", "name is too long"),
        ("a" * 64 + ".com", "longer than 63"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("-bad.com", "must not start or end with '-'"),
        ("bad-.com", "must not start or end with '-'"),
        ("ex!ample.com", "invalid character '!'"),
        ("exa%mple.com", "invalid character '%'"),
        ("xn--zz.com", "not valid punycode"),
        ("fe80::1%eth0", "zone ids"),
        ("[fe80::1%25eth0]", "zone ids"),
        ("example.com:443", "split_host_port"),
        ("[example.com]", "only for IPv6"),
        ("[::1", "unbalanced"),
        ("::1]", "unbalanced"),
        (":::1", "not a valid IPv6 address"),
        ("::ffff:0x7f.1", "not a valid IPv6 address"),
        ("ü" * 60 + ".com", "not a valid internationalised domain name"),
        ("abא.com", "not a valid internationalised domain name"),  # mixed-direction label
        ("a\udcff.com", "control character"),  # a lone surrogate
    ],
)
def test_bad_targets_are_refused_with_a_reason(host: str, message: str) -> None:
    with pytest.raises(TargetError, match=re.escape(message)) as caught:
        normalize_host(host)
    assert caught.value.target == host


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:443", ("example.com", 443)),
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),  # bare IPv6 carries no port
        ("::1:8080", ("::1:8080", None)),  # ... so this is an address
        ("localhost:65535", ("localhost", 65535)),
        ("host:1", ("host", 1)),
    ],
)
def test_split_host_port(target: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(target) == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("host:0", "outside 1-65535"),
        ("host:65536", "outside 1-65535"),
        ("host:http", "not a number"),
        ("host:-1", "not a number"),
        ("host:+80", "not a number"),
        ("host:٨٠", "not a number"),  # Arabic-Indic digits: int() would take them
        ("host:", "empty port"),
        (":80", "empty host"),
        ("[::1]x", "unexpected"),
        ("[::1", "unbalanced"),
        ("[example.com]:80", "only for IPv6"),
    ],
)
def test_split_host_port_errors(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=re.escape(message)):
        split_host_port(target)


# --- patterns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "kind", "value", "port"),
    [
        ("api.openai.com", "name", "api.openai.com", None),
        ("API.OpenAI.com.", "name", "api.openai.com", None),
        ("localhost:6333", "name", "localhost", 6333),
        ("bücher.example", "name", "xn--bcher-kva.example", None),
        ("*.qdrant.io", "wildcard", "qdrant.io", None),
        ("*.Qdrant.IO:443", "wildcard", "qdrant.io", 443),
        ("*.bücher.example", "wildcard", "xn--bcher-kva.example", None),
        ("127.0.0.1", "ip", "127.0.0.1", None),
        ("127.0.0.1:5432", "ip", "127.0.0.1", 5432),
        ("::1", "ip", "::1", None),
        ("[::1]:8080", "ip", "::1", 8080),
        ("[0:0::1]", "ip", "::1", None),
        ("::ffff:127.0.0.1", "ip", "127.0.0.1", None),
        ("10.0.0.0/8", "network", "10.0.0.0/8", None),
        ("10.0.0.0/8:5432", "network", "10.0.0.0/8", 5432),
        ("fd00::/8", "network", "fd00::/8", None),
        ("[fd00::/8]:443", "network", "fd00::/8", 443),
        ("93.184.216.34/32", "network", "93.184.216.34/32", None),
    ],
)
def test_parse_host_pattern(pattern: str, kind: str, value: str, port: int | None) -> None:
    assert parse_host_pattern(pattern) == HostPattern(pattern, kind, value, port)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty host pattern"),
        ("   ", "empty host pattern"),
        (
            "https://api.openai.com/v1",
            "write the host only, without scheme or path: 'api.openai.com'",
        ),
        ("http://user@example.com", "write the host only, without scheme or path: 'example.com'"),
        ("api.openai.com/v1", "has no path"),
        ("user@example.com", "user@host"),
        ("host:0", "outside 1-65535"),
        ("host:65536", "outside 1-65535"),
        ("host:https", "not a number"),
        ("host:", "empty port"),
        (":443", "empty host"),
        ("*", "'*' alone would allow every host"),
        ("*:443", "'*' alone"),
        ("api*.x.com", "whole leftmost label"),
        ("a.*.com", "whole leftmost label"),
        ("**.x.com", "whole leftmost label"),
        ("*.*.x.com", "whole leftmost label"),
        ("*.io", "whole top-level domain"),
        ("*.io.", "whole top-level domain"),
        ("*.co.uk", "public suffix"),
        ("*.0.0.1", "cannot cover IP addresses"),
        ("ex!ample.com", "invalid character '!'"),
        ("exa mple.com", "whitespace"),
        ("x" * 254, "name is too long"),
        ("a" * 64 + ".com", "longer than 63"),
        ("0x7f.1", "write IPv4 addresses as four decimal numbers: '127.0.0.1'"),
        ("2130706433", "four decimal numbers: '127.0.0.1'"),
        ("010.0.0.1", "four decimal numbers: '8.0.0.1'"),
        ("1.2.3.4.5", "not an IPv4 address"),
        ("[127.0.0.1]", "only for IPv6"),
        ("[::1", "unbalanced"),
        ("fe80::1%eth0", "zone ids"),
        ("::1:8080", "ambiguous: write '[::1]:8080'"),
        ("10.0.0.1/8", "did you mean '10.0.0.0/8'"),
        ("10.0.0.0/33", "not a valid network"),
        ("10.0.0.0/x", "not a number"),
        ("::ffff:0:0/96", "IPv4-mapped networks never match"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)) as caught:
        parse_host_pattern(pattern)
    assert caught.value.pattern == pattern


# --- matching --------------------------------------------------------------------------------


def _match(patterns: list[str], target: str) -> int | None:
    host, port = split_host_port(target)
    return HostList(patterns).match(normalize_host(host), port)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("a.qdrant.io", 0),
        ("x.y.z.qdrant.io", 0),  # any depth
        ("QDRANT-1.Qdrant.IO.", 0),
        ("qdrant.io", None),  # never the apex
        ("evilqdrant.io", None),
        ("qdrant.io.evil.com", None),
        ("io", None),
    ],
)
def test_wildcard_covers_subdomains_at_any_depth_but_not_the_apex(
    target: str, expected: int | None
) -> None:
    assert _match(["*.qdrant.io"], target) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("api.openai.com", 0),
        ("api.openai.com:443", 0),  # no port in the pattern: any port
        ("x.api.openai.com", None),  # a name pattern is exact
        ("openai.com", None),
        ("localhost:6333", 1),
        ("localhost:6334", None),  # a port in the pattern: only that port
        ("localhost", None),  # unknown/default port matches only port-less patterns
    ],
)
def test_names_and_ports(target: str, expected: int | None) -> None:
    assert _match(["api.openai.com", "localhost:6333"], target) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("10.1.2.3", 0),
        ("10.255.255.255:22", 0),
        ("0xa.1", 0),  # 10.0.0.1 spelled the C way
        ("11.0.0.1", None),
        ("[fd12:3456::1]:443", 1),
        ("fd12::1", None),  # the v6 network carries a port
        ("fe80::1", None),
        ("::ffff:10.9.9.9", 0),  # IPv4-mapped meets IPv4 rules
    ],
)
def test_networks(target: str, expected: int | None) -> None:
    assert _match(["10.0.0.0/8", "[fd00::/8]:443"], target) == expected


@pytest.mark.parametrize(
    ("patterns", "target", "expected"),
    [
        (["localhost"], "localhost", 0),
        (["localhost"], "127.0.0.1", 0),
        (["localhost"], "127.0.0.53", 0),  # systemd-resolved's stub: still loopback
        (["localhost"], "::1", 0),
        (["localhost"], "2130706433", 0),
        (["localhost:6333"], "[::1]:6333", 0),
        (["localhost:6333"], "127.0.0.1:6334", None),
        (["127.0.0.1"], "127.0.0.1", 0),
        (["127.0.0.1"], "127.0.0.53", None),  # an address pattern is exact
        (["127.0.0.1"], "localhost", None),  # names match name patterns only
        (["127.0.0.1"], "0x7f.1", 0),
        (["127.0.0.1"], "::ffff:7f00:1", 0),
        (["127.0.0.1"], "::127.0.0.1", None),  # IPv4-compatible is a different address
        (["::1"], "[0:0::1]:80", 0),
        (["example.com"], "93.184.216.34", None),  # addresses never match names
        (["93.184.216.34"], "example.com", None),
    ],
)
def test_localhost_and_addresses(patterns: list[str], target: str, expected: int | None) -> None:
    assert _match(patterns, target) == expected


def test_unicode_pattern_matches_punycode_target() -> None:
    assert _match(["*.bücher.example"], "shop.xn--bcher-kva.example") == 0
    assert _match(["xn--bcher-kva.example"], "Bücher.Example.") == 0


def test_match_reports_the_first_matching_pattern() -> None:
    hosts = HostList(
        ["*.example.com:443", "api.example.com", "10.0.0.0/8", "10.1.0.0/16", "*.com.example.com"]
    )
    assert hosts.match("api.example.com", 443) == 0
    assert hosts.match("api.example.com", 80) == 1
    assert hosts.match("api.example.com", None) == 1
    assert hosts.match("10.1.2.3", None) == 2
    assert hosts.match("a.com.example.com", None) == 4
    assert hosts.match("a.com.example.com", 443) == 0


def test_host_list_exposes_parsed_patterns_and_refuses_the_first_bad_one() -> None:
    hosts = HostList(["api.openai.com", "*.qdrant.io"])
    assert [p.kind for p in hosts.patterns] == ["name", "wildcard"]
    assert HostList([]).match("example.com", None) is None
    with pytest.raises(PatternError, match=re.escape("'*.io'")):
        HostList(["ok.example", "*.io", "*"])


# --- special addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.53", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified (0.0.0.0 reaches this machine)"),
        ("0.1.2.3", "'this network'"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local (includes the cloud metadata service 169.254.169.254)"),
        ("10.0.0.1", "private network"),
        ("172.16.0.1", "private network"),
        ("172.31.255.255", "private network"),
        ("192.168.1.1", "private network"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "carrier-grade NAT"),  # Alibaba Cloud metadata
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd00::1", "unique-local"),
        ("fd00:ec2::254", "unique-local"),  # AWS metadata over IPv6
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("64:ff9b::7f00:1", "NAT64 of loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 of link-local"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("2002:7f00:1::", "6to4 of loopback"),
        ("2002:c0a8:101::1", "6to4 of private network"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo of loopback"),  # client ~ 127.0.0.1
        ("::7f00:1", "IPv4-compatible"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved (documentation)"),
        ("198.18.0.1", "reserved (benchmarking)"),
        ("2001:db8::1", "reserved (documentation)"),
        ("100::1", "reserved (discard-only)"),
        ("fec0::1", "site-local"),
        ("4000::1", "reserved (outside global unicast"),
    ],
)
def test_special_addresses(address: str, reason: str) -> None:
    found = special_address_reason(address)
    assert found is not None
    assert found.startswith(reason)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "172.32.0.1",  # just outside 172.16/12
        "100.128.0.1",  # just outside 100.64/10
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",
        "64:ff9b::5db8:d822",  # NAT64 of a public address
        "2002:5db8:d822::1",  # 6to4 of a public address
    ],
)
def test_ordinary_public_unicast_is_not_special(address: str) -> None:
    assert special_address_reason(address) is None


def test_special_address_reason_needs_an_address() -> None:
    with pytest.raises(TargetError, match="not an IP address"):
        special_address_reason("example.com")
    with pytest.raises(TargetError, match="not an IP address"):
        special_address_reason("0x7f.1")  # resolved addresses come canonical; normalise first
