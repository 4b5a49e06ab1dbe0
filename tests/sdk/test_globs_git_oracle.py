"""git is the oracle: ``GlobList.match`` agrees with ``git check-ignore`` on every list we accept.

Pattern lists and a file tree are generated from a fixed seed out of tokens chosen to hit the
places where gitignore implementations disagree (``**``, brackets, POSIX classes, escapes, leading
and trailing ``/``, ``!``, dot-names, trailing spaces, non-ASCII names). The tree is created on disk
so git sees directories as directories; each accepted list is written to a ``core.excludesFile``
and every path of the tree goes through one ``git check-ignore --no-index -v -n -z --stdin`` call.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugbox.sdk.errors import PatternError
from plugbox.sdk.permissions.globs import GlobList

pytestmark = [
    pytest.mark.oracle,
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git as the oracle"),
]

SEED = 20240611
LISTS = 600
LONG_LISTS = 300

# Names in the generated tree. Weighted towards names the pattern tokens can hit.
NAMES = [
    "a", "a", "b", "b", "c", "ab", "ab", "abc", "a1", "1", "12", "x.py", "a.py", ".x", ".hidden",
    "*", "[a]", "a b", "b ", "é", "aé", "\\", "!a", "#a", "A", "a-b", "]", "a\nb",
]  # fmt: skip
# Pieces of a pattern segment; the tricky ones are the point.
TOKENS = [
    "a", "a", "b", "b", "c", "ab", "1", ".x", ".py", "x", "*", "*", "?", "[a-c]", "[!a]", "[^b]",
    "[[:digit:]]", "[[:alpha:]]", "[]a]", "[!]]", "[a-]", "\\*", "\\a", "\\", "\\ ", "é", " ",
    "[", "!", "#", "A", "[[:upper:]]", "[[:punct:]]",
]  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """One line of ``git check-ignore -v -n``: the deciding pattern's line, or None if none."""

    line: int | None
    negated: bool


class Git:
    """A scratch repository and a way to ask it what it ignores."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.work.mkdir()
        self.exclude = root / "exclude"
        self.executable = shutil.which("git") or "git"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
        }
        subprocess.run([self.executable, "init", "-q", str(self.work)], check=True, env=self.env)

    def create(self, paths: dict[str, bool]) -> None:
        """Create each path on disk, as a directory when its value is True."""
        for path, is_dir in sorted(paths.items()):
            target = self.work / path
            if is_dir:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()

    def check_ignore(self, patterns: Sequence[str], paths: Sequence[str]) -> dict[str, Verdict]:
        self.exclude.write_bytes("".join(f"{p}\n" for p in patterns).encode())
        result = subprocess.run(
            [
                self.executable,
                "-c",
                f"core.excludesFile={self.exclude}",
                "-c",
                "core.ignoreCase=false",
                "check-ignore",
                "--no-index",
                "-v",
                "-n",
                "-z",
                "--stdin",
            ],
            cwd=self.work,
            env=self.env,
            input=b"".join(os.fsencode(p) + b"\0" for p in paths),
            capture_output=True,
            check=False,
        )
        assert result.returncode in (0, 1), result.stderr.decode(errors="replace")
        fields = result.stdout.split(b"\0")[:-1]
        verdicts = {}
        for k in range(0, len(fields), 4):
            _source, line, pattern, path = fields[k : k + 4]
            verdicts[os.fsdecode(path)] = Verdict(
                line=int(line) if line else None, negated=pattern.startswith(b"!")
            )
        assert len(verdicts) == len(paths)
        return verdicts


@pytest.fixture
def git(tmp_path: Path) -> Git:
    """A fresh repository per test: each test lays out its own tree of files and directories."""
    return Git(tmp_path)


def disagreements(
    git: Git, patterns: Sequence[str], paths: dict[str, bool]
) -> Iterator[tuple[str, bool, Verdict, int | None]]:
    """Every path on which our verdict (or deciding pattern) differs from git's."""
    globs = GlobList(patterns)
    verdicts = git.check_ignore(patterns, list(paths))
    for path, is_dir in paths.items():
        theirs = verdicts[path]
        ours = globs.match(path, is_dir=is_dir)
        expected = None if theirs.line is None or theirs.negated else theirs.line - 1
        if ours != expected:
            yield path, is_dir, theirs, ours


def random_tree(rng: random.Random, count: int) -> dict[str, bool]:
    """Random paths of depth 1-4: every parent is a directory, leaves are files or directories."""
    leaves = {"/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 4))) for _ in range(count)}
    tree: dict[str, bool] = {}
    for leaf in sorted(leaves):
        parts = leaf.split("/")
        for depth in range(1, len(parts)):
            tree["/".join(parts[:depth])] = True
    for leaf in sorted(leaves):
        tree.setdefault(leaf, rng.random() < 0.3)
    return tree


def random_pattern(rng: random.Random) -> str:
    segments = []
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        if rng.random() < 0.2:
            segments.append("**")
        else:
            segments.append("".join(rng.choice(TOKENS) for _ in range(rng.choice([1, 1, 2, 3]))))
    pattern = "/".join(segments)
    if rng.random() < 0.2:
        pattern = "/" + pattern
    if rng.random() < 0.2:
        pattern += "/"
    if rng.random() < 0.04:
        pattern += " "
    if rng.random() < 0.02:
        pattern += "**"
    if rng.random() < 0.25:
        pattern = "!" + pattern
    return pattern


def derived_pattern(rng: random.Random, tree: Sequence[str]) -> str:
    """A pattern built from a real path of the tree, so that long lists keep matching things."""
    names = rng.choice(tree).split("/")
    segments = [mutate(rng, name) for name in names[: rng.randint(1, len(names))]]
    if rng.random() < 0.2:
        segments.insert(rng.randrange(len(segments) + 1), "**")
    pattern = "/".join(segments)
    if rng.random() < 0.3:
        pattern = "/" + pattern
    if rng.random() < 0.3:
        pattern += "/"
    if rng.random() < 0.3:
        pattern = "!" + pattern
    return pattern


def mutate(rng: random.Random, name: str) -> str:
    roll = rng.random()
    if roll < 0.15:
        return "*"
    if roll < 0.25:
        return "**"
    if roll < 0.3:
        return "?" * len(name.encode())
    if roll < 0.4:
        return rng.choice(TOKENS)
    cut = rng.randrange(len(name) + 1)
    if roll < 0.5:
        return escape(name[:cut]) + "*"
    if roll < 0.55:
        return "*" + escape(name[cut:])
    return escape(name)


def escape(name: str) -> str:
    """A pattern matching exactly ``name``."""
    text = "".join("\\" + c if c in "*?[\\" else c for c in name)
    if text.startswith(("!", "#")):
        text = "\\" + text
    return text[:-1] + "\\ " if text.endswith(" ") else text


def test_git_sees_parent_exclusion_as_we_do(git: Git) -> None:
    """The case pathspec gets wrong: '!' cannot re-include a file inside an excluded directory."""
    paths = {"build": True, "build/keep.txt": False, "build/sub": True, "build/sub/x": False}
    git.create(paths)
    patterns = ["build/", "!build/keep.txt", "!build/sub/"]
    verdicts = git.check_ignore(patterns, list(paths))
    assert {p: v.line for p, v in verdicts.items()} == dict.fromkeys(paths, 1)
    assert list(disagreements(git, patterns, paths)) == []


def test_posix_classes_and_single_bytes_match_git_byte_for_byte(git: Git) -> None:
    """Every class, negated or not, against every byte (a name 'k' + byte), and '?' on UTF-8."""
    names = [f"k{chr(b)}" for b in range(1, 128) if b != ord("/")]
    names += ["ké", "k€", "k" + os.fsdecode(b"\xff"), "k" + os.fsdecode(b"\xa0")]
    paths = {f"cls/{name}": False for name in names}
    paths["cls"] = True
    git.create(paths)
    classes = ["alnum", "alpha", "cntrl", "digit", "lower", "print", "punct", "space", "upper"]
    classes.append("xdigit")
    lists = [[f"k[{neg}[:{name}:]]"] for name in classes for neg in ("", "!")]
    lists += [["k?"], ["k??"], ["k???"], ["k[!a]"], ["k[!a]?"], ["k*"], ["k[ -~]"], ["k[!]-~]"]]
    for patterns in lists:
        assert list(disagreements(git, patterns, paths)) == [], patterns


def test_generated_lists_agree_with_git(git: Git) -> None:
    rng = random.Random(SEED)
    tree = random_tree(rng, 160)
    git.create(tree)
    accepted = 0
    failures: list[tuple[object, ...]] = []
    for _ in range(LISTS):
        patterns = [random_pattern(rng) for _ in range(rng.randint(1, 4))]
        try:
            GlobList(patterns)
        except PatternError:
            continue
        accepted += 1
        failures.extend((patterns, *d) for d in disagreements(git, patterns, tree))
    assert not failures, "\n".join(map(repr, failures[:20]))
    # Refusing a pattern is allowed; refusing most of them would make the check meaningless
    # and the matcher useless.
    assert accepted / LISTS > 0.4, f"only {accepted} of {LISTS} lists accepted"


def test_long_lists_agree_with_git(git: Git) -> None:
    """Lists of up to 16 patterns taken from the tree's own paths, so many of them match."""
    rng = random.Random(SEED + 1)
    tree = random_tree(rng, 200)
    git.create(tree)
    names = sorted(tree)
    accepted = 0
    failures: list[tuple[object, ...]] = []
    for _ in range(LONG_LISTS):
        patterns = [derived_pattern(rng, names) for _ in range(rng.randint(1, 16))]
        try:
            GlobList(patterns)
        except PatternError:
            continue
        accepted += 1
        failures.extend((patterns, *d) for d in disagreements(git, patterns, tree))
    assert not failures, "\n".join(map(repr, failures[:20]))
    assert accepted / LONG_LISTS > 0.4, f"only {accepted} of {LONG_LISTS} lists accepted"
