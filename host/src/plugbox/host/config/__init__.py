"""Operator configuration: ``plugbox.toml`` plus ``PLUGBOX_*`` environment overrides.

See docs/configuration.md for where the file is looked for and every key it may hold.
``load_config()`` returns a frozen :class:`HostConfig` or raises :class:`ConfigError` listing every
problem, each naming its key.
"""

from plugbox.host.config.load import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    ENV_OVERRIDES,
    ConfigError,
    find_config,
    load_config,
)
from plugbox.host.config.models import (
    HostConfig,
    HttpConfig,
    JobOverride,
    PluginConfig,
    RetentionConfig,
)
from plugbox.host.config.state import ensure_state_dir, is_inside
from plugbox.host.config.webhooks import WebhookConfig, WebhookEvent

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
