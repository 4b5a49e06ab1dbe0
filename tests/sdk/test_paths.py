from __future__ import annotations

import random
from pathlib import PurePosixPath

import pytest

from plugbox.sdk.errors import TargetError
from plugbox.sdk.permissions.paths import MAX_NAME_BYTES, MAX_PATH_BYTES, normalize_path


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("src/pkg/mod.py", "src/pkg/mod.py"),
        ("a", "a"),
        ("./a", "a"),
        ("a//b", "a/b"),
        ("a/./b", "a/b"),
        ("a/b/", "a/b"),
        ("./a//./b/.", "a/b"),
        (".", ""),
        ("", ""),
        ("./", ""),
        ("./././", ""),
        (".hidden/.x", ".hidden/.x"),
        ("..a/b../...", "..a/b../..."),  # names that merely start or end with dots
        ("a b/c d", "a b/c d"),
        ("é/ü.txt", "é/ü.txt"),
        ("a\\b", "a\\b"),  # a backslash is a plain character in a POSIX name
        ("a\nb", "a\nb"),
        (PurePosixPath("data/x.csv"), "data/x.csv"),
    ],
)
def test_normalises(given: str, expected: str) -> None:
    assert normalize_path(given) == expected


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("a\0b", "NUL byte"),
        ("/etc/passwd", "absolute path"),
        ("//etc/passwd", "absolute path"),
        ("/", "absolute path"),
        ("..", "'..' would leave the workspace"),
        ("../x", "'..' would leave the workspace"),
        ("a/../b", "'..' would leave the workspace"),  # refused, not resolved
        ("a/..", "'..' would leave the workspace"),
        ("./..", "'..' would leave the workspace"),
        ("a/b/../../..", "'..' would leave the workspace"),
        ("a\udcff", "not valid text"),  # surrogate-escaped undecodable byte
        ("\ud800", "not valid text"),
        ("x" * (MAX_NAME_BYTES + 1), f"at most {MAX_NAME_BYTES} bytes"),
        ("d/" + "é" * 128, f"at most {MAX_NAME_BYTES} bytes"),  # 256 bytes, 128 characters
        ("/".join(["x" * 200] * 21), f"at most {MAX_PATH_BYTES} bytes"),
    ],
)
def test_refuses(given: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason) as caught:
        normalize_path(given)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason in str(caught.value)


def test_refuses_bytes() -> None:
    class BytesPath:
        def __fspath__(self) -> bytes:
            return b"a/b"

    with pytest.raises(TargetError, match="must be text"):
        normalize_path(BytesPath())  # type: ignore[arg-type]


def test_limits_are_inclusive() -> None:
    name = "n" * MAX_NAME_BYTES
    assert normalize_path(name) == name
    deepest = "/".join(["x" * 254] * 17)[: MAX_PATH_BYTES - 1] + "y"
    assert len(deepest.encode()) == MAX_PATH_BYTES
    assert normalize_path(deepest) == deepest
    assert normalize_path("./" + deepest + "/") == deepest


def test_names_the_reason_for_a_person() -> None:
    with pytest.raises(TargetError) as caught:
        normalize_path("data/../secret")
    assert str(caught.value) == (
        "'data/../secret': '..' would leave the workspace; "
        "paths are not resolved, so write it without '..'"
    )
    assert caught.value.target == "data/../secret"


def _reference(path: str) -> str | None:
    """The rules written out plainly: None where normalize_path must refuse."""
    if "\0" in path or path.startswith("/"):
        return None
    try:
        path.encode()
    except UnicodeEncodeError:
        return None
    names = [name for name in path.split("/") if name not in ("", ".")]
    if ".." in names or any(len(name.encode()) > MAX_NAME_BYTES for name in names):
        return None
    normal = "/".join(names)
    return normal if len(normal.encode()) <= MAX_PATH_BYTES else None


def test_agrees_with_the_plain_rules_on_random_paths() -> None:
    """The fast path for already-normal text must never accept what the rules refuse."""
    rng = random.Random(4)
    pieces = ["a", "b", ".", "..", "...", ".a", "/", "//", "é", "\0", " ", "\\", "x" * 120]
    for _ in range(5000):
        path = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        expected = _reference(path)
        if expected is None:
            with pytest.raises(TargetError):
                normalize_path(path)
        else:
            assert normalize_path(path) == expected, path
            assert normalize_path(expected) == expected
