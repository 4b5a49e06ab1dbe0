"""Plugin discovery that never runs plugin code in the host process.

The obvious ways to load pluggy plugins all import them into the caller:
``PluginManager.load_setuptools_entrypoints``, ``EntryPoint.load()``, and even
``importlib.resources.files(package)``. The host does none of those. It

1. lists the ``plugbox`` entry points from installed distributions' metadata
   (:func:`list_entry_points` reads ``entry_points.txt`` files; nothing is imported);
2. asks the sandbox to run :func:`plugbox.sandbox.discover.collect_manifests` for each entry
   point in its own confined child — no network, no writes, no environment, a timeout — which
   imports the plugin there and answers with its manifest as JSON;
3. validates every manifest again here, then checks what only the host can see: the SDK range
   against this host's SDK, and plugin ids that two distributions both claim.

One child per entry point, run a few at a time: a plugin that hangs at import costs its own
timeout and nothing else, a plugin cannot tamper with another's import or manifest, and the
reported time is exactly that plugin's. A broken plugin ends up in
:attr:`DiscoveryReport.problems` with a reason a person can act on; the others load.

Step 2 is the slow one, so its answers may be remembered (:mod:`plugbox.host.discovery_cache`):
what is kept is the child's raw answer, never a verdict, and step 3 runs again on every use.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from plugbox.sdk import ENTRY_POINT_GROUP, Manifest, ManifestError, validate_manifest
from plugbox.sdk import __version__ as sdk_version

if TYPE_CHECKING:
    from plugbox.host.discovery_cache import DiscoveryCache
    from plugbox.sandbox import Outcome, RunRequest, SandboxRunner

#: Children importing plugins at the same time.
DEFAULT_PARALLEL = 4
#: Largest manifest accepted, as compact JSON. Real manifests are a few KB; the bound keeps a
#: hostile one from costing the host its memory and every later validation its time.
MAX_MANIFEST_BYTES = 512 * 1024

_NAME_HEADER = re.compile(r"^Name:[ \t]*(\S.*)$", re.MULTILINE | re.IGNORECASE)

ProblemKind = Literal["load", "timeout", "crashed", "invalid", "sdk", "clash"]


@dataclass(frozen=True, slots=True)
class PluginEntryPoint:
    """One ``plugbox`` entry point, as distribution metadata declares it (never imported here)."""

    name: str
    value: str
    dist: str
    dist_version: str

    def describe(self) -> str:
        return f"plugin {self.dist} {self.dist_version} (entry point {self.name!r})"


@dataclass(frozen=True, slots=True)
class LoadedPlugin:
    """A plugin whose manifest was resolved in a child and validated again in the host."""

    entry_point: PluginEntryPoint
    manifest: Manifest


@dataclass(frozen=True, slots=True)
class PluginProblem:
    """A plugin that was skipped, and why. ``detail`` holds a traceback or output when there is one."""

    entry_point: PluginEntryPoint
    kind: ProblemKind
    reason: str
    detail: str = ""
    #: True when the child's answer came from the discovery cache: found when this version was
    #: installed, not by this command (``plugbox plugins reload`` asks again).
    remembered: bool = False

    def __str__(self) -> str:
        return f"{self.entry_point.describe()}: {self.reason}"


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    plugins: tuple[LoadedPlugin, ...]
    problems: tuple[PluginProblem, ...]

    def plugin(self, plugin_id: str) -> LoadedPlugin:
        """The loaded plugin with this id; :class:`LookupError` naming the loaded ids otherwise."""
        for loaded in self.plugins:
            if loaded.manifest.id == plugin_id:
                return loaded
        known = ", ".join(loaded.manifest.id for loaded in self.plugins) or "none"
        raise LookupError(f"no plugin {plugin_id!r} is loaded; loaded: {known}")


def list_entry_points(extra_paths: Sequence[str] = ()) -> tuple[PluginEntryPoint, ...]:
    """Every ``plugbox`` entry point of the distributions on ``extra_paths`` then ``sys.path``.

    Reads metadata only. The search order is the child's import order (``extra_paths`` are put
    in front of its ``sys.path``), and a distribution found twice counts once, the first time,
    as ``importlib.metadata.entry_points`` itself does.
    """
    return tuple(entry for _, entries in plugin_distributions(extra_paths) for entry in entries)


def plugin_distributions(
    extra_paths: Sequence[str] = (),
) -> list[tuple[metadata.Distribution, tuple[PluginEntryPoint, ...]]]:
    """The distributions that declare ``plugbox`` entry points, each with its entry points."""
    found: list[tuple[metadata.Distribution, tuple[PluginEntryPoint, ...]]] = []
    seen: set[str] = set()
    for dist in metadata.distributions(path=[*extra_paths, *sys.path]):
        name = _name_of(dist)
        if not name:
            continue  # metadata without a name cannot be installed or uninstalled by anyone
        key = _normalise(name)
        if key in seen:
            continue
        seen.add(key)
        entries = tuple(
            PluginEntryPoint(entry.name, entry.value, name, dist.version)
            for entry in dist.entry_points.select(group=ENTRY_POINT_GROUP)
        )
        if entries:
            found.append((dist, entries))
    return found


#: What a confined child said about one entry point: its record (a manifest or the error its
#: import or hook raised), or the problem that stopped it from answering (timeout, crash).
Answer = Mapping[str, Any] | PluginProblem


def discover(
    runner: SandboxRunner | Callable[[], SandboxRunner],
    *,
    workspace: str | os.PathLike[str],
    timeout_s: float = 20.0,
    extra_paths: Sequence[str] = (),
    parallel: int = DEFAULT_PARALLEL,
    cache: DiscoveryCache | None = None,
) -> DiscoveryReport:
    """Find, load (in confined children) and validate every installed plugin.

    ``workspace`` is the children's working directory; they may not even read it.
    ``timeout_s`` bounds each plugin's import and manifest. ``extra_paths`` are searched for
    distributions before ``sys.path``, here and in the children (plugins installed elsewhere).
    ``runner`` may be a function that starts one: with a ``cache`` that knows every installed
    plugin, no child is needed and none is started.
    """
    installed = plugin_distributions(extra_paths)
    entry_points = [entry for _, entries in installed for entry in entries]
    if not entry_points:
        if cache is not None:
            cache.save({})
        return DiscoveryReport((), ())
    answers: dict[PluginEntryPoint, Answer] = {}
    if cache is not None:
        answers.update(
            cache.lookup(installed, timeout_s=timeout_s, search_path=[*extra_paths, *sys.path])
        )
    missing = [entry for entry in entry_points if entry not in answers]
    if missing:
        # Only now: a command answered from the cache never loads the runner.
        from plugbox.sandbox import RunContext, RunRequest
        from plugbox.sandbox.discover import HANDLER
        from plugbox.sdk.permissions import Permissions, Quotas

        started = runner() if callable(runner) else runner
        request = RunRequest(
            handler=HANDLER,
            workspace=os.fspath(workspace),
            context=RunContext(
                job_id="discover", plugin_id="plugbox", plugin_version="-", run_id=""
            ),
            # Default deny everywhere: no fs, net, env, shell or capabilities, only a timeout.
            permissions=Permissions(quotas=Quotas(timeout_ms=max(1, int(timeout_s * 1000)))),
            python_path=tuple(os.path.abspath(path) for path in extra_paths),
        )

        def ask(entry_point: PluginEntryPoint) -> Answer:
            return _ask(started, request, entry_point, timeout_s)

        with ThreadPoolExecutor(max(1, min(parallel, len(missing)))) as pool:
            answers.update(zip(missing, pool.map(ask, missing), strict=True))
        if cache is not None:
            cache.save(answers)
    resolved = [_resolved(entry, answers[entry]) for entry in entry_points]
    loaded = [item for item in resolved if isinstance(item, LoadedPlugin)]
    problems = [item for item in resolved if isinstance(item, PluginProblem)]
    kept, clashes = _without_clashes(loaded)
    return DiscoveryReport(tuple(kept), tuple(problems + clashes))


def _ask(
    runner: SandboxRunner, base: RunRequest, entry_point: PluginEntryPoint, timeout_s: float
) -> Answer:
    context = base.context.model_copy(
        update={
            "plugin_id": entry_point.dist,
            "plugin_version": entry_point.dist_version,
            "run_id": f"discover-{uuid.uuid4().hex}",
            "config": {
                "entry_points": [
                    {"name": entry_point.name, "value": entry_point.value, "dist": entry_point.dist}
                ]
            },
        }
    )
    outcome = runner.run(base.model_copy(update={"context": context}))
    return _answer(outcome, entry_point, timeout_s)


def _resolved(entry_point: PluginEntryPoint, answer: Answer) -> LoadedPlugin | PluginProblem:
    """The child's answer judged by the host — every time, whether it is fresh or remembered."""
    if isinstance(answer, PluginProblem):
        return answer
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], Mapping) else {}
        what = "importing it" if error.get("stage") == "import" else "its plugbox_manifest hook"
        return PluginProblem(
            entry_point,
            "load",
            f"{what} failed: {error.get('type', 'Error')}: {error.get('message', '')}",
            str(error.get("traceback", "")),
            remembered=bool(answer.get("remembered")),
        )
    return _checked(entry_point, answer.get("manifest"))


def _answer(
    outcome: Outcome, entry_point: PluginEntryPoint, timeout_s: float
) -> Mapping[str, Any] | PluginProblem:
    """This entry point's record from the child, or the problem explaining why there is none."""
    if outcome.status == "timeout":
        return PluginProblem(
            entry_point,
            "timeout",
            f"timed out after {timeout_s:g} s while importing it or building its manifest",
            _tail(outcome.output),
        )
    if outcome.status != "success":
        error = outcome.error
        why = f"{error.type}: {error.message}" if error is not None else outcome.status
        return PluginProblem(
            entry_point,
            "crashed",
            f"the discovery child ended without an answer while importing it ({why})",
            _tail(outcome.output),
        )
    result = outcome.result
    plugins = result.get("plugins") if isinstance(result, dict) else None
    record = plugins[0] if isinstance(plugins, list) and len(plugins) == 1 else None
    if not isinstance(record, dict) or record.get("entry_point") != entry_point.name:
        return PluginProblem(
            entry_point, "crashed", "the discovery child gave an answer that is not its own"
        )
    return record


def _checked(entry_point: PluginEntryPoint, data: Any) -> LoadedPlugin | PluginProblem:
    if not isinstance(data, Mapping):
        return PluginProblem(entry_point, "invalid", "its manifest is not a JSON object")
    size = _json_size(data)
    if size is None or size > MAX_MANIFEST_BYTES:
        what = "cannot be written as JSON" if size is None else f"is {size:,} bytes of JSON"
        return PluginProblem(
            entry_point,
            "invalid",
            f"its manifest {what}; at most {MAX_MANIFEST_BYTES:,} bytes are accepted"
            " (a manifest declares jobs and permissions, not data)",
        )
    try:
        manifest = validate_manifest(
            data, source=f"plugin {entry_point.dist} (entry point {entry_point.name!r})"
        )
    except ManifestError as err:
        count = len(err.problems)
        lines = "\n".join(f"  - {problem}" for problem in err.problems)
        return PluginProblem(
            entry_point,
            "invalid",
            f"invalid manifest, {count} problem{'s' if count != 1 else ''}:\n{lines}",
        )
    if not manifest.sdk_compatible(sdk_version):
        return PluginProblem(
            entry_point,
            "sdk",
            f"needs plugbox-sdk {manifest.sdk}, this host has {sdk_version}",
        )
    return LoadedPlugin(entry_point, manifest)


def _without_clashes(
    loaded: Iterable[LoadedPlugin],
) -> tuple[list[LoadedPlugin], list[PluginProblem]]:
    """Plugins whose id no other distribution claims, and one problem per clashing plugin.

    A clash loads neither side: picking one would depend on ``sys.path`` order, and a newly
    installed package must not be able to take over an id quietly.
    """
    by_id: dict[str, list[LoadedPlugin]] = defaultdict(list)
    for plugin in loaded:
        by_id[plugin.manifest.id].append(plugin)
    kept: list[LoadedPlugin] = []
    problems: list[PluginProblem] = []
    for plugin_id, claimants in by_id.items():
        if len(claimants) == 1:
            kept.append(claimants[0])
            continue
        for plugin in claimants:
            others = " and ".join(
                other.entry_point.describe() for other in claimants if other is not plugin
            )
            problems.append(
                PluginProblem(
                    plugin.entry_point,
                    "clash",
                    f"plugin id {plugin_id!r} is also declared by {others};"
                    " neither is loaded until one of them is uninstalled",
                )
            )
    return kept, problems


def _json_size(data: Mapping[str, Any]) -> int | None:
    """Bytes of ``data`` as compact UTF-8 JSON; None when it is not JSON at all."""
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return len(text.encode("utf-8", "surrogatepass"))


def _name_of(dist: metadata.Distribution) -> str:
    """The distribution's ``Name`` header, read without ``dist.metadata``.

    Every installed distribution is looked at on every command; parsing each one's whole
    ``METADATA`` as an e-mail message (long descriptions included) was most of that cost.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    headers = text.split("\n\n", 1)[0]
    found = _NAME_HEADER.search(headers)
    return found.group(1).strip() if found else ""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _tail(output: str, limit: int = 2_000) -> str:
    return output[-limit:]
