"""What every route reads from the app: the host's services and the running host's operations.

Both are ``async``: a plain ``def`` dependency costs a trip through the thread pool on every
request, for an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from plugbox.host.operations import Operations
from plugbox.host.services import Host


async def _host(request: Request) -> Host:
    host: Host = request.app.state.host
    return host


async def _operations(request: Request) -> Operations:
    operations: Operations = request.app.state.operations
    return operations


HostDep = Annotated[Host, Depends(_host)]
OperationsDep = Annotated[Operations, Depends(_operations)]
