"""Permission models, combine, presets and the lint rules, through ``plugbox.sdk.permissions``."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions import FsPermissions, Permissions, Quotas


def test_empty_permissions_allow_nothing() -> None:
    empty = Permissions()
    assert empty.is_empty
    for operation, target in [
        ("fs.read", "a.txt"),
        ("fs.write", "a.txt"),
        ("net.connect", "example.com"),
        ("env.read", "HOME"),
        ("shell.run", "ls"),
    ]:
        assert not perms.decide(operation, target, empty).allowed  # type: ignore[arg-type]


def test_single_fs_rule_is_accepted_as_a_list() -> None:
    one = Permissions(fs=FsPermissions(allow=("a/**",)))
    assert one.fs == (FsPermissions(allow=("a/**",)),)
    from_dict = Permissions.model_validate({"fs": {"mode": "readWrite", "allow": ["b"]}})
    assert from_dict.fs[0].mode == "readWrite"


def test_models_are_frozen_and_hashable() -> None:
    item = perms.presets.plugin_workspace("x")
    with pytest.raises(ValidationError, match="frozen"):
        item.capabilities = ("shell",)  # type: ignore[misc]
    assert hash(item) == hash(perms.presets.plugin_workspace("x"))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"fs": {"allow": ["a**b"]}}, "fs.0.allow"),
        ({"fs": {"mode": "write"}}, "fs.0.mode"),
        ({"net": {"allow_hosts": ["https://api.x.com"]}}, "net.allow_hosts"),
        ({"env": {"allow": ["BAD-NAME"]}}, "env.allow"),
        ({"shell": {"allow": ["/bin/sh -c x"]}}, "shell.allow"),
        ({"quotas": {"cpu_ms": -5}}, "quotas.cpu_ms"),
        ({"quota": {}}, "quota"),
    ],
)
def test_bad_permission_data_is_refused_where_written(
    data: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Permissions.model_validate(data)
    assert fragment in str(caught.value)


def test_combine_unions_allows_and_denies_and_later_quotas_win() -> None:
    merged = perms.combine(
        perms.presets.plugin_workspace("ex"),
        perms.presets.llm_api(["openai", "anthropic"]),
        perms.presets.vector_db("qdrant"),
        {"quotas": {"timeout_ms": 300_000, "memory_mb": 1024}},
    )
    assert merged.net.allow_hosts == (
        "api.openai.com",
        "api.anthropic.com",
        "*.qdrant.io",
        "localhost:6333",
    )
    assert merged.env.allow == (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "QDRANT_URL",
        "QDRANT_API_KEY",
    )
    assert merged.quotas == Quotas(timeout_ms=300_000, memory_mb=1024, cpu_ms=60_000)


def test_combine_keeps_each_fs_rule_sets_mode() -> None:
    read_only = Permissions(fs=FsPermissions(mode="read", allow=("shared/**",)))
    read_write = Permissions(fs=FsPermissions(mode="readWrite", allow=("out/**",)))
    for merged in (perms.combine(read_only, read_write), perms.combine(read_write, read_only)):
        assert perms.decide("fs.read", "shared/a.txt", merged).allowed
        assert not perms.decide("fs.write", "shared/a.txt", merged).allowed
        assert perms.decide("fs.write", "out/a.txt", merged).allowed


def test_combine_same_patterns_different_modes_still_keeps_read_only() -> None:
    read_only = Permissions(fs=FsPermissions(mode="read", allow=("a/**",)))
    read_write = Permissions(fs=FsPermissions(mode="readWrite", allow=("b/**",)))
    merged = perms.combine(read_only, read_write, read_only)
    assert len(merged.fs) == 2
    assert not perms.decide("fs.write", "a/x", merged).allowed


def test_plugin_workspace_matches_the_seed_preset() -> None:
    preset = perms.presets.plugin_workspace("template")
    rw, meta = preset.fs
    assert rw.mode == "readWrite"
    assert rw.allow == (".plugbox/template", ".plugbox/template/**")
    assert {
        "**/*.key",
        "**/*.secret",
        "**/*.pem",
        "**/*.env",
        "**/node_modules/**",
        "**/.git/**",
    } <= set(rw.deny)
    assert meta.mode == "read"
    assert preset.quotas == Quotas(timeout_ms=60_000, memory_mb=512, cpu_ms=30_000)


def test_llm_and_vector_presets() -> None:
    llm = perms.presets.llm_api(["openai"])
    assert llm.quotas == Quotas(timeout_ms=120_000, memory_mb=512, cpu_ms=60_000)
    assert perms.decide("net.connect", "api.openai.com:443", llm).allowed
    assert not perms.decide("net.connect", "localhost:5432", llm).allowed
    qdrant = perms.presets.vector_db(["qdrant"])
    assert perms.decide("net.connect", "abc.eu.qdrant.io:6333", qdrant).allowed
    assert perms.decide("env.read", "QDRANT_API_KEY", qdrant).allowed


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: perms.presets.llm_api(["skynet"]), "known providers: anthropic"),
        (lambda: perms.presets.vector_db(["nope"]), "unknown vector database provider"),
        (lambda: perms.presets.plugin_workspace("../up"), "workspace namespace"),
        (lambda: perms.presets.plugin_workspace("*"), "workspace namespace"),
    ],
)
def test_preset_arguments_are_checked(call: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        call()  # type: ignore[operator]


def test_other_presets() -> None:
    whole = perms.presets.read_workspace()
    assert perms.decide("fs.read", "README.md", whole).allowed
    assert not perms.decide("fs.read", ".git/config", whole).allowed
    shell = perms.presets.shell_commands("make test")
    assert perms.decide("shell.run", "make test", shell).allowed
    assert perms.decide("net.connect", "x.io", perms.presets.http_hosts("x.io")).allowed


# --- lint ---------------------------------------------------------------------------------


def lint(**data: object) -> list[str]:
    return [str(p) for p in perms.lint_permissions(Permissions.model_validate(data))]


def test_presets_lint_clean() -> None:
    merged = perms.combine(
        perms.presets.plugin_workspace("x"),
        perms.presets.llm_api(["openai", "ollama"]),
        perms.presets.vector_db(["qdrant", "weaviate"]),
        perms.presets.read_workspace(),
    )
    assert perms.lint_permissions(merged) == []


@pytest.mark.parametrize(
    ("allow", "deny"),
    [
        (["secrets/**"], ["secrets/"]),
        (["secrets/**"], ["secrets"]),
        ([".env"], ["**/*.env"]),
        (["a/b.txt"], ["**"]),
        (["logs/*.log"], ["*.log"]),
        (["build/"], ["build"]),
        (["data/**/*.csv"], ["data/"]),
    ],
)
def test_deny_that_swallows_an_allow_is_a_lint_error(allow: list[str], deny: list[str]) -> None:
    found = lint(fs={"allow": allow, "deny": deny})
    assert len(found) == 1, found
    assert found[0].startswith("permissions.fs[0].allow[0]:")
    assert "can never be used" in found[0]


@pytest.mark.parametrize(
    ("pattern", "instead"),
    [
        ("*.log", "'data/*.log'"),
        ("**", "'data/**'"),
        ("/**", "'data/**'"),
        ("/*.txt", "'data/*.txt'"),
        ("**/out.txt", "'data/**/out.txt'"),
        ("/notes.txt", "'data/notes.txt' (or '/notes.txt/' if it is a folder)"),
        ("build", "'data/build' (or '/build/' if it is a folder)"),
    ],
)
def test_a_write_rule_the_kernel_could_only_grant_as_the_workspace_root_is_refused(
    pattern: str, instead: str
) -> None:
    found = perms.lint_permissions(
        Permissions.model_validate(
            {"fs": [{"mode": "read", "allow": ["**"]}, {"mode": "readWrite", "allow": [pattern]}]}
        ),
        "jobs[2].permissions",
    )
    assert [p.location for p in found] == ["jobs[2].permissions.fs[1].allow[0]"]
    assert f"readWrite {pattern!r} would make the whole workspace root writable" in found[0].message
    assert f"Name a folder: {instead}, or '.plugbox/<plugin>/'" in found[0].message


@pytest.mark.parametrize(
    "allow",
    [["logs/*.log"], ["/data/"], ["/notes.txt/"], ["/build", "/build/out/**"], ["!*.log"], ["a/b"]],
)
def test_write_rules_that_name_a_folder_are_not_refused(allow: list[str]) -> None:
    assert lint(fs={"mode": "readWrite", "allow": allow}) == []


def test_an_operator_grant_may_be_wide_because_it_only_narrows() -> None:
    grant = Permissions.model_validate({"fs": {"mode": "readWrite", "allow": ["**"]}})
    assert perms.lint_permissions(grant, "plugins.x.permissions", grant=True) == []
    assert len(perms.lint_permissions(grant, "plugins.x.permissions")) == 1


@pytest.mark.parametrize(
    ("allow", "deny"),
    [
        (["data/**"], ["**/*.pem"]),
        (["data/*.json"], ["data/secret.json"]),
        (["**"], ["**/.git/**"]),
        ([".plugbox/x/**"], ["**/node_modules/**"]),
    ],
)
def test_partial_overlap_is_not_a_lint_error(allow: list[str], deny: list[str]) -> None:
    assert lint(fs={"allow": allow, "deny": deny}) == []


def test_deny_in_another_rule_set_also_counts() -> None:
    found = lint(
        fs=[{"mode": "read", "allow": ["cfg/app.pem"]}, {"mode": "read", "deny": ["**/*.pem"]}]
    )
    assert found and found[0].startswith("permissions.fs[0].allow[0]:")


def test_host_and_command_swallowed_by_deny() -> None:
    found = lint(net={"allow_hosts": ["a.x.com"], "deny_hosts": ["*.x.com"]})
    assert found == [
        "permissions.net.allow_hosts[0]: 'a.x.com' can never be used: deny_hosts '*.x.com' covers it"
    ]
    found = lint(shell={"allow": ["git push"], "deny": ["git **"]}, capabilities=["shell"])
    assert len(found) == 1
    assert found[0].startswith("permissions.shell.allow[0]: 'git push' can never be used")


def test_seed_style_deny_everything_shell_pattern_is_refused() -> None:
    # The platform plugbox grew from wrote deny: ['**'] next to its allows; with deny beating allow
    # that would silence every allow, and a command pattern must start with a program name anyway.
    with pytest.raises(ValidationError, match=r"shell\.deny"):
        Permissions.model_validate({"shell": {"deny": ["**"]}})


def test_capability_lints() -> None:
    assert lint(capabilities=["teleport"]) == [
        "permissions.capabilities[0]: unknown capability 'teleport'; known: shell"
    ]
    found = lint(shell={"allow": ["ls"]})
    assert found and "'shell' capability is missing" in found[0]
    assert lint(shell={"allow": ["ls"]}, capabilities=["shell"]) == []
