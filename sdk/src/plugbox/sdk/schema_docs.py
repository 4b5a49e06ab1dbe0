"""``docs/manifest.md``: the manifest reference, rendered from the manifest's JSON Schema.

The page and ``docs/manifest.schema.json`` come from the same :func:`manifest_json_schema`, so a
field, default or constraint cannot be in one and missing from the other. Each model (each object
in ``$defs``) gets a section with one table row per field; nested models are links. A test fails
when the committed page is stale.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

Schema = Mapping[str, Any]

#: The command that writes both generated files; named on the page so nobody edits it by hand.
REGENERATE = "python -m plugbox.sdk.schema docs/manifest.schema.json --markdown docs/manifest.md"

_INTRO = """\
# Manifest reference

<!-- Generated from the SDK's models by `{regenerate}`. Do not edit by hand. -->

A manifest says what a plugin is and what its jobs may do. You rarely write one by hand:
`define_manifest(...)` builds it from your `@job` functions and checks it. The host receives it as
JSON and checks it again, with the same rules. The same rules as a JSON Schema, for editors and
other tools: [manifest.schema.json](manifest.schema.json).

```python
from plugbox.sdk import ManifestError, validate_manifest

manifest = validate_manifest(
    {{
        "id": "weather",
        "version": "0.1.0",
        "name": "Weather",
        "jobs": [
            {{
                "id": "refresh",
                "handler": "weather.jobs:refresh",
                "schedule": "*/10 * * * *",
                "timeout_ms": "30s",
                "permissions": {{"net": {{"allow_hosts": ["api.open-meteo.com"]}}}},
            }}
        ],
    }}
)
assert manifest.jobs[0].timeout_ms == 30_000  # durations accept "30s", "5m", "1h"
assert manifest.jobs[0].timezone == "UTC"  # a default
```

A bad manifest raises one `ManifestError` that lists every problem with its location:

```python
try:
    validate_manifest({{"id": "Weather", "version": "0.1.0", "name": "W", "jobz": []}})
except ManifestError as error:
    problems = {{problem.location: problem.message for problem in error.problems}}
assert set(problems) == {{"id", "jobz"}}  # an upper-case id, an unknown key
```

How to read the tables:

- Values are JSON: `null`, `true`, `[]`. In Python write `None`, `True`, `()`.
- `@job(...)` takes the job fields as keyword arguments, and durations without the `_ms` suffix:
  `timeout="10s"` sets `timeout_ms` to `10000`. `id` and `handler` come from the decorator.
- Unknown keys are errors, never ignored.
- A default of `{{}}` means "every field of that model at its default": for permissions, nothing.

Models: {contents}
"""


def render_markdown(schema: Schema) -> str:
    """The reference page for ``schema`` (as :func:`~plugbox.sdk.schema.manifest_json_schema`)."""
    defs: Mapping[str, Schema] = schema.get("$defs", {})
    root = str(schema.get("title", "Manifest"))
    models = {root: schema, **{name: defs[name] for name in _referenced(schema, defs)}}
    contents = " · ".join(f"[{name}](#{_anchor(name)})" for name in models)
    parts = [_INTRO.format(regenerate=REGENERATE, contents=contents)]
    parts += [_section(name, model, defs) for name, model in models.items()]
    return "\n".join(parts)


def _is_model(definition: Schema) -> bool:
    return definition.get("type") == "object" and "properties" in definition


def _referenced(schema: Schema, defs: Mapping[str, Schema]) -> list[str]:
    """Names of the models reachable from ``schema``, each after every model that links to it.

    So ``JobSpec`` comes before ``Permissions`` (which both it and ``Manifest`` use); ties and
    cycles fall back to the order fields mention the models in.
    """
    found: list[str] = []
    parents: dict[str, set[str]] = {}
    queue: list[tuple[str, Schema]] = [("", schema)]
    while queue:
        parent, current = queue.pop(0)
        for prop in current.get("properties", {}).values():
            for name in _refs(prop):
                if not _is_model(defs.get(name, {})):
                    continue
                parents.setdefault(name, set()).add(parent)
                if name not in found:
                    found.append(name)
                    queue.append((name, defs[name]))
    placed: list[str] = []
    while len(placed) < len(found):
        done = {"", *placed}
        waiting = [name for name in found if name not in placed]
        ready = [name for name in waiting if parents[name] - {name} <= done]
        placed.append((ready or waiting)[0])
    return placed


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rpartition("/")[2]
        for key, value in node.items():
            if key != "default":
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _anchor(name: str) -> str:
    """The anchor GitHub and most renderers give a ``## Name`` heading."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower())


def _section(name: str, model: Schema, defs: Mapping[str, Schema]) -> str:
    required = set(model.get("required", ()))
    lines = [f"## {name}", ""]
    description = str(model.get("description", "")).strip()
    if description:
        lines += [_prose(description), ""]
    lines += [
        "| field | type | default | required | description | constraints |",
        "|---|---|---|---|---|---|",
    ]
    for field, prop in model.get("properties", {}).items():
        cells = (
            f"`{field}`",
            _type(prop, defs),
            "—" if field in required else _default(prop, defs),
            "yes" if field in required else "no",
            _cell(_prose(str(prop.get("description", "")))),
            _cell("; ".join(_constraints(prop))),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _type(prop: Schema, defs: Mapping[str, Schema]) -> str:
    if "$ref" in prop:
        name = str(prop["$ref"]).rpartition("/")[2]
        if _is_model(defs.get(name, {})):
            return f"[{name}](#{_anchor(name)})"
        return _type(defs.get(name, {}), defs)
    if "anyOf" in prop:
        kinds = [_type(branch, defs) for branch in prop["anyOf"]]
        return " or ".join(dict.fromkeys(kinds))
    kind = prop.get("type")
    if kind == "array":
        return f"array of {_type(prop.get('items', {}), defs)}"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, Mapping):
            return f"object of {_type(values, defs)}"
        return "object"
    if isinstance(kind, str):
        return kind
    return "any JSON value"


def _default(prop: Schema, defs: Mapping[str, Schema]) -> str:
    if "default" not in prop:
        return "—"
    value = prop["default"]
    if isinstance(value, dict) and value and value == _model_defaults(prop, defs):
        return "`{}`"
    return _cell(f"`{json.dumps(value, ensure_ascii=False)}`")


def _model_defaults(prop: Schema, defs: Mapping[str, Schema]) -> dict[str, Any] | None:
    """The defaults of the model ``prop`` refers to, as JSON, nested models included."""
    name = str(prop.get("$ref", "")).rpartition("/")[2]
    model = defs.get(name)
    if model is None or not _is_model(model):
        return None
    defaults: dict[str, Any] = {}
    for field, sub in model["properties"].items():
        if "default" not in sub:
            return None
        nested = _model_defaults(sub, defs)
        defaults[field] = sub["default"] if nested is None else nested
    return defaults


def _constraints(prop: Schema) -> Iterator[str]:
    branches = [prop, *(b for b in prop.get("anyOf", ()) if b.get("type") != "null")]
    for branch in branches:
        if "enum" in branch:
            yield "one of " + ", ".join(f"`{json.dumps(v)}`" for v in branch["enum"])
        if "pattern" in branch:
            yield f"matches `{branch['pattern']}`"
        for key, sign in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        ):
            if key in branch:
                yield f"{sign} {branch[key]}"
        if "minLength" in branch or "maxLength" in branch:
            low, high = branch.get("minLength"), branch.get("maxLength")
            if low is not None and high is not None:
                yield f"{low}-{high} characters"
            elif low is not None:
                yield f"at least {low} characters"
            else:
                yield f"at most {high} characters"


_CODE = re.compile(r"(``?)(.+?)\1", re.DOTALL)


def _prose(text: str) -> str:
    """Docstring text as Markdown: rST ``code`` becomes `code`; ``*`` and ``<`` outside code are
    escaped so that a glob such as '**' is not read as emphasis or a tag."""
    out: list[str] = []
    position = 0
    for match in _CODE.finditer(text):
        out.append(_escape(text[position : match.start()]))
        out.append(f"`{match.group(2)}`")
        position = match.end()
    out.append(_escape(text[position:]))
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("*", r"\*").replace("<", "&lt;")


def _cell(text: str) -> str:
    """Text safe inside one table cell: no line breaks, no column separators."""
    return " ".join(text.split()).replace("|", r"\|")
