"""docs/permissions.md keeps up with the code and cannot lie about it.

In the spirit of datasette's "hooks are documented" test: every permission field, quota, preset,
provider and capability must be in the page, so adding one without documenting it fails here. And
every example table is run: each ``| pattern | path | matches? |`` row against the real decision
function, each ``| refused glob | why | write instead |`` row against the real validation.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from pydantic import BaseModel, ValidationError

from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions import presets

PAGE = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
TEXT = PAGE.read_text(encoding="utf-8")
PROSE = re.sub(r"^```.*?^```", "", TEXT, flags=re.MULTILINE | re.DOTALL)  # without code blocks


class Table(NamedTuple):
    line: int  # 1-based line of the header, for failure messages
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _cells(line: str) -> tuple[str, ...]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return tuple(cell.strip().replace(r"\|", "|") for cell in re.split(r"(?<!\\)\|", inner))


def _tables(text: str) -> list[Table]:
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        below = lines[number + 1] if number + 1 < len(lines) else ""
        if line.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", below.strip()):
            rows = []
            for row in lines[number + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(_cells(row))
            found.append(Table(number + 1, _cells(line), tuple(rows)))
    return found


TABLES = _tables(TEXT)


def _table(first_header: str) -> Table:
    matching = [table for table in TABLES if table.header[0] == first_header]
    assert len(matching) == 1, f"expected one table headed '| {first_header} |' in {PAGE.name}"
    return matching[0]


def _code(cell: str) -> list[str]:
    """The code spans of a cell, in order: `a`, `b` -> ['a', 'b']."""
    return re.findall(r"`([^`]+)`", cell)


def _first_code(rows: tuple[tuple[str, ...], ...]) -> list[str]:
    return [_code(row[0])[0] for row in rows if _code(row[0])]


# --- everything is documented ----------------------------------------------------------------


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        model = _nested_model(argument)
        if model is not None:
            return model
    return None


def _qualified_fields() -> Iterator[str]:
    """``fs``, ``fs.mode``, ..., ``quotas.file_size_mb``: every field a permission set has."""
    for name, field in perms.Permissions.model_fields.items():
        yield name
        model = _nested_model(field.annotation)
        if model is not None:
            yield from (f"{name}.{sub}" for sub in model.model_fields)


def test_every_permission_field_has_a_row() -> None:
    documented = _first_code(_table("field").rows)
    missing = [name for name in _qualified_fields() if name not in documented]
    assert not missing, f"add rows for {missing} to the 'Every field' table of {PAGE.name}"
    unknown = sorted(set(documented) - set(_qualified_fields()))
    assert not unknown, f"{PAGE.name} documents fields that do not exist: {unknown}"


def test_every_quota_says_what_happens_when_exceeded() -> None:
    table = _table("quota")
    assert table.header[3] == "when exceeded"
    documented = _first_code(table.rows)
    assert documented == list(perms.Quotas.model_fields), (
        f"the quota table of {PAGE.name} must have one row per Quotas field, in model order"
    )
    for row in table.rows:
        assert all(row[1:]), f"quota row {row[0]} has an empty cell"


def test_quota_defaults_are_the_hosts() -> None:
    sandbox = pytest.importorskip("plugbox.sandbox")
    table = _table("quota")
    for row in table.rows:
        name = _code(row[0])[0]
        shown = int(row[1].split()[0])
        assert shown == getattr(sandbox.DEFAULT_QUOTAS, name), f"default of {name}"


def _preset_functions() -> dict[str, Callable[..., perms.Permissions]]:
    found: dict[str, Callable[..., perms.Permissions]] = {}
    for name, function in inspect.getmembers(presets, inspect.isfunction):
        if function.__module__ != presets.__name__ or name.startswith("_"):
            continue
        if typing.get_type_hints(function).get("return") is perms.Permissions:
            found[name] = function
    return found


# Arguments to call each preset with, to compare what it grants with what the page says.
PRESET_ARGUMENTS: dict[str, tuple[Any, ...]] = {
    "plugin_workspace": ("example",),
    "llm_api": (["openai"],),
    "vector_db": (["qdrant"],),
}


def test_every_preset_has_a_row() -> None:
    documented = {cell.partition("(")[0] for cell in _first_code(_table("preset").rows)}
    assert documented == set(_preset_functions()), (
        f"the preset table of {PAGE.name} must list exactly the presets in presets.py"
    )


@pytest.mark.parametrize("name", sorted(_preset_functions()))
def test_preset_rows_state_their_quotas(name: str) -> None:
    granted = _preset_functions()[name](*PRESET_ARGUMENTS.get(name, ()))
    rows = [r for r in _table("preset").rows if _code(r[0])[0].startswith(f"{name}(")]
    assert rows, f"add a row for {name} to the preset table of {PAGE.name}"
    row = rows[0]
    for field, value in granted.quotas.model_dump(exclude_none=True).items():
        assert f"`{field}={value}`" in row[1], f"{name} sets {field}={value}; say so"
    if granted.quotas == perms.Quotas():
        assert "quotas:" not in row[1].lower(), f"{name} sets no quotas"


def test_secret_file_denies_are_listed() -> None:
    spans = set(_code(PROSE))
    missing = [pattern for pattern in presets.SECRET_DENY if pattern not in spans]
    assert not missing, f"list {missing} under 'Secret files' in {PAGE.name}"


def _provider_rows() -> dict[str, tuple[str, ...]]:
    rows: dict[str, tuple[str, ...]] = {}
    for table in TABLES:
        if table.header[:3] == ("provider", "hosts", "variables"):
            for row in table.rows:
                name = _code(row[0])[0]
                assert name not in rows, f"provider {name} is listed twice"
                rows[name] = row
    return rows


PROVIDER_PRESETS = {
    "llm_api": (presets.llm_api, presets._LLM_PROVIDERS),
    "vector_db": (presets.vector_db, presets._VECTOR_DBS),
}
PROVIDERS = [(kind, name) for kind, (_, table) in PROVIDER_PRESETS.items() for name in table]


@pytest.mark.parametrize(("kind", "provider"), PROVIDERS)
def test_provider_rows_match_what_the_preset_grants(kind: str, provider: str) -> None:
    rows = _provider_rows()
    assert provider in rows, f"add a row for {kind} provider {provider!r} to {PAGE.name}"
    preset, _ = PROVIDER_PRESETS[kind]
    granted = preset([provider])
    assert _code(rows[provider][1]) == list(granted.net.allow_hosts)
    assert _code(rows[provider][2]) == list(granted.env.allow)


def test_no_unknown_provider_is_documented() -> None:
    assert set(_provider_rows()) == {name for _, name in PROVIDERS}


def test_every_capability_is_documented() -> None:
    assert set(_first_code(_table("capability").rows)) == set(perms.KNOWN_CAPABILITIES)


# --- the examples are true -------------------------------------------------------------------


def _fs(patterns: list[str]) -> perms.Permissions:
    return perms.Permissions(fs=perms.FsPermissions(allow=patterns))


def _decide_fs(patterns: list[str], path: str) -> bool:
    is_dir = path.endswith("/")
    return perms.decide("fs.read", path.rstrip("/"), _fs(patterns), is_dir=is_dir).allowed


def _decide_net(patterns: list[str], target: str) -> bool:
    allowed = perms.Permissions(net=perms.NetPermissions(allow_hosts=patterns))
    return perms.decide("net.connect", target, allowed).allowed


def _decide_env(patterns: list[str], name: str) -> bool:
    allowed = perms.Permissions(env=perms.EnvPermissions(allow=patterns))
    return perms.decide("env.read", name, allowed).allowed


def _decide_shell(patterns: list[str], command: str) -> bool:
    allowed = perms.Permissions(
        shell=perms.ShellPermissions(allow=patterns), capabilities=["shell"]
    )
    return perms.decide("shell.run", command, allowed).allowed


# The second column of an example table says what kind of target it holds.
DECIDERS: dict[str, Callable[[list[str], str], bool]] = {
    "path": _decide_fs,
    "host": _decide_net,
    "name": _decide_env,
    "command": _decide_shell,
}


class Example(NamedTuple):
    kind: str
    patterns: list[str]
    target: str
    matches: str


def _examples() -> Iterator[Any]:
    for table in TABLES:
        if table.header[0] != "pattern" or table.header[2:3] != ("matches?",):
            continue
        assert table.header[1] in DECIDERS, f"line {table.line}: unknown column {table.header[1]}"
        for row in table.rows:
            example = Example(table.header[1], _code(row[0]), _code(row[1])[0], row[2])
            shown = f"{', '.join(example.patterns)} ~ {example.target}"
            yield pytest.param(example, id=f"L{table.line}:{shown}")


EXAMPLES = list(_examples())


def test_every_kind_of_example_is_there() -> None:
    kinds = {param.values[0].kind for param in EXAMPLES}
    assert kinds == set(DECIDERS)
    assert len(EXAMPLES) >= 50


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_rows_tell_the_truth(example: Example) -> None:
    assert example.matches in ("yes", "no"), f"'matches?' must be yes or no: {example}"
    actual = DECIDERS[example.kind](example.patterns, example.target)
    assert actual == (example.matches == "yes"), (
        f"{PAGE.name} says {example.patterns} ~ {example.target!r} matches: {example.matches}, "
        f"but the matcher says {'yes' if actual else 'no'}"
    )


BUILDERS: dict[str, Callable[[str], perms.Permissions]] = {
    "refused glob": lambda pattern: _fs([pattern]),
    "refused host": lambda pattern: perms.Permissions(
        net=perms.NetPermissions(allow_hosts=[pattern])
    ),
    "refused command": lambda pattern: perms.Permissions(
        shell=perms.ShellPermissions(allow=[pattern]), capabilities=["shell"]
    ),
}


def _refusals() -> Iterator[Any]:
    for table in TABLES:
        if table.header[0].startswith("refused"):
            assert table.header[0] in BUILDERS, f"line {table.line}: unknown {table.header[0]}"
            for row in table.rows:
                refused, instead = _code(row[0]), _code(row[2])
                yield pytest.param(table.header[0], refused, instead, id=f"L{table.line}:{row[0]}")


REFUSALS = list(_refusals())


def test_every_kind_of_refusal_is_there() -> None:
    assert {param.values[0] for param in REFUSALS} == set(BUILDERS)


@pytest.mark.parametrize(("kind", "refused", "instead"), REFUSALS)
def test_refused_rows_are_refused_and_their_fix_accepted(
    kind: str, refused: list[str], instead: list[str]
) -> None:
    assert refused and instead, "each row needs a refused pattern and what to write instead"
    build = BUILDERS[kind]
    for pattern in refused:
        with pytest.raises(ValidationError):
            build(pattern)
    for pattern in instead:
        build(pattern)
