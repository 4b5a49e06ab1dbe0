"""Permissions: what a job may touch. Default deny; deny always beats allow.

Import as ``from plugbox.sdk import permissions as perms`` and write
``perms.combine(perms.presets.plugin_workspace("x"), perms.Permissions(quotas=perms.Quotas(...)))``.
"""

from plugbox.sdk.permissions import presets
from plugbox.sdk.permissions.combine import as_permissions, combine
from plugbox.sdk.permissions.decide import (
    OPERATIONS,
    Decider,
    Decision,
    LayeredPolicy,
    Operation,
    Policy,
    compile_policy,
    decide,
    effective_policy,
)
from plugbox.sdk.permissions.lint import lint_permissions
from plugbox.sdk.permissions.models import (
    KNOWN_CAPABILITIES,
    EnvPermissions,
    FsMode,
    FsPermissions,
    NetPermissions,
    Permissions,
    Quotas,
    ShellPermissions,
)

__all__ = [
    "KNOWN_CAPABILITIES",
    "OPERATIONS",
    "Decider",
    "Decision",
    "EnvPermissions",
    "FsMode",
    "FsPermissions",
    "LayeredPolicy",
    "NetPermissions",
    "Operation",
    "Permissions",
    "Policy",
    "Quotas",
    "ShellPermissions",
    "as_permissions",
    "combine",
    "compile_policy",
    "decide",
    "effective_policy",
    "lint_permissions",
    "presets",
]
