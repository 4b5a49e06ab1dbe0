"""What this machine can enforce, layer by layer and per capability — the data behind ``plugbox doctor``.

Every probe runs in a throw-away child, so asking never confines the caller. ``python -m
plugbox.sandbox.doctor [--json]`` prints the report; the host CLI shows the same report.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass

from plugbox.sandbox._openat2 import openat2_available
from plugbox.sandbox.kernel import LayerStatus, mount_view, probe_all
from plugbox.sandbox.kernel.namespaces import in_forked_child
from plugbox.sandbox.kernel.pid_namespace import PidNamespaces
from plugbox.sandbox.limits.cgroup_probe import cgroup_support, favors_dynamic_moves
from plugbox.sandbox.outcome import Level, capability_levels
from plugbox.sandbox.run_identity import RunIdentity
from plugbox.sandbox.spawn_spec import code_paths


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Layers found on this machine and the level each capability gets from them."""

    system: str
    layers: tuple[LayerStatus, ...]
    capabilities: dict[str, Level]
    hints: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "system": self.system,
                "layers": [asdict(layer) for layer in self.layers],
                "capabilities": self.capabilities,
                "hints": list(self.hints),
            },
            indent=2,
        )

    def to_text(self) -> str:
        lines = [f"plugbox doctor — {self.system}", "", "layers:"]
        for layer in self.layers:
            mark = "ok " if layer.active else "-- "
            lines.append(f"  {mark}{layer.name:<18} {layer.detail}")
        lines += [
            "",
            "capabilities (kernel = the OS refuses; best-effort = watched; advisory = proxies only):",
        ]
        lines += [f"  {name:<10} {level}" for name, level in self.capabilities.items()]
        missing = [layer for layer in self.layers if not layer.active]
        if missing:
            lines += [
                "",
                "runs still work; the layers marked -- are skipped and every run record says so.",
            ]
        if self.hints:
            lines += ["", "hints (speed, not safety):"]
            lines += [f"  - {hint}" for hint in self.hints]
        return "\n".join(lines)


def _probe_pid_namespace() -> LayerStatus:
    def trial() -> str:
        namespaces = PidNamespaces.open()
        if not namespaces.active:
            raise OSError(namespaces.reason)
        return "each run is pid 1 of its own PID namespace: no other process exists for it"

    ok, detail = in_forked_child(trial)
    if not ok:
        detail = (
            f"no PID namespace per run ({detail.removeprefix('OSError: ')}); seccomp still "
            "refuses every call that names another process, Landlock every signal to one"
        )
    return LayerStatus("pid namespace", ok, detail)


def _run_uid() -> LayerStatus:
    """Whether a root host's jobs can leave uid 0 for the run uid (run_identity.py).

    Decided as a zygote decides: in a throw-away child that opens the way to the installed code
    in a private mount view (kernel/mount_view.py), then looks at the paths in that view.
    """
    identity = RunIdentity.for_this_host()
    if identity is None:
        return LayerStatus(
            "run uid",
            False,
            "jobs run as this host's own user: it is not root, so there is no other uid to give "
            "them (run the host as root for a dedicated run uid)",
        )
    paths = code_paths()

    def trial() -> str:
        view = mount_view.enter(identity, paths)
        blocked = identity.unreachable(paths)
        if blocked is not None:
            raise PermissionError(f"{blocked} ({view.problem})" if view.problem else blocked)
        return ", ".join(view.covered)

    ok, detail = in_forked_child(trial)
    if ok:
        opened = (
            f"; the sandbox's private mount view lets it pass {detail} (search only, never list)"
            if detail
            else ""
        )
        return LayerStatus(
            "run uid",
            True,
            f"jobs run as uid {identity.uid}, not as root (where their workspace is readable "
            f"too){opened}",
        )
    return LayerStatus(
        "run uid",
        False,
        f"jobs run as uid 0 with no capability: {detail.removeprefix('PermissionError: ')}; let "
        "other users read it (chmod o+rx) or install Python and the plugins where they can",
    )


def diagnose() -> DoctorReport:
    layers = list(probe_all())
    layers.append(_probe_pid_namespace())
    layers.append(_run_uid())
    cgroups = cgroup_support()
    layers.append(LayerStatus("cgroups", cgroups.version is not None, cgroups.detail))
    layers.append(
        LayerStatus(
            "openat2",
            openat2_available(),
            "race-free opens beneath the workspace"
            if openat2_available()
            else "per-component O_NOFOLLOW walk",
        )
    )
    active = {layer.name: layer.active for layer in layers}
    has_cgroups = cgroups.version is not None
    capabilities = capability_levels(
        landlock=active.get("landlock", False),
        netns=active.get("network namespace", False),
        seccomp=active.get("seccomp", False),
        cgroup_memory=has_cgroups and cgroups.memory,
        cgroup_pids=has_cgroups and cgroups.pids,
    )
    system = f"{platform.system()} {platform.release()} ({platform.machine()}), Python {platform.python_version()}"
    hints = []
    if has_cgroups and not favors_dynamic_moves():
        hints.append(
            "no cgroup hierarchy is mounted with favordynmods: moving a run into its cgroup "
            "sometimes waits for an RCU grace period (the p99 of a run's latency, ~10 ms); "
            "on Linux 6.0+ `mount -o remount,favordynmods /sys/fs/cgroup` (or the cgroup2 "
            "mount point) removes the wait at a small cost to every fork"
        )
    return DoctorReport(system, tuple(layers), capabilities, tuple(hints))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    report = diagnose()
    sys.stdout.write((report.to_json() if "--json" in args else report.to_text()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
