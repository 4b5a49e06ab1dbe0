"""Every ```python block in docs/ runs, so an example cannot rot unnoticed.

The blocks of one page run top to bottom in one namespace, as a reader follows the page, in a
subprocess whose working directory is an empty temporary directory. A block that cannot run as
written (a sketch with ``...``, an excerpt of a generated file) is skipped when the line before
its fence says why: ``<!-- not-run: an excerpt of ... -->``. Test ids name the page and the line
of the block's opening fence, e.g. ``permissions.md:12``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NOT_RUN = re.compile(r"<!--\s*not-run:(.*?)-->")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")

# Runs the blocks of one page: JSON list of {"code", "where"} on stdin, one traceback (or null)
# per block into the file named by argv[1] (stdout is left to the examples' own prints).
RUNNER = """
import json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__docs__"}
outcomes = []
for block in blocks:
    try:
        exec(compile(block["code"], block["where"], "exec"), namespace)
    except BaseException:
        outcomes.append(traceback.format_exc())
    else:
        outcomes.append(None)
with open(sys.argv[1], "w") as out:
    json.dump(outcomes, out)
"""


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    comment: str  # the line before the fence when it is an HTML comment, else ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"

    @property
    def not_run_reason(self) -> str | None:
        match = NOT_RUN.fullmatch(self.comment.strip())
        return match.group(1).strip() if match else None


def fenced_blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, with the HTML comment right before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start, fence = index, opening["fence"]
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        before = next((line for line in reversed(lines[:start]) if line.strip()), "")
        blocks.append(
            Block(
                page=page,
                line=start + 1,
                lang=opening["lang"],
                code=textwrap.dedent("\n".join(body)) + "\n",
                comment=before if before.lstrip().startswith("<!--") else "",
            )
        )
        index += 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []


def runnable(page: Path) -> list[Block]:
    return [b for b in fenced_blocks(page) if b.lang == "python" and b.not_run_reason is None]


def run_page(blocks: list[Block], cwd: Path) -> dict[int, str | None]:
    """Run the blocks in order in one namespace; line of each block -> its traceback or None."""
    outcomes_file = cwd.parent / f"{cwd.name}-outcomes.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGBOX_")}
    home = cwd.parent / f"{cwd.name}-home"  # outside the cwd, as a reader's home would be
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(outcomes_file)],
        input=json.dumps([{"code": b.code, "where": b.where} for b in blocks]),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"the block runner itself failed:\n{done.stderr}"
    outcomes = json.loads(outcomes_file.read_text())
    return {block.line: outcome for block, outcome in zip(blocks, outcomes, strict=True)}


ALL_RUNNABLE = [block for page in pages() for block in runnable(page)]


@pytest.fixture(scope="module")
def page_outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[Path], dict[int, str | None]]:
    cache: dict[Path, dict[int, str | None]] = {}

    def outcomes(page: Path) -> dict[int, str | None]:
        if page not in cache:
            cache[page] = run_page(runnable(page), tmp_path_factory.mktemp(page.stem))
        return cache[page]

    return outcomes


@pytest.mark.parametrize("block", ALL_RUNNABLE, ids=lambda block: block.where)
def test_python_block_runs(
    block: Block, page_outcomes: Callable[[Path], dict[int, str | None]]
) -> None:
    outcomes = page_outcomes(block.page)
    error = outcomes[block.line]
    if error is not None:
        earlier = [line for line, e in outcomes.items() if e is not None and line < block.line]
        note = f" (earlier blocks failed too, at lines {earlier})" if earlier else ""
        pytest.fail(
            f"docs/{block.where} does not run{note}. Fix it, or put "
            f"'<!-- not-run: why -->' on the line before the fence:\n{error}",
            pytrace=False,
        )


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(DOCS)))
def test_not_run_markers_give_a_reason_and_precede_a_python_block(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    fences = {block.line: block for block in fenced_blocks(page)}
    for number, text in enumerate(lines, start=1):
        marker = NOT_RUN.search(text)
        if marker is None:
            continue
        assert marker.group(1).strip(), f"docs/{page.name}:{number}: not-run needs a reason"
        following = next(
            (n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), None
        )
        block = fences.get(following or 0)
        assert block is not None and block.lang == "python", (
            f"docs/{page.name}:{number}: a not-run marker must be the line before a ```python fence"
        )


def test_a_failing_block_is_reported_with_its_page_and_line(tmp_path: Path) -> None:
    page = DOCS / "example-page.md"  # never written: only names the blocks
    blocks = [
        Block(page, 3, "python", "x = 1\n", ""),
        Block(page, 9, "python", "print('shown to the reader')\nx / 0\n", ""),
        Block(page, 15, "python", "assert x == 1\n", ""),
    ]
    (tmp_path / "cwd").mkdir()
    outcomes = run_page(blocks, tmp_path / "cwd")
    assert outcomes[3] is None
    assert outcomes[15] is None  # the namespace is shared across the page's blocks
    assert outcomes[9] is not None
    assert "ZeroDivisionError" in outcomes[9]
    assert 'File "example-page.md:9", line 2' in outcomes[9]


def test_fences_and_markers_are_parsed(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n<!-- not-run: a sketch -->\n```python\n...\n```\n\n"
        "- item\n\n  ```python\n  y = 2\n  ```\n\n```console\n$ true\n```\n"
    )
    sketch, indented, console = fenced_blocks(page)
    assert (sketch.line, sketch.not_run_reason) == (4, "a sketch")
    assert (indented.line, indented.code, indented.not_run_reason) == (10, "y = 2\n", None)
    assert (console.lang, console.code) == ("console", "$ true\n")
