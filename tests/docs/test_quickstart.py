"""docs/quickstart.md, executed: every ``$ `` command in its ```console blocks runs in order, as a
reader types them into one terminal, and must exit 0. This is also the scaffold's test: the page
runs ``plugbox new``, then the generated project's tests, build and install, in a fresh venv.

The page may steer the run with an HTML comment on the line before a fenced block:

- ``<!-- file: NAME -->``: the reader saves the block as NAME in the current directory; the test
  writes it there.
- ``<!-- long-running: expect='TEXT' timeout=SECONDS -->`` before a console block of one command
  (``plugbox serve``): run it until its output contains TEXT, then press Ctrl-C (SIGINT to its
  process group, as a terminal does); it must then exit 0 by itself.

Each command runs in ``bash -c`` with the working directory and exported environment the previous
command left, so ``cd`` and ``. .venv/bin/activate`` carry over as in a terminal. plugbox is not on
PyPI (and anyone could publish the name), so pip sees only a wheelhouse built once from this
checkout: ``PIP_NO_INDEX=1 PIP_FIND_LINKS=<wheelhouse>``, with pip's configuration files ignored.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugbox.host.scaffold import plugin_names, render_project

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "quickstart.md"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
FILE = re.compile(r"<!--\s*file:\s*(?P<name>\S+)\s*-->")
EXCERPT = re.compile(r"<!--\s*not-run:\s*an excerpt of the generated (?P<path>[\w./-]*\w)")
LONG_RUNNING = re.compile(
    r"<!--\s*long-running:\s*expect='(?P<expect>[^']+)'\s+timeout=(?P<timeout>\d+)\s*-->"
)
COMMAND_TIMEOUT_S = 600
# Shell bookkeeping that must not be carried from one command to the next.
_NOT_CARRIED = {"PWD", "OLDPWD", "SHLVL", "_"}


@dataclass(frozen=True)
class Step:
    line: int  # line in quickstart.md
    command: str = ""  # a shell command, or
    file: str = ""  # a file to write (with ``content``)
    content: str = ""
    expect: str = ""  # set for a long-running command
    timeout: float = COMMAND_TIMEOUT_S


def steps(page: Path) -> list[Step]:
    """The page's commands and files, in reading order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Step] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start, fence, indent = index, opening["fence"], len(opening["indent"])
        body: list[tuple[int, str]] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append((index + 1, lines[index][indent:]))
            index += 1
        index += 1
        before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        if file := FILE.fullmatch(before):
            text = "".join(line + "\n" for _, line in body)
            found.append(Step(line=start + 1, file=file["name"], content=text))
        elif opening["lang"] == "console":
            commands = _commands(body)
            if long := LONG_RUNNING.fullmatch(before):
                assert len(commands) == 1, f"quickstart.md:{start + 1}: one long-running command"
                ((number, command),) = commands
                found.append(
                    Step(number, command, expect=long["expect"], timeout=float(long["timeout"]))
                )
            else:
                found += [Step(number, command) for number, command in commands]
    return found


def _commands(body: list[tuple[int, str]]) -> list[tuple[int, str]]:
    commands: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, line in body:
        if pending is not None:  # the line after a trailing backslash continues the command
            pending = (pending[0], pending[1] + "\n" + line)
        elif line.startswith("$ "):
            pending = (number, line[2:])
        if pending is not None and not pending[1].endswith("\\"):
            commands.append(pending)
            pending = None
    return commands


class Terminal:
    """One reader's terminal: commands share the working directory and exported variables."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.cwd, self.env = cwd, env
        self._cwd_file, self._env_file = scratch / "cwd", scratch / "env"
        self.transcript: list[str] = []

    def run(self, step: Step) -> tuple[int, str]:
        script = (
            f"{step.command}\n__status=$?\n"
            f"pwd > {shlex.quote(str(self._cwd_file))}\n"
            f"env -0 > {shlex.quote(str(self._env_file))}\n"
            "exit $__status\n"
        )
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=step.timeout,
            check=False,
        )
        if done.returncode == 0:
            self.cwd = Path(self._cwd_file.read_text().strip())
            pairs = (item.partition("=") for item in self._env_file.read_text().split("\0"))
            self.env = {k: v for k, _, v in pairs if k and k not in _NOT_CARRIED}
        return done.returncode, done.stdout

    def run_until(self, step: Step) -> tuple[int, str]:
        """Start a long-running command, wait for ``step.expect`` in its output, then Ctrl-C."""
        output: list[str] = []
        seen = threading.Event()
        with subprocess.Popen(
            ["bash", "-c", f"exec {step.command}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        ) as process:

            def read() -> None:
                assert process.stdout is not None
                try:
                    for line in process.stdout:
                        output.append(line)
                        if step.expect in line:
                            seen.set()
                except (OSError, ValueError):  # closed under us after a kill
                    return

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                if not seen.wait(step.timeout):
                    output.append(f"\n[test] {step.expect!r} not printed in {step.timeout} s\n")
                    return -1, "".join(output)
                os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
                stopped = time.monotonic()
                code = process.wait(timeout=120)
                reader.join(timeout=10)
                took = time.monotonic() - stopped
                output.append(f"\n[test] exited {code} {took:.1f} s after Ctrl-C\n")
                return code, "".join(output)
            finally:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                reader.join(timeout=10)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of this checkout's sdk, sandbox and host, their dependencies and hatchling."""
    house = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(house),
         f"{ROOT / 'sdk'}[testing]", str(ROOT / "sandbox"), str(ROOT / "host"), "hatchling"],
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT_S,
    )  # fmt: skip
    return house


def test_quickstart_steps_are_found() -> None:
    found = steps(PAGE)
    commands = [step.command for step in found if step.command]
    for required in (
        "plugbox new ",
        "pytest",
        "pip wheel ",
        "plugbox plugins list",
        "plugbox jobs run ",
        "plugbox serve",
    ):
        assert any(c.startswith(required) for c in commands), f"quickstart lost `{required}`"
    assert [step.command for step in found if step.expect] == ["plugbox serve"]
    assert [step.file for step in found if step.file] == ["plugbox.toml"]


def test_steps_parser_handles_markers_and_continuations(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ echo one \\\n  two\noutput, not a command\n$ cd x\n```\n"
        "<!-- file: a.toml -->\n```toml\nk = 1\n```\n"
        "<!-- long-running: expect='ready' timeout=5 -->\n```console\n$ serve\n```\n"
        "```python\n$ not a command\n```\n"
    )
    assert steps(page) == [
        Step(2, "echo one \\\n  two"),
        Step(5, "cd x"),
        Step(8, file="a.toml", content="k = 1\n"),
        Step(13, "serve", expect="ready", timeout=5.0),
    ]


def test_terminal_carries_directory_and_exports_and_reports_failures(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    terminal = Terminal(tmp_path, {"PATH": "/usr/bin:/bin"}, scratch)
    assert terminal.run(Step(1, "cd sub && export GREETING=hi"))[0] == 0
    assert terminal.run(Step(2, 'test "$(basename "$PWD")" = sub && echo "$GREETING"')) == (
        0,
        "hi\n",
    )
    assert terminal.run(Step(3, "false"))[0] == 1
    code, output = terminal.run_until(Step(4, "sleep 30", expect="never", timeout=0.5))
    assert code == -1
    assert "'never' not printed" in output


def test_excerpts_match_the_generated_files() -> None:
    """The page quotes the files `plugbox new acme-notes` writes; the quotes must stay true."""
    generated = render_project(plugin_names("acme-notes"))
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    checked = []
    for index, line in enumerate(lines):
        excerpt = EXCERPT.search(line)
        if excerpt is None:
            continue
        assert FENCE.match(lines[index + 1]), f"quickstart.md:{index + 1}: no block follows"
        end = next(n for n in range(index + 2, len(lines)) if lines[n].startswith("```"))
        quoted = "\n".join(lines[index + 2 : end]) + "\n"
        path = excerpt["path"].removeprefix("acme-notes/")
        assert quoted in generated[path], (
            f"quickstart.md:{index + 2} quotes {path} but the generated file no longer reads "
            f"so:\n{quoted}"
        )
        checked.append(path)
    assert sorted(checked) == ["src/acme_notes/plugin.py", "tests/test_plugin.py"]


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path: Path, wheelhouse: Path) -> None:
    start, home, scratch = tmp_path / "start", tmp_path / "home", tmp_path / "scratch"
    for folder in (start, home, scratch):
        folder.mkdir()
    bare = tmp_path / "python"  # a python3 on PATH with nothing installed; the page adds the rest
    venv.EnvBuilder(with_pip=False).create(bare)
    env = {
        "PATH": f"{bare / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    terminal = Terminal(start, env, scratch)
    for step in steps(PAGE):
        if step.file:
            (terminal.cwd / step.file).write_text(step.content)
            terminal.transcript.append(f"quickstart.md:{step.line}: wrote {step.file}\n")
            continue
        began = time.monotonic()
        code, output = terminal.run_until(step) if step.expect else terminal.run(step)
        terminal.transcript.append(
            f"quickstart.md:{step.line}: $ {step.command}  "
            f"[exit {code}, {time.monotonic() - began:.1f} s]\n{output}"
        )
        if code != 0:
            pytest.fail(
                f"docs/quickstart.md:{step.line}: `{step.command}` exited {code} "
                f"in {terminal.cwd}:\n{output[-6000:]}",
                pytrace=False,
            )
    notes = start / "workspace" / ".plugbox" / "acme-notes" / "notes.txt"
    assert notes.read_text().startswith("run 1: hello from acme-notes\n"), "".join(
        terminal.transcript
    )
