"""What ``plugbox plugins inspect`` shows of a job's operator settings: config, bindings, secrets.

Declared next to effective, and for every rule bound to config the value it resolves to now (or
the key still to set), so a reviewer sees both what the plugin asks for and what this host's
``plugbox.toml`` makes of it. Secret *sources* are shown, never values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugbox.host.plugin_settings import job_settings
from plugbox.sandbox.request import run_permissions
from plugbox.sdk.job_config import config_problems, effective_config
from plugbox.sdk.permissions.bindings import bindings_of, resolve_bindings

if TYPE_CHECKING:
    from plugbox.host.config import HostConfig
    from plugbox.sdk import Manifest


def settings_view(config: HostConfig, manifest: Manifest, job_id: str) -> dict[str, Any]:
    """The job's config (declared, set by the operator, effective), bindings and secrets."""
    spec = manifest.job(job_id)
    settings = job_settings(config, manifest, job_id)
    declared = run_permissions(manifest, job_id)
    resolved = resolve_bindings(declared, settings.config)
    plugin = config.plugins.get(manifest.id)
    sources = plugin.secrets if plugin is not None else {}
    problems = [
        str(p)
        for p in config_problems(spec, settings.config, lambda k: settings.locate("config", k))
    ]
    return {
        "config": {
            "declared": spec.config,
            "schema": spec.config_schema is not None,
            "operator": settings.config,
            "effective": effective_config(spec, settings.config),
        },
        "bindings": [
            {
                "rule": binding.label,
                "key": binding.key,
                "value": resolved.values.get(binding.label),
                "set_in": settings.locate("config", binding.key),
                "problem": resolved.invalid.get(binding.key)
                or ("not set: the job does not run" if binding.key in resolved.missing else None),
            }
            for binding in bindings_of(declared)
        ],
        "secrets": [
            {
                "name": name,
                "source": sources[name].describe() if name in sources else None,
                "set_in": settings.locate("secrets", name),
            }
            for name in manifest.secret_names(job_id)
        ],
        "problems": problems,
    }


def settings_lines(view: dict[str, Any]) -> list[tuple[str, str]]:
    """The view as (field, text) rows for the terminal."""
    from plugbox.host.cli_text import dumps

    conf = view["config"]
    if not (conf["declared"] or conf["operator"] or view["bindings"] or view["secrets"]):
        return []
    rows = [
        ("config declared", dumps(conf["declared"], indent=1)),
        ("config set by the operator", dumps(conf["operator"], indent=1)),
        ("config in effect", dumps(conf["effective"], indent=1)),
    ]
    for binding in view["bindings"]:
        value = binding["value"] or f"— {binding['problem']}; set {binding['set_in']}"
        rows.append((binding["rule"], value))
    for secret in view["secrets"]:
        source = secret["source"] or f"not provided; set {secret['set_in']}"
        rows.append((f"secret {secret['name']}", source))
    rows += [("problem", problem) for problem in view["problems"]]
    return rows
