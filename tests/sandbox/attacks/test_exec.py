"""Class E of issue 9: programs the job may not run.

The job has the ``shell`` capability and only ``echo *`` allowed. Layers: Landlock ``EXECUTE``
on exactly the files the shell rules resolve to (``echo``, and the dynamic loader it needs), so
every other ``execve`` is ``EACCES`` whichever way it is made; seccomp refuses ``execveat`` (a
memfd copy of a program) with ``EPERM``; ``runtime.shell`` refuses a command no rule allows
(``PermissionDenied``).

The dynamic loader is executable because every dynamically linked program needs it; run
directly (``ld.so /usr/bin/touch``) it maps ``touch`` without an exec check. That stays possible,
with exactly the job's own rights, and the run record says so (see security.md).
"""

from __future__ import annotations

import errno
import shutil

from .conftest import Attack, Host

OWN = ".plugbox/eve"


def _exec_attack(host: Host) -> Attack:
    attack = host.attack("exec-echo-only")
    assert attack.control["proxy"] == "allowed\n"  # the allowed program runs through the proxy
    assert attack.control["plain"] == "plain\n"  # and through a plain subprocess
    assert attack.control["which_touch"]  # the job could find touch: it is there to be run
    return attack


def test_only_the_programs_the_shell_rules_name_can_be_executed(host: Host) -> None:
    attack = _exec_attack(host)
    assert "PermissionDenied" in attack.stopped("proxy_touch")["error"]  # runtime.shell
    for name in ("absolute", "via_path", "sh_c", "execv", "posix_spawn", "ctypes_execve"):
        attack.stopped(name, errno.EACCES)  # Landlock: no EXECUTE on touch or sh
    attack.stopped("memfd_execveat", errno.EPERM)  # seccomp: execveat is never allowed
    made = {p.name for p in (host.workspace / OWN).iterdir()}
    assert not made & {"proxy", "absolute", "via-path", "sh", "execv", "spawn", "ctypes", "memfd"}


def test_a_memfd_copy_cannot_be_executed_through_proc_or_dev_fd(host: Host) -> None:
    """Landlock allows every access to a memfd (its filesystem is internal), so ``execve`` of
    ``/proc/self/fd/N`` is refused only where no memfd can be made executable (seccomp)."""
    attack = _exec_attack(host)
    attack.stopped("proc_self_fd", errno.EPERM, errno.EACCES, errno.ENOENT)
    attack.stopped("dev_fd", errno.EPERM, errno.EACCES, errno.ENOENT)
    made = {p.name for p in (host.workspace / OWN).iterdir()}
    assert not made & {"procfd", "devfd"}


def test_the_run_record_names_exactly_the_executable_files_and_the_loader_gap(host: Host) -> None:
    attack = _exec_attack(host)
    enforcement = attack.record["enforcement"]
    executable = enforcement["kernel"]["execute"]
    echo = shutil.which("echo")
    assert echo is not None
    assert any(path.endswith("/echo") for path in executable), executable
    assert not any(path.endswith(("/touch", "/sh", "/dash", "/bash")) for path in executable)
    assert enforcement["shell"] == "kernel"
    # Limitation, said in the record: the loader, run directly, maps another readable program.
    loader = attack.attempts["loader"]
    assert loader["ok"], loader  # if this starts failing, the gap closed: update security.md
    assert any("dynamic loader" in note for note in enforcement["notes"]), enforcement["notes"]
