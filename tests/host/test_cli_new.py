"""`plugbox new NAME`: what it writes, how it names things, and what it refuses.

The generated project's own tests run in tests/docs/test_quickstart.py (a fresh venv, slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from plugbox.host.cli import main
from plugbox.host.scaffold import ScaffoldError, create_project, plugin_names, suggest_name

FILES = {
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "src/acme_notes/__init__.py",
    "src/acme_notes/plugin.py",
    "tests/test_plugin.py",
}

LOAD_MANIFEST = """
import json, sys
from plugbox.sdk import new_plugin_manager, validate_manifest
module = __import__(sys.argv[1] + ".plugin", fromlist=["plugin"])
pm = new_plugin_manager()
pm.register(module)
(manifest,) = pm.hook.plugbox_manifest()
print(validate_manifest(manifest.model_dump(mode="json")).model_dump_json())
"""


def new(*args: str) -> Result:
    return CliRunner().invoke(main, ["new", *args])


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


def test_creates_the_project_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = new("acme-notes")
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "acme-notes") == FILES
    assert "created plugin acme-notes in acme-notes/" in result.output
    assert "cd acme-notes" in result.output


@pytest.mark.parametrize("option", ["--directory", "-d"])
def test_directory_option_names_the_parent(tmp_path: Path, option: str) -> None:
    result = new("acme-notes", option, str(tmp_path))
    assert result.exit_code == 0, result.output
    assert files_under(tmp_path / "acme-notes") == FILES


def test_pyproject_declares_the_distribution_entry_point_and_extras(tmp_path: Path) -> None:
    assert new("acme-notes", "-d", str(tmp_path)).exit_code == 0
    pyproject = tomllib.loads((tmp_path / "acme-notes" / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["name"] == "plugbox-acme-notes"
    assert project["dependencies"] == ["plugbox-sdk>=0.1,<1"]
    assert project["optional-dependencies"] == {"test": ["plugbox-sdk[testing]>=0.1,<1"]}
    assert project["entry-points"]["plugbox"] == {"acme-notes": "acme_notes.plugin"}
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/acme_notes"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "src/acme_notes/__init__.py"
    assert pyproject["tool"]["pytest"]["ini_options"]["pythonpath"] == ["src"]


def test_generated_plugin_loads_and_its_manifest_validates(tmp_path: Path) -> None:
    assert new("acme-notes", "-d", str(tmp_path)).exit_code == 0
    project = tmp_path / "acme-notes"
    out = subprocess.run(
        [sys.executable, "-c", LOAD_MANIFEST, "acme_notes"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["id"] == "acme-notes"
    assert manifest["version"] == "0.1.0"
    (job,) = manifest["jobs"]
    assert job["id"] == "write-note"
    assert job["handler"] == "acme_notes.plugin:write_note"
    assert job["schedule"] == "*/5 * * * *"
    write_rules = [rule for rule in job["permissions"]["fs"] if rule["mode"] == "readWrite"]
    assert [rule["allow"] for rule in write_rules] == [
        [".plugbox/acme-notes", ".plugbox/acme-notes/**"]
    ]


def test_every_placeholder_is_filled_and_python_files_compile(tmp_path: Path) -> None:
    assert new("acme-notes", "-d", str(tmp_path)).exit_code == 0
    project = tmp_path / "acme-notes"
    for name in FILES:
        text = (project / name).read_text()
        assert "${" not in text, name
        if name.endswith(".py"):
            compile(text, name, "exec")
    test_module = (project / "tests" / "test_plugin.py").read_text()
    assert "from acme_notes.plugin import" in test_module
    assert "def test_" in test_module


@pytest.mark.parametrize(
    ("name", "plugin_id", "package", "distribution", "title"),
    [
        ("acme-notes", "acme-notes", "acme_notes", "plugbox-acme-notes", "Acme Notes"),
        ("acme_notes", "acme_notes", "acme_notes", "plugbox-acme-notes", "Acme Notes"),
        ("weather2", "weather2", "weather2", "plugbox-weather2", "Weather2"),
        ("plugbox-rss", "plugbox-rss", "plugbox_rss", "plugbox-rss", "Plugbox Rss"),
    ],
)
def test_one_name_gives_every_name(
    name: str, plugin_id: str, package: str, distribution: str, title: str
) -> None:
    names = plugin_names(name)
    assert (names.plugin_id, names.package, names.distribution, names.title) == (
        plugin_id,
        package,
        distribution,
        title,
    )


@pytest.mark.parametrize(
    ("name", "why", "suggestion"),
    [
        ("Acme Notes", "is not a valid plugin name", "acme-notes"),
        ("AcmeNotes", "is not a valid plugin name", "acme-notes"),
        ("acme.notes", "is not a valid plugin name", "acme-notes"),
        ("acme--notes", "is not a valid plugin name", "acme-notes"),
        ("acme-", "is not a valid plugin name", "acme"),
        ("2fa", "is not a valid plugin name", "plugin-2fa"),
        ("café", "is not a valid plugin name", "cafe"),
        ("", "is not a valid plugin name", "my-plugin"),
        ("a" * 65, "at most 64 characters", "a" * 64),
        ("json", "standard library", "json-plugin"),
        ("class", "Python keyword", "class-plugin"),
        ("plugbox", "reserved", "plugbox-plugin"),
        ("tests", "reserved", "tests-plugin"),
        ("pytest", "already installed", "pytest-plugin"),
    ],
)
def test_bad_names_are_refused_with_a_fix(
    tmp_path: Path, name: str, why: str, suggestion: str
) -> None:
    result = new(name, "-d", str(tmp_path))
    assert result.exit_code == 2
    assert why in result.stderr
    assert "lowercase letters" in result.stderr or "would make the import package" in result.stderr
    assert result.stderr.rstrip().endswith(f"Try: plugbox new {suggestion}")
    assert list(tmp_path.iterdir()) == []
    plugin_names(suggestion)  # the suggestion itself is accepted


@pytest.mark.parametrize("name", ["x", "Über Notes", "--", "9", "import", "sys", "a_-b", "A" * 90])
def test_suggestions_are_always_accepted(name: str) -> None:
    plugin_names(suggest_name(name))


def test_existing_directory_is_never_touched(tmp_path: Path) -> None:
    existing = tmp_path / "acme-notes"
    existing.mkdir()
    (existing / "pyproject.toml").write_text("mine")
    result = new("acme-notes", "-d", str(tmp_path))
    assert result.exit_code == 2
    assert f"{existing} already exists" in result.stderr
    assert "never overwrites" in result.stderr
    assert files_under(existing) == {"pyproject.toml"}
    assert (existing / "pyproject.toml").read_text() == "mine"


def test_existing_file_is_never_touched(tmp_path: Path) -> None:
    (tmp_path / "acme-notes").write_text("mine")
    result = new("acme-notes", "-d", str(tmp_path))
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert (tmp_path / "acme-notes").read_text() == "mine"


def test_missing_parent_directory_is_explained(tmp_path: Path) -> None:
    result = new("acme-notes", "-d", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "is not a directory" in result.stderr
    assert not (tmp_path / "nope").exists()


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugbox.host.scaffold import project

    monkeypatch.setattr(project, "render_project", lambda names: {"ok.txt": "x", "bad\0": "y"})
    with pytest.raises(ValueError, match="null"):
        create_project("acme-notes", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_scaffold_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="Try: plugbox new acme-notes"):
        plugin_names("Acme Notes")
    assert issubclass(ScaffoldError, ValueError)
