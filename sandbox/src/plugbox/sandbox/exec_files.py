"""The exact files a run may ``execve``: each allowed program and the interpreters it needs.

With the ``shell`` capability a job may start only the programs its ``shell.allow`` rules name,
and Landlock should refuse every other ``execve`` — a plain ``subprocess.run(["/usr/bin/touch"])``
or ``sh -c`` included. So instead of ``EXECUTE`` on every system directory, the kernel gets a
file rule for each program (resolved on the host ``PATH`` the way ``runtime.shell`` resolves it,
then to its real path: Landlock checks the inode) and for what the kernel itself opens to start
it: the ELF interpreter (``PT_INTERP``, the dynamic loader) and each ``#!`` interpreter, down to
the kernel's own limit of four. ``#!/usr/bin/env NAME`` also needs ``NAME`` as ``env`` finds it.

The dynamic loader is a program too: granting it (every dynamically linked program needs it)
lets a job run ``ld.so /usr/bin/touch``, which maps ``touch`` without an exec check. That code
runs with exactly the job's own rights — no more than ``ctypes`` already gives it — and the
run record says so.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterable

#: The kernel's interpreter recursion limit (``BINPRM_MAX_RECURSION``) and ``#!`` line buffer.
_MAX_DEPTH = 4
_SHEBANG_BYTES = 256
_PT_INTERP = 3
_MAX_INTERP_BYTES = 4096


def exec_files(programs: Iterable[str], search_path: str, never_in: str = "") -> tuple[str, ...]:
    """Real paths of ``programs`` (bare names found on ``search_path``) and their interpreters.

    A program that is not found is left out: ``runtime.shell`` refuses it as not found, and the
    kernel would refuse it too. So is one of which any file (itself, an interpreter) lies in the
    folder ``never_in`` — the workspace, where a job could rewrite it.
    """
    found: set[str] = set()
    inside = never_in.rstrip("/") + "/" if never_in else None
    for name in programs:
        located = shutil.which(name, path=search_path)
        if located is None:
            continue
        chain: set[str] = set()
        _add(os.path.realpath(located), search_path, chain, 0)
        if inside is None or not any(path.startswith(inside) for path in chain):
            found |= chain
    return tuple(sorted(found))


def loaders(files: Iterable[str]) -> tuple[str, ...]:
    """The ELF interpreters among ``files`` (what makes the loader trick possible)."""
    interpreters = {_elf_interpreter(path) for path in files}
    return tuple(sorted(os.path.realpath(i) for i in interpreters if i))


def _add(path: str, search_path: str, found: set[str], depth: int) -> None:
    if path in found or depth > _MAX_DEPTH or not os.path.isfile(path):
        return
    found.add(path)
    for interpreter in _interpreters(path, search_path):
        _add(os.path.realpath(interpreter), search_path, found, depth + 1)


def _interpreters(path: str, search_path: str) -> list[str]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SHEBANG_BYTES)
    except OSError:
        return []
    if head.startswith(b"#!"):
        return _shebang(head, search_path)
    interpreter = _elf_interpreter(path)
    return [interpreter] if interpreter else []


def _shebang(head: bytes, search_path: str) -> list[str]:
    words = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words or not words[0].startswith("/"):
        return []
    interpreter = words[0]
    if os.path.basename(interpreter) != "env":
        return [interpreter]
    # "#!/usr/bin/env python3": env then executes python3 from the PATH it was given, which is
    # the search path runtime.shell hands every command.
    named = next((w for w in words[1:] if not w.startswith("-") and "=" not in w), None)
    located = shutil.which(named, path=search_path) if named else None
    return [interpreter, located] if located else [interpreter]


# Offsets in the ELF header and a program header, 64-bit / 32-bit: (e_phoff, e_phentsize,
# e_phnum) and (p_offset, p_filesz). p_type is the first 4 bytes of a program header either way.
_HEADER = {True: ("Q", 32, 54, 56), False: ("I", 28, 42, 44)}
_PROGRAM = {True: ("Q", 8, 32, 56), False: ("I", 4, 16, 32)}


def _elf_interpreter(path: str) -> str | None:
    """``PT_INTERP`` of an ELF file (its dynamic loader), or None for static/non-ELF files."""
    try:
        with open(path, "rb") as handle:
            ident = handle.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF":
                return None
            wide, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
            word, at_phoff, at_size, at_num = _HEADER[wide]
            phoff = _read(order + word, ident, at_phoff)
            phentsize, phnum = _read(order + "H", ident, at_size), _read(order + "H", ident, at_num)
            word, at_offset, at_filesz, minimum = _PROGRAM[wide]
            for index in range(min(phnum, 256)):
                handle.seek(phoff + index * phentsize)
                header = handle.read(phentsize)
                if len(header) < minimum:
                    return None
                if _read(order + "I", header, 0) == _PT_INTERP:
                    handle.seek(_read(order + word, header, at_offset))
                    size = min(_read(order + word, header, at_filesz), _MAX_INTERP_BYTES)
                    return os.fsdecode(handle.read(size).split(b"\0", 1)[0]) or None
    except (OSError, struct.error, ValueError):
        return None
    return None


def _read(fmt: str, data: bytes, offset: int) -> int:
    value: int = struct.unpack_from(fmt, data, offset)[0]
    return value
