"""Ready-made permission sets for what most plugins need, to be merged with ``combine``.

``plugin_workspace``, ``llm_api`` and ``vector_db`` have the effect of the presets of the platform
plugbox grew from; the rest are the next things authors reach for. Presets only ever grant what
their name says, and each carries the secret-file denies so a preset cannot expose keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from plugbox.sdk.permissions.models import (
    EnvPermissions,
    FsPermissions,
    NetPermissions,
    Permissions,
    Quotas,
    ShellPermissions,
)

#: Files no preset ever exposes: keys, certificates, dotenv files, VCS internals, dependency trees.
SECRET_DENY: tuple[str, ...] = (
    "**/*.key",
    "**/*.secret",
    "**/*.pem",
    "**/*.env",
    "**/.env.*",
    "**/.git/**",
    "**/node_modules/**",
)

#: Project metadata files a workspace job may read (never write).
PROJECT_METADATA: tuple[str, ...] = ("/pyproject.toml", "/package.json")

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def workspace_dir(namespace: str) -> str:
    """The directory a plugin owns inside the workspace: ``.plugbox/<namespace>``."""
    if not _NAMESPACE.fullmatch(namespace) or ".." in namespace:
        raise ValueError(
            f"workspace namespace {namespace!r} must be 1-64 of a-z, 0-9, '.', '_', '-' "
            "and start with a letter or digit (use the plugin id)"
        )
    return f".plugbox/{namespace}"


def plugin_workspace(namespace: str) -> Permissions:
    """Read-write access to ``.plugbox/<namespace>/``, read access to project metadata files."""
    root = workspace_dir(namespace)
    return Permissions(
        fs=(
            FsPermissions(mode="readWrite", allow=(root, f"{root}/**"), deny=SECRET_DENY),
            FsPermissions(mode="read", allow=PROJECT_METADATA),
        ),
        quotas=Quotas(timeout_ms=60_000, memory_mb=512, cpu_ms=30_000),
    )


_LLM_PROVIDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "openai": (("api.openai.com",), ("OPENAI_API_KEY",)),
    "anthropic": (("api.anthropic.com",), ("ANTHROPIC_API_KEY",)),
    "mistral": (("api.mistral.ai",), ("MISTRAL_API_KEY",)),
    "gemini": (("generativelanguage.googleapis.com",), ("GEMINI_API_KEY",)),
    "cohere": (("api.cohere.com", "api.cohere.ai"), ("COHERE_API_KEY",)),
    "groq": (("api.groq.com",), ("GROQ_API_KEY",)),
    "openrouter": (("openrouter.ai",), ("OPENROUTER_API_KEY",)),
    "ollama": (("localhost:11434",), ("OLLAMA_HOST",)),
}

_VECTOR_DBS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "qdrant": (("*.qdrant.io", "localhost:6333"), ("QDRANT_URL", "QDRANT_API_KEY")),
    "pinecone": (("*.pinecone.io",), ("PINECONE_API_KEY",)),
    "weaviate": (
        ("*.weaviate.network", "*.weaviate.cloud", "localhost:8080"),
        ("WEAVIATE_URL", "WEAVIATE_API_KEY"),
    ),
    "chroma": (("api.trychroma.com", "localhost:8000"), ("CHROMA_API_KEY",)),
    "milvus": (("*.zillizcloud.com", "localhost:19530"), ("MILVUS_URI", "MILVUS_TOKEN")),
}


def _providers(
    kind: str, table: dict[str, tuple[tuple[str, ...], tuple[str, ...]]], names: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    hosts: list[str] = []
    env: list[str] = []
    for name in [names] if isinstance(names, str) else names:
        key = name.lower()
        if key not in table:
            known = ", ".join(sorted(table))
            raise ValueError(f"unknown {kind} provider {name!r}; known providers: {known}")
        hosts.extend(table[key][0])
        env.extend(table[key][1])
    return tuple(dict.fromkeys(hosts)), tuple(dict.fromkeys(env))


def llm_api(providers: Sequence[str] | str) -> Permissions:
    """HTTPS access to the named LLM providers' APIs and their API-key variables.

    Unlike the original platform's preset this does not open ``localhost`` on every port (that
    would expose every local admin service); local model servers are their own provider
    (``ollama`` = ``localhost:11434``).
    """
    hosts, env = _providers("LLM", _LLM_PROVIDERS, providers)
    return Permissions(
        net=NetPermissions(allow_hosts=hosts),
        env=EnvPermissions(allow=env),
        quotas=Quotas(timeout_ms=120_000, memory_mb=512, cpu_ms=60_000),
    )


def vector_db(providers: Sequence[str] | str) -> Permissions:
    """Access to the named vector databases (cloud hosts and their usual local port) and keys."""
    hosts, env = _providers("vector database", _VECTOR_DBS, providers)
    return Permissions(net=NetPermissions(allow_hosts=hosts), env=EnvPermissions(allow=env))


def read_workspace() -> Permissions:
    """Read-only access to the whole workspace except secret files."""
    return Permissions(fs=FsPermissions(mode="read", allow=("**",), deny=SECRET_DENY))


def http_hosts(*hosts: str) -> Permissions:
    """``runtime.net`` access to exactly these host patterns (``api.x.com``, ``*.x.com:443``)."""
    return Permissions(net=NetPermissions(allow_hosts=hosts))


def env_vars(*names: str) -> Permissions:
    """Make exactly these environment variables visible to the job."""
    return Permissions(env=EnvPermissions(allow=names))


def shell_commands(*patterns: str) -> Permissions:
    """The ``shell`` capability plus exactly these command patterns (``git log **``)."""
    return Permissions(shell=ShellPermissions(allow=patterns), capabilities=("shell",))
