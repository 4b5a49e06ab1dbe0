"""API tokens: named bearer secrets with nested scopes, stored as hashes in the state directory.

A token is shown once, when ``plugbox tokens create`` makes it; the host keeps only its SHA-256
in ``<state_dir>/tokens.json`` (mode 0600, in the 0700 state directory). A plain hash, not a slow
password hash, is enough: the secret is 256 random bits, so there is nothing to guess and nothing
a slow hash would protect. Looking a token up hashes what was presented and compares it with
*every* stored hash with :func:`hmac.compare_digest`, so neither the comparison nor the loop
ends early on a near match.

Scopes nest: ``read`` < ``trigger`` < ``admin``. A token holds the scopes it was given, and a
scope lets it do what every lower one does.

The file is shared between processes (``plugbox tokens create`` while ``plugbox serve`` runs):
every change is a read-modify-write under an exclusive ``flock`` on ``tokens.lock``, written to a
temporary file and renamed over the old one, and a reader re-reads the file when its identity
(inode, size, mtime) changed, so a revoked token stops working at its next request.
"""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Scope = Literal["read", "trigger", "admin"]
#: Lowest first: each scope includes every one before it.
SCOPES: tuple[Scope, ...] = ("read", "trigger", "admin")
TOKENS_FILE = "tokens.json"
_LOCK_FILE = "tokens.lock"
_PREFIX = "pbx_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: ``last_used_at`` is written at most this often per token: one file write per request would
#: make every API call a disk write, and "last used" is for people, who read it in minutes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token operation that cannot be done as asked (bad name, taken name, unknown name)."""


class TokenInfo(BaseModel):
    """What may be shown about a token: everything but its secret and hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    scopes: tuple[Scope, ...] = Field(description="as given at creation; higher ones include lower")
    created_at: datetime
    last_used_at: datetime | None = Field(
        default=None, description=f"to within {int(LAST_USED_RESOLUTION.total_seconds())} s"
    )

    def allows(self, scope: Scope) -> bool:
        """Whether this token may do what ``scope`` allows (scopes nest)."""
        return any(SCOPES.index(held) >= SCOPES.index(scope) for held in self.scopes)


class _Stored(TokenInfo):
    sha256: str


_FILE = TypeAdapter(list[_Stored])


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """``"read,trigger"`` as scopes, in nesting order; :class:`TokenError` names a bad one."""
    given = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in given if part not in SCOPES]
    if unknown or not given:
        what = f"unknown scope {', '.join(map(repr, unknown))}" if unknown else "no scope given"
        raise TokenError(f"{what}; scopes are {', '.join(SCOPES)}, comma-separated")
    return tuple(scope for scope in SCOPES if scope in given)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """The tokens of one state directory. Safe to share between threads and processes."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / TOKENS_FILE
        self._lock_path = state_dir / _LOCK_FILE
        self._mutex = threading.Lock()
        self._cached: tuple[tuple[int, int, int] | None, builtins.list[_Stored]] = (None, [])

    # -- reading --------------------------------------------------------------------------------
    def _identity(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def _load(self) -> builtins.list[_Stored]:
        with self._mutex:
            identity = self._identity()
            if identity is None:
                self._cached = (None, [])
            elif identity != self._cached[0]:
                self._cached = (identity, _FILE.validate_json(self.path.read_bytes()))
            return self._cached[1]

    def list(self) -> list[TokenInfo]:
        """Every token, oldest first, without secrets."""
        return [TokenInfo(**t.model_dump(exclude={"sha256"})) for t in self._load()]

    def exists(self) -> bool:
        return bool(self._load())

    # -- changing -------------------------------------------------------------------------------
    @contextmanager
    def _changing(self) -> Iterator[builtins.list[_Stored]]:
        """The stored tokens to edit in place, written back atomically on a clean exit."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            tokens = list(self._load())
            yield tokens
            data = _FILE.dump_json(tokens, indent=2)
            temporary = self.path.with_suffix(".tmp")
            out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        finally:
            os.close(fd)  # closing releases the flock

    def create(self, name: str, scopes: tuple[Scope, ...]) -> tuple[TokenInfo, str]:
        """A new token and its secret, which is not kept: the caller shows it once."""
        if not _NAME.fullmatch(name):
            raise TokenError(
                f"{name!r} is not a token name: use letters, digits, '.', '_' and '-',"
                " starting with a letter or digit, at most 64 characters"
            )
        if not scopes:
            raise TokenError("a token needs at least one scope (read, trigger, admin)")
        secret = _PREFIX + secrets.token_urlsafe(32)
        with self._changing() as tokens:
            if any(t.name == name for t in tokens):
                raise TokenError(
                    f"a token named {name!r} exists; revoke it first"
                    f" (plugbox tokens revoke {name}) or choose another name"
                )
            stored = _Stored(
                name=name, scopes=scopes, created_at=datetime.now(UTC), sha256=_digest(secret)
            )
            tokens.append(stored)
        return TokenInfo(**stored.model_dump(exclude={"sha256"})), secret

    def revoke(self, name: str) -> None:
        """Remove ``name``; it stops working at its next request, even in a running serve."""
        with self._changing() as tokens:
            kept = [t for t in tokens if t.name != name]
            if len(kept) == len(tokens):
                known = ", ".join(t.name for t in tokens) or "none"
                raise TokenError(f"no token named {name!r}; tokens: {known}")
            tokens[:] = kept

    def authenticate(self, secret: str) -> TokenInfo | None:
        """The token whose secret this is, or ``None``; records when it was last used."""
        presented = _digest(secret)
        found: _Stored | None = None
        for token in self._load():  # no early exit: the time taken does not depend on which
            if hmac.compare_digest(presented, token.sha256):
                found = token
        if found is None:
            return None
        now = datetime.now(UTC)
        if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
            self._touch(found.name, now)
        return TokenInfo(**found.model_dump(exclude={"sha256", "last_used_at"}), last_used_at=now)

    def _touch(self, name: str, when: datetime) -> None:
        with self._changing() as tokens:
            for n, token in enumerate(tokens):
                if token.name == name:
                    tokens[n] = token.model_copy(update={"last_used_at": when})
