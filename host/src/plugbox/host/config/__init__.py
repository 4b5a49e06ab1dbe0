"""Operator configuration: ``plugbox.toml`` plus ``PLUGBOX_*`` environment overrides.

See docs/configuration.md for where the file is looked for and every key it may hold.
``load_config()`` returns a frozen :class:`HostConfig` or raises :class:`ConfigError` listing every
problem, each naming its key.

The names below are loaded on first use (PEP 562): importing a light submodule such as
:mod:`plugbox.host.config.sources` runs this file, and must not cost it the pydantic models
and the SDK (``plugbox runs list`` reads the run store's location that way).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugbox.host.config.load import ConfigError, load_config
    from plugbox.host.config.models import (
        HostConfig,
        HttpConfig,
        JobOverride,
        PluginConfig,
        RetentionConfig,
    )
    from plugbox.host.config.sources import (
        CONFIG_ENV,
        DEFAULT_CONFIG_NAME,
        ENV_OVERRIDES,
        find_config,
    )
    from plugbox.host.config.state import ensure_state_dir, is_inside
    from plugbox.host.config.webhooks import WebhookConfig, WebhookEvent

_HOMES = {
    "CONFIG_ENV": "sources",
    "DEFAULT_CONFIG_NAME": "sources",
    "ENV_OVERRIDES": "sources",
    "ConfigError": "load",
    "HostConfig": "models",
    "HttpConfig": "models",
    "JobOverride": "models",
    "PluginConfig": "models",
    "RetentionConfig": "models",
    "WebhookConfig": "webhooks",
    "WebhookEvent": "webhooks",
    "ensure_state_dir": "state",
    "find_config": "sources",
    "is_inside": "state",
    "load_config": "load",
}

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "ENV_OVERRIDES",
    "ConfigError",
    "HostConfig",
    "HttpConfig",
    "JobOverride",
    "PluginConfig",
    "RetentionConfig",
    "WebhookConfig",
    "WebhookEvent",
    "ensure_state_dir",
    "find_config",
    "is_inside",
    "load_config",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
