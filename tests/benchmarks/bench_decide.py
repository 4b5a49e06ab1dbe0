"""Cost of one fs decision with 20 allow and 20 deny patterns, against two naive matchers.

Run: ``.venv/bin/python tests/benchmarks/bench_decide.py``. Prints one JSON object:
``decide_us`` (plugbox's ``Policy.decide``), ``pathspec_naive_us`` (a prebuilt ``pathspec.PathSpec``
for allows and one for denies, ``match_file`` on each per check) and ``fnmatch_us`` (``fnmatch``
over every pattern per check) — medians over repeated rounds, microseconds per check, plus p99 and
the ratios. Every round walks 2,000 distinct paths so no cache can answer for the matcher.
"""

from __future__ import annotations

import fnmatch
import json
import random
import statistics
import sys
import time
from collections.abc import Callable

import pathspec

from plugbox.sdk import permissions as perms

ALLOW = [
    ".plugbox/example",
    ".plugbox/example/**",
    "src/**/*.py",
    "docs/**/*.md",
    "data/*.json",
    "data/*.csv",
    "reports/",
    "/build/",
    "pyproject.toml",
    "package.json",
    "assets/img/*.png",
    "assets/img/*.svg",
    "tmp/**",
    "cache/**",
    "notes/*.txt",
    "config/*.toml",
    "config/*.yaml",
    "scripts/*.sh",
    "tests/**/test_*.py",
    "logs/*.log",
]
DENY = [
    "**/*.key",
    "**/*.secret",
    "**/*.pem",
    "**/*.env",
    "**/.env.*",
    "**/.git/**",
    "**/node_modules/**",
    "**/__pycache__/**",
    "**/*.p12",
    "**/id_rsa*",
    "data/private*",
    "config/prod.*",
    "**/.ssh/**",
    "**/*.kdbx",
    "**/secrets/**",
    "**/*.sqlite",
    "tmp/**/*.lock",
    "logs/audit.log",
    "**/.aws/**",
    "**/credentials*",
]

DIRS = [
    "src/pkg",
    "src/pkg/sub",
    "docs/guide",
    "data",
    "tmp/a/b",
    "cache",
    "tests/unit",
    "assets/img",
    ".plugbox/example",
    "node_modules/x",
    "config",
    "logs",
    "other/deep/tree/here",
]
NAMES = [
    "main.py",
    "index.md",
    "report.json",
    "key.pem",
    "app.env",
    "a.csv",
    "x.txt",
    "test_a.py",
    "logo.png",
]
PATHS_PER_ROUND = 2_000
ROUNDS = 25


def make_paths(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(DIRS)}/{rng.randrange(10_000)}-{rng.choice(NAMES)}"
        for _ in range(PATHS_PER_ROUND)
    ]


def time_per_check(check: Callable[[str], bool], rounds: list[list[str]]) -> list[float]:
    samples = []
    for paths in rounds:
        start = time.perf_counter_ns()
        for path in paths:
            check(path)
        samples.append((time.perf_counter_ns() - start) / len(paths) / 1_000)
    return samples


def main() -> int:
    permissions = perms.Permissions(
        fs=perms.FsPermissions(mode="readWrite", allow=tuple(ALLOW), deny=tuple(DENY))
    )
    policy = perms.compile_policy(permissions)

    def plugbox_check(path: str) -> bool:
        return policy.decide("fs.read", path).allowed

    allow_spec = pathspec.PathSpec.from_lines("gitwildmatch", ALLOW)
    deny_spec = pathspec.PathSpec.from_lines("gitwildmatch", DENY)

    def pathspec_check(path: str) -> bool:
        return not deny_spec.match_file(path) and allow_spec.match_file(path)

    def fnmatch_check(path: str) -> bool:
        if any(fnmatch.fnmatch(path, p) for p in DENY):
            return False
        return any(fnmatch.fnmatch(path, p) for p in ALLOW)

    rounds = [make_paths(seed) for seed in range(ROUNDS)]
    # Same verdicts from plugbox and pathspec on this corpus (fnmatch is not gitignore, so it differs).
    disagreements = sum(plugbox_check(p) != pathspec_check(p) for p in rounds[0])

    figures: dict[str, float] = {}
    for name, check in (
        ("decide", plugbox_check),
        ("pathspec_naive", pathspec_check),
        ("fnmatch", fnmatch_check),
    ):
        time_per_check(check, rounds[:2])  # warm up
        samples = time_per_check(check, rounds)
        figures[f"{name}_us"] = round(statistics.median(samples), 3)
        figures[f"{name}_p99_us"] = round(sorted(samples)[int(0.99 * (len(samples) - 1))], 3)
    figures["pathspec_over_decide"] = round(figures["pathspec_naive_us"] / figures["decide_us"], 1)
    figures["fnmatch_over_decide"] = round(figures["fnmatch_us"] / figures["decide_us"], 1)
    figures["allow_patterns"] = len(ALLOW)
    figures["deny_patterns"] = len(DENY)
    figures["verdict_disagreements_with_pathspec"] = disagreements
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
