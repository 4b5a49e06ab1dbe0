"""Bearer tokens and scopes as FastAPI dependencies: ``Depends(scope("trigger"))``.

401 when the request has no token or one that is not known; 403 when the token is known but lacks
the scope. The comparison is in :meth:`plugbox.host.tokens.TokenStore.authenticate`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plugbox.host.api.errors import RequestError
from plugbox.host.tokens import Scope, TokenInfo, TokenStore

_bearer = HTTPBearer(auto_error=False, description="a token from `plugbox tokens create`")


def scope(needed: Scope) -> Callable[..., Awaitable[TokenInfo]]:
    """A dependency that answers 401/403 unless the request's token holds ``needed``."""

    # async: as a plain def, FastAPI would send every request through the thread pool for a
    # hash and a stat of the token file. Blocking briefly is accepted: the file is local, and it
    # is written (under its lock) at most once a minute per token, for "last used" (ADR 0031).
    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> TokenInfo:
        if credentials is None:
            raise RequestError(
                401,
                "UNAUTHORIZED",
                "this endpoint needs a token: send 'Authorization: Bearer <token>'"
                " (make one with `plugbox tokens create NAME --scopes read`)",
            )
        store: TokenStore = request.app.state.tokens
        token = store.authenticate(credentials.credentials)
        if token is None:
            raise RequestError(
                401,
                "UNAUTHORIZED",
                "the token is not known (revoked, or from another host); `plugbox tokens list`"
                " shows the tokens this host accepts",
            )
        if not token.allows(needed):
            raise RequestError(
                403,
                "FORBIDDEN",
                f"token {token.name!r} has scopes {', '.join(token.scopes)}; this needs"
                f" {needed!r}. Create a token with it: plugbox tokens create NAME --scopes {needed}",
            )
        return token

    return check
