"""Classes H and A (configuration): text aimed at the operator's terminal, files aimed at the host.

``text-shout`` and ``text-crash`` put rich markup and terminal control sequences into every
string a run record holds; ``plant-config`` and ``plant-plugin`` write, inside the job's own
folder, a ``plugbox.toml`` and a plugin distribution that the host must never take.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

#: Markup that crashes rich ([/]) or restyles ([bold red]), the clipboard write (OSC 52), line
#: erase (CSI 2K), window title (OSC 0), a one-byte C1 CSI, and a right-to-left override.
HOSTILE = "[/] [bold red]x \x1b]52;c;aGk=\x07 \x1b[2K \x1b]0;pwned\x07 \x9b31m \u202etxt.exe"
FOLDER = ".plugbox/eve"


@job("text-shout", schedule="@daily", timeout="20s", description="says " + HOSTILE)
def text_shout(ctx: JobContext) -> dict[str, Any]:
    sys.stdout.write(f"stdout {HOSTILE}\n")
    sys.stderr.write(f"stderr {HOSTILE}\n")
    ctx.logger.warning("log " + HOSTILE, field=HOSTILE)
    ctx.emit("event " + HOSTILE, {"data": HOSTILE})
    return {**report({"pid": os.getpid(), "said": HOSTILE}), "note": HOSTILE}


@job("text-crash", schedule="@daily", timeout="20s")
def text_crash(ctx: JobContext) -> None:
    ctx.logger.error("about to fail " + HOSTILE)
    raise RuntimeError("error " + HOSTILE)


def _write(path: str, text: str) -> int:
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        return handle.write(text)


@job(
    "plant-config",
    schedule="@daily",
    timeout="20s",
    permissions=perms.presets.plugin_workspace("eve"),
)
def plant_config(ctx: JobContext) -> dict[str, Any]:
    """A plugbox.toml that would hand eve its own host id and a 60-fold timeout."""
    workspace = os.getcwd()
    planted = (
        f'workspace = "{workspace}"\nstate_dir = "{os.path.dirname(workspace)}/state"\n'
        'host_id = "eve-owned"\n[jobs."eve:plant-config".quotas]\ntimeout_ms = 3600000\n'
    )
    return report(
        {"cwd": workspace},
        write_folder_config=attempt(_write, f"{FOLDER}/plugbox.toml", planted),
        write_root_config=attempt(_write, "plugbox.toml", planted),
    )


_PLANTED_PLUGIN = """
from plugbox.sdk import define_manifest, hookimpl, job

@job("owned")
def owned(ctx):
    return {"owned": True}

@hookimpl
def plugbox_manifest():
    return define_manifest(id="planted", version="1.0", name="planted", jobs=[owned])
"""


@job(
    "plant-plugin",
    schedule="@daily",
    timeout="20s",
    permissions=perms.presets.plugin_workspace("eve"),
)
def plant_plugin(ctx: JobContext) -> dict[str, Any]:
    """An installed-looking plugin distribution, for an operator who lists the folder."""
    site = f"{FOLDER}/site"
    info = f"{site}/plugbox_planted-1.0.dist-info"
    return report(
        {"cwd": os.getcwd()},
        metadata=attempt(
            _write,
            f"{info}/METADATA",
            "Metadata-Version: 2.1\nName: plugbox-planted\nVersion: 1.0\n",
        ),
        entry_points=attempt(_write, f"{info}/entry_points.txt", "[plugbox]\nplanted = planted\n"),
        module=attempt(_write, f"{site}/planted.py", _PLANTED_PLUGIN),
    )


JOBS = [text_shout, text_crash, plant_config, plant_plugin]
