"""``runtime.shell``: allowed commands, as argument lists, never through a shell.

Each call is decided on the split argument list; the program is then resolved to an absolute path
on the *host's* ``PATH`` with every directory inside the workspace (or relative, like ``.``) removed,
so a job cannot plant ``./git`` and have it run. The command gets an explicit minimal environment —
no ``LD_PRELOAD``, ``GIT_SSH_COMMAND``, ``PAGER`` or ``BASH_ENV`` can ride along — and, started from
a confined child, inherits every kernel layer of the run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from plugbox.sdk import PermissionDenied, ShellResult
from plugbox.sdk.permissions import Decider
from plugbox.sdk.permissions.commands import split_command

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_OUTPUT = 1024 * 1024
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def search_path(host_path: str, workspace: str) -> str:
    """The host ``PATH`` without relative entries or entries inside the workspace."""
    root = os.path.realpath(workspace)
    keep = []
    for entry in host_path.split(os.pathsep):
        if not entry or not os.path.isabs(entry):
            continue
        real = os.path.realpath(entry)
        if real == root or real.startswith(root + os.sep):
            continue
        keep.append(entry)
    return os.pathsep.join(keep) or _SAFE_PATH


class CheckedShell:
    """The ``runtime.shell`` proxy."""

    def __init__(
        self,
        workspace: str,
        decider: Decider,
        *,
        host_path: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
        exec_roots: tuple[str, ...] | None = None,
    ) -> None:
        self._workspace = os.path.realpath(workspace)
        # What the kernel (Landlock) lets this process execute: the exact files the shell rules
        # resolved to when the run's spec was built (or whole system directories in a learn
        # run). A program found elsewhere now would fail with a bare EACCES, so it is refused
        # here with the reason.
        self._exec_roots = exec_roots
        self._decider = decider
        self._host_path = host_path if host_path is not None else _SAFE_PATH
        self._extra_env = dict(extra_env or {})
        self._max_output = max_output

    @functools.cached_property
    def _path(self) -> str:
        # Computed on first use: resolving every PATH entry costs ~0.2 ms a run that never shells out.
        return search_path(self._host_path, self._workspace)

    @functools.cached_property
    def _env(self) -> dict[str, str]:
        return {
            "PATH": self._path,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": self._workspace,
            # The run's temporary directory (child.py: a writable root; the workspace root never is).
            "TMPDIR": os.environ.get("TMPDIR", self._workspace),
            **self._extra_env,
        }

    def run(
        self, command: str | Sequence[str], *, timeout: float | None = None, cwd: str | None = None
    ) -> ShellResult:
        # A list is decided as the exact text it splits back into, so the decision and the
        # execution see the same arguments: " ".join(["echo", "a b"]) would be decided as three
        # arguments and run as two.
        shown = command if isinstance(command, str) else shlex.join(command)
        self._decider.decide("shell.run", shown).raise_if_denied()
        argv = list(split_command(command))
        program = shutil.which(argv[0], path=self._path)
        if program is None:
            raise FileNotFoundError(
                f"command {argv[0]!r} not found on the host PATH ({self._path})"
            )
        self._check_executable(shown, argv[0], program)
        workdir = self._workspace
        if cwd not in (None, "", "."):
            verdict = self._decider.decide("fs.read", str(cwd), is_dir=True)
            verdict.raise_if_denied()
            workdir = os.path.join(self._workspace, verdict.target)
            if os.path.realpath(workdir) != workdir:
                raise PermissionDenied(
                    "shell.run", str(cwd), "symlink check", "cwd must not pass through a symlink"
                )
        return self._spawn([program, *argv[1:]], workdir, timeout or DEFAULT_TIMEOUT_S)

    def _check_executable(self, shown: str, name: str, program: str) -> None:
        if self._exec_roots is None:
            return
        real = os.path.realpath(program)
        for root in self._exec_roots:
            if real == root or real.startswith(root.rstrip("/") + "/"):
                return
        allowed = ", ".join(self._exec_roots) or "nothing"
        raise PermissionDenied(
            "shell.run",
            shown,
            "exec check",
            f"{name!r} resolves to {real}, which the kernel does not let this job execute (it "
            f"may execute only {allowed}: the programs its shell rules named, found on the host "
            "PATH when the host started, outside the workspace); restart the host after "
            "installing or moving a program",
        )

    def _spawn(self, argv: list[str], cwd: str, timeout: float) -> ShellResult:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
        )
        outputs = {"stdout": bytearray(), "stderr": bytearray()}
        deadline = time.monotonic() + timeout
        timed_out = truncated = False
        assert process.stdout is not None
        assert process.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ, "stdout")
            selector.register(process.stderr, selectors.EVENT_READ, "stderr")
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in selector.select(min(left, 0.5)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffer = outputs[key.data]
                    room = self._max_output - len(buffer)
                    # Keep draining past the cap, so the command never blocks on a full pipe.
                    truncated = truncated or len(chunk) > room
                    if room > 0:
                        buffer.extend(chunk[:room])
        if timed_out:
            _kill_group(process)
        returncode = process.wait()
        process.stdout.close()
        process.stderr.close()
        stderr = outputs["stderr"].decode("utf-8", "replace")
        if timed_out:
            stderr += f"\n[plugbox: killed after {timeout:g} s]"
        stdout = outputs["stdout"].decode("utf-8", "replace")
        return ShellResult(returncode, stdout, stderr, truncated=truncated)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
