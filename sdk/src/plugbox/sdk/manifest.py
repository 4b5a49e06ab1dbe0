"""The manifest: a plugin's id, version, permissions and jobs, as validated pydantic models.

A manifest is validated in two places — where the author calls ``define_manifest`` and again in
the host after it arrives as JSON from a confined child — by the same :func:`validate_manifest`,
which collects *every* problem (schema errors and lint rules) before raising one
:class:`~plugbox.sdk.errors.ManifestError` whose lines name their location (``jobs[0].schedule``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from plugbox.sdk._version import __version__ as sdk_version
from plugbox.sdk.durations import parse_duration_ms
from plugbox.sdk.errors import ManifestError, Problem, ScheduleError
from plugbox.sdk.permissions.bindings import bindings_of
from plugbox.sdk.permissions.combine import combine
from plugbox.sdk.permissions.lint import lint_permissions
from plugbox.sdk.permissions.models import Permissions
from plugbox.sdk.schedules import check_timezone, parse_schedule

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
#: A secret's name: what ``ctx.secrets.get(NAME)`` asks for and ``[plugins.ID.secrets]`` provides.
SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
#: Secrets one plugin may declare (plugin-level and every job's together).
MAX_SECRETS = 64
SecretName = Annotated[str, Field(pattern=SECRET_NAME_PATTERN)]
_ENV_REFERENCE = re.compile(r"\$\{[^}]*\}")
_ENV_NAME_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
Concurrency = Literal["forbid", "allow", "replace"]
Misfire = Literal["skip", "run_once", "catch_up"]

#: The SDK range a manifest declares when the author does not say.
DEFAULT_SDK_RANGE = ">=0.1,<1"

#: Jobs in one manifest. Each job's permission set is bounded on its own (see
#: plugbox.sdk.permissions.models); this bounds how many of them one plugin brings.
MAX_JOBS = 256
#: Characters of a plugin's or a job's description: a line for a listing, not a document.
MAX_DESCRIPTION_CHARS = 2_000
#: Tags on one job, and characters of each.
MAX_TAGS = 32
MAX_TAG_CHARS = 64


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _ms(value: Any) -> Any:
    return None if value is None else parse_duration_ms(value)


def _short(value: str, limit: int) -> str:
    if len(value) > limit:
        raise ValueError(f"is {len(value)} characters long; at most {limit} are allowed")
    return value


#: A job's or a plugin's description: bounded, so a manifest cannot carry a novel.
Description = Annotated[str, AfterValidator(lambda value: _short(value, MAX_DESCRIPTION_CHARS))]


class JobSpec(_Frozen):
    """One scheduled job as the host sees it: what to run, when, how often to retry, with what."""

    id: str = Field(
        pattern=ID_PATTERN, description="unique within the plugin; addressed PLUGIN:JOB"
    )
    handler: str = Field(description="import reference 'package.module:function'")
    timezone: str = Field("UTC", description="IANA zone the schedule is read in")
    schedule: str | None = Field(
        None,
        description="cron: 5 fields, or 6 with seconds first; @hourly-style aliases; ${ENV}. "
        "None = runs only when triggered",
    )
    description: Description = Field(
        "", description="one line on what the job does; @job uses the docstring's first line"
    )
    timeout_ms: int | None = Field(None, gt=0, description="wall-clock limit; accepts '10s'")
    retries: int = Field(
        0, ge=0, le=100, description="extra attempts after a failed run; 2 = up to 3 attempts"
    )
    retry_delay_ms: int = Field(1_000, gt=0, description="first retry delay, doubled each attempt")
    retry_max_delay_ms: int = Field(300_000, gt=0, description="cap of the retry delay")
    priority: int = Field(
        5, ge=0, le=10, description="0-10; higher runs first when workers are busy"
    )
    tags: tuple[str, ...] = Field((), description="free-form labels for people and tooling")
    concurrency: Concurrency = Field("forbid", description="when a fire finds the last run active")
    misfire: Misfire = Field("run_once", description="fires missed while the host was down")
    catch_up_limit: int = Field(10, ge=1, le=1_000, description="most missed fires run by catch_up")
    jitter_ms: int = Field(0, ge=0, description="random delay added to each scheduled fire")
    run_on_startup: bool = Field(False, description="also run once each time the host starts")
    enabled: bool = Field(
        True, description="false: never fires on schedule; `plugbox jobs run` still runs it"
    )
    permissions: Permissions = Field(
        Permissions(), description="what this job may do, added to the plugin-level permissions"
    )
    config: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="ctx.config defaults; the operator overrides them in plugbox.toml",
        json_schema_extra={"default": {}},  # pydantic leaves a default_factory out of the schema
    )
    config_schema: dict[str, JsonValue] | None = Field(
        None,
        description="JSON Schema (an object schema) the effective config must satisfy; @job"
        " builds it from a pydantic model given as config=",
    )
    secrets: tuple[SecretName, ...] = Field(
        (),
        max_length=MAX_SECRETS,
        description="names ctx.secrets.get may read, besides the plugin's",
    )

    @field_validator("tags", mode="before")
    @classmethod
    def _few_tags(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            if len(value) > MAX_TAGS:
                raise ValueError(f"{len(value)} tags; at most {MAX_TAGS} are allowed")
            for index, tag in enumerate(value):
                if isinstance(tag, str) and len(tag) > MAX_TAG_CHARS:
                    raise ValueError(
                        f"[{index}] is {len(tag)} characters long; a tag may have at most"
                        f" {MAX_TAG_CHARS}"
                    )
        return value

    @field_validator(
        "timeout_ms", "retry_delay_ms", "retry_max_delay_ms", "jitter_ms", mode="before"
    )
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _ms(value)

    @field_validator("handler")
    @classmethod
    def _import_reference(cls, value: str) -> str:
        module, sep, attr = value.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"{value!r} is not an import reference like 'package.module:function'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            check_timezone(value)
        except ScheduleError as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_parses(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        refs = _ENV_REFERENCE.findall(value)
        if refs:
            # ${ENV} is resolved by the host when it schedules; here only the names can be checked.
            for ref in refs:
                if not _ENV_NAME_REFERENCE.fullmatch(ref):
                    raise ValueError(f"{value!r}: {ref} is not a ${{NAME}} reference")
            return value
        try:
            parse_schedule(value, info.data.get("timezone", "UTC"), env={})
        except ScheduleError as err:
            raise ValueError(str(err)) from None
        return value

    def effective_declared(self, plugin_permissions: Permissions) -> Permissions:
        """The permissions this job declares: the plugin-level set combined with the job's own."""
        return combine(plugin_permissions, self.permissions)


class Manifest(_Frozen):
    """What a plugin declares. Build it with ``define_manifest``; the host rebuilds it from JSON."""

    id: str = Field(pattern=ID_PATTERN, description="plugin id; the PLUGIN part of PLUGIN:JOB")
    version: str = Field(description="PEP 440 version of the plugin")
    name: str = Field(min_length=1, max_length=200, description="human-readable name for listings")
    description: Description = Field("", description="one line on what the plugin does")
    sdk: str = Field(DEFAULT_SDK_RANGE, description="PEP 440 range of plugbox-sdk versions")
    permissions: Permissions = Field(
        Permissions(), description="granted to every job, in addition to the job's own"
    )
    secrets: tuple[SecretName, ...] = Field(
        (), max_length=MAX_SECRETS, description="secret names every job may read (ctx.secrets)"
    )
    jobs: tuple[JobSpec, ...] = Field((), description="the plugin's jobs; ids must be unique")

    @field_validator("jobs", mode="before")
    @classmethod
    def _not_too_many_jobs(cls, value: object) -> object:
        # Before the jobs are validated one by one: that is the work the bound caps.
        if isinstance(value, list | tuple) and len(value) > MAX_JOBS:
            raise ValueError(f"{len(value)} jobs; a plugin may declare at most {MAX_JOBS}")
        return value

    @field_validator("version")
    @classmethod
    def _pep440(cls, value: str) -> str:
        try:
            Version(value)
        except InvalidVersion:
            raise ValueError(f"{value!r} is not a PEP 440 version such as '0.1.0'") from None
        return value

    @field_validator("sdk")
    @classmethod
    def _specifier(cls, value: str) -> str:
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            raise ValueError(f"{value!r} is not a version range such as '>=0.1,<1'") from None
        return value

    def job(self, job_id: str) -> JobSpec:
        """The job with this id; :class:`LookupError` naming the known ids otherwise."""
        for spec in self.jobs:
            if spec.id == job_id:
                return spec
        known = ", ".join(spec.id for spec in self.jobs) or "none"
        raise LookupError(f"plugin {self.id!r} has no job {job_id!r}; its jobs: {known}")

    def secret_names(self, job_id: str) -> tuple[str, ...]:
        """The secrets ``job_id`` may read: the plugin's and its own, in declaration order."""
        return tuple(dict.fromkeys((*self.secrets, *self.job(job_id).secrets)))

    def declared_permissions(self, job_id: str) -> Permissions:
        """Plugin-level permissions combined with the job's: what the job asks for."""
        return self.job(job_id).effective_declared(self.permissions)

    def sdk_compatible(self, version: str = sdk_version) -> bool:
        """Whether this manifest accepts the given (by default: this) SDK version."""
        return SpecifierSet(self.sdk).contains(version, prereleases=True)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")):
            continue
        else:
            text += f".{part}" if text else part
    return text


def _suffix(location: str) -> str:
    if not location:
        return ""
    return location if location.startswith("[") else f".{location}"


def _problems_from(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see docs/manifest.schema.json)"
        elif item["type"] == "missing":
            message = "required but missing"
        elif item["type"] == "string_pattern_mismatch" and item["loc"][-1] == "id":
            message = (
                f"{item['input']!r} is not an id: use 1-64 lowercase letters, digits, '.', '_'"
                " or '-', starting with a letter or digit (e.g. 'fetch-weather')"
            )
        problems.append(Problem(_location(tuple(item["loc"])), message))
    return problems


def lint_manifest(manifest: Manifest) -> list[Problem]:
    """Problems the schema cannot see: id clashes, SDK range, and permission lint rules."""
    plugin_level = lint_permissions(manifest.permissions, "permissions")
    problems = list(plugin_level)
    first_index: dict[str, int] = {}
    for index, spec in enumerate(manifest.jobs):
        if spec.id in first_index:
            problems.append(
                Problem(
                    f"jobs[{index}].id",
                    f"job id {spec.id!r} is already used by jobs[{first_index[spec.id]}]",
                )
            )
        first_index.setdefault(spec.id, index)
        problems += _lint_job_permissions(manifest, index, spec, plugin_level)
        problems += _lint_job_config(manifest, index, spec)
    return problems


def _lint_job_config(manifest: Manifest, index: int, spec: JobSpec) -> list[Problem]:
    """A config schema must describe an object, and every bound key must be a declared key."""
    problems = []
    schema = spec.config_schema
    if schema is not None and schema.get("type", "object") != "object":
        problems.append(
            Problem(f"jobs[{index}].config_schema", "must describe an object (type: object)")
        )
    known = declared_config_keys(spec)
    for where, permissions in (
        ("permissions", manifest.permissions),
        (f"jobs[{index}].permissions", spec.permissions),
    ):
        for binding in bindings_of(permissions):
            if binding.key in known:
                continue
            problems.append(
                Problem(
                    f"{where}.{binding.rule}",
                    f"binds config key {binding.key!r}, which job {spec.id!r} does not declare;"
                    " add it to the job's config (a default, or a field of its config model)",
                )
            )
    return problems


def declared_config_keys(spec: JobSpec) -> frozenset[str]:
    """The config keys ``spec`` declares: its defaults and its schema's properties."""
    properties = (spec.config_schema or {}).get("properties")
    named = properties.keys() if isinstance(properties, dict) else ()
    return frozenset((*spec.config, *named))


def _lint_job_permissions(
    manifest: Manifest, index: int, spec: JobSpec, plugin_level: list[Problem]
) -> list[Problem]:
    where = f"jobs[{index}].permissions"
    if manifest.permissions == Permissions():
        return lint_permissions(spec.permissions, where)
    # Lint what the job really gets (a shell allow may rely on a plugin-level capability), and
    # do not repeat what the plugin-level lint already said.
    said = {problem.message for problem in plugin_level}
    try:
        combined = spec.effective_declared(manifest.permissions)
    except ValidationError as err:
        # Each part is within the bounds but together they are not (MAX_FS_PATTERNS, ...).
        return [
            Problem(f"{where} (combined with plugin permissions){_suffix(p.location)}", p.message)
            for p in _problems_from(err)
        ]
    return [
        problem
        for problem in lint_permissions(combined, f"{where} (combined with plugin permissions)")
        if problem.message not in said
    ]


def validate_manifest(data: Manifest | Mapping[str, Any], source: str = "") -> Manifest:
    """Validate a manifest (model or JSON-like data); raise one ManifestError with every problem."""
    try:
        manifest = data if isinstance(data, Manifest) else Manifest.model_validate(data)
    except ValidationError as err:
        raise ManifestError(_problems_from(err), source) from None
    problems = lint_manifest(manifest)
    if problems:
        raise ManifestError(problems, source)
    return manifest
