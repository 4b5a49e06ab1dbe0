"""Operator configuration: real files in temporary directories, real environments passed in."""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from plugbox.host.config import (
    ENV_OVERRIDES,
    ConfigError,
    HostConfig,
    HttpConfig,
    JobOverride,
    PluginConfig,
    RetentionConfig,
    WebhookConfig,
    ensure_state_dir,
    load_config,
)
from plugbox.sdk.permissions import Permissions, Quotas, effective_policy

DOCS = Path(__file__).parents[3] / "docs" / "configuration.md"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory plugbox is started in (the default workspace)."""
    path = tmp_path / "ws"
    path.mkdir()
    monkeypatch.chdir(path)
    return path


@pytest.fixture
def env(home: Path, workspace: Path) -> dict[str, str]:
    return {"HOME": str(home)}


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write a config file (default: etc/plugbox.toml, outside the workspace)."""

    def write(text: str, name: str = "etc/plugbox.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


def problems_of(error: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    return {p.location: p.message for p in error.value.problems}


# -- location and defaults ----------------------------------------------------------------


def test_defaults_without_a_file(env: dict[str, str], home: Path, workspace: Path) -> None:
    config = load_config(env=env)
    state = home / ".local" / "state" / "plugbox"
    assert config.source is None
    assert config.state_dir == state
    assert config.database_url == f"sqlite:///{state}/plugbox.db"
    assert config.workspace == workspace
    assert config.workers == (os.cpu_count() or 1)
    assert config.host_id == socket.gethostname()
    assert (config.retention.days, config.retention.per_job) == (30, 1000)
    assert config.shutdown_grace_ms == 30_000
    assert config.disabled_plugins == ()
    assert config.plugins == {}
    assert config.jobs == {}


def test_xdg_state_home_is_used_when_absolute(
    env: dict[str, str], tmp_path: Path, home: Path
) -> None:
    assert load_config(env={**env, "XDG_STATE_HOME": str(tmp_path / "xdg")}).state_dir == (
        tmp_path / "xdg" / "plugbox"
    )
    # The XDG spec: a relative value is invalid and ignored.
    assert load_config(env={**env, "XDG_STATE_HOME": "rel"}).state_dir == (
        home / ".local" / "state" / "plugbox"
    )


def test_plugbox_toml_in_the_working_directory_is_found(
    env: dict[str, str], workspace: Path, tmp_path: Path
) -> None:
    (workspace / "plugbox.toml").write_text(f'workers = 3\nstate_dir = "{tmp_path / "s"}"\n')
    config = load_config(env=env)
    assert config.workers == 3
    assert config.source == workspace / "plugbox.toml"


def test_plugbox_config_names_the_file(
    env: dict[str, str], write: Callable[..., Path], workspace: Path
) -> None:
    (workspace / "plugbox.toml").write_text("workers = 3\n")
    named = write("workers = 5\n")
    config = load_config(env={**env, "PLUGBOX_CONFIG": str(named)})
    assert (config.workers, config.source) == (5, named)
    # An explicit path beats the variable.
    other = write("workers = 7\n", "other.toml")
    assert load_config(other, env={**env, "PLUGBOX_CONFIG": str(named)}).workers == 7


def test_a_named_file_that_is_missing_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="file not found") as error:
        load_config(env={**env, "PLUGBOX_CONFIG": str(missing)})
    assert str(missing) in str(error.value)


# -- every key ----------------------------------------------------------------------------

FULL = """
state_dir = "../state"
database_url = "sqlite:///db/runs.db"
workspace = "/srv/ws"
workers = 3
host_id = "box-1"
shutdown_grace = "1m30s"
disabled_plugins = ["legacy"]

[retention]
days = 7
per_job = 50

[plugins.example]
enabled = true

[plugins.example.permissions]
capabilities = ["shell"]
env = { allow = ["HOME"] }
net = { allow_hosts = ["api.example.com"] }
shell = { allow = ["git status"] }

[[plugins.example.permissions.fs]]
mode = "read"
allow = ["docs/**"]

[plugins.noisy]
enabled = false

[jobs."example:hello"]
enabled = false
schedule = "*/10 * * * * *"
timezone = "Europe/Berlin"
quotas = { timeout_ms = 5000, memory_mb = 128 }
"""


def test_every_key_is_parsed(env: dict[str, str], write: Callable[..., Path]) -> None:
    path = write(FULL)
    config = load_config(path, env=env)
    etc = path.parent
    assert config.state_dir == etc.parent / "state"
    assert config.database_url == f"sqlite:///{etc}/db/runs.db"
    assert config.workspace == Path("/srv/ws")
    assert (config.workers, config.host_id) == (3, "box-1")
    assert config.shutdown_grace_ms == 90_000
    assert (config.retention.days, config.retention.per_job) == (7, 50)
    assert config.disabled_plugins == ("legacy",)
    grant = config.plugins["example"].permissions
    assert grant is not None
    assert grant.fs[0].allow == ("docs/**",)
    assert grant.net.allow_hosts == ("api.example.com",)
    assert grant.shell.allow == ("git status",)
    override = config.jobs["example:hello"]
    assert override == JobOverride(
        enabled=False,
        schedule="*/10 * * * * *",
        timezone="Europe/Berlin",
        quotas=Quotas(timeout_ms=5000, memory_mb=128),
    )


def test_the_documented_example_loads(env: dict[str, str], write: Callable[..., Path]) -> None:
    example = re.search(r"```toml\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert example, "docs/configuration.md has a ```toml example"
    # The example's workspace is /srv/plugbox-workspace, so any state dir outside it will do.
    config = load_config(write(example.group(1)), env=env)
    assert config.jobs and config.plugins


def test_every_key_and_variable_is_documented() -> None:
    text = DOCS.read_text()
    keys = {
        "state_dir", "database_url", "workspace", "workers", "host_id", "shutdown_grace", "lease",
        "max_workers", "priority",
        "disabled_plugins", "plugin_paths", "retention", "days", "per_job", "plugins.<id>", "enabled",
        "run_uid", "http", "listen", "metrics_public", "webhooks", "url", "events", "secret_env",
        "timeout", "retry_for",
        "permissions", 'jobs."<plugin>:<job>"', "schedule", "timezone", "quotas", "config", "secrets",
    }  # fmt: skip
    for key in keys | set(ENV_OVERRIDES) | {"PLUGBOX_CONFIG"}:
        assert f"`{key}`" in text, f"{key} is not documented in docs/configuration.md"
    documented = {key.split(".")[0] for key in keys}
    for model in (
        HostConfig,
        RetentionConfig,
        HttpConfig,
        PluginConfig,
        JobOverride,
        WebhookConfig,
    ):
        for name, field in model.model_fields.items():
            assert (field.validation_alias or name) in documented | keys, name


# -- environment overrides ----------------------------------------------------------------


def test_environment_overrides_win(
    env: dict[str, str], write: Callable[..., Path], tmp_path: Path, workspace: Path
) -> None:
    path = write(FULL)
    config = load_config(
        path,
        env={
            **env,
            "PLUGBOX_STATE_DIR": "state-from-env",  # relative: to the working directory
            "PLUGBOX_DATABASE_URL": "sqlite:////var/lib/plugbox/runs.db",
            "PLUGBOX_WORKSPACE": str(tmp_path / "other-ws"),
            "PLUGBOX_WORKERS": "9",
            "PLUGBOX_HOST_ID": "replica-2",
            "PLUGBOX_RETENTION_DAYS": "3",
            "PLUGBOX_RETENTION_PER_JOB": "0",
            "PLUGBOX_SHUTDOWN_GRACE": "5s",
            "PLUGBOX_DISABLED_PLUGINS": " a, b ,,",
        },
    )
    assert config.state_dir == workspace / "state-from-env"
    assert config.database_url == "sqlite:////var/lib/plugbox/runs.db"
    assert config.workspace == tmp_path / "other-ws"
    assert (config.workers, config.host_id) == (9, "replica-2")
    assert (config.retention.days, config.retention.per_job) == (3, 0)
    assert config.shutdown_grace_ms == 5_000
    assert config.disabled_plugins == ("a", "b")


def test_empty_variables(env: dict[str, str], write: Callable[..., Path]) -> None:
    path = write(FULL)
    config = load_config(path, env={**env, "PLUGBOX_WORKERS": "", "PLUGBOX_DISABLED_PLUGINS": ""})
    assert config.workers == 3  # empty = unset
    assert config.disabled_plugins == ()  # set but empty = none disabled


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("PLUGBOX_WORKERS", "0", "greater than or equal to 1"),
        ("PLUGBOX_WORKERS", "many", "valid integer"),
        ("PLUGBOX_RETENTION_DAYS", "-1", "greater than or equal to 0"),
        ("PLUGBOX_RETENTION_PER_JOB", "ten", "valid integer"),
        ("PLUGBOX_SHUTDOWN_GRACE", "soon", "'10s'"),
        ("PLUGBOX_HOST_ID", "a b", "not a host id"),
        ("PLUGBOX_DISABLED_PLUGINS", "ok,Not OK", "not a plugin id"),
        ("PLUGBOX_DATABASE_URL", "mysql://x/y", "unsupported database"),
        ("PLUGBOX_DATABASE_URL", "not a url", "not a database URL"),
        ("PLUGBOX_DATABASE_URL", "postgresql+psycopg2://db/plugbox", "psycopg 3"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    env: dict[str, str], write: Callable[..., Path], variable: str, value: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(FULL), env={**env, variable: value})
    found = problems_of(error)
    assert list(found) == [f"environment variable {variable}"]
    assert reason in found[f"environment variable {variable}"]


def test_a_postgresql_url_is_kept_as_written(
    env: dict[str, str], write: Callable[..., Path]
) -> None:
    url = "postgresql://plugbox:hunter2@db.internal:5432/plugbox"
    assert load_config(write(FULL), env={**env, "PLUGBOX_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    "url", ["mysql://plugbox:hunter2@db/plugbox", "postgresql+pg8000://plugbox:hunter2@db/x"]
)
def test_a_refused_url_is_quoted_without_its_password(
    env: dict[str, str], write: Callable[..., Path], url: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(FULL), env={**env, "PLUGBOX_DATABASE_URL": url})
    assert "hunter2" not in str(error.value)
    assert "unsupported database" in str(error.value)


# -- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "location", "reason"),
    [
        ("workrs = 3", "workrs", "unknown key; did you mean 'workers'?"),
        ("[retention]\nday = 3", "retention.day", "did you mean 'days'?"),
        ("workers = 'four'", "workers", "valid integer, unable to parse string as an integer"),
        ("workers = 0", "workers", "greater than or equal to 1"),
        ("disabled_plugins = 'x'", "disabled_plugins", "valid tuple"),
        ("shutdown_grace = '10 parsecs'", "shutdown_grace", "write a number of milliseconds"),
        ('[jobs."example:hello"]\nschedule = "61 * * * *"', 'jobs."example:hello".schedule',
         "minute 61 is outside 0-59"),
        ('[jobs."example:hello"]\nschedule = "${MISSING}"', 'jobs."example:hello".schedule',
         "environment variable MISSING is not set"),
        ('[jobs."example:hello"]\ntimezone = "Mars/Olympus"', 'jobs."example:hello".timezone',
         "unknown time zone"),
        ('[jobs."example:hello"]\npaused = true', 'jobs."example:hello".paused', "unknown key"),
        ("[jobs.example]\nenabled = false", "jobs.example", '[jobs."example:hello"]'),
        ('[jobs."example:hello".quotas]\nmemory = 5', 'jobs."example:hello".quotas.memory',
         "unknown key"),
        ("[[plugins.example.permissions.fs]]\nmode = 'write'",
         "plugins.example.permissions.fs[0].mode", "'read' or 'readWrite', got 'write'"),
        ("[plugins.example.permissions]\nfilesystem = []",
         "plugins.example.permissions.filesystem", "unknown key"),
        ("[plugins.example.permissions.net]\nallow_hosts = ['*']",
         "plugins.example.permissions.net.allow_hosts", "'*'"),
        ("[plugins.example.permissions]\nshell = { allow = ['git status'] }",
         "plugins.example.permissions.shell.allow", "capabilities=['shell']"),
        ("[plugins.Example]\nenabled = false", 'plugins.Example', "not a plugin id"),
        ("[plugins.example]\nenabled = 'yes please'", "plugins.example.enabled", "valid boolean"),
        ("database_url = 'sqlite:///file:x.db?mode=ro&uri=true'", "database_url", "URI"),
    ],
)  # fmt: skip
def test_a_bad_key_is_named_with_the_file(
    env: dict[str, str], write: Callable[..., Path], text: str, location: str, reason: str
) -> None:
    path = write(text + "\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env=env)
    assert isinstance(error.value, ValueError)
    assert error.value.source == path
    assert str(path) in str(error.value)
    found = problems_of(error)
    assert location in found, found
    assert reason in found[location]
    assert f"  - {location}: " in str(error.value)


def test_toml_syntax_error_names_line_and_column(
    env: dict[str, str], write: Callable[..., Path]
) -> None:
    path = write('workers = 2\nstate_dir = "/x\nhost_id = "a"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, env=env)
    message = str(error.value)
    assert str(path) in message
    assert "line 2, column " in message
    assert "not valid TOML" in message


def test_every_problem_is_listed_at_once(env: dict[str, str], write: Callable[..., Path]) -> None:
    path = write("workers = 0\nhost_id = ''\ncolour = 1\n[retention]\ndays = -1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={**env, "PLUGBOX_SHUTDOWN_GRACE": "never"})
    assert set(problems_of(error)) == {
        "workers",
        "host_id",
        "colour",
        "retention.days",
        "environment variable PLUGBOX_SHUTDOWN_GRACE",
    }
    assert "(5 problems)" in str(error.value)


def test_schedule_may_use_environment_variables(
    env: dict[str, str], write: Callable[..., Path]
) -> None:
    path = write('[jobs."example:hello"]\nschedule = "${HELLO_CRON}"\n')
    config = load_config(path, env={**env, "HELLO_CRON": "*/5 * * * *"})
    override = config.job_override("example", "hello")
    assert override is not None
    assert override.schedule == "${HELLO_CRON}"  # kept as written; the scheduler substitutes


# -- paths and the state directory --------------------------------------------------------


def test_relative_paths_are_relative_to_the_file(
    env: dict[str, str], write: Callable[..., Path], workspace: Path
) -> None:
    path = write('state_dir = "state"\nworkspace = "../ws2"\n', "conf/deep/plugbox.toml")
    config = load_config(path, env=env)
    assert config.state_dir == path.parent / "state"
    assert config.workspace == path.parent.parent / "ws2"
    assert config.database_url == f"sqlite:///{path.parent / 'state' / 'plugbox.db'}"
    assert Path.cwd() == workspace  # and not relative to where plugbox was started


def test_home_is_expanded(env: dict[str, str], write: Callable[..., Path], home: Path) -> None:
    config = load_config(write('state_dir = "~/pb"\n'), env=env)
    assert config.state_dir == home / "pb"


def test_state_dir_inside_the_workspace_is_refused(
    env: dict[str, str], write: Callable[..., Path], workspace: Path
) -> None:
    path = write(f'state_dir = "{workspace / ".plugbox-state"}"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, env=env)
    assert "inside the workspace" in problems_of(error)["state_dir"]
    # The same from the environment names the variable.
    with pytest.raises(ConfigError) as error:
        load_config(env={**env, "PLUGBOX_STATE_DIR": str(workspace)})
    assert "inside the workspace" in problems_of(error)["environment variable PLUGBOX_STATE_DIR"]


def test_state_dir_reaching_into_the_workspace_through_a_symlink_is_refused(
    env: dict[str, str], write: Callable[..., Path], workspace: Path, tmp_path: Path
) -> None:
    (workspace / "hidden").mkdir()
    (tmp_path / "innocent").symlink_to(workspace / "hidden")
    with pytest.raises(ConfigError, match="inside the workspace"):
        load_config(write(f'state_dir = "{tmp_path / "innocent"}"\n'), env=env)


def test_default_state_dir_inside_the_workspace_says_it_is_the_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(home)  # plugbox started in $HOME: ~/.local/state is in the workspace
    with pytest.raises(ConfigError, match=r"\(the default\) is inside the workspace"):
        load_config(env={"HOME": str(home)})


def test_sqlite_database_inside_the_workspace_is_refused(
    env: dict[str, str], write: Callable[..., Path], workspace: Path
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(f'database_url = "sqlite:///{workspace}/runs.db"\n'), env=env)
    assert "inside the workspace" in problems_of(error)["database_url"]


def test_ensure_state_dir_creates_a_private_directory(env: dict[str, str], tmp_path: Path) -> None:
    config = load_config(env={**env, "PLUGBOX_STATE_DIR": str(tmp_path / "a" / "state")})
    created = ensure_state_dir(config)
    assert created == tmp_path / "a" / "state"
    assert stat.S_IMODE(created.stat().st_mode) == 0o700
    created.chmod(0o755)  # an existing directory others can enter is tightened
    ensure_state_dir(config)
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


# -- helpers the host uses ----------------------------------------------------------------


def test_plugin_enabled(env: dict[str, str], write: Callable[..., Path]) -> None:
    text = FULL.replace("[plugins.example]\nenabled = true", "[plugins.legacy]\nenabled = true")
    config = load_config(write(text), env=env)
    assert config.plugin_enabled("example")  # not mentioned in an enabled table
    assert config.plugin_enabled("unknown")  # not mentioned at all
    assert not config.plugin_enabled("noisy")  # enabled = false
    assert not config.plugin_enabled("legacy")  # disabled_plugins wins over enabled = true


def test_grants_narrow_the_declared_permissions(
    env: dict[str, str], write: Callable[..., Path]
) -> None:
    config = load_config(write(FULL), env=env)
    assert config.grants_for("other") == ()
    assert config.grants_for("noisy") == ()  # a table without permissions narrows nothing
    (grant,) = config.grants_for("example")
    declared = Permissions.model_validate(
        {"fs": {"mode": "readWrite", "allow": ["**"]}, "net": {"allow_hosts": ["*.example.com"]}}
    )
    policy = effective_policy(declared, *config.grants_for("example"))
    assert policy.decide("fs.read", "docs/a.md").allowed
    assert not policy.decide("fs.read", "src/a.py").allowed
    assert not policy.decide("fs.write", "docs/a.md").allowed  # the grant is read-only
    assert policy.decide("net.connect", "api.example.com").allowed
    assert not policy.decide("net.connect", "www.example.com").allowed
    assert grant.capabilities == ("shell",)


def test_job_override(env: dict[str, str], write: Callable[..., Path]) -> None:
    config = load_config(write(FULL), env=env)
    assert config.job_override("example", "other") is None
    override = config.job_override("example", "hello")
    assert override is not None
    assert override.enabled is False
    declared = Quotas(timeout_ms=60_000, cpu_ms=1_000)
    assert override.merged_quotas(declared) == Quotas(timeout_ms=5000, memory_mb=128, cpu_ms=1_000)
    assert JobOverride().merged_quotas(declared) == declared


def test_config_is_frozen(env: dict[str, str], write: Callable[..., Path]) -> None:
    config = load_config(write(FULL), env=env)
    with pytest.raises(ValidationError):
        config.workers = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.jobs["x:y"] = JobOverride()  # type: ignore[index]
