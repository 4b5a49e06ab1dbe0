"""Real, installed-looking plugin distributions for discovery tests.

A :class:`Site` is a directory laid out like site-packages: each fake plugin is a
``NAME-1.0.dist-info`` (``METADATA`` + ``entry_points.txt``) beside its module. Discovery is
pointed at it with ``extra_paths``; the host reads only the metadata, the confined child imports
the modules.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugbox.sandbox import SandboxRunner


@dataclass(frozen=True)
class Site:
    root: Path

    def add(self, dist: str, source: str, *, entry_point: str | None = None) -> str:
        """Install distribution ``dist`` 1.0: one module and one ``plugbox`` entry point to it.

        Returns the module's name (``pbt_`` + the dist name, unique to this test run's site).
        """
        module = "pbt_" + dist.replace("-", "_")
        info = self.root / f"{module}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[plugbox]\n{entry_point or dist} = {module}\n")
        (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        return module

    def add_plugin(
        self,
        dist: str,
        plugin_id: str,
        *,
        schedule: str = "*/5 * * * *",
        sdk: str = ">=0.1",
        preamble: str = "",
        extra: str = "",
    ) -> str:
        """A plugin whose hook returns a hand-written manifest dict, validated only by the host.

        ``preamble`` runs at import; a module-level ``DESCRIPTION`` it sets becomes the
        manifest's description; ``extra`` is spliced into the manifest dict.
        """
        hook = f"""
            from plugbox.sdk import hookimpl

            @hookimpl
            def plugbox_manifest():
                return {{
                    "id": {plugin_id!r},
                    "version": "1.0",
                    "name": {plugin_id!r},
                    "sdk": {sdk!r},
                    "description": globals().get("DESCRIPTION", ""),
                    "jobs": [{{"id": "tick", "handler": "x:tick", "schedule": {schedule!r}}}],
                    {extra}
                }}
            """
        return self.add(dist, textwrap.dedent(preamble) + textwrap.dedent(hook))


@pytest.fixture(scope="session")
def runner() -> Iterator[SandboxRunner]:
    with SandboxRunner() as started:
        yield started


@pytest.fixture(scope="session")
def new_site(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Site]:
    def make() -> Site:
        root = tmp_path_factory.mktemp("site")
        return Site(root)

    return make


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ws")
