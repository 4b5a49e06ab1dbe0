"""Where the sandbox child imports a job's code from: ``RunRequest.python_path`` for a handler.

The child is forked from a zygote started with the interpreter's own ``sys.path``, not the test
process's: pytest's ``pythonpath = ["src"]``, its rootdir insertion and its importlib import mode
change only the process running the tests. So the harness works out, from the handler module's
file, the directory that makes its top-level package importable, and sends it along (the child
may read it, never write it). Installed code (site-packages) needs nothing.

A handler the child cannot import by name — a function defined inside a test, or a test module
that pytest's importlib mode loaded under a name that does not match its path — is refused here
with a message saying what to do, instead of failing later inside the child.
"""

from __future__ import annotations

import importlib
import os
import site
import sys
import sysconfig
from pathlib import Path

_ADVICE = (
    "put the job in your plugin package (e.g. src/acme_notes/jobs.py), import it in the test, "
    "and make the package importable (pip install -e ., or pytest's pythonpath = ['src'])"
)


class JobImportError(ImportError):
    """The sandbox child could not import this job by its ``module:qualname`` reference."""

    def __init__(self, reference: str, why: str) -> None:
        super().__init__(
            f"job handler {reference!r} cannot be imported by the sandbox: {why}; {_ADVICE}"
        )
        self.reference = reference


def code_path(reference: str, workspace: str | os.PathLike[str]) -> tuple[str, ...]:
    """The ``python_path`` that lets a sandbox child import ``reference`` (``module:qualname``).

    Empty when the module is installed; otherwise the one directory holding its top-level
    package. Raises :class:`JobImportError` when the child could not import it by name.
    """
    module_name, _, qualname = reference.partition(":")
    if "<locals>" in qualname:
        raise JobImportError(reference, "it is defined inside a function")
    if module_name == "__main__":
        raise JobImportError(reference, "it is defined in the __main__ script")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise JobImportError(reference, f"importing {module_name!r} failed ({err})") from None
    file = getattr(module, "__file__", None)
    if not file:
        raise JobImportError(reference, f"module {module_name!r} has no source file")
    root = _import_root(module_name, Path(os.path.abspath(file)))
    if root is None:
        raise JobImportError(
            reference,
            f"module {module_name!r} was loaded from {file}, a path that name does not lead to "
            "(pytest's importlib mode names test modules this way)",
        )
    if _installed(root):
        return ()
    space = Path(os.path.abspath(workspace))
    if space == root or root in space.parents:
        raise JobImportError(
            reference,
            f"its code directory {root} contains the workspace {space}, and the sandbox never "
            "lets a job import code from where it may write",
        )
    return (str(root),)


def _import_root(module_name: str, file: Path) -> Path | None:
    """The directory from which ``module_name`` resolves to ``file``, or ``None`` if none does."""
    parts = module_name.split(".")
    # A package is its directory; a module is its file name up to the first dot (``x.py``,
    # ``x.cpython-311-x86_64-linux-gnu.so``).
    if file.name.split(".")[0] == "__init__":
        path = file.parent
    else:
        path = file.parent / file.name.split(".")[0]
    if path.parts[-len(parts) :] != tuple(parts):
        return None
    return path.parents[len(parts) - 1]


def _installed(root: Path) -> bool:
    """Whether ``root`` is a directory every Python started by this interpreter imports from.

    Not the user site-packages: the sandbox starts Python with ``PYTHONNOUSERSITE``.
    """
    places = set(site.getsitepackages())
    places |= {sysconfig.get_paths()[key] for key in ("purelib", "platlib", "stdlib", "platstdlib")}
    return any(os.path.abspath(place) == str(root) for place in places)
