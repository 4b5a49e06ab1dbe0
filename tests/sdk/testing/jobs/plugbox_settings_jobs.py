"""Jobs that use operator settings: config with a model, a secret, rules bound to config."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from plugbox.sdk import JobContext, define_manifest, job
from plugbox.sdk import permissions as perms


class Settings(BaseModel):
    api_url: str
    export_dir: str = "exports"
    limit: int = 3


@job(
    "leaky",
    config=Settings,
    secrets=["API_TOKEN"],
    permissions=perms.Permissions(
        net=perms.NetPermissions(allow_hosts_from=["api_url"]),
        fs=perms.FsPermissions(mode="readWrite", allow_from=["export_dir"]),
    ),
)
def leaky(ctx: JobContext) -> dict[str, Any]:
    """Puts its token everywhere a run's text is kept, as careless code would."""
    token = ctx.secrets.get("API_TOKEN")
    ctx.logger.info(f"token is {token}", token=token, nested={"t": [token]})
    ctx.emit("token.seen", {token: token, "quoted": quote(token, safe="")})
    print("stdout", token, base64.b64encode(token.encode()).decode())  # noqa: T201
    response = ctx.runtime.net.get(f"{ctx.config['api_url']}/x?token={token}")
    ctx.runtime.fs.mkdir(ctx.config["export_dir"], parents=True, exist_ok=True)
    ctx.runtime.fs.write_text(f"{ctx.config['export_dir']}/out.txt", response.text)
    if ctx.config["limit"] == 0:
        raise RuntimeError(f"failed with {token}")
    return {"token": token, "body": response.text, "limit": ctx.config["limit"]}


@job("undeclared", secrets=["API_TOKEN"])
def undeclared(ctx: JobContext) -> str:
    """Asks for a secret its manifest does not declare."""
    return ctx.secrets.get("OTHER")


manifest = define_manifest(
    id="settings", version="0.1.0", name="Settings", jobs=[leaky, undeclared]
)
