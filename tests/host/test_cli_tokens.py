"""``plugbox tokens``: created once, listed without secrets, revoked; only hashes on disk."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from tests.host.test_cli import plugbox

from plugbox.host.tokens import TokenStore


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "workspace").mkdir()
    path = tmp_path / "plugbox.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\nworkspace = "{tmp_path / "workspace"}"\n')
    return path


def test_create_list_revoke(config: Path) -> None:
    created = plugbox(config, "tokens", "create", "ci-bot", "--scopes", "trigger,read")
    secret = created.stdout.strip()
    assert secret.startswith("pbx_") and len(secret) > 40
    assert "shown only now" in created.stderr
    state = config.parent / "state"
    stored = (state / "tokens.json").read_text()
    assert secret not in stored  # only the hash is kept
    assert stat.S_IMODE((state / "tokens.json").stat().st_mode) == 0o600

    listed = json.loads(plugbox(config, "tokens", "list", "--json").stdout)["tokens"]
    assert [(t["name"], t["scopes"], t["last_used_at"]) for t in listed] == [
        ("ci-bot", ["read", "trigger"], None)
    ]
    assert secret not in json.dumps(listed) and "sha256" not in json.dumps(listed)
    assert "ci-bot" in plugbox(config, "tokens", "list").stdout

    info = TokenStore(state).authenticate(secret)
    assert info is not None and info.allows("trigger") and not info.allows("admin")
    assert TokenStore(state).authenticate(secret[:-1] + "x") is None
    relisted = json.loads(plugbox(config, "tokens", "list", "--json").stdout)["tokens"]
    assert relisted[0]["last_used_at"] is not None

    plugbox(config, "tokens", "revoke", "ci-bot")
    assert TokenStore(state).authenticate(secret) is None
    assert json.loads(plugbox(config, "tokens", "list", "--json").stdout) == {"tokens": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "x", "--scopes", "read,root"], "unknown scope 'root'"),
        (["create", "bad name"], "is not a token name"),
        (["revoke", "nobody"], "no token named 'nobody'"),
    ],
)
def test_bad_input_is_explained(config: Path, args: list[str], message: str) -> None:
    out = plugbox(config, "tokens", *args, check=False)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_name_is_taken_once(config: Path) -> None:
    plugbox(config, "tokens", "create", "ops", "--scopes", "admin")
    out = plugbox(config, "tokens", "create", "ops", check=False)
    assert out.returncode == 2 and "exists; revoke it first" in out.stderr


def test_scopes_nest(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    admin = store.create("a", ("admin",))[0]
    read = store.create("r", ("read",))[0]
    assert all(admin.allows(s) for s in ("read", "trigger", "admin"))
    assert read.allows("read") and not read.allows("trigger")
