"""Landlock: a ruleset built here (the "zygote") confines a forked child; each test attacks it.

The tree every test uses::

    granted/   read + execute     file.txt, escape -> ../secret/key.txt
    readonly/  read only          data.txt
    rw/        read + write       (the job's workspace)
    secret/    no rule at all     key.txt
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugbox.sandbox import kernel
from plugbox.sandbox.kernel import (
    LandlockPolicy,
    Ruleset,
    abi_version,
    default_policy,
    default_system_paths,
    default_writable_paths,
    probe_all,
)

from .conftest import LIBC, errno_of, in_child, raw_errno

needs_scoping = pytest.mark.skipif(abi_version() < 6, reason="scoping needs Landlock ABI >= 6")

SECRET = "TOP-SECRET-VALUE"


@dataclass(frozen=True)
class Tree:
    root: Path
    granted: Path
    readonly: Path
    rw: Path
    secret: Path

    def policy(
        self, *, scope_signals: bool = True, scope_abstract_unix: bool = True
    ) -> LandlockPolicy:
        base = default_policy(
            read_exec=(str(self.granted),),
            read_only=(str(self.readonly),),
            read_write=(str(self.rw),),
        )
        return dataclasses.replace(
            base, scope_signals=scope_signals, scope_abstract_unix=scope_abstract_unix
        )


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    """The attack tree; every test that confines a child uses it, so the skip lives here."""
    if abi_version() == 0:
        pytest.skip(f"Landlock unavailable: {kernel.landlock.unavailable_reason()}")
    granted, readonly, rw, secret = (tmp_path / n for n in ("granted", "readonly", "rw", "secret"))
    for directory in (granted, readonly, rw, secret):
        directory.mkdir()
    (granted / "file.txt").write_text("public\n")
    (granted / "escape").symlink_to(secret / "key.txt")
    (readonly / "data.txt").write_text("read me, never change me\n")
    (secret / "key.txt").write_text(SECRET)
    return Tree(tmp_path, granted, readonly, rw, secret)


@pytest.fixture
def ruleset(tree: Tree) -> Iterator[Ruleset]:
    """Built once in the parent, as the zygote does; each test's child only calls restrict_self."""
    with Ruleset.build(tree.policy()) as built:
        yield built


def read(path: Path | str) -> str:
    with open(path) as handle:
        return handle.read()


def read_errno(path: Path | str) -> int:
    return errno_of(lambda: read(path))


# -- the public surface and the doctor's probe (run on every machine) ---------------------------------
def test_public_surface() -> None:
    assert sorted(kernel.__all__) == kernel.__all__
    assert set(kernel.__all__) == {
        "Filter", "LandlockPolicy", "LandlockUnavailable", "LayerStatus", "Ruleset",
        "SeccompPolicy", "SeccompUnavailable", "abi_version", "default_policy",
        "default_system_paths", "default_writable_paths", "network_namespace_available",
        "probe_all", "seccomp_available", "unshare_network",
    }  # fmt: skip


def test_probe_all_reports_each_layer_without_confining_the_caller() -> None:
    def seccomp_mode() -> str:
        with open("/proc/self/status") as status_file:
            return next(line for line in status_file if line.startswith("Seccomp:"))

    netns_before, seccomp_before = os.readlink("/proc/self/ns/net"), seccomp_mode()
    statuses = probe_all()
    assert [s.name for s in statuses] == ["landlock", "network namespace", "seccomp"]
    for status in statuses:
        assert status.detail, status  # active: what it is; inactive: why not
    landlock_status = statuses[0]
    assert landlock_status.active == (abi_version() > 0)
    if landlock_status.active:
        assert landlock_status.detail.startswith(f"ABI {abi_version()}")
    # The caller is untouched: still readable /proc, same network, sockets, no seccomp.
    assert os.readlink("/proc/self/ns/net") == netns_before
    assert seccomp_mode() == seccomp_before
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()


# -- the ruleset itself ---------------------------------------------------------------------------
def test_abi_is_reported_and_the_ruleset_uses_it(ruleset: Ruleset) -> None:
    assert abi_version() >= 1
    assert ruleset.abi == abi_version()
    assert ruleset.fd >= 0 and ruleset.skipped == ()


def test_missing_paths_are_skipped_and_listed(tree: Tree) -> None:
    ghost = str(tree.root / "does-not-exist")
    with Ruleset.build(
        LandlockPolicy(read_exec=(str(tree.granted),), read_write=(ghost,))
    ) as built:
        assert built.skipped == (ghost,)


def test_the_ruleset_is_reusable_across_children_and_closed_in_each(ruleset: Ruleset) -> None:
    fd = ruleset.fd

    def child() -> tuple[int, int]:
        ruleset.restrict_self()
        # A confined job holding the fd could add a rule to the kernel object the zygote shares
        # with every later child; restrict_self closes the child's copy before returning.
        return ruleset.fd, errno_of(lambda: os.fstat(fd))

    assert in_child(child).unwrap() == (-1, errno.EBADF)
    assert in_child(child).unwrap() == (-1, errno.EBADF)  # the parent's fd still works
    os.fstat(ruleset.fd)


def test_restrict_self_refuses_a_multithreaded_process(ruleset: Ruleset) -> None:
    def child() -> str:
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()
        try:
            ruleset.restrict_self()
        except RuntimeError as exc:
            return str(exc)
        finally:
            stop.set()
            worker.join()
        return "restricted"

    assert "single-threaded" in in_child(child).unwrap()


def test_default_system_paths_never_include_proc_tmp_or_home() -> None:
    paths = default_system_paths()
    home = os.path.expanduser("~")
    for path in paths:
        assert os.path.exists(path)
        assert path not in {"/", "/proc", "/tmp", "/dev/shm", "/dev", "/sys", home}
        assert not path.startswith(("/proc/", "/sys/", "/dev/shm/"))
        assert not home.startswith(path.rstrip("/") + "/"), f"{path} contains $HOME"
    assert sys.base_prefix in paths or any(sys.base_prefix.startswith(p + "/") for p in paths)
    assert default_writable_paths() == ("/dev/null",)


# -- reading ---------------------------------------------------------------------------------------
def test_granted_tree_is_readable_and_a_sibling_secret_is_not(tree: Tree, ruleset: Ruleset) -> None:
    def child() -> dict[str, object]:
        ruleset.restrict_self()
        return {
            "granted": read(tree.granted / "file.txt"),
            "secret": errno_of(lambda: read(tree.secret / "key.txt")),
            "list secret": errno_of(lambda: os.listdir(tree.secret)),
            "list root": errno_of(lambda: os.listdir(tree.root)),
        }

    assert in_child(child).unwrap() == {
        "granted": "public\n",
        "secret": errno.EACCES,
        "list secret": errno.EACCES,
        "list root": errno.EACCES,
    }


def test_host_files_outside_the_read_list_are_denied(ruleset: Ruleset) -> None:
    targets = ["/etc/passwd", "/etc/shadow", "/etc/hostname", os.path.expanduser("~/.bashrc")]
    targets = [t for t in targets if os.path.exists(t)]

    def child() -> dict[str, int]:
        ruleset.restrict_self()
        found = {t: read_errno(t) for t in targets}
        if os.path.isdir("/etc/ssl/private"):
            found["/etc/ssl/private"] = errno_of(lambda: os.listdir("/etc/ssl/private"))
        return found

    denied = in_child(child).unwrap()
    assert denied and set(denied.values()) == {errno.EACCES}


def test_proc_environ_of_self_init_and_parent_is_unreadable(ruleset: Ruleset) -> None:
    parent = os.getpid()

    def child() -> dict[str, int]:
        ruleset.restrict_self()
        paths = ["/proc/self/environ", "/proc/1/environ", f"/proc/{parent}/environ"]
        found = {p: read_errno(p) for p in paths}
        # The /proc/self/root magic link resolves to the real /etc/passwd, which is checked too.
        found["/proc/self/root/etc/passwd"] = errno_of(lambda: read("/proc/self/root/etc/passwd"))
        return found

    assert set(in_child(child).unwrap().values()) == {errno.EACCES}


def test_symlink_inside_a_granted_tree_to_a_secret_is_denied(tree: Tree, ruleset: Ruleset) -> None:
    def child() -> int:
        ruleset.restrict_self()
        return errno_of(lambda: read(tree.granted / "escape"))

    assert in_child(child).unwrap() == errno.EACCES


def test_a_symlink_the_job_plants_in_its_workspace_does_not_help(
    tree: Tree, ruleset: Ruleset
) -> None:
    def child() -> tuple[int, int]:
        ruleset.restrict_self()
        link = tree.rw / "planted"
        return errno_of(lambda: link.symlink_to(tree.secret / "key.txt")), errno_of(
            lambda: read(link)
        )

    assert in_child(child).unwrap() == (0, errno.EACCES)


def test_ctypes_libc_open_and_raw_openat_are_denied_too(tree: Tree, ruleset: Ruleset) -> None:
    path = str(tree.secret / "key.txt").encode()
    LIBC.open.restype = ctypes.c_int
    LIBC.openat.restype = ctypes.c_int

    def child() -> tuple[int, int]:
        ruleset.restrict_self()
        by_open = raw_errno(LIBC.open(path, os.O_RDONLY))
        by_openat = raw_errno(LIBC.openat(-100, path, os.O_RDONLY))  # AT_FDCWD
        return by_open, by_openat

    assert in_child(child).unwrap() == (errno.EACCES, errno.EACCES)


def test_grandchildren_inherit_the_domain(tree: Tree, ruleset: Ruleset) -> None:
    def child() -> int:
        ruleset.restrict_self()
        return int(in_child(lambda: read_errno(tree.secret / "key.txt")).unwrap())

    assert in_child(child).unwrap() == errno.EACCES


# -- writing ---------------------------------------------------------------------------------------
def test_read_only_tree_refuses_every_kind_of_write(tree: Tree, ruleset: Ruleset) -> None:
    data = tree.readonly / "data.txt"

    def child() -> dict[str, int]:
        ruleset.restrict_self()
        return {
            "create": errno_of(lambda: (tree.readonly / "new.txt").write_text("x")),
            "append": errno_of(lambda: open(data, "a").close()),
            "truncate": errno_of(lambda: os.truncate(data, 0)),
            "unlink": errno_of(lambda: data.unlink()),
            "mkdir": errno_of(lambda: (tree.readonly / "d").mkdir()),
            "symlink": errno_of(lambda: (tree.readonly / "l").symlink_to("data.txt")),
        }

    assert set(in_child(child).unwrap().values()) == {errno.EACCES}
    assert data.read_text() == "read me, never change me\n"


def test_truncating_a_read_only_file_through_ctypes_is_denied(tree: Tree, ruleset: Ruleset) -> None:
    data = str(tree.readonly / "data.txt").encode()
    LIBC.truncate.restype = ctypes.c_int

    def child() -> int:
        ruleset.restrict_self()
        return raw_errno(LIBC.truncate(data, ctypes.c_long(0)))

    assert in_child(child).unwrap() == errno.EACCES
    assert (tree.readonly / "data.txt").read_text() == "read me, never change me\n"


def test_workspace_round_trip_works(tree: Tree, ruleset: Ruleset) -> None:
    def child() -> list[str]:
        ruleset.restrict_self()
        (tree.rw / "a" / "b").mkdir(parents=True)
        (tree.rw / "a" / "f.txt").write_text("one")
        with open(tree.rw / "a" / "f.txt", "r+") as handle:
            handle.truncate(0)
            handle.write("two")
        # Cross-directory rename needs REFER, which the workspace grants.
        os.rename(tree.rw / "a" / "f.txt", tree.rw / "a" / "b" / "g.txt")
        os.mkfifo(tree.rw / "fifo")
        (tree.rw / "link").symlink_to("a/b/g.txt")
        (tree.rw / "gone.txt").write_text("x")
        (tree.rw / "gone.txt").unlink()
        with open(os.devnull, "w") as sink:  # /dev/null is a read-write file rule
            sink.write("discarded")
        return [(tree.rw / "link").read_text(), *sorted(os.listdir(tree.rw))]

    assert in_child(child).unwrap() == ["two", "a", "fifo", "link"]


def test_a_file_rule_grants_only_that_file(ruleset: Ruleset) -> None:
    def child() -> tuple[int, int, int]:
        ruleset.restrict_self()
        return (
            errno_of(lambda: open("/dev/null", "w").close()),
            errno_of(lambda: open("/dev/zero", "w").close()),  # read-only rule
            errno_of(lambda: os.listdir("/dev")),
        )

    assert in_child(child).unwrap() == (0, errno.EACCES, errno.EACCES)


def test_the_null_device_is_read_write_even_when_listed_read_only(tree: Tree) -> None:
    # subprocess.DEVNULL opens /dev/null O_RDWR: a read-only rule would break every stdin=DEVNULL.
    with Ruleset.build(LandlockPolicy(read_exec=default_system_paths())) as built:

        def child() -> tuple[int, int, int]:
            built.restrict_self()
            done = subprocess.run(["true"], stdin=subprocess.DEVNULL, check=False)
            sink = errno_of(lambda: open(os.devnull, "w").close())
            return done.returncode, sink, errno_of(lambda: open("/dev/zero", "w").close())

        assert in_child(child).unwrap() == (0, 0, errno.EACCES)


def test_device_nodes_cannot_be_made_in_the_workspace(tree: Tree, ruleset: Ruleset) -> None:
    # As root, a block device node of the host's disk inside the workspace would bypass every rule.
    def child() -> tuple[int, int]:
        ruleset.restrict_self()
        block = errno_of(lambda: os.mknod(tree.rw / "disk", stat.S_IFBLK | 0o600, os.makedev(8, 0)))
        char = errno_of(lambda: os.mknod(tree.rw / "mem", stat.S_IFCHR | 0o600, os.makedev(1, 1)))
        return block, char

    assert in_child(child).unwrap() == (errno.EACCES, errno.EACCES)


def test_hardlinking_a_secret_or_read_only_file_into_the_workspace_is_denied(
    tree: Tree, ruleset: Ruleset
) -> None:
    def child() -> tuple[int, int]:
        ruleset.restrict_self()
        # The kernel refuses a link whose new name would grant more than the old one had (REFER).
        secret = errno_of(lambda: os.link(tree.secret / "key.txt", tree.rw / "stolen"))
        readonly = errno_of(lambda: os.link(tree.readonly / "data.txt", tree.rw / "writable"))
        return secret, readonly

    assert in_child(child).unwrap() == (errno.EXDEV, errno.EXDEV)
    assert not (tree.rw / "stolen").exists() and not (tree.rw / "writable").exists()


def test_renaming_out_of_or_into_the_workspace_is_denied(tree: Tree, ruleset: Ruleset) -> None:
    (tree.rw / "out.txt").write_text("x")

    def child() -> dict[str, int]:
        ruleset.restrict_self()
        return {
            "to secret": errno_of(lambda: os.rename(tree.rw / "out.txt", tree.secret / "o")),
            "to readonly": errno_of(lambda: os.rename(tree.rw / "out.txt", tree.readonly / "o")),
            "from readonly": errno_of(
                lambda: os.rename(tree.readonly / "data.txt", tree.rw / "data.txt")
            ),
            "from secret": errno_of(lambda: os.rename(tree.secret / "key.txt", tree.rw / "k")),
        }

    assert in_child(child).unwrap() == {
        "to secret": errno.EACCES,
        "to readonly": errno.EACCES,
        "from readonly": errno.EACCES,
        "from secret": errno.EACCES,
    }
    assert (tree.rw / "out.txt").exists() and (tree.secret / "key.txt").exists()


# -- executing -------------------------------------------------------------------------------------
def test_a_program_written_to_the_workspace_cannot_be_executed(
    tree: Tree, ruleset: Ruleset
) -> None:
    true = shutil.which("true")
    assert true is not None
    shutil.copy(true, tree.rw / "prog")
    (tree.rw / "script").write_text("#!/bin/sh\nexit 0\n")
    for name in ("prog", "script"):
        (tree.rw / name).chmod(0o755)

    def child() -> dict[str, int]:
        ruleset.restrict_self()
        return {
            "binary": errno_of(lambda: os.execv(tree.rw / "prog", ["prog"])),
            "script": errno_of(lambda: os.execv(tree.rw / "script", ["script"])),
            "subprocess": errno_of(lambda: subprocess.run([tree.rw / "prog"], check=False)),
        }

    assert set(in_child(child).unwrap().values()) == {errno.EACCES}


def test_system_programs_still_run_and_python_keeps_working(ruleset: Ruleset) -> None:
    def child() -> tuple[int, bool, str]:
        ruleset.restrict_self()
        done = subprocess.run(["true"], stdout=subprocess.DEVNULL, check=False)
        import ssl  # loads CA certificates from /etc/ssl/certs

        context = ssl.create_default_context()
        import colorsys  # a stdlib module nothing imported yet

        return done.returncode, context.cert_store_stats()["x509_ca"] > 0, colorsys.__name__

    assert in_child(child).unwrap() == (0, True, "colorsys")


def test_exec_narrowed_to_file_rules_runs_only_those_files(tree: Tree) -> None:
    """What spawn_spec builds for ``shell.allow: ['echo *']``: EXECUTE on echo and its loader,
    every system path read-only. Control: the same ruleset runs echo."""
    from plugbox.sandbox.exec_files import exec_files

    allowed = exec_files(["echo"], "/usr/bin:/bin")
    system = tuple(sorted({os.path.realpath(p) for p in default_system_paths()}))
    policy = LandlockPolicy(read_exec=allowed, read_only=system, read_write=("/dev/null",))
    with Ruleset.build(policy) as narrowed:

        def child() -> dict[str, int]:
            narrowed.restrict_self()
            run = subprocess.run
            return {
                "echo": run(["/bin/echo"], stdout=subprocess.DEVNULL, check=False).returncode,
                "touch": errno_of(lambda: run(["/usr/bin/touch", str(tree.rw / "t")], check=False)),
                "sh": errno_of(lambda: run(["/bin/sh", "-c", "true"], check=False)),
            }

        assert in_child(child).unwrap() == {"echo": 0, "touch": errno.EACCES, "sh": errno.EACCES}
    assert not (tree.rw / "t").exists()


# -- rule paths never follow a link a job planted --------------------------------------------------
@pytest.mark.parametrize("where", ["read_only", "read_write"])
@pytest.mark.parametrize("link_at", ["end", "middle"])
def test_a_rule_path_through_a_symlink_is_refused_not_followed(
    tree: Tree, where: str, link_at: str
) -> None:
    (tree.rw / "rootlink").symlink_to("/")
    path = tree.rw / "rootlink" if link_at == "end" else tree.rw / "rootlink" / "etc"
    policy = dataclasses.replace(default_policy(), **{where: (str(path),)})
    with pytest.raises(kernel.landlock.LinkRefused, match="never follow links") as refused:
        Ruleset.build(policy)
    assert refused.value.link == str(tree.rw / "rootlink")
    assert not isinstance(refused.value, OSError)  # never mistaken for "Landlock unavailable"
    # Control: the same rule on a real folder builds, and read_exec (the host's paths) follows.
    (tree.rw / "rootlink").unlink()
    (tree.rw / "rootlink" / "etc").mkdir(parents=True)
    Ruleset.build(dataclasses.replace(default_policy(), **{where: (str(path),)})).close()
    (tree.root / "lib-link").symlink_to(tree.granted)
    with Ruleset.build(default_policy(read_exec=(str(tree.root / "lib-link"),))) as followed:
        assert followed.skipped == ()


def test_a_rule_made_before_a_swap_stays_on_the_folder_not_the_link(tree: Tree) -> None:
    """The race: a job swaps its folder for a link after the ruleset was built. The rule is on
    the folder's inode, so the link (to the secret) grants nothing."""
    box = tree.rw / "box"
    box.mkdir()
    with Ruleset.build(default_policy(read_only=(str(box),))) as built:
        box.rename(tree.root / "old-box")
        box.symlink_to(tree.secret)

        def child() -> dict[str, int]:
            built.restrict_self()
            return {
                "via link": read_errno(box / "key.txt"),
                "old folder": errno_of(lambda: os.listdir(tree.root / "old-box")),
            }

        assert in_child(child).unwrap() == {"via link": errno.EACCES, "old folder": 0}


# -- scoping (ABI >= 6) ----------------------------------------------------------------------------
@needs_scoping
@pytest.mark.parametrize("scoped", [True, False])
def test_signals_to_processes_outside_the_domain(tree: Tree, scoped: bool) -> None:
    parent = os.getpid()
    with Ruleset.build(tree.policy(scope_signals=scoped)) as built:

        def child() -> tuple[int, int]:
            built.restrict_self()
            outside = errno_of(lambda: os.kill(parent, 0))
            pid = os.fork()
            if pid == 0:  # a grandchild shares the domain and may be signalled
                signal.pause()
                os._exit(0)
            inside = errno_of(lambda: os.kill(pid, signal.SIGKILL))
            os.waitpid(pid, 0)
            return outside, inside

        expected = (errno.EPERM, 0) if scoped else (0, 0)
        assert in_child(child).unwrap() == expected


@needs_scoping
@pytest.mark.parametrize("scoped", [True, False])
def test_abstract_unix_socket_outside_the_domain(tree: Tree, scoped: bool) -> None:
    name = f"\0plugbox-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(name)
        listener.listen()
        with Ruleset.build(tree.policy(scope_abstract_unix=scoped)) as built:

            def child() -> int:
                built.restrict_self()
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    return errno_of(lambda: client.connect(name))

            assert in_child(child).unwrap() == (errno.EPERM if scoped else 0)


# -- what Landlock does not cover (documented in ADR 0004, pinned here) ------------------------
def test_limitation_a_descriptor_opened_before_restrict_self_stays_usable(
    tree: Tree, ruleset: Ruleset
) -> None:
    # Why the runner closes every fd it does not pass on before confining the child.
    with open(tree.secret / "key.txt") as handle:

        def child() -> str:
            ruleset.restrict_self()
            handle.seek(0)
            return handle.read()

        assert in_child(child).unwrap() == SECRET


def test_limitation_metadata_of_denied_paths_is_visible(tree: Tree, ruleset: Ruleset) -> None:
    def child() -> tuple[bool, int, str]:
        ruleset.restrict_self()
        size = os.stat(tree.secret / "key.txt").st_size
        return os.path.exists(tree.secret / "key.txt"), size, os.readlink(tree.granted / "escape")

    assert in_child(child).unwrap() == (True, len(SECRET), str(tree.secret / "key.txt"))


def test_limitation_read_only_nested_in_read_write_is_writable(tree: Tree) -> None:
    # Landlock rules only add rights; the runtime.fs proxy enforces finer rules in the workspace.
    inner = tree.rw / "inner"
    inner.mkdir()
    policy = LandlockPolicy(read_exec=default_system_paths(), read_only=(str(inner),),
                            read_write=(str(tree.rw),))  # fmt: skip
    with Ruleset.build(policy) as built:

        def child() -> int:
            built.restrict_self()
            return errno_of(lambda: (inner / "x").write_text("x"))

        assert in_child(child).unwrap() == 0


def test_limitation_pathname_unix_sockets_outside_the_domain_are_reachable(
    tree: Tree, ruleset: Ruleset
) -> None:
    # Landlock (ABI <= 7) has no hook on connect(2) to a pathname socket: a job that can name a
    # host socket (docker.sock, the D-Bus system bus, PostgreSQL's) reaches it, as root even when
    # the file mode says 0600. Only a non-root uid or a mount namespace hiding /run closes this.
    path = str(tree.secret / "host.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen()

        def child() -> tuple[int, int]:
            ruleset.restrict_self()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                return read_errno(tree.secret / "key.txt"), errno_of(lambda: client.connect(path))

        assert in_child(child).unwrap() == (errno.EACCES, 0)
        listener.accept()[0].close()
