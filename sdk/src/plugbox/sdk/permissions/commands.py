"""Shell command patterns (``shell.allow`` / ``shell.deny``) over a command's argument list.

A command is split into arguments with ``shlex`` (POSIX rules) and executed directly, **never
handed to a shell**. So shell metacharacters -- ``;``, ``|``, ``&&``, ``$(``, backticks, ``>``,
``#`` -- mean nothing: they are ordinary characters of the arguments they sit in.
``git status; rm -rf /`` is the argument list ``['git', 'status;', 'rm', '-rf', '/']``, which a
pattern ``git status`` does not match (and which, were it allowed, would run git with four odd
arguments, never ``rm``).

The program (``argv[0]``) is a bare name looked up on the host ``PATH``; a path such as
``/usr/bin/git`` or ``./git`` is refused in targets and patterns alike, so a job cannot pick which
binary answers to an allowed name.

Pattern tokens are split with ``shlex`` too, and each matches **one** argument:

- the first token is the program name, literally (no glob, no ``/``);
- any other token is an ``fnmatch`` glob over one argument, case-sensitive: ``*`` never spans two
  arguments (``git log *`` matches ``git log main`` but neither ``git log`` nor ``git log a b``),
  ``?`` and ``[...]`` / ``[!...]`` work as usual, ``[*]`` matches a literal star;
- a glob matches an argument that starts with ``-`` only if the token itself starts with ``-``:
  ``git log *`` does not match ``git log --output=/home/me/.bashrc``, while ``git log -n *`` and
  ``git log --format=*`` say which options they let in;
- the token ``**`` matches zero or more whole arguments, options included. It may stand anywhere
  after the program (``git log **``, ``docker ** --rm``), once in a row.

Option injection is the author's responsibility once ``**`` appears: ``git log **`` allows
``git log --output=FILE`` (which writes a file) and ``find . **`` allows ``find . -exec sh ...``.
Programs that take options after operands, or that read options from arguments in other ways
(``git -c core.pager=sh``), deserve a pattern per intended call rather than a ``**``.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from plugbox.sdk.errors import PatternError, TargetError

__all__ = ["CommandList", "CommandPattern", "parse_command_pattern", "split_command"]

_GLOB_CHARS = frozenset("*?[")
_ANY = "**"


def _program_problem(program: str) -> str | None:
    """Why ``program`` cannot be an ``argv[0]``, shared by targets and patterns."""
    if not program:
        return "empty program name"
    if "/" in program:
        return (
            "commands are looked up on the host PATH, never by path: "
            f"write {program.rstrip('/').rpartition('/')[2] or 'the program name'!r}"
        )
    if program.startswith("-"):
        return f"program name {program!r} starts with '-'"
    return None


def _split(text: str) -> list[str]:
    """``shlex.split`` with ``ValueError`` turned into a reason; refuses NUL first."""
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    try:
        return shlex.split(text, posix=True)
    except ValueError as error:  # "No closing quotation", "No escaped character"
        raise ValueError(f"unbalanced quotes or trailing backslash ({error})") from None


def split_command(command: str | Sequence[str]) -> tuple[str, ...]:
    """The argument list a command runs as; ``TargetError`` when it cannot run safely.

    A string is split with POSIX ``shlex`` rules (quotes group, backslash escapes; ``#`` and shell
    operators are plain characters). A sequence is taken as the argument list already.
    """
    shown = command if isinstance(command, str) else shlex.join(map(str, command))
    if isinstance(command, str):
        if not command.strip():
            raise TargetError(command, "empty command")
        try:
            argv = tuple(_split(command))
        except ValueError as error:
            raise TargetError(command, str(error)) from None
    else:
        argv = tuple(command)
        for position, argument in enumerate(argv):
            if not isinstance(argument, str):
                kind = type(argument).__name__
                raise TargetError(shown, f"argument {position} is {kind}, not str")
            if "\x00" in argument:
                raise TargetError(shown, f"argument {position} contains a NUL character")
    if not argv:
        raise TargetError(shown, "empty command")
    problem = _program_problem(argv[0])
    if problem is not None:
        raise TargetError(shown, problem)
    return argv


@dataclass(frozen=True, slots=True)
class CommandPattern:
    """One parsed shell pattern: the text the author wrote and its ``shlex`` tokens."""

    raw: str
    tokens: tuple[str, ...]


def _unclosed_bracket(token: str) -> bool:
    """Whether a ``[`` in ``token`` has no ``]`` (fnmatch would silently treat it as a literal)."""
    index = 0
    while (index := token.find("[", index)) != -1:
        end = index + 1
        if end < len(token) and token[end] == "!":
            end += 1
        if end < len(token) and token[end] == "]":
            end += 1  # a leading ']' is a member of the set
        close = token.find("]", end)
        if close == -1:
            return True
        index = close + 1
    return False


def _token_problem(token: str, previous: str | None) -> str | None:
    if token == _ANY:
        return "'** **' is the same as '**'; write it once" if previous == _ANY else None
    if _ANY in token:
        return f"'**' stands alone for whole arguments; inside {token!r} use '*'"
    if _unclosed_bracket(token):
        return f"unclosed '[' in {token!r}; write '[[]' for a literal '['"
    return None


def parse_command_pattern(pattern: str) -> CommandPattern:
    """Parse one ``shell.allow``/``shell.deny`` entry; ``PatternError`` says what is wrong."""
    try:
        tokens = tuple(_split(pattern))
    except ValueError as error:
        raise PatternError(pattern, str(error)) from None
    if not tokens:
        raise PatternError(pattern, "empty command pattern")
    program = tokens[0]
    if program == _ANY or _GLOB_CHARS & set(program):
        raise PatternError(pattern, f"the program must be named literally, not {program!r}")
    problem = _program_problem(program)
    if problem is not None:
        raise PatternError(pattern, problem)
    for previous, token in itertools.pairwise(tokens):
        problem = _token_problem(token, previous)
        if problem is not None:
            raise PatternError(pattern, problem)
    return CommandPattern(pattern, tokens)


# A compiled token: None for '**', else a predicate over one argument.
_Matcher: TypeAlias = Callable[[str], bool] | None


def _compile_token(token: str) -> _Matcher:
    if token == _ANY:
        return None
    if not _GLOB_CHARS & set(token):
        return token.__eq__
    match = re.compile(fnmatch.translate(token)).match
    if token.startswith("-"):
        return lambda argument: match(argument) is not None
    # Only a token that starts with '-' may match an option (see the module docstring).
    return lambda argument: not argument.startswith("-") and match(argument) is not None


def _never(argument: str) -> bool:
    return False


_NEVER: Callable[[str], bool] = _never  # past the last token: nothing more may match


def _matches(matchers: tuple[_Matcher, ...], argv: Sequence[str]) -> bool:
    """Match ``argv[1:]`` against the tokens after the program.

    The classic greedy wildcard walk with backtracking to the last ``**``: linear for patterns with
    one ``**`` and never exponential, because each ``**`` only ever grows.
    """
    pos, arg, count, length = 0, 1, len(matchers), len(argv)
    star, star_arg = -1, 0
    while arg < length:
        matcher = matchers[pos] if pos < count else _NEVER
        if matcher is None:
            star, star_arg = pos, arg
            pos += 1
        elif matcher(argv[arg]):
            pos += 1
            arg += 1
        elif star != -1:
            star_arg += 1
            pos, arg = star + 1, star_arg
        else:
            return False
    while pos < count and matchers[pos] is None:
        pos += 1
    return pos == count


class CommandList:
    """An ordered list of command patterns, indexed by program name for ``match``."""

    __slots__ = ("_by_program", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(parse_command_pattern(pattern) for pattern in patterns)
        self._by_program: dict[str, list[tuple[int, tuple[_Matcher, ...]]]] = {}
        for index, pattern in enumerate(self.patterns):
            matchers = tuple(_compile_token(token) for token in pattern.tokens[1:])
            self._by_program.setdefault(pattern.tokens[0], []).append((index, matchers))

    def match(self, argv: Sequence[str]) -> int | None:
        """Index of the first pattern matching the whole argument list, or None.

        ``argv`` should come from ``split_command``; the program name is compared exactly.
        """
        if not argv:
            return None
        for index, matchers in self._by_program.get(argv[0], ()):
            if _matches(matchers, argv):
                return index
        return None

    def __repr__(self) -> str:
        return f"CommandList({[p.raw for p in self.patterns]!r})"
