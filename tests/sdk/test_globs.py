from __future__ import annotations

import pickle

import pytest

from plugbox.sdk.errors import PatternError
from plugbox.sdk.permissions.globs import MAX_PATTERN_BYTES, GlobList, check_glob

TYPICAL = [
    ".plugbox/ns/**",
    "**/*.pem",
    "**/node_modules/**",
    "src/*.py",
    "/build/",
    "docs/**/*.md",
    "*.toml",
    "README.md",
    "**/id_rsa*",
    "data/[0-9][0-9][0-9][0-9]-*.csv",
    "[[:upper:]]*.txt",
    "logs/202?/**",
    "\\#notes",
    "\\!important",
    "name\\ ",
    "a\\*b",
    "[!.]*",
    "[]a]",
    "[a-]",
    "[a-c-]",
    "*",
    "**",
    "/**",
    "**/",
    "!keep.txt",
    "é*.txt",
]


@pytest.mark.parametrize("pattern", TYPICAL)
def test_accepts(pattern: str) -> None:
    check_glob(pattern)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty"),
        ("!", "'!' must be followed"),
        ("!!x", "not a double negation"),
        ("#secret", "comment"),
        ("\ufeffx", "byte order mark"),
        ("x ", "ends with a space, which git silently drops"),
        ("x\\  ", "ends with a space"),
        (" x", "starts with a space"),
        ("a\tb", "control character"),
        ("a\nb", "control character"),
        ("x\udcff", "lone surrogates"),
        ("x" * (MAX_PATTERN_BYTES + 1), "at most"),
        ("x\\", "lone '\\'"),
        ("a\\/b", "escapes a separator"),
        ("/", "workspace root"),
        ("!/", "workspace root"),
        ("a//b", "empty path segment"),
        ("//a", "empty path segment"),
        ("./build", "starts with './'"),
        ("a/./b", "'.' segment"),
        ("a/../b", "'..' segment"),
        ("..", "'..' segment"),
        ("a**", "only special as a whole path segment"),
        ("**b/c", "only special as a whole path segment"),
        ("a/**b", "only special as a whole path segment"),
        ("***", "'***'"),
        ("a/**/**/b", "'**/**'"),
        ("[abc", "unclosed '['"),
        ("[", "unclosed '['"),
        ("[]", "unclosed '['"),
        ("[!]", "unclosed '['"),
        ("a[\\", "unclosed '['"),
        ("[a/b]", "never matches '/'"),
        ("[\\/]", "never matches '/'"),
        ("[é]", "2 bytes in UTF-8"),
        ("[z-a]", "reversed"),
        ("[a-c-e]", "right after a range or class"),
        ("[[:digit:]-z]", "right after a range or class"),
        ("[[:foo:]]", "not a character class git knows"),
        ("[[::]]", "not a character class git knows"),
        ("[[:digit]", "does not start a class"),
        ("[[:blank:]]", "depends on the locale"),
        ("[[:graph:]]", "depends on the locale"),
    ],
)
def test_refuses_with_a_reason(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError) as caught:
        check_glob(pattern)
    assert reason in caught.value.reason
    assert caught.value.pattern == pattern
    assert isinstance(caught.value, ValueError)


def test_refusals_say_what_to_write_instead() -> None:
    with pytest.raises(PatternError) as caught:
        check_glob("secrets/ ")
    assert str(caught.value) == (
        "'secrets/ ': ends with a space, which git silently drops; remove it, "
        "or write '\\ ' if the name really ends with a space"
    )
    with pytest.raises(PatternError, match=r"write '\*' for part of a name"):
        check_glob("logs**")


def test_glob_list_names_the_first_bad_pattern() -> None:
    with pytest.raises(PatternError) as caught:
        GlobList(["src/**", "ok", "bad ", "[also bad"])
    assert caught.value.pattern == "bad "
    assert "pattern 2 of" in caught.value.__notes__[0]


def test_glob_list_wants_a_list_not_a_string() -> None:
    with pytest.raises(PatternError, match="not a single string"):
        GlobList("src/**")


def m(patterns: list[str], path: str, *, is_dir: bool = False) -> int | None:
    return GlobList(patterns).match(path, is_dir=is_dir)


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "matched"),
    [
        # A name without '/' matches at any depth.
        ("*.pem", "key.pem", False, True),
        ("*.pem", "a/b/key.pem", False, True),
        ("*.pem", "a.pem/x", False, True),  # through its parent
        ("*.pem", "pem", False, False),
        ("README.md", "docs/README.md", False, True),
        ("*", "anything/at/all", False, True),
        ("**", "x", False, True),
        # Any other '/' anchors at the workspace root.
        ("src/*.py", "src/a.py", False, True),
        ("src/*.py", "lib/src/a.py", False, False),
        ("src/*.py", "src/pkg/a.py", False, False),
        ("/src", "src/x", False, True),
        ("/src", "a/src", False, False),
        ("a/b", "a/b", False, True),
        ("a/b", "x/a/b", False, False),
        # '*' and '?' stay within a name; '**' crosses them.
        ("a/*/c", "a/b/c", False, True),
        ("a/*/c", "a/b/b/c", False, False),
        ("a/?/c", "a/b/c", False, True),
        ("a/?/c", "a/bb/c", False, False),
        ("**/x", "x", False, True),
        ("**/x", "a/b/x", False, True),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("a/**/b", "a/xb", False, False),
        ("a/**", "a", True, False),  # the directory itself is not inside itself
        ("a/**", "a/x", False, True),
        ("a/**", "a/x/y/z", False, True),
        ("/**", "x/y", False, True),
        # A trailing '/' matches directories only, and through them everything inside.
        ("build/", "build", False, False),
        ("build/", "build", True, True),
        ("build/", "build/out.o", False, True),
        ("build/", "src/build/out.o", False, True),
        ("/build/", "src/build/out.o", False, False),
        ("**/", "f", False, False),
        ("**/", "d", True, True),
        ("**/", "d/f", False, True),
        # Dot names are names like any other.
        ("*", ".env", False, True),
        (".*", ".env", False, True),
        ("[!.]*", ".env", False, False),
        # Brackets and escapes, as wildmatch reads them.
        ("[]a]", "]", False, True),
        ("[!]a]", "]", False, False),
        ("[a-]", "-", False, True),
        ("[a-c-]", "-", False, True),
        ("[[:digit:]]x", "7x", False, True),
        ("[[:digit:]]x", "ax", False, False),
        ("[^[:alpha:]]", "1", False, True),
        ("\\*", "*", False, True),
        ("\\*", "x", False, False),
        ("a\\ ", "a ", False, True),
        ("\\#x", "#x", False, True),
        ("\\!x", "!x", False, True),
        # Bytes, not characters: '?' is one byte, 'é' is two.
        ("?.txt", "é.txt", False, False),
        ("??.txt", "é.txt", False, True),
        ("é*", "école", False, True),
        ("[!a]", "é", False, False),
    ],
)
def test_matches_as_git_does(pattern: str, path: str, is_dir: bool, matched: bool) -> None:
    assert (m([pattern], path, is_dir=is_dir) == 0) is matched


def test_the_last_matching_pattern_decides() -> None:
    globs = GlobList(["*.py", "src/*.py", "src/main.py"])
    assert globs.match("src/main.py") == 2
    assert globs.match("src/util.py") == 1
    assert globs.match("lib/util.py") == 0
    assert globs.match("lib/util.txt") is None


def test_negation_reincludes_at_the_same_level() -> None:
    globs = GlobList(["*.log", "!keep.log", "debug/keep.log"])
    assert globs.match("x.log") == 0
    assert globs.match("keep.log") is None
    assert globs.match("a/keep.log") is None
    assert globs.match("debug/keep.log") == 2


def test_nothing_under_an_excluded_directory_is_reincluded() -> None:
    globs = GlobList(["build/", "!build/keep.txt", "!build/sub/"])
    assert globs.match("build", is_dir=True) == 0
    assert globs.match("build/keep.txt") == 0
    assert globs.match("build/sub", is_dir=True) == 0
    assert globs.match("build/sub/x") == 0


def test_reincluding_the_directory_itself_works() -> None:
    globs = GlobList(["build/", "!build/", "build/*.o"])
    assert globs.match("build", is_dir=True) is None
    assert globs.match("build/keep.txt") is None
    assert globs.match("build/x.o") == 2


def test_a_parent_is_decided_before_its_contents() -> None:
    # The shallowest ignored directory decides, even against a later, more specific pattern.
    globs = GlobList(["a/", "a/b/c"])
    assert globs.match("a/b/c") == 0
    globs = GlobList(["a/b/c", "a/"])
    assert globs.match("a/b/c") == 1
    # ... but a deeper pattern decides when the parent only matches below the path's level.
    globs = GlobList(["a/**", "a/b"])
    assert globs.match("a/b") == 1
    assert globs.match("a/b/c") == 1
    assert globs.match("a/c/d") == 0


def test_a_negation_at_a_parent_lets_a_deeper_level_decide() -> None:
    globs = GlobList(["data/", "!data/", "*.csv"])
    assert globs.match("data/x.csv") == 2
    assert globs.match("data/x.txt") is None
    globs = GlobList(["**/x/", "!a/x/", "**/y"])
    assert globs.match("a/x/y") == 2
    assert globs.match("b/x/y") == 0


def test_many_patterns_report_the_right_index() -> None:
    patterns = [f"dir{i}/**" for i in range(30)] + [f"**/*.ext{i}" for i in range(30)]
    globs = GlobList(patterns)
    for i in range(30):
        assert globs.match(f"dir{i}/x/y") == i
        assert globs.match(f"a/b/f.ext{i}") == 30 + i
        assert globs.match(f"dir{i}/f.ext{i}") == 30 + i  # same level: the later pattern
    assert globs.match("dir30/x") is None


def test_root_and_empty_lists_never_match() -> None:
    assert GlobList(["**", "*", "/**"]).match("", is_dir=True) is None
    assert GlobList([]).match("a") is None
    assert GlobList(["!a"]).match("a") is None


def test_value_semantics() -> None:
    globs = GlobList(["src/**", "!src/keep"])
    assert globs == GlobList(("src/**", "!src/keep"))
    assert hash(globs) == hash(GlobList(["src/**", "!src/keep"]))
    assert globs != GlobList(["src/**"])
    assert globs.patterns == ("src/**", "!src/keep")
    assert repr(globs) == "GlobList(['src/**', '!src/keep'])"
    copy = pickle.loads(pickle.dumps(globs))
    assert copy == globs
    assert copy.match("src/x") == 0
    assert copy.match("src/keep") is None


def test_hundreds_of_negations_compile() -> None:
    patterns = [p for i in range(600) for p in (f"d{i}/**", f"!d{i}/keep")]
    globs = GlobList(patterns)
    assert globs.match("d3/x") == 6
    assert globs.match("d3/keep") is None
    assert globs.match("d599/keep/x") == 1198  # the '!' decided only its own level


def test_refuses_what_is_not_text() -> None:
    with pytest.raises(PatternError, match="must be a string"):
        check_glob(3)  # type: ignore[arg-type]
