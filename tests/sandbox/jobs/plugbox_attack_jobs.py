"""Jobs that try to escape the sandbox. Each returns what it managed, or raises what stopped it.

Loaded by the confined child through ``RunRequest.python_path``; never imported by the tests.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time


def _attempt(func, *args):
    try:
        value = func(*args)
    except OSError as err:
        return {"stopped": True, "errno": err.errno, "error": type(err).__name__}
    return {"stopped": False, "value": repr(value)[:200]}


def ok(ctx):
    ctx.logger.info("hello", run=ctx.run_count)
    ctx.emit("said", {"run": ctx.run_count})
    print("printed to stdout")
    return {"ok": True}


# --- filesystem -------------------------------------------------------------------------
def read_path(ctx):
    path = ctx.config["path"]
    return _attempt(lambda: open(path, "rb").read(64))


def write_path(ctx):
    path = ctx.config["path"]
    return _attempt(lambda: open(path, "w").write("pwned"))


def list_path(ctx):
    return _attempt(os.listdir, ctx.config["path"])


def ctypes_open(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.open(ctx.config["path"].encode(), os.O_RDONLY)
    return {"stopped": fd < 0, "errno": ctypes.get_errno()}


def symlink_escape(ctx):
    link = ".plugbox/t/link"
    os.symlink(ctx.config["path"], link)
    return _attempt(lambda: open(link).read())


def hardlink_escape(ctx):
    return _attempt(os.link, ctx.config["path"], ".plugbox/t/hard")


def proxy_read(ctx):
    return ctx.runtime.fs.read_text(ctx.config["path"])


def exec_planted(ctx):
    path = ".plugbox/t/tool.sh"
    # Executable from creation: chmod is refused by seccomp (no metadata call reaches a file).
    with open(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o755), "w") as handle:
        handle.write("#!/bin/sh\necho planted\n")
    return _attempt(lambda: subprocess.run([os.path.abspath(path)], capture_output=True))


# --- environment ------------------------------------------------------------------------
def environ(ctx):
    return {"environ": dict(os.environ), "proxy": ctx.runtime.env.names()}


# --- network ----------------------------------------------------------------------------
def tcp_connect(ctx):
    return _attempt(socket.create_connection, ("127.0.0.1", int(ctx.config["port"])), 2)


def udp_send(ctx):
    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return s.sendto(b"x", ("127.0.0.1", int(ctx.config["port"])))

    return _attempt(send)


def raw_socket(ctx):
    family = getattr(socket, ctx.config["family"])
    return _attempt(
        socket.socket, family, socket.SOCK_RAW if family == socket.AF_PACKET else socket.SOCK_STREAM
    )


def net_get(ctx):
    response = ctx.runtime.net.get(ctx.config["url"])
    return {"status": response.status, "text": response.text[:200]}


# --- processes --------------------------------------------------------------------------
def subprocess_run(ctx):
    return _attempt(lambda: subprocess.run(["id"], capture_output=True))


def os_system(ctx):
    return {"status": os.system("id > /dev/null 2>&1")}


def fork_exec(ctx):
    """Skip subprocess and call the C fork+exec directly; the exec error comes back on errpipe."""
    import _posixsubprocess

    r, w = os.pipe()
    pid = _posixsubprocess.fork_exec(
        [b"/bin/true"],
        [b"/bin/true"],
        True,
        (),
        None,
        None,
        -1,
        -1,
        -1,
        -1,
        -1,
        -1,
        r,
        w,
        True,
        False,
        -1,
        None,
        None,
        None,
        -1,
        None,
        False,
    )
    os.close(w)
    report = os.read(r, 1024)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if report.startswith(b"OSError:"):
        return {"stopped": True, "errno": int(report.split(b":")[1], 16)}
    # /bin/true exits 0; a child that could not exec and could not report exits 255.
    return {"stopped": status != 0, "status": status}


def shell_run(ctx):
    result = ctx.runtime.shell.run(ctx.config["command"])
    return {"returncode": result.returncode, "stdout": result.stdout.strip()}


def ptrace_me(ctx):
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.ptrace(0, 0, None, None)
    return {"stopped": rc != 0, "errno": ctypes.get_errno()}


def signal_parent(ctx):
    return _attempt(os.kill, int(ctx.config["pid"]), 0)


# --- resources --------------------------------------------------------------------------
def sleep_forever(ctx):
    time.sleep(3600)


def ignore_sigterm(ctx):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)


def memory_bomb(ctx):
    hog = []
    while True:
        hog.append(bytearray(16 * 1024 * 1024))


def cpu_spin(ctx):
    while True:
        pass


def cpu_spin_forked(ctx):
    for _ in range(3):
        if os.fork() == 0:
            while True:
                pass
    while True:
        pass


def fork_bomb(ctx):
    children = 0
    for _ in range(500):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
    return {"children": children}


def flood_stdout(ctx):
    chunk = "x" * 65536 + "\n"
    for _ in range(200 * 16):
        sys.stdout.write(chunk)
    return {"done": True}


def daemonize(ctx):
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            # Its pid means nothing outside the run's PID namespace: the host finds it by name.
            if "name" in ctx.config:
                name = ctypes.create_string_buffer(ctx.config["name"].encode())
                ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME
            os.write(w, str(os.getpid()).encode())
            os.close(w)
            time.sleep(3600)
            os._exit(0)
        os._exit(0)
    os.close(w)
    pid = int(os.read(r, 32))
    return {"daemon_pid": pid}


def fd_exhaustion(ctx):
    handles = []
    try:
        while True:
            handles.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as err:
        return {"opened": len(handles), "errno": err.errno}


def unserialisable(ctx):
    return {"x": object()}


def huge_result(ctx):
    return {"blob": "x" * (5 * 1024 * 1024)}


def segfault(ctx):
    ctypes.string_at(0)


def exit_early(ctx):
    os._exit(3)


def fake_result_on_stdout(ctx):
    print('{"type": "result", "result": {"forged": true}, "error": null}')
    return {"real": True}


def crash(ctx):
    raise ValueError("bad input on purpose")


def capabilities_held(ctx):
    from plugbox.sandbox.kernel.capabilities import held

    effective, bounding = held()
    return {"effective": effective, "bounding": bounding}
