"""``/plugins``: what is installed, what each job may do, and what the kernel enforces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from plugbox.host.api.auth import scope
from plugbox.host.api.deps import HostDep
from plugbox.host.api.errors import RequestError, responses
from plugbox.host.catalog import PluginDetail, PluginList, plugin_detail, plugin_list
from plugbox.host.services import Host, UnknownJobError
from plugbox.host.tokens import TokenInfo

router = APIRouter(tags=["plugins"], responses=responses(401, 403))
Reader = Annotated[TokenInfo, Depends(scope("read"))]


def broken(host: Host, plugin_id: str) -> RequestError | None:
    """PLUGIN_BROKEN for a plugin that failed to load, naming why; None if it did not fail."""
    for problem in host.problems:
        if problem.entry_point.name == plugin_id:
            return RequestError(
                409,
                "PLUGIN_BROKEN",
                f"plugin {plugin_id!r} failed to load and was skipped: {problem.reason}",
            )
    return None


@router.get("/plugins", operation_id="list_plugins")
def list_plugins(host: HostDep, _: Reader) -> PluginList:
    """Installed plugins, and those that failed to load with the reason."""
    return plugin_list(host)


@router.get("/plugins/{plugin_id}", operation_id="get_plugin", responses=responses(404, 409))
def get_plugin(plugin_id: str, host: HostDep, _: Reader) -> PluginDetail:
    """Declared, granted and effective permissions per job, kernel grants, enforcement levels."""
    try:
        plugin = host.plugin(plugin_id)
    except UnknownJobError:
        problem = broken(host, plugin_id)
        if problem is not None:
            raise problem from None
        raise
    return plugin_detail(host, plugin)
