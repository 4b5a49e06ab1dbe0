"""Filesystem glob patterns: gitignore syntax, git's meaning, or a clear refusal.

An fs rule names workspace paths with gitignore-style patterns, and a pattern must mean exactly what
``git check-ignore`` makes of it. Where we could not evaluate a pattern exactly as git does, we
refuse it when the rule is declared (``PatternError``, saying what to write instead): a deny rule
that silently never matches is a hole, not a style problem. The accepted subset and the reason for
each refusal are in ``docs/adr/0002-glob-semantics.md``; ``tests/sdk/test_globs_git_oracle.py``
holds this module to git itself.

How git decides, and so how ``GlobList.match`` decides:

* A pattern without a ``/`` (a trailing one aside) matches the last name at any depth; any other
  ``/`` anchors it at the workspace root. A trailing ``/`` matches directories only.
* git looks at each parent directory from the top, then at the path itself. At each of these
  levels the last matching pattern wins; if it is not a ``!`` pattern, the level is ignored and
  so is everything below it, by that pattern: nothing under an ignored directory is re-included.
* Matching is on the path's UTF-8 bytes: ``?`` and ``[...]`` match one byte.

Speed: every fs call is checked against an allow and a deny list. A list is compiled into regexes
over the *reversed* bytes of the path, ``yp.elif/dom/crs`` for ``src/mod/file.py``: there every
level of the path starts right after a ``/`` (or at 0 for the path itself), and ``.*/`` first
swallows all but the top name and gives one name back per failed try, so a single regex call tries
the levels top down, as git does, with every pattern's branch at each level. A *finder* (branches
merged for speed, highest index first) finds the first level anything matches at, and usually the
pattern too; otherwise a *resolver* tries the patterns in order at that one level. Only a list with
``!`` patterns may need the *exhaustive* regex, which is git's whole decision in one regex.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias

from plugbox.sdk.errors import PatternError

__all__ = ["MAX_PATTERN_BYTES", "GlobList", "check_glob"]

MAX_PATTERN_BYTES: Final = 1024
"""Longest accepted pattern, in UTF-8 bytes."""

# git's own locale-independent ctype (ctype.c, sane-ctype.h): ASCII only, nothing above 0x7f.
# [:blank:] and [:graph:] are left out on purpose: git takes those two from the C library, so
# their meaning depends on the locale git happens to run in.
_CLASSES: Final[dict[str, frozenset[int]]] = {
    name: frozenset(chars.encode("ascii"))
    for name, chars in {
        "alnum": string.ascii_letters + string.digits,
        "alpha": string.ascii_letters,
        "cntrl": "".join(map(chr, range(0x20))) + "\x7f",
        "digit": string.digits,
        "lower": string.ascii_lowercase,
        "print": "".join(map(chr, range(0x20, 0x7F))),
        "punct": string.punctuation,
        "space": " \t\n\r",
        "upper": string.ascii_uppercase,
        "xdigit": string.hexdigits,
    }.items()
}
_LOCALE_CLASSES: Final = {
    "blank": "write '[ ]' for a space ('[[:space:]]' also matches tab, newline and return)",
    "graph": "write '[!-~]' for every visible ASCII character",
}
_SLASH: Final = ord("/")
_ANY_BYTE: Final = frozenset(range(256)) - {_SLASH}  # what '?' matches

# Regex pieces, all on bytes and all for the reversed path.
_END: Final = rb"(?=/|\Z)"  # the end of a name: a separator or the end of the text
_GAP: Final = rb"(?:[^/]+/)*?"  # '**' between names: zero or more whole names, fewest first
# Starts shared by many patterns, matched once per level in the finder: a whole name and its
# separator (the shortest match of 'x/**'), and a whole name to look back at (a name 'token*').
_NAME_AND_SLASH: Final = rb"[^/]++/"
_WHOLE_NAME: Final = rb"[^/]*+"


class _Marker:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


_STAR: Final = _Marker("*")  # inside a name
_GLOBSTAR: Final = _Marker("**")  # a whole path segment
_SEP: Final = _Marker("/")

# A pattern is read into atoms: literal bytes, the bytes one '?' or '[...]' matches, or a marker.
_Atom: TypeAlias = bytes | frozenset[int] | _Marker
_Segment: TypeAlias = list[_Atom]
_Fail: TypeAlias = Callable[[str], PatternError]


def check_glob(pattern: str) -> None:
    """Raise ``PatternError`` saying what is wrong with ``pattern`` and what to write, or return."""
    _parse(pattern)


class GlobList:
    """An ordered list of gitignore patterns, compiled once."""

    __slots__ = ("_exhaustive", "_finders", "_resolvers", "patterns")

    patterns: tuple[str, ...]

    def __init__(self, patterns: Sequence[str]) -> None:
        if isinstance(patterns, str | bytes):
            raise PatternError(str(patterns), "expected a list of patterns, not a single string")
        self.patterns = tuple(patterns)
        rules = []
        for position, pattern in enumerate(self.patterns):
            try:
                rules.append(_parse(pattern))
            except PatternError as error:
                error.add_note(f"pattern {position} of {list(self.patterns)!r}")
                raise
        negations = any(rule.negated for rule in rules)
        # Without '!' a pattern can only decide at the shallowest level it matches at, so the
        # cheaper form of each pattern is enough.
        ordered = [
            _Alternative(i, rule.negated, rule.dir_only, rule.full if negations else rule.shortest)
            for i, rule in reversed(list(enumerate(rules)))
        ]
        positive = [
            _Alternative(i, False, rule.dir_only, rule.shortest, rule.name_starts)
            for i, rule in enumerate(rules)
            if not rule.negated
        ]
        # Pairs indexed by is_dir (the resolvers: by "is the level a directory").
        self._finders = tuple(_finder(positive, is_dir=d, direct=not negations) for d in (0, 1))
        self._resolvers = tuple(_resolver(ordered, at_dir=d) for d in (0, 1))
        self._exhaustive = tuple(_exhaustive(ordered, is_dir=d) for d in (0, 1))

    def match(self, path: str, *, is_dir: bool = False) -> int | None:
        """Return the index of the pattern that makes git ignore ``path``, or None if git would not.

        ``path`` must already be ``normalize_path()``'d; ``is_dir`` says whether it names a
        directory (directory-only patterns such as ``build/`` need it). When a parent directory
        is ignored, the answer is the pattern that ignored that directory, as in
        ``git check-ignore -v``. The workspace root (``""``) is never matched.
        """
        try:
            text = path.encode()[::-1]
        except UnicodeEncodeError:  # not normalised; match the bytes it stands for, as git would
            text = path.encode("utf-8", "surrogateescape")[::-1]
        finder, indexes = self._finders[is_dir]
        found = finder.match(text)
        if found is None:
            return None
        group = found.lastindex or 0
        if indexes[group] >= 0:
            return indexes[group]
        # The level found starts here in the reversed text: at 0 it is the path itself, further
        # in a parent directory.
        at = found.start(group)
        resolver, indexes = self._resolvers[is_dir or at > 0]
        decided = resolver.match(text, at)
        if decided is not None:
            return indexes[decided.lastindex or 0]
        # Only with '!': a '!' pattern is that level's last match, so git goes on to deeper ones.
        exhaustive, indexes = self._exhaustive[is_dir]
        decided = exhaustive.match(text)
        return None if decided is None else indexes[decided.lastindex or 0]

    def __repr__(self) -> str:
        return f"GlobList({list(self.patterns)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GlobList):
            return NotImplemented
        return self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __reduce__(self) -> tuple[type[GlobList], tuple[tuple[str, ...]]]:
        # Rebuilt from the patterns, rather than pickling six compiled regexes.
        return (GlobList, (self.patterns,))


# --- Compiling a list --------------------------------------------------------------------------
# Each capture group is an empty "()" that only names a branch: the regex engine skips a branch
# on a one-byte test when the branch starts with a literal byte, and a group in front would hide
# that byte. `groups[n]` is the pattern index that group n stands for, or -1.

_Compiled: TypeAlias = tuple[re.Pattern[bytes], tuple[int, ...]]


class _Alternative(NamedTuple):
    pattern: int  # its index in the list
    negated: bool
    dir_only: bool
    source: bytes
    name_starts: frozenset[int] | None = None


def _finder(positive: Sequence[_Alternative], *, is_dir: int, direct: bool) -> _Compiled:
    """Find the first level (top down) that any positive pattern matches.

    Branches are tried highest index first, but patterns with a shared start are merged into one
    branch (matching the start once per level instead of once per pattern), whose group opens it
    and is -1: resolve the level that starts there. When ``direct`` (no '!' in the list) a single
    pattern's group closes its branch and names the pattern: nothing after it at that level can
    have a higher index. With '!', two groups mark where the level starts.
    """
    groups = [-1]
    itself = positive if is_dir else [alt for alt in positive if not alt.dir_only]
    if direct:
        parents_source = _any_of(positive, groups)
        source = rb".*/(?:" + parents_source + rb")|(?:" + _any_of(itself, groups) + b")"
    else:
        groups += [-1, -1]
        source = rb".*/()(?:" + _any_of(positive, None) + rb")|()(?:" + _any_of(itself, None) + b")"
    return re.compile(source, re.DOTALL), tuple(groups)


def _any_of(alternatives: Sequence[_Alternative], groups: list[int] | None) -> bytes:
    """Branches for any of the alternatives at one level; see ``_finder``."""
    merged: dict[bytes, list[_Alternative]] = {_NAME_AND_SLASH: [], _WHOLE_NAME: []}
    items: list[tuple[int, bytes, int]] = []  # (highest index, source, group's pattern index)
    for alt in alternatives:
        head = next((h for h in merged if alt.source.startswith(h)), None)
        if head is None:
            items.append((alt.pattern, alt.source, alt.pattern))
        else:
            merged[head].append(alt)
    for head, members in merged.items():
        if not members:
            continue
        check = b""
        starts = [alt.name_starts for alt in members]
        if head == _WHOLE_NAME and all(starts):
            # One look back at the name's first byte rules out most names for all of them.
            check = b"(?<=" + _class_regex(frozenset[int]().union(*filter(None, starts))) + b")"
        tails = b"|".join(dict.fromkeys(alt.source[len(head) :] for alt in members))
        items.append(
            (max(alt.pattern for alt in members), head + check + b"(?:" + tails + b")", -1)
        )
    branches: list[bytes] = []
    for _, source, index in sorted(items, key=lambda item: -item[0]):
        if groups is None:
            branches.append(source)
        elif index >= 0:
            groups.append(index)
            branches.append(source + b"()")
        else:
            groups.append(-1)
            branches.append(b"()" + source)
    return b"|".join(branches) or rb"(?!)"


def _resolver(ordered: Sequence[_Alternative], *, at_dir: int) -> _Compiled:
    """At one level, the last pattern that matches it; no match if that one is a '!'."""
    groups = [-1]
    eligible = [alt for alt in ordered if at_dir or not alt.dir_only]
    return re.compile(_level(eligible, groups), re.DOTALL), tuple(groups)


def _exhaustive(ordered: Sequence[_Alternative], *, is_dir: int) -> _Compiled:
    """git's whole decision in one regex: levels top down, last pattern first at each level."""
    groups = [-1]
    parents = _level(ordered, groups)
    itself = _level([alt for alt in ordered if is_dir or not alt.dir_only], groups)
    return re.compile(rb".*/(?:" + parents + rb")|(?:" + itself + b")", re.DOTALL), tuple(groups)


def _level(eligible: Sequence[_Alternative], groups: list[int]) -> bytes:
    """The alternatives for one level, last pattern first, so the first to match decides.

    A '!' pattern that decides a level makes the regex fail there (the caller's ``.*/`` then
    moves on to the next level, as git does): the atomic group stops at the first branch that
    matches, and the conditionals after it fail if that branch was a '!' one. (Nesting each
    '!' around the earlier patterns would say the same, but a few hundred of them would
    overflow the regex parser's recursion.)
    """
    branches: list[bytes] = []
    vetoes: list[bytes] = []
    for alt in eligible:
        groups.append(-1 if alt.negated else alt.pattern)
        branches.append(alt.source + b"()")
        if alt.negated:
            vetoes.append(b"(?(%d)(?!))" % (len(groups) - 1))
    if not branches:
        return rb"(?!)"
    if not vetoes:
        return b"|".join(branches)
    return b"(?>" + b"|".join(branches) + b")" + b"".join(vetoes)


# --- Reading one pattern -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """One parsed pattern: how git applies it, and regex sources for the reversed path."""

    negated: bool
    dir_only: bool
    # Both match the reversed bytes of a path D when the pattern matches D. `shortest` only
    # promises to match at the shallowest level the pattern matches (it stops 'x/**' one name
    # below x); enough when no '!' can make a deeper level count.
    shortest: bytes
    full: bytes
    # When `shortest` starts by taking a whole name and looking back at its start (a last name
    # like 'token*'), the bytes the name can start with.
    name_starts: frozenset[int] | None


def _parse(pattern: str) -> _Rule:
    """Validate one pattern and translate it, or raise ``PatternError``."""

    def fail(reason: str) -> PatternError:
        return PatternError(pattern, reason)

    if not isinstance(pattern, str):
        raise PatternError(repr(pattern), "a glob pattern must be a string")
    if not pattern:
        raise fail("is empty, and an empty pattern matches nothing")
    for char in pattern:
        if char < " " or char == "\x7f":
            raise fail(
                f"contains the control character {char!r}; git reads patterns line by line and "
                "would cut or keep it depending on where it is - match it with '?' instead"
            )
    try:
        size = len(pattern.encode())
    except UnicodeEncodeError:
        raise fail("is not valid text (it holds lone surrogates)") from None
    if size > MAX_PATTERN_BYTES:
        raise fail(f"is {size} bytes long; a pattern may be at most {MAX_PATTERN_BYTES} bytes")
    if pattern.startswith("\ufeff"):
        raise fail("starts with an invisible byte order mark, which git drops; remove it")
    if pattern.startswith("#"):
        raise fail(
            "starts with '#', which git reads as a comment that matches nothing; "
            "write '\\#' to match a name that starts with '#'"
        )

    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    if not body:
        raise fail("'!' must be followed by the pattern to re-include, e.g. '!keep.txt'")
    if negated and body.startswith("!"):
        raise fail(
            "starts with '!!': the second '!' is a literal character, not a double negation; "
            "write '!\\!name' to re-include a name that starts with '!'"
        )
    if body.startswith(" "):
        raise fail(
            "starts with a space, which git matches literally; remove it, "
            "or write '\\ ' if the name really starts with a space"
        )
    if _has_trailing_space(body):
        raise fail(
            "ends with a space, which git silently drops; remove it, "
            "or write '\\ ' if the name really ends with a space"
        )

    segments = _split(list(_atoms(body, fail)), fail)
    dir_only = not segments[-1]
    if dir_only:
        segments.pop()
    anchored = not segments[0]
    if anchored:
        segments.pop(0)
    if not segments:
        raise fail(
            "names the workspace root itself, which no rule can match; "
            "write '/**' for everything in the workspace"
        )
    if not anchored and len(segments) > 1 and _literal(segments[0]) == b".":
        raise fail(
            "starts with './'; patterns are already relative to the workspace root, "
            "so write '/' and the rest to anchor it there"
        )
    for segment in segments:
        _check_segment(segment, fail)
    if any(a == b == [_GLOBSTAR] for a, b in itertools.pairwise(segments)):
        raise fail("has '**/**', which means the same as '**'; write one")
    if len(segments) == 1 and not anchored and segments[0] != [_GLOBSTAR]:
        # No '/': git matches the last name at any depth, exactly like '**/name'.
        segments.insert(0, [_GLOBSTAR])
    shortest, full = _translate(segments)
    return _Rule(negated, dir_only, shortest, full, _name_starts(segments))


def _has_trailing_space(body: str) -> bool:
    """Whether git's trim_trailing_spaces() would drop something: an unescaped final space."""
    escaped = last_is_space = False
    for char in body:
        if escaped:
            escaped = last_is_space = False
        elif char == "\\":
            escaped, last_is_space = True, False
        else:
            last_is_space = char == " "
    return last_is_space


def _atoms(body: str, fail: _Fail) -> Iterator[_Atom]:
    """Read a pattern body into atoms, taking escapes and brackets as git's wildmatch does."""
    i, size = 0, len(body)
    while i < size:
        char = body[i]
        if char == "\\":
            if i + 1 == size:
                raise fail(
                    "ends with a lone '\\', which git never matches; "
                    "write '\\\\' for a literal backslash"
                )
            if body[i + 1] == "/":
                raise fail("'\\/' escapes a separator; write a plain '/'")
            yield body[i + 1].encode()
            i += 2
        elif char == "/":
            yield _SEP
            i += 1
        elif char == "*":
            run = len(body[i:]) - len(body[i:].lstrip("*"))
            if run > 2:
                raise fail(
                    f"has {'*' * run!r}; write '**' for any number of directories "
                    "or '*' for part of a name"
                )
            yield _GLOBSTAR if run == 2 else _STAR
            i += run
        elif char == "?":
            yield _ANY_BYTE
            i += 1
        elif char == "[":
            members, negate, i = _bracket(body, i, fail)
            chosen = (frozenset(range(256)) - members if negate else frozenset(members)) - {_SLASH}
            if not chosen:
                raise fail("has a bracket expression that can never match a name")
            yield chosen
        else:
            yield char.encode()
            i += 1


def _bracket(body: str, start: int, fail: _Fail) -> tuple[set[int], bool, int]:
    """Read the bracket expression at ``body[start]`` as wildmatch does.

    Returns its member bytes, whether it is negated, and the index just past its ``]``.
    """
    unclosed = fail(
        "has an unclosed '[', and git never matches such a pattern; "
        "close it with ']' or write '\\[' for a literal '['"
    )
    i, size = start + 1, len(body)
    negate = i < size and body[i] in "!^"
    if negate:
        i += 1
    members: set[int] = set()
    previous = 0  # wildmatch's prev_ch: the last single character, 0 after a range or a class
    first = True  # a ']' first in the set is a member
    while True:
        if i >= size:
            raise unclosed
        char = body[i]
        if char == "]" and not first:
            return members, negate, i + 1
        if char == "\\":
            if i + 1 >= size:
                raise unclosed
            previous = _bracket_byte(body[i + 1], fail)
            members.add(previous)
            i += 2
        elif char == "-" and previous and i + 1 < size and body[i + 1] != "]":
            high_at = i + 2 if body[i + 1] == "\\" else i + 1
            if high_at >= size:
                raise unclosed
            high = _bracket_byte(body[high_at], fail)
            if high < previous:
                low_char, high_char = chr(previous), chr(high)
                raise fail(
                    f"the range '{low_char}-{high_char}' is reversed and matches nothing; "
                    f"write '{high_char}-{low_char}'"
                )
            members.update(range(previous, high + 1))
            previous = 0
            i = high_at + 1
        elif char == "[" and body.startswith(":", i + 1):
            close = body.find("]", i + 2)
            if close < 0 or close - 1 < i + 2 or body[close - 1] != ":":
                raise fail(
                    "has '[:' that does not start a class like '[:digit:]'; "
                    "write '\\[' for a literal '['"
                )
            name = body[i + 2 : close - 1]
            if name in _LOCALE_CLASSES:
                raise fail(
                    f"'[:{name}:]' depends on the locale git runs in; {_LOCALE_CLASSES[name]}"
                )
            if name not in _CLASSES:
                known = ", ".join(f"[:{known}:]" for known in sorted(_CLASSES))
                raise fail(f"'[:{name}:]' is not a character class git knows; use one of {known}")
            members.update(_CLASSES[name])
            previous = 0
            i = close + 1
        else:
            if char == "-" and not first and not previous and not body.startswith("]", i + 1):
                raise fail(
                    "has a '-' right after a range or class, which git reads as a literal '-'; "
                    "put a literal '-' first or last inside the brackets"
                )
            previous = _bracket_byte(char, fail)
            members.add(previous)
            i += 1
        first = False


def _bracket_byte(char: str, fail: _Fail) -> int:
    if char == "/":
        raise fail("a bracket expression never matches '/'; write the separator outside brackets")
    encoded = char.encode()
    if len(encoded) > 1:
        raise fail(
            f"a bracket expression matches one byte, and {char!r} is {len(encoded)} bytes in "
            "UTF-8, so it could never match; write a separate pattern for each such name"
        )
    return encoded[0]


def _split(atoms: list[_Atom], fail: _Fail) -> list[_Segment]:
    """Split atoms at separators; a leading or trailing separator leaves an empty first/last."""
    segments: list[_Segment] = [[]]
    for atom in atoms:
        if atom is _SEP:
            segments.append([])
        else:
            segments[-1].append(atom)
    if any(not segment for segment in segments[1:-1]):
        raise fail("has an empty path segment ('//'), which never matches; write a single '/'")
    return segments


def _literal(segment: _Segment) -> bytes | None:
    """The name a segment spells if it has no wildcard, else None."""
    if all(isinstance(atom, bytes) for atom in segment):
        return b"".join(atom for atom in segment if isinstance(atom, bytes))
    return None


def _check_segment(segment: _Segment, fail: _Fail) -> None:
    if _GLOBSTAR in segment and len(segment) > 1:
        raise fail(
            "'**' is only special as a whole path segment ('**/x', 'x/**', 'x/**/y'); next to "
            "other characters git reads it irregularly (as '*', or after a prefix as '**/'), "
            "so write '*' for part of a name or give '**' a segment of its own"
        )
    name = _literal(segment)
    if name is not None and name in (b".", b".."):
        raise fail(
            f"has a {name.decode()!r} segment, which never matches: paths are normalised "
            "before matching, so write the path without it"
        )


# --- Translating one pattern -------------------------------------------------------------------


def _translate(segments: list[_Segment]) -> tuple[bytes, bytes]:
    """Regex sources for the reversed bytes of a path the segments match: (shortest, full).

    Reversed, the pattern's last name comes first, right where the level starts. Each run of
    names between '**'s is placed at its first possible place, and committed to: that is always
    right (the runs after it can keep their places), and keeps the search linear in the path
    instead of trying every way to split it among several '**'s.
    """
    lead = segments[0] == [_GLOBSTAR]
    trail = len(segments) > 1 and segments[-1] == [_GLOBSTAR]
    core = segments[int(lead) : len(segments) - int(trail)]
    if not core:  # '**' or '/**': every path
        return rb"[^/]", rb"[^/]"

    runs: list[list[bytes]] = [[]]  # runs of names between '**'s, last run first, each reversed
    for segment in reversed(core):
        if segment == [_GLOBSTAR]:
            runs.append([])
        else:
            flipped = [atom[::-1] if isinstance(atom, bytes) else atom for atom in segment]
            runs[-1].append(_name(flipped[::-1]))

    def build(below: bytes) -> bytes:
        parts: list[bytes] = []
        for number, run in enumerate(runs):
            anchored = number == len(runs) - 1 and not lead  # its first name starts the path
            if number == 0:
                gap = below
            elif anchored:
                # Any split will do when the end is fixed, and the regex engine skips to the
                # last '/'s far faster than it steps through names one by one.
                gap = rb"/(?:.*/)?"
            else:
                gap = b"/" + _GAP
            body = gap + b"/".join(run)
            if anchored:
                parts.append(body + rb"\Z")
            elif gap.endswith(b"?"):
                parts.append(b"(?>" + body + _END + b")")
            else:
                parts.append(body + _END)
        return b"".join(parts)

    if not trail:
        return build(b""), build(b"")
    # 'x/**' matches the paths inside x: the shallowest is one name below x, any number in full.
    return build(_NAME_AND_SLASH), build(rb"(?:[^/]+/)+?")


def _name(segment: _Segment) -> bytes:
    """Regex for one path segment without '**': it consumes exactly one whole name."""
    pieces: list[list[bytes]] = [[]]
    widths = [0]
    for atom in segment:
        if atom is _STAR:
            pieces.append([])
            widths.append(0)
        elif isinstance(atom, bytes):
            pieces[-1].append(re.escape(atom))
            widths[-1] += len(atom)
        elif isinstance(atom, frozenset):
            pieces[-1].append(_class_regex(atom))
            widths[-1] += 1
    if len(pieces) == 1:
        return b"".join(pieces[0])
    if not any(pieces):
        return rb"[^/]++"
    first, *middle, last = (b"".join(piece) for piece in pieces)
    # As with runs of names: the first possible place for a piece between two '*'s is right.
    before = first + b"".join(rb"(?>[^/]*?" + piece + b")" for piece in middle if piece)
    if not last:
        return before + rb"[^/]*+"
    # The last piece ends the name: take the whole name at once and look back, rather than
    # backtracking byte by byte. The look back cannot see across the name's start, as no piece
    # matches '/'; after other pieces, first make sure the last one would not overlap them.
    guard = rb"(?=[^/]{%d})" % widths[-1] if before else b""
    return before + guard + _WHOLE_NAME + b"(?<=" + last + b")"


def _name_starts(segments: list[_Segment]) -> frozenset[int] | None:
    """For a pattern whose last name is 'prefix*' (and no '**' after it), its first bytes."""
    last = segments[-1]
    if len(last) < 2 or last[-1] is not _STAR or last.count(_STAR) != 1:
        return None
    first = last[0]
    if isinstance(first, bytes):
        return frozenset(first[:1])
    return first if isinstance(first, frozenset) else None


def _class_regex(chosen: frozenset[int]) -> bytes:
    if chosen == _ANY_BYTE:
        return rb"[^/]"
    ranges: list[bytes] = []
    for low, high in _runs(sorted(chosen)):
        ranges.append(b"\\x%02x" % low if low == high else b"\\x%02x-\\x%02x" % (low, high))
    return b"[" + b"".join(ranges) + b"]"


def _runs(values: list[int]) -> Iterator[tuple[int, int]]:
    low = high = values[0]
    for value in values[1:]:
        if value != high + 1:
            yield low, high
            low = value
        high = value
    yield low, high
