"""docs/cli.md, written from the click app itself so the reference cannot drift from the CLI.

Walks the whole command tree of :data:`plugbox.host.cli.main`, the lazy views included (listing
a :class:`~plugbox.host.cli_lazy.LazyGroup` names them; asking for one imports it), and renders
each command's usage, help and parameters as Markdown. The help text is taken from the
docstrings as written, not from click's formatter, so the page does not depend on the width of
the terminal that generated it.

    python -m plugbox.host.cli_reference docs/cli.md      # write the page
    python -m plugbox.host.cli_reference --check docs/cli.md

``tests/host/test_cli_reference.py`` fails when the page is out of date and says to run the first.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

REGENERATE = ".venv/bin/python -m plugbox.host.cli_reference docs/cli.md"

_HEADER = f"""# CLI reference

<!-- generated from the click app by `{REGENERATE}`; do not edit by hand -->

Every `plugbox` command, its arguments and options, as `plugbox COMMAND --help` prints them.
Exit status: 0 when the command did what was asked, 1 when a run did not succeed, 2 for bad
input (an unknown job, a bad configuration file), with a message that says what to do.
`-h` works wherever `--help` does.
"""


def walk(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Command, click.Context]]:
    """``command`` and every subcommand below it, depth first, in listing order."""
    yield command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from walk(sub, click.Context(sub, info_name=name, parent=ctx))


def _help(command: click.Command) -> str:
    text = inspect.cleandoc(command.help or "")
    # click's "\b" marks a paragraph it must not rewrap; Markdown keeps line breaks in code only.
    return "\n".join(line for line in text.splitlines() if line.strip() != "\b")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", r"\|")


def _param_row(param: click.Parameter, ctx: click.Context) -> str:
    if isinstance(param, click.Argument):
        needed = "required" if param.required else "optional"
        return f"| `{param.make_metavar(ctx)}` | {needed} argument, described above |"
    assert isinstance(param, click.Option)
    names = ", ".join(f"`{_cell(name)}`" for name in [*param.opts, *param.secondary_opts])
    kind = param.type
    if not param.is_flag and not param.count:
        metavar = "INTEGER" if isinstance(kind, click.IntRange) else param.make_metavar(ctx)
        names += f" `{_cell(metavar)}`"
    notes = [param.help or ("print JSON instead of text" if param.name == "as_json" else "")]
    if isinstance(kind, click.IntRange) and kind.min is not None and kind.max is not None:
        notes.append(f"({kind.min} to {kind.max})")
    if param.show_default and param.default is not None:
        notes.append(f"(default: `{param.default}`)")
    if param.multiple:
        notes.append("(may be repeated)")
    if param.required:
        notes.append("(required)")
    return f"| {names} | {_cell(' '.join(n for n in notes if n))} |"


def _section(command: click.Command, ctx: click.Context) -> str:
    path = ctx.command_path
    depth = min(path.count(" ") + 2, 4)
    lines = [f"{'#' * depth} `{path}`", ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    help_text = _help(command)
    if help_text:
        lines += [help_text, ""]
    help_option = command.get_help_option(ctx)  # the page says -h/--help once, at the top
    params = [
        p
        for p in command.get_params(ctx)
        if p is not help_option and not getattr(p, "hidden", False)
    ]
    if params:
        lines += ["| argument or option | meaning |", "|---|---|"]
        lines += [_param_row(param, ctx) for param in params]
        lines.append("")
    if isinstance(command, click.Group):
        subs = [name for name in command.list_commands(ctx) if name]
        if subs:
            links = ", ".join(f"[`{name}`](#{_anchor(f'{path} {name}')})" for name in subs)
            lines += [f"Commands: {links}.", ""]
    return "\n".join(lines)


def _anchor(path: str) -> str:
    """The anchor GitHub makes for a heading `` `plugbox jobs next` ``."""
    return path.lower().replace(" ", "-")


def render(main: click.Command | None = None) -> str:
    """The whole page for ``main`` (default: the ``plugbox`` command)."""
    if main is None:
        from plugbox.host.cli import main as plugbox_main

        main = plugbox_main
    root = click.Context(main, info_name="plugbox")
    sections = [_HEADER] + [_section(command, ctx) for command, ctx in walk(main, root)]
    return "\n".join(sections).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or --check) docs/cli.md.")
    parser.add_argument("page", type=Path, help="the Markdown file, e.g. docs/cli.md")
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    page: Path = args.page
    text = render()
    if args.check:
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            sys.stderr.write(f"{page} is out of date with the CLI; run: {REGENERATE}\n")
            return 1
        return 0
    page.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
