"""Network host patterns (``net.allow_hosts`` / ``deny_hosts``) and the canonical form of a target.

Everything here is pure: no DNS, no sockets. The sandbox broker that performs ``runtime.net`` calls
uses these pieces in this order, and the order is what makes the check sound:

1. ``split_host_port`` and ``normalize_host`` turn what the job asked for into one canonical text.
2. ``HostList.match`` decides on that text (the caller applies "deny beats allow").
3. The broker resolves **the canonical text, never the raw target**, and connects only to the
   addresses it resolved; ``special_address_reason`` flags any of them that reach this machine or
   a private network (DNS rebinding, ``localtest.me``-style names, NAT64 tricks), and the broker
   refuses those unless an allow pattern names that exact address, its network, or ``localhost``.

Why normalisation is so thorough: the C resolver (glibc ``inet_aton``) accepts IPv4 literals that
Python's ``ipaddress`` rejects -- ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1`` are all
127.0.0.1 -- so a checker that falls back to "not an IP, must be a name" lets a job reach an
address the rules never saw. We parse those forms with ``inet_aton``'s exact rules and return the
dotted quad; a host whose last label is numeric but is not such a literal (``1.2.3.4.5``) is
refused rather than guessed at (the WHATWG URL standard's "ends in a number" rule).

IPv4-mapped IPv6 (``::ffff:7f00:1``) is the IPv4 address on the wire, so it normalises to
``127.0.0.1``. IPv4-*compatible* IPv6 (``::127.0.0.1``, the deprecated ``::/96``) is *not*
converted: the kernel does not treat it as IPv4, so it stays an IPv6 address (``::7f00:1``) that
matches no IPv4 pattern, and ``special_address_reason`` always flags it.

Unicode names are encoded with the standard library IDNA codec (IDNA 2003, the codec
``socket.getaddrinfo`` itself applies to a ``str`` host), so a pattern and a target that differ
only in spelling (``Bücher.example.``, ``xn--bcher-kva.example``) meet in one form, and fullwidth
digits become the IPv4 literal they spell. Underscores are accepted in labels because resolvers
accept them (container service names use them).

Pattern grammar (``parse_host_pattern``), each with an optional ``:port`` (absent = any port):

- ``api.openai.com``  one name, exactly (``localhost`` also matches 127.0.0.0/8 and ``::1``);
- ``*.qdrant.io``     any subdomain at any depth, never the apex ``qdrant.io`` itself; the suffix
                      must keep two labels or more and must not be a common public suffix
                      (``*.co.uk``): a short built-in list, not the full Public Suffix List;
- ``127.0.0.1``, ``::1``, ``[::1]:8080``  one address (IPv4 written as a plain dotted quad);
- ``10.0.0.0/8``, ``[fd00::/8]:443``      a network, without host bits set.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from plugbox.sdk.errors import PatternError, TargetError

__all__ = [
    "HostList",
    "HostPattern",
    "normalize_host",
    "parse_host_pattern",
    "special_address_reason",
    "split_host_port",
]

HostKind = Literal["name", "wildcard", "ip", "network"]

_MAX_INPUT = 1024  # refuse before any parsing work; no valid host comes near this
_MAX_NAME = 253  # RFC 1035, without the trailing dot
_MAX_LABEL = 63

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
# The last label of a host "ends in a number" (WHATWG URL standard): it can only be an IPv4 literal.
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)\Z")
# One part of an inet_aton literal: hex needs at least one digit, octal may not contain 8 or 9.
_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}\Z")  # the one IPv4 spelling patterns take

# Suffixes under which unrelated parties register names: '*.co.uk' would allow half of Britain.
# Deliberately short (no dependency on the Public Suffix List); single labels are refused anyway.
_PUBLIC_SUFFIXES: Final = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au",
        "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp",
        "co.nz", "org.nz", "co.za", "co.in", "co.kr", "or.kr", "co.id", "co.il",
        "com.br", "com.cn", "net.cn", "org.cn", "com.mx", "com.tw", "com.hk", "com.sg",
        "com.tr", "com.ar", "com.pl", "com.ua", "com.ru", "com.es",
    }
)  # fmt: skip

_MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Network("::1/128")


class _Invalid(Exception):  # noqa: N818 - private carrier of a reason, re-raised as Pattern/TargetError
    """A reason something is not a valid host; the public functions pick the error class."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class HostPattern:
    """One parsed host pattern.

    ``value`` is canonical: a lower-case ASCII name (``name``), the suffix after ``*.``
    (``wildcard``), an address as ``normalize_host`` prints it (``ip``), or ``addr/prefix``
    (``network``). ``port`` is ``None`` when the pattern allows every port.
    """

    raw: str
    kind: HostKind
    value: str
    port: int | None


# --- targets ---------------------------------------------------------------------------------


def _check_characters(text: str) -> None:
    """Refuse the characters that smuggle a second meaning into a host before parsing anything."""
    if not text:
        raise _Invalid("empty host")
    if len(text) > _MAX_INPUT:
        raise _Invalid(f"too long ({len(text)} characters)")
    if "\x00" in text:
        raise _Invalid("contains a NUL character")
    for char in text:
        if char.isspace() or not char.isprintable():
            raise _Invalid(f"contains whitespace or a control character ({char!r})")
    if "@" in text:
        raise _Invalid("contains '@' (user@host): name the host only, without credentials")
    if "/" in text or "\\" in text:
        raise _Invalid("contains a path separator: name the host only")


def _parse_port(text: str) -> int:
    if not text:
        raise _Invalid("empty port after ':'")
    if not _PORT.match(text):
        raise _Invalid(f"port {text!r} is not a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _Invalid(f"port {port} is outside 1-65535")
    return port


def _inet_aton(text: str) -> str | None:
    """The dotted quad glibc ``inet_aton`` makes of ``text``, or None where it refuses it.

    Up to four parts, each decimal, octal (leading ``0``) or hex (``0x``); every part but the last
    is one byte and the last fills the remaining bytes: ``127.1`` and ``2130706433`` are 127.0.0.1.
    """
    parts = text.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _ATON_PART.fullmatch(part):
            return None
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:], 16))
        elif part.startswith("0"):
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for shift, value in enumerate(head):
        number |= value << (24 - 8 * shift)
    return str(ipaddress.IPv4Address(number))


def _canonical_ipv6(text: str) -> str:
    if "%" in text:
        raise _Invalid("IPv6 zone ids ('%eth0') are not supported: name a routable address")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise _Invalid("not a valid IPv6 address") from None
    mapped = address.ipv4_mapped
    # On the wire an IPv4-mapped address is the IPv4 address, so it must meet IPv4 rules.
    return str(mapped) if mapped is not None else address.compressed


def _to_ascii(text: str) -> str:
    """Lower-case ASCII form of a name, IDNA-encoding unicode with the codec getaddrinfo uses."""
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise _Invalid(f"not a valid internationalised domain name ({error})") from None
    return text.lower()


def _ends_in_number(name: str) -> bool:
    return _NUMERIC_LABEL.match(name.rpartition(".")[2]) is not None


def _check_name(name: str) -> str:
    """Validate an ASCII, lower-case name without trailing dot; return it unchanged."""
    if len(name) > _MAX_NAME:
        raise _Invalid(f"name is too long ({len(name)} characters, at most {_MAX_NAME})")
    for label in name.split("."):
        if not label:
            raise _Invalid("empty label ('..' or a leading dot)")
        if len(label) > _MAX_LABEL:
            raise _Invalid(f"label {label[:20]!r}... is longer than {_MAX_LABEL} characters")
        if not _LABEL.match(label):
            bad = next((c for c in label if not (c.isalnum() or c in "-_")), None)
            if bad is not None:
                raise _Invalid(f"invalid character {bad!r} in label {label!r}")
            raise _Invalid(f"label {label!r} must not start or end with '-'")
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                raise _Invalid(f"label {label!r} is not valid punycode") from None
    return name


def _normalize(text: str) -> str:
    _check_characters(text)
    if text.startswith("[") or text.endswith("]"):
        if not (text.startswith("[") and text.endswith("]")):
            raise _Invalid("unbalanced '[' ']'")
        inner = text[1:-1]
        if ":" not in inner:
            raise _Invalid("brackets are only for IPv6 addresses")
        return _canonical_ipv6(inner)
    if ":" in text:
        if text.count(":") == 1:
            raise _Invalid("contains a port: split it off with split_host_port() first")
        return _canonical_ipv6(text)
    name = _to_ascii(text)
    if ":" in name:  # fullwidth colons survive IDNA as ':'
        raise _Invalid("contains ':' after IDNA mapping")
    name = name.removesuffix(".")
    if not name:
        raise _Invalid("empty host")
    if _ends_in_number(name):
        quad = _inet_aton(name)
        if quad is None:
            raise _Invalid("ends in a number but is not an IPv4 address the resolver accepts")
        return quad
    return _check_name(name)


def normalize_host(host: str) -> str:
    """The canonical text of a host a job asked for; the only form rules and the resolver may see.

    Lower-case ASCII names without trailing dot (unicode IDNA-encoded), every IPv4 literal the C
    resolver accepts as a dotted quad, IPv6 compressed without brackets, IPv4-mapped IPv6 as IPv4.
    Raises ``TargetError`` for anything malformed (empty, NUL, whitespace, ``@``, zone ids,
    over-long names, bad IDNA, numeric tails that are not IPv4).
    """
    try:
        return _normalize(host)
    except _Invalid as error:
        raise TargetError(host, error.reason) from None


def split_host_port(target: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:443``, ``[::1]:8080`` or a bare ``::1`` into host and port.

    The host comes back without brackets and not yet normalised. A bare IPv6 address never carries a
    port (``::1:8080`` is an address); write ``[::1]:8080`` for that.
    """
    try:
        if target.startswith("["):
            inner, bracket, rest = target[1:].partition("]")
            if not bracket:
                raise _Invalid("unbalanced '['")
            if ":" not in inner:
                raise _Invalid("brackets are only for IPv6 addresses")
            if not rest:
                return inner, None
            if not rest.startswith(":"):
                raise _Invalid(f"unexpected {rest!r} after ']'")
            return inner, _parse_port(rest[1:])
        if target.count(":") == 1:
            host, _, port_text = target.partition(":")
            if not host:
                raise _Invalid("empty host before ':'")
            return host, _parse_port(port_text)
        return target, None
    except _Invalid as error:
        raise TargetError(target, error.reason) from None


# --- resolved addresses ----------------------------------------------------------------------

_V4_SPECIAL: Final = tuple(
    (ipaddress.IPv4Network(network), reason)
    for network, reason in (
        ("0.0.0.0/32", "unspecified (0.0.0.0 reaches this machine)"),
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private network"),
        ("172.16.0.0/12", "private network"),
        ("192.168.0.0/16", "private network"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("169.254.0.0/16", "link-local (includes the cloud metadata service 169.254.169.254)"),
        ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
        ("192.0.2.0/24", "reserved (documentation)"),
        ("198.51.100.0/24", "reserved (documentation)"),
        ("203.0.113.0/24", "reserved (documentation)"),
        ("198.18.0.0/15", "reserved (benchmarking)"),
        ("192.88.99.0/24", "reserved (deprecated 6to4 relay anycast)"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_V6_SPECIAL: Final = tuple(
    (ipaddress.IPv6Network(network), reason)
    for network, reason in (
        ("::/128", "unspecified (:: reaches this machine)"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated ::/96, may be tunnelled to IPv4)"),
        ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
        ("100::/64", "reserved (discard-only)"),
        ("2001:db8::/32", "reserved (documentation)"),
        ("2001::/23", "reserved (IETF protocol assignments)"),
        ("fc00::/7", "unique-local (fc00::/7, includes fd00::/8 and metadata fd00:ec2::254)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _v4_reason(address: ipaddress.IPv4Address) -> str | None:
    for network, reason in _V4_SPECIAL:
        if address in network:
            return reason
    return None if address.is_global else "reserved"


def _v6_reason(address: ipaddress.IPv6Address) -> str | None:
    # Addresses that carry an IPv4 address are as special as the address they carry: a NAT64
    # gateway or 6to4/Teredo relay would deliver 64:ff9b::7f00:1 to 127.0.0.1.
    mapped = address.ipv4_mapped
    if mapped is not None:
        inner = _v4_reason(mapped)
        return None if inner is None else f"IPv4-mapped {inner}"
    if address in _NAT64:
        inner = _v4_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        return None if inner is None else f"NAT64 of {inner}"
    if address in _SIXTOFOUR:
        sixtofour = address.sixtofour
        inner = None if sixtofour is None else _v4_reason(sixtofour)
        return None if inner is None else f"6to4 of {inner}"
    if address in _TEREDO and address.teredo is not None:
        for embedded in address.teredo:  # (server, client); a relay may reach either
            inner = _v4_reason(embedded)
            if inner is not None:
                return f"Teredo of {inner}"
        return None
    for network, reason in _V6_SPECIAL:
        if address in network:
            return reason
    if address not in _GLOBAL_UNICAST:
        return "reserved (outside global unicast 2000::/3)"
    return None


def special_address_reason(ip: str) -> str | None:
    """Why a resolved address is not ordinary public unicast, or None when it is.

    The broker refuses a connection to any address this names unless an allow pattern names the
    address, its network, or ``localhost`` (for loopback): a public name that resolves to 10.0.0.5
    or 169.254.169.254 is how a job would otherwise reach the private network or cloud credentials.
    ``ip`` is an address as the resolver returns it (a zone id is tolerated); else ``TargetError``.
    """
    try:
        address = ipaddress.ip_address(ip.removeprefix("[").removesuffix("]"))
    except ValueError:
        raise TargetError(ip, "not an IP address") from None
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_reason(address)
    return _v6_reason(address)


# --- patterns --------------------------------------------------------------------------------


def _scheme_hint(pattern: str) -> str:
    rest = pattern.partition("://")[2]
    host = rest.split("/", 1)[0].rpartition("@")[2]
    hint = f": {host!r}" if host else ""
    return f"write the host only, without scheme or path{hint}"


def _split_pattern_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise _Invalid("unbalanced '['")
        if ":" not in inner:
            raise _Invalid("brackets are only for IPv6 addresses")
        if rest and not rest.startswith(":"):
            raise _Invalid(f"unexpected {rest!r} after ']'")
        return f"[{inner}]", _parse_port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return host, _parse_port(port_text)
    if text.count(":") > 1:
        _refuse_ambiguous_ipv6(text)
    return text, None


def _refuse_ambiguous_ipv6(text: str) -> None:
    """``::1:8080`` is a valid address, but the author almost surely meant port 8080 of ``::1``."""
    head, _, tail = text.rpartition(":")
    if "/" in text or not (tail.isascii() and tail.isdigit()) or not head or head.endswith(":"):
        return
    try:
        ipaddress.IPv6Address(head)
        ipaddress.IPv6Address(text)
    except ValueError:
        return
    raise _Invalid(f"ambiguous: write '[{head}]:{tail}' for a port, or '[{text}]' for that address")


def _parse_network(host: str) -> str:
    bare, _, prefix = host.removeprefix("[").removesuffix("]").partition("/")
    is_v6 = ":" in bare
    if not (is_v6 or _DOTTED_QUAD.match(bare)):
        raise _Invalid("a host pattern has no path; write the host only (networks: '10.0.0.0/8')")
    if not prefix.isdigit() or not prefix.isascii():
        raise _Invalid(f"prefix length {prefix!r} is not a number")
    if "%" in bare:
        raise _Invalid("IPv6 zone ids ('%eth0') are not supported")
    try:
        network = ipaddress.ip_network(f"{bare}/{prefix}", strict=False)
    except ValueError as error:
        raise _Invalid(f"not a valid network ({error})") from None
    if int(network.network_address) != int(ipaddress.ip_address(bare)):
        raise _Invalid(f"host bits are set; did you mean '{network}'?")
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED_V4):
        raise _Invalid("IPv4-mapped networks never match (targets become IPv4); write it as IPv4")
    return str(network)


def _parse_ip_pattern(host: str) -> str:
    if ":" in host:
        return _canonical_ipv6(host.removeprefix("[").removesuffix("]"))
    if _DOTTED_QUAD.match(host):
        return host
    quad = _inet_aton(host)
    if quad is not None:
        raise _Invalid(f"write IPv4 addresses as four decimal numbers: {quad!r}")
    raise _Invalid("ends in a number but is not an IPv4 address")


def _parse_wildcard(host: str) -> str:
    if host == "*":
        raise _Invalid("'*' alone would allow every host; list the hosts instead")
    if not host.startswith("*.") or "*" in host[2:]:
        raise _Invalid("'*' must be the whole leftmost label, as in '*.example.com'")
    suffix = _to_ascii(host[2:]).removesuffix(".")
    if _ends_in_number(suffix):
        raise _Invalid("a wildcard cannot cover IP addresses; use a network such as '10.0.0.0/8'")
    _check_name(suffix)
    if "." not in suffix:
        raise _Invalid(
            f"'*.{suffix}' covers a whole top-level domain; name a domain ('*.example.{suffix}')"
        )
    if suffix in _PUBLIC_SUFFIXES:
        raise _Invalid(f"'{suffix}' is a public suffix; '*.{suffix}' would cover unrelated sites")
    return suffix


def _parse_pattern(pattern: str) -> HostPattern:
    if not pattern.strip():
        raise _Invalid("empty host pattern")
    if "://" in pattern:
        raise _Invalid(_scheme_hint(pattern))
    if "@" in pattern:
        raise _Invalid("user@host: a host pattern names only the host, without credentials")
    for char in pattern:
        if char.isspace() or not char.isprintable():
            raise _Invalid(f"contains whitespace or a control character ({char!r})")
    if len(pattern) > _MAX_INPUT:
        raise _Invalid(f"too long ({len(pattern)} characters)")
    host, port = _split_pattern_port(pattern)
    if not host:
        raise _Invalid("empty host before ':'")
    if "/" in host:
        return HostPattern(pattern, "network", _parse_network(host), port)
    if "\\" in host:
        raise _Invalid("contains a backslash")
    if "*" in host:
        return HostPattern(pattern, "wildcard", _parse_wildcard(host), port)
    if ":" in host or host.startswith("["):
        return HostPattern(pattern, "ip", _parse_ip_pattern(host), port)
    name = _to_ascii(host).removesuffix(".")
    if not name:
        raise _Invalid("empty host pattern")
    if _ends_in_number(name):
        return HostPattern(pattern, "ip", _parse_ip_pattern(name), port)
    return HostPattern(pattern, "name", _check_name(name), port)


def parse_host_pattern(pattern: str) -> HostPattern:
    """Parse one ``net.allow_hosts``/``deny_hosts`` entry; ``PatternError`` says what to write.

    Refused rather than guessed: schemes and paths (``https://api.x.com/v1``), ``user@host``, bad
    ports, ``*`` anywhere but as the whole leftmost label, wildcards over a top-level domain or
    public suffix, non-dotted-quad IPv4 spellings, zone ids, networks with host bits set, invalid
    names.
    """
    try:
        return _parse_pattern(pattern)
    except _Invalid as error:
        raise PatternError(pattern, error.reason) from None


# --- matching --------------------------------------------------------------------------------

# (pattern index, port or None), in ascending index order
_Entries: TypeAlias = list[tuple[int, int | None]]


def _first(entries: _Entries | None, port: int | None, best: int | None) -> int | None:
    """The lowest index in ``entries`` whose port fits, if lower than ``best``; else ``best``."""
    if entries:
        for index, pattern_port in entries:
            if best is not None and index >= best:
                break
            if pattern_port is None or pattern_port == port:
                return index
    return best


class HostList:
    """An ordered list of host patterns with dictionary lookups for ``match``.

    Names and wildcard suffixes are dictionary keys; addresses and networks are grouped by
    (IP version, prefix length) and keyed by the network number, so a match costs one lookup per
    label plus one per distinct prefix length, however many patterns there are.
    """

    __slots__ = ("_names", "_networks", "_wildcards", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns: tuple[HostPattern, ...] = tuple(parse_host_pattern(p) for p in patterns)
        self._names: dict[str, _Entries] = {}
        self._wildcards: dict[str, _Entries] = {}
        # (version, prefix length) -> network number -> entries
        self._networks: dict[tuple[int, int], dict[int, _Entries]] = {}
        for index, pattern in enumerate(self.patterns):
            entry = (index, pattern.port)
            if pattern.kind == "name":
                self._names.setdefault(pattern.value, []).append(entry)
                if pattern.value == "localhost":
                    self._add_network(_LOOPBACK_V4, entry)
                    self._add_network(_LOOPBACK_V6, entry)
            elif pattern.kind == "wildcard":
                self._wildcards.setdefault(pattern.value, []).append(entry)
            else:
                self._add_network(ipaddress.ip_network(pattern.value), entry)

    def _add_network(
        self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, entry: tuple[int, int | None]
    ) -> None:
        table = self._networks.setdefault((network.version, network.prefixlen), {})
        key = int(network.network_address) >> (network.max_prefixlen - network.prefixlen)
        table.setdefault(key, []).append(entry)

    def match(self, host: str, port: int | None) -> int | None:
        """Index of the first pattern matching ``host`` and ``port``, or None.

        ``host`` must already be ``normalize_host()``'d: matching is exact on the canonical text.
        A pattern with a port matches only that port; ``port=None`` (unknown or default) matches
        only patterns without one. Addresses match ``ip``/``network`` patterns and ``localhost``
        (for 127.0.0.0/8 and ::1); names match ``name``/``wildcard`` patterns.
        """
        if host and (":" in host or host[-1].isdigit()) and self._networks:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                pass  # a name such as 'node1' ends in a digit too
            else:
                return self._match_address(address, port)
        best = _first(self._names.get(host), port, None)
        if self._wildcards:
            dot = host.find(".")
            while dot != -1:  # parents only: '*.qdrant.io' never matches 'qdrant.io'
                best = _first(self._wildcards.get(host[dot + 1 :]), port, best)
                dot = host.find(".", dot + 1)
        return best

    def _match_address(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int | None
    ) -> int | None:
        best: int | None = None
        number = int(address)
        bits = address.max_prefixlen
        for (version, prefixlen), table in self._networks.items():
            if version == address.version:
                best = _first(table.get(number >> (bits - prefixlen)), port, best)
        return best

    def __repr__(self) -> str:
        return f"HostList({[p.raw for p in self.patterns]!r})"
