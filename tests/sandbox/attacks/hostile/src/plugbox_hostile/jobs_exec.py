"""Programs the job may not run: with the ``shell`` capability and only ``echo *`` allowed, every
way to start another program (``touch``), and the allowed one as the control.

Each exec attempt runs in a forked child so a success cannot replace the job itself: the child
reports the errno of a failed exec on a close-on-exec pipe; an exec that succeeded closes the
pipe silently, and the program's own effect (``touch`` making a file) is checked too.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from plugbox.sdk import JobContext, job
from plugbox.sdk import permissions as perms
from plugbox_hostile._attempt import attempt, report

OWN = ".plugbox/eve"
TOUCH = "/usr/bin/touch"
_LIBC = ctypes.CDLL(None, use_errno=True)
_SYS_EXECVEAT = 322  # x86_64
_AT_EMPTY_PATH = 0x1000


def _in_child(exec_call: Callable[[], object], made: str) -> str:
    """Run ``exec_call`` in a forked child; raise the OSError it met, or say what ran."""
    if os.path.exists(made):
        os.remove(made)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            exec_call()
        except OSError as err:
            code = err.errno or 0
        os.write(write_end, str(code).encode())
        os._exit(0)
    os.close(write_end)
    reported = os.read(read_end, 64).decode()
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if reported:
        errno_value = int(reported)
        raise OSError(errno_value, os.strerror(errno_value))
    return f"exec succeeded (exit {os.waitstatus_to_exitcode(status)}, made={os.path.exists(made)})"


def _argv(*words: str) -> Any:
    array = (ctypes.c_char_p * (len(words) + 1))()
    array[:-1] = [w.encode() for w in words]
    return array


def _raise_errno() -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def _ctypes_execve(made: str) -> None:
    _LIBC.execve(TOUCH.encode(), _argv("touch", made), _argv())
    _raise_errno()


def _memfd_copy() -> int:
    fd = os.memfd_create("eve-touch", 0)
    with open(TOUCH, "rb") as program:
        os.write(fd, program.read())
    return fd


def _memfd_execveat(made: str) -> None:
    fd = _memfd_copy()
    _LIBC.syscall(_SYS_EXECVEAT, fd, b"", _argv("touch", made), _argv(), _AT_EMPTY_PATH)
    _raise_errno()


def _memfd_path(prefix: str, made: str) -> None:
    fd = _memfd_copy()
    os.execv(f"{prefix}/{fd}", ["touch", made])


def _loader(made: str) -> None:
    interpreter = "/lib64/ld-linux-x86-64.so.2"
    os.execv(interpreter, [interpreter, TOUCH, made])


def _posix_spawn(made: str) -> int:
    pid = os.posix_spawn(TOUCH, ["touch", made], {})
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _run(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, check=False, timeout=10).returncode


def _path(name: str) -> str:
    return f"{OWN}/{name}"


@job(
    "exec-echo-only",
    schedule="@daily",
    timeout="30s",
    permissions=perms.combine(
        perms.Permissions(fs=perms.FsPermissions(mode="readWrite", allow=(f"{OWN}/",))),
        perms.presets.shell_commands("echo *"),
    ),
)
def exec_echo_only(ctx: JobContext) -> dict[str, Any]:
    os.makedirs(OWN, exist_ok=True)
    echoed = ctx.runtime.shell.run("echo allowed")
    plain_echo = subprocess.run(["echo", "plain"], capture_output=True, text=True, check=True)
    return report(
        {"proxy": echoed.stdout, "plain": plain_echo.stdout, "which_touch": shutil.which("touch")},
        proxy_touch=attempt(ctx.runtime.shell.run, f"touch {_path('proxy')}"),
        absolute=attempt(_run, [TOUCH, _path("absolute")]),
        via_path=attempt(_run, ["touch", _path("via-path")]),
        sh_c=attempt(_run, ["/bin/sh", "-c", f"touch {_path('sh')}"]),
        execv=attempt(
            _in_child, lambda: os.execv(TOUCH, ["touch", _path("execv")]), _path("execv")
        ),
        posix_spawn=attempt(_posix_spawn, _path("spawn")),
        ctypes_execve=attempt(_in_child, lambda: _ctypes_execve(_path("ctypes")), _path("ctypes")),
        memfd_execveat=attempt(_in_child, lambda: _memfd_execveat(_path("memfd")), _path("memfd")),
        proc_self_fd=attempt(
            _in_child, lambda: _memfd_path("/proc/self/fd", _path("procfd")), _path("procfd")
        ),
        dev_fd=attempt(_in_child, lambda: _memfd_path("/dev/fd", _path("devfd")), _path("devfd")),
        loader=attempt(_in_child, lambda: _loader(_path("loader")), _path("loader")),
        made=attempt(
            lambda: sorted(
                n for n in os.listdir(OWN) if n not in ("control.txt",) and not n.endswith(".txt")
            )
        ),
    )


JOBS = [exec_echo_only]
