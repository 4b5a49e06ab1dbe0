"""docs/runtime.md keeps up with what a job can call.

In the spirit of datasette's "every hook is documented" test: every public method of the runtime
protocols (``ctx.runtime.fs / net / env / shell``) and every public attribute of ``JobContext``
and of the values the runtime hands back must have a row in the page's section for it, so adding
one without documenting it fails here. A method's row must show its signature exactly (parameter
names, keyword-only marker, defaults), so a new parameter or a changed default fails too. The
limits table is checked against the constants that set the limits, and the paths table against
the decision function the proxies call.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from plugbox.sdk import (
    EnvRuntime,
    FileStat,
    FsRuntime,
    HttpResponse,
    JobContext,
    JobLogger,
    NetRuntime,
    PermissionDenied,
    ResourceUsage,
    Runtime,
    ShellResult,
    ShellRuntime,
    Trigger,
)
from plugbox.sdk import permissions as perms
from plugbox.sdk.context import MAX_EVENT_NAME, LogLevel
from plugbox.sdk.permissions.paths import MAX_NAME_BYTES, MAX_PATH_BYTES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "runtime.md"
TEXT = PAGE.read_text(encoding="utf-8")

#: Each class and the word its section heading shows in a code span: "## `ctx.runtime.fs`: `FsRuntime`".
DOCUMENTED: tuple[type, ...] = (
    JobContext,
    JobLogger,
    ResourceUsage,
    PermissionDenied,
    FsRuntime,
    FileStat,
    NetRuntime,
    HttpResponse,
    EnvRuntime,
    ShellRuntime,
    ShellResult,
)


# --- reading the page -------------------------------------------------------------------------


class Section(NamedTuple):
    heading: str
    body: str  # from the heading to the next heading: a subsection's table never counts


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def sections(text: str) -> list[Section]:
    lines = _without_code_blocks(text).splitlines()
    starts = [n for n, line in enumerate(lines) if re.match(r"#+\s", line)]
    return [
        Section(lines[start].lstrip("#").strip(), "\n".join(lines[start:end]))
        for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)
    ]


def section_of(text: str, name: str) -> Section | None:
    """The section whose heading shows ``name`` in a code span."""
    return next((s for s in sections(text) if f"`{name}`" in s.heading), None)


def first_cells(body: str) -> list[str]:
    """The code spans in the first cell of every table row, '\\|' read as '|'."""
    spans = []
    for line in body.splitlines():
        if not line.startswith("|") or re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
            continue
        cell = re.split(r"(?<!\\)\|", line.strip())[1]
        spans += [s.replace(r"\|", "|") for s in re.findall(r"`([^`]+)`", cell)]
    return spans


# --- what the code says is public -------------------------------------------------------------


def public_names(cls: type) -> list[str]:
    """Fields, properties and methods of ``cls`` a job can use (what it defines itself)."""
    names = {name for name in vars(cls) if not name.startswith("_")}
    if dataclasses.is_dataclass(cls):
        names |= {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
    if issubclass(cls, BaseException):  # attributes set in __init__ from its parameters
        names |= set(inspect.signature(cls.__init__).parameters) - {"self"}
    return sorted(names)


def is_method(cls: type, name: str) -> bool:
    return inspect.isfunction(inspect.getattr_static(cls, name, None))


def signature_text(cls: type, name: str) -> str:
    """``name(path, *, parents=False)``: the signature without ``self`` and annotations."""
    signature = inspect.signature(getattr(cls, name))
    parameters = [
        p.replace(annotation=inspect.Parameter.empty)
        for p in signature.parameters.values()
        if p.name != "self"
    ]
    bare = signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
    return f"{name}{bare}".replace("'", '"')


def undocumented(text: str) -> list[str]:
    """Every public name the page does not document in its class's section, or documents wrongly."""
    problems = []
    for cls in DOCUMENTED:
        section = section_of(text, cls.__name__)
        if section is None:
            problems.append(f"no heading shows `{cls.__name__}`")
            continue
        spans = [re.sub(r"^(?:\w+\.)+", "", span) for span in first_cells(section.body)]
        for name in public_names(cls):
            where = f"{cls.__name__}.{name} (section '{section.heading}')"
            if is_method(cls, name):
                expected = signature_text(cls, name)
                rows = [s for s in spans if s.startswith(f"{name}(")]
                if not rows:
                    problems.append(f"{where}: no table row starting with `{expected}`")
                elif expected not in rows:
                    problems.append(f"{where}: the row shows `{rows[0]}`, the code `{expected}`")
            elif name not in spans:
                problems.append(f"{where}: no table row starting with `{name}`")
    return problems


# --- the tests --------------------------------------------------------------------------------


def test_every_public_name_has_a_row_in_its_section() -> None:
    problems = undocumented(TEXT)
    assert not problems, "docs/runtime.md is missing:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("edit", "reported"),
    [
        (lambda text: text.replace("| `stat(path)` |", "| stat |"), "FsRuntime.stat"),
        (lambda text: text.replace("| `url` |", "| the URL |"), "HttpResponse.url"),
        (lambda text: text.replace("exist_ok=False)`", "exist_ok=True)`"), "FsRuntime.mkdir"),
        (lambda text: text.replace("`ctx.time_left`", "time left"), "JobContext.time_left"),
        (lambda text: text.replace("`ShellResult`", "ShellResult"), "`ShellResult`"),
    ],
    ids=["method", "field", "default", "property", "heading"],
)
def test_the_check_notices_a_name_taken_out_of_the_page(edit: Any, reported: str) -> None:
    edited = edit(TEXT)
    assert edited != TEXT, "the edit no longer applies to the page; update this test"
    assert any(reported in problem for problem in undocumented(edited))


def test_each_runtime_field_has_a_section_naming_its_protocol() -> None:
    for name, kind in typing.get_type_hints(Runtime).items():
        section = section_of(TEXT, f"ctx.runtime.{name}")
        assert section is not None, f"no heading shows `ctx.runtime.{name}`"
        assert f"`{kind.__name__}`" in section.heading, section.heading


@pytest.mark.parametrize(
    ("section", "values"),
    [
        ("JobContext", typing.get_args(Trigger)),
        ("JobLogger", typing.get_args(LogLevel)),
        ("PermissionDenied", perms.OPERATIONS),
    ],
)
def test_every_literal_value_is_named(section: str, values: tuple[str, ...]) -> None:
    found = section_of(TEXT, section)
    assert found is not None
    missing = [v for v in values if f'`"{v}"`' not in found.body]
    assert not missing, f"section '{found.heading}' does not name {missing}"


def _table(header: str) -> list[tuple[str, ...]]:
    """The rows of the table whose header row starts with ``| header |``."""
    lines = TEXT.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith(f"| {header} |")]
    assert len(starts) == 1, f"expected one table headed '| {header} |' in {PAGE.name}"
    rows = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append(tuple(cell.strip() for cell in cells))
    return rows


def _mib(size: int) -> str:
    assert size % 2**20 == 0, f"{size} is not a whole number of MiB; say it another way"
    return f"{size // 2**20} MiB"


def test_the_limits_table_states_the_limits_the_code_sets() -> None:
    pytest.importorskip("plugbox.sandbox")  # the limits live where they are enforced
    from plugbox.sandbox import broker, net_request, outcome
    from plugbox.sandbox.proxies import fs, shell
    from plugbox.sandbox.request import DEFAULT_QUOTAS

    expected = {
        "`runtime.fs` read size": _mib(fs.DEFAULT_MAX_READ_BYTES),
        "`runtime.fs` write size": (
            f"the `file_size_mb` quota ({DEFAULT_QUOTAS.file_size_mb} MB by default)"
        ),
        "path length": f"{MAX_PATH_BYTES} bytes",
        "file or directory name": f"{MAX_NAME_BYTES} bytes",
        "`runtime.net` timeout": f"{net_request.DEFAULT_TIMEOUT_S:g} s",
        "`runtime.net` redirects": str(broker.MAX_REDIRECTS),
        "`runtime.net` response body": _mib(broker.DEFAULT_MAX_BODY),
        "`runtime.shell` timeout": f"{shell.DEFAULT_TIMEOUT_S:g} s",
        "`runtime.shell` output": _mib(shell.DEFAULT_MAX_OUTPUT),
        "log entries": f"{outcome.MAX_LOG_ENTRIES:,}",
        "log message": f"{outcome.MAX_MESSAGE_CHARS:,} characters",
        "events": f"{outcome.MAX_EVENTS:,}",
        "event name": f"{MAX_EVENT_NAME:,} characters",
        "result": _mib(outcome.MAX_RESULT_BYTES),
        "error message": f"{outcome.MAX_MESSAGE_CHARS:,} characters",
        "traceback": f"{outcome.MAX_TRACEBACK_CHARS:,} characters",
    }
    stated = {row[0]: row[1] for row in _table("limit")}
    assert stated == expected


@pytest.mark.parametrize("row", _table("path"), ids=lambda row: row[0])
def test_the_paths_table_is_what_the_proxies_decide(row: tuple[str, ...]) -> None:
    given = re.findall(r"`([^`]+)`", row[0])[0]
    verdict = perms.decide("fs.read", given, perms.presets.read_workspace())
    if row[1].startswith("refused"):
        assert (verdict.allowed, verdict.rule) == (False, "path check"), verdict
    else:
        assert verdict.target == re.findall(r"`([^`]+)`", row[1])[0], verdict
