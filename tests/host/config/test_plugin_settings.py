"""``[plugins.ID.config]``, ``[jobs.X.config]`` and ``[plugins.ID.secrets]`` in plugbox.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from plugbox.host.config import ConfigError, load_config
from plugbox.host.config.secrets import SecretSource, read_secrets
from plugbox.host.plugin_settings import job_settings
from plugbox.sdk import define_manifest, job


@job("a", config={"api_url": "", "limit": 1}, secrets=["TOKEN"])
def a(ctx: object) -> None:
    return None


@job("b", config={"limit": 2})
def b(ctx: object) -> None:
    return None


class Typed(BaseModel):
    limit: int = 3


@job("c", config=Typed)
def c(ctx: object) -> None:
    return None


MANIFEST = define_manifest(id="weather", version="0.1.0", name="W", jobs=[a, b, c])


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "ws").mkdir(exist_ok=True)
    path = tmp_path / "etc" / "plugbox.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'workspace = "{tmp_path / "ws"}"\nstate_dir = "{tmp_path / "st"}"\n' + text)
    return load_config(path, env={"HOME": str(tmp_path)})


def test_job_table_wins_and_plugin_keys_go_only_to_jobs_that_declare_them(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[plugins.weather.config]\napi_url = "http://x"\nlimit = 5\n'
        '[jobs."weather:b".config]\nlimit = 7\n',
    )
    first = job_settings(config, MANIFEST, "a")
    second = job_settings(config, MANIFEST, "b")
    assert first.config == {"api_url": "http://x", "limit": 5}
    assert second.config == {"limit": 7}  # api_url is not one of b's keys
    assert first.locate("config", "limit") == "plugins.weather.config.limit"
    assert second.locate("config", "limit") == 'jobs."weather:b".config.limit'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{}", "give exactly one of env or file"),
        ('{ env = "A", file = "b" }', "give exactly one of env or file"),
        ('{ value = "x" }', "unknown key"),
        ('{ env = "not a name" }', "String should match pattern"),
    ],
)
def test_a_secret_source_is_an_env_or_a_file(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, f"[plugins.weather.secrets]\nTOKEN = {table}\n")
    assert "plugins.weather.secrets.TOKEN" in str(caught.value)
    assert message in str(caught.value)


def test_secret_values_and_why_one_is_missing(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "tok").write_text("from-file\n")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "tok").write_text("planted")
    sources = {
        "A": SecretSource(env="HAS"),
        "B": SecretSource(file="tok"),
        "C": SecretSource(env="UNSET"),
        "D": SecretSource(file=str(tmp_path / "ws" / "tok")),
        "E": SecretSource(file="missing"),
    }
    values, problems = read_secrets(
        sources,
        ("A", "B", "C", "D", "E", "F"),
        tmp_path / "etc",
        tmp_path / "ws",
        "plugins.p.secrets",
        env={"HAS": "from-env"},
    )
    assert values == {"A": "from-env", "B": "from-file"}
    found = {p.location.rsplit(".", 1)[1]: p.message for p in problems}
    assert "UNSET is not set" in found["C"]
    assert "inside the workspace" in found["D"]
    assert "cannot read" in found["E"]
    assert found["F"].startswith("not provided; the plugin declares it needs this secret")


def test_serve_start_refuses_what_the_plugins_do_not_declare(tmp_path: Path) -> None:
    from plugbox.host.discovery import LoadedPlugin, PluginEntryPoint
    from plugbox.host.plugin_settings import check_plugin_settings

    config = load(
        tmp_path,
        "[plugins.weather.config]\nlimit = 5\napi_urll = 1\n"
        '[jobs."weather:a".config]\nlimitt = 1\n'
        '[jobs."weather:c".config]\nlimit = "many"\n'
        '[plugins.weather.secrets]\nTOKEN = { env = "T" }\nOTHER = { env = "O" }\n'
        # A plugin that is not installed is not checked: it may be installed later.
        "[plugins.absent.config]\nanything = 1\n",
    )
    loaded = LoadedPlugin(PluginEntryPoint("weather", "m", "dist", "1"), MANIFEST)
    found = {p.location: p.message for p in check_plugin_settings(config, [loaded])}
    assert set(found) == {
        "plugins.weather.config.api_urll",
        'jobs."weather:a".config.limitt',
        'jobs."weather:c".config.limit',
        "plugins.weather.secrets.OTHER",
    }
    assert found["plugins.weather.config.api_urll"].endswith("its keys: api_url, limit")
    assert found['jobs."weather:a".config.limitt'].endswith("its keys: api_url, limit")
    assert found['jobs."weather:c".config.limit'] == "'many' is not of type 'integer'"
    assert "does not declare this secret" in found["plugins.weather.secrets.OTHER"]


def test_serve_names_the_jobs_that_will_not_run_and_what_to_set(tmp_path: Path) -> None:
    from plugbox.host.discovery import LoadedPlugin, PluginEntryPoint
    from plugbox.host.plugin_settings import unconfigured_jobs
    from plugbox.sdk import permissions as perms

    @job(
        "bound",
        config={"api_url": "https://default.example"},
        permissions=perms.Permissions(net={"allow_hosts_from": ["api_url"]}),
    )
    def bound(ctx: object) -> None:
        return None

    manifest = define_manifest(id="weather", version="0.1.0", name="W", jobs=[a, bound])
    loaded = LoadedPlugin(PluginEntryPoint("weather", "m", "dist", "1"), manifest)
    config = load(tmp_path, '[plugins.weather.secrets]\nTOKEN = { env = "NOT_SET_ANYWHERE" }\n')
    found = {
        job: [str(p) for p in err.problems]
        for job, err in unconfigured_jobs(config, [loaded]).items()
    }
    assert found == {
        "weather:a": [
            "plugins.weather.secrets.TOKEN: no value: the environment variable NOT_SET_ANYWHERE"
            " is not set (or empty)"
        ],
        "weather:bound": [
            "plugins.weather.config.api_url: not set; the job's permissions bind to it, so the"
            " job runs only once you set it (the declared default 'https://default.example' is"
            " never used for a binding)"
        ],
    }
