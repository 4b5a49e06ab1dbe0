"""The views ``plugbox`` loads lazily are listed with the help their own commands give."""

from __future__ import annotations

import importlib

import click
import pytest
from click.testing import CliRunner

from plugbox.host.cli import _VIEWS, main


@pytest.mark.parametrize("name", sorted(_VIEWS))
def test_each_lazy_view_is_listed_with_its_own_help(name: str) -> None:
    where, listed = _VIEWS[name]
    module, _, attribute = where.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    assert command.name == name
    assert command.get_short_help_str(200) == listed


def test_help_lists_every_command_and_each_view_still_runs() -> None:
    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0, out.output
    for name in ("doctor", "jobs", "new", "plugins", "runs", "serve"):
        assert f"  {name} " in out.output
    runs_help = CliRunner().invoke(main, ["runs", "--help"])
    assert runs_help.exit_code == 0, runs_help.output
    assert "list" in runs_help.output and "show" in runs_help.output
