"""Shell command splitting and patterns (plugbox.sdk.permissions.commands)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import pytest

from plugbox.sdk.errors import PatternError, TargetError
from plugbox.sdk.permissions.commands import (
    CommandList,
    CommandPattern,
    parse_command_pattern,
    split_command,
)

# --- splitting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("git status", ("git", "status")),
        ("  git   status  ", ("git", "status")),
        ("echo 'a b' \"c d\"", ("echo", "a b", "c d")),
        ("echo a\\ b", ("echo", "a b")),
        ("echo ''", ("echo", "")),
        ('grep -e "x y" file.txt', ("grep", "-e", "x y", "file.txt")),
        # shell metacharacters are plain characters of the arguments they sit in
        ("git status; rm -rf /", ("git", "status;", "rm", "-rf", "/")),
        ("git status && rm -rf /", ("git", "status", "&&", "rm", "-rf", "/")),
        ("cat a | sh", ("cat", "a", "|", "sh")),
        ("echo $(id) `id` ${HOME}", ("echo", "$(id)", "`id`", "${HOME}")),
        ("echo hi > /etc/passwd", ("echo", "hi", ">", "/etc/passwd")),
        ("echo a # not a comment", ("echo", "a", "#", "not", "a", "comment")),
        ("echo '$(id)'", ("echo", "$(id)")),
        (["git", "log", "a b"], ("git", "log", "a b")),
        (("git", "status; rm -rf /"), ("git", "status; rm -rf /")),
    ],
)
def test_split_command(command: str | Sequence[str], argv: tuple[str, ...]) -> None:
    assert split_command(command) == argv


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "empty command"),
        ("   ", "empty command"),
        ([], "empty command"),
        ("echo 'unbalanced", "unbalanced quotes"),
        ('echo "unbalanced', "unbalanced quotes"),
        ("echo trailing\\", "trailing backslash"),
        ("echo a\x00b", "NUL"),
        (["echo", "a\x00b"], "argument 1 contains a NUL"),
        (["echo", b"bytes"], "argument 1 is bytes, not str"),
        ("/usr/bin/git status", "looked up on the host PATH, never by path: write 'git'"),
        ("./deploy.sh", "never by path: write 'deploy.sh'"),
        ("bin/tool", "never by path"),
        (["/bin/sh", "-c", "id"], "never by path: write 'sh'"),
        ("-rf /", "starts with '-'"),
        ("'' x", "empty program name"),
        ([""], "empty program name"),
    ],
)
def test_split_command_errors(command: str | Sequence[str], message: str) -> None:
    with pytest.raises(TargetError, match=re.escape(message)):
        split_command(command)


# --- patterns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "tokens"),
    [
        ("git status", ("git", "status")),
        ("git log *", ("git", "log", "*")),
        ("git log **", ("git", "log", "**")),
        ("docker run ** --rm", ("docker", "run", "**", "--rm")),
        ("git ** x **", ("git", "**", "x", "**")),
        ("grep -e 'a b' *.txt", ("grep", "-e", "a b", "*.txt")),
        ("ls [!-]*", ("ls", "[!-]*")),
        ("echo [*]", ("echo", "[*]")),
        ("uptime", ("uptime",)),
    ],
)
def test_parse_command_pattern(pattern: str, tokens: tuple[str, ...]) -> None:
    assert parse_command_pattern(pattern) == CommandPattern(pattern, tokens)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty command pattern"),
        ("  ", "empty command pattern"),
        ("git 'unbalanced", "unbalanced quotes"),
        ("git \x00", "NUL"),
        ("** status", "named literally, not '**'"),
        ("g* status", "named literally, not 'g*'"),
        ("gi? status", "named literally"),
        ("[g]it status", "named literally"),
        ("/usr/bin/git status", "never by path: write 'git'"),
        ("-x", "starts with '-'"),
        ("'' x", "empty program name"),
        ("git a**b", "'**' stands alone"),
        ("git ** **", "write it once"),
        ("git [abc", "unclosed '['"),
        ("git log [!", "unclosed '['"),
    ],
)
def test_bad_command_patterns(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)) as caught:
        parse_command_pattern(pattern)
    assert caught.value.pattern == pattern


def _match(patterns: list[str], command: str) -> int | None:
    return CommandList(patterns).match(split_command(command))


@pytest.mark.parametrize(
    ("pattern", "command", "matches"),
    [
        # literal
        ("git status", "git status", True),
        ("git status", "git status --short", False),
        ("git status", "git", False),
        ("git status", "git-status", False),
        ("git status", "Git status", False),  # case-sensitive
        ("uptime", "uptime", True),
        ("uptime", "uptime -p", False),
        # '*' is one argument, never zero or two
        ("git log *", "git log main", True),
        ("git log *", "git log", False),
        ("git log *", "git log a b", False),
        ("git log *", "git log ''", True),  # an empty argument is still one argument
        ("cat *.txt", "cat notes.txt", True),
        ("cat *.txt", "cat notes.md", False),
        ("cat *.txt", "cat 'a b.txt'", True),  # one argument with a space in it
        ("cat *", "cat /etc/passwd", True),  # '*' spans '/' inside an argument
        # '?' and classes
        ("tail -n ?", "tail -n 5", True),
        ("tail -n ?", "tail -n 50", False),
        ("git show [0-9a-f]*", "git show 3fa9", True),
        ("git show [0-9a-f]*", "git show HEAD", False),
        ("echo [*]", "echo *", True),
        ("echo [*]", "echo x", False),
        # '**' is zero or more whole arguments, anywhere after the program
        ("git log **", "git log", True),
        ("git log **", "git log --oneline -n 10", True),
        ("git log **", "git status", False),
        ("docker run ** --rm", "docker run --rm", True),
        ("docker run ** --rm", "docker run -it alpine --rm", True),
        ("docker run ** --rm", "docker run --rm alpine", False),
        ("git ** x **", "git x", True),
        ("git ** x **", "git a b x c d", True),
        ("git ** x **", "git a b c", False),
        ("make ** *", "make", False),
        ("make ** *", "make all", True),
        # metacharacters are arguments, not operators
        ("git status", "git status; rm -rf /", False),
        ("git status", "git status && rm -rf /", False),
        (
            "git status *",
            "git status ;",
            True,
        ),  # allowed, and harmless: git gets ';' as an argument
        ("echo *", "echo $(id)", True),  # echo prints the six characters '$(id)'
    ],
)
def test_pattern_matching(pattern: str, command: str, matches: bool) -> None:
    assert (_match([pattern], command) == 0) is matches


@pytest.mark.parametrize(
    ("pattern", "command", "matches"),
    [
        # an option before the subcommand never reaches a pattern that names the subcommand
        ("git log *", "git -c core.pager=sh log", False),
        ("git log **", "git -c core.pager=sh log", False),
        ("git log **", "git --exec-path=/tmp log", False),
        # a glob token matches an option only when the token itself starts with '-'
        ("git log *", "git log --output=/home/me/.bashrc", False),
        ("git log *", "git log -p", False),
        ("git show [a-z-]*", "git show -p", False),
        ("git log -n *", "git log -n 5", True),
        ("git log --format=*", "git log --format=%H", True),
        ("ls -*", "ls -la", True),
        ("find . -name *", "find . -name -exec", False),
        ("find . -name *", "find . -name '*.py'", True),
        ("find . -name *", "find . -name x -exec sh", False),
        # '**' is the author's explicit open door (see the module docstring)
        ("git log **", "git log --output=/home/me/.bashrc", True),
        ("find . **", "find . -exec sh -c id ;", True),
        # literals still match exactly, options included
        ("rm -rf build", "rm -rf build", True),
        ("rm -rf build", "rm -rf build /", False),
    ],
)
def test_argument_injection(pattern: str, command: str, matches: bool) -> None:
    assert (_match([pattern], command) == 0) is matches


def test_match_reports_the_first_matching_pattern() -> None:
    commands = CommandList(["git status", "git log *", "ls **", "git log **", "git **"])
    assert commands.match(("git", "status")) == 0
    assert commands.match(("git", "log", "main")) == 1
    assert commands.match(("git", "log", "--oneline")) == 3
    assert commands.match(("git", "push")) == 4
    assert commands.match(("ls",)) == 2
    assert commands.match(("rm", "-rf", "/")) is None
    assert commands.match(()) is None


def test_command_list_exposes_patterns_and_refuses_the_first_bad_one() -> None:
    commands = CommandList(["git status", "ls **"])
    assert [p.tokens for p in commands.patterns] == [("git", "status"), ("ls", "**")]
    assert CommandList([]).match(("git", "status")) is None
    with pytest.raises(PatternError, match="'/bin/ls'"):
        CommandList(["git status", "/bin/ls", "*"])


def test_many_double_stars_stay_fast() -> None:
    # A backtracking matcher would explode here; the greedy walk is O(arguments x tokens).
    commands = CommandList(["cmd ** a ** a ** a ** a ** b"])
    argv = ("cmd", *(["a"] * 3000))
    started = time.perf_counter()
    assert commands.match(argv) is None
    assert time.perf_counter() - started < 2.0
