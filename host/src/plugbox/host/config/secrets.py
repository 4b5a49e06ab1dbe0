"""``[plugins.<id>.secrets]``: where the host reads each secret a plugin declares.

The file names a *source*, never a value: ``API_TOKEN = { env = "WEATHER_API_TOKEN" }`` (a
variable of the host's environment, e.g. a systemd ``EnvironmentFile=``) or
``API_TOKEN = { file = "/run/secrets/weather-token" }`` (a file per secret, as Docker and
Kubernetes mount them; a relative path is relative to plugbox.toml's directory). Values are read
when a run is prepared — so a rotated file is picked up by the next run — and travel to the run's
child over its control channel only (docs/adr/0025-operator-config-secrets-bindings.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugbox.sdk.errors import Problem
from plugbox.sdk.manifest import SECRET_NAME_PATTERN

SecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN)]
#: A secret file larger than this is refused: a secret is a token or a password, not a dataset.
MAX_SECRET_BYTES = 64 * 1024


class SecretSource(BaseModel):
    """One secret's source: ``env`` (a host environment variable) or ``file`` (a path)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="variable")
    file: str | None = Field(None, min_length=1, description="file holding only the value")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError(
                'give exactly one of env or file, e.g. { env = "API_TOKEN" } or'
                ' { file = "/run/secrets/api-token" }'
            )
        return self

    def path(self, base: Path) -> Path:
        """The file, absolute (``base``: plugbox.toml's directory)."""
        assert self.file is not None
        return base / Path(self.file).expanduser()

    def describe(self) -> str:
        """Where the value comes from, for ``plugins inspect`` (never the value)."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"


def read_secret(
    source: SecretSource, base: Path, env: Mapping[str, str], workspace: Path
) -> tuple[str | None, str | None]:
    """The value ``source`` names, or ``None`` and why it cannot be read.

    A file inside the workspace is refused: jobs may read or write there, and the host never
    takes configuration from a place a job can write.
    """
    if source.env is not None:
        value = env.get(source.env)
        if not value:
            return None, f"the environment variable {source.env} is not set (or empty)"
        return value, None
    from plugbox.host.config.state import is_inside  # it imports the models, which import us

    path = source.path(base)
    if is_inside(path, workspace):
        return None, (
            f"{path} is inside the workspace {workspace}, where jobs may read and write;"
            " keep secret files elsewhere (e.g. /run/secrets/)"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as err:
        return None, f"cannot read {path}: {err.strerror}"
    if len(data) > MAX_SECRET_BYTES:
        return None, f"{path} holds more than {MAX_SECRET_BYTES} bytes; a secret file holds a value"
    try:
        # A trailing newline is how editors and `echo` end a file; it is never part of the value.
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, f"{path} is not UTF-8 text"
    if not value:
        return None, f"{path} is empty"
    return value, None


def read_secrets(
    sources: Mapping[str, SecretSource],
    names: tuple[str, ...],
    base: Path,
    workspace: Path,
    locate: str,
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[Problem]]:
    """The values of ``names`` from ``sources``, and a problem per name that has none.

    ``locate`` is the table (``plugins.weather.secrets``) a missing name is to be set in.
    """
    env = os.environ if env is None else env
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for name in names:
        source = sources.get(name)
        if source is None:
            problems.append(
                Problem(
                    f"{locate}.{name}",
                    "not provided; the plugin declares it needs this secret: add"
                    f' {name} = {{ env = "VARIABLE" }} or {{ file = "/path" }} there',
                )
            )
            continue
        value, why = read_secret(source, base, env, workspace)
        if value is None:
            problems.append(Problem(f"{locate}.{name}", f"no value: {why}"))
        else:
            values[name] = value
    return values, problems
