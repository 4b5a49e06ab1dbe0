"""The private network namespace: a forked child unshares it and tries to reach the host.

The parent (pytest, in the host's namespace) opens real listeners on loopback; the child must not
reach any of them, by any protocol, while its inherited unix socketpair (the broker channel) keeps
working. The non-root path (a user namespace) is exercised by dropping to an unprivileged uid.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pwd
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from plugbox.sandbox.kernel import namespaces, network_namespace_available, unshare_network

from .conftest import errno_of, in_child

pytestmark = pytest.mark.skipif(
    not network_namespace_available(),
    reason=f"no network namespace here: {namespaces.probe_network()[1]}",
)

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1
_IPPROTO_MPTCP = 262
_MSG_FASTOPEN = 0x20000000


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        yield receiver


def nothing_arrived(sock: socket.socket) -> bool:
    try:
        sock.accept() if sock.type == socket.SOCK_STREAM else sock.recv(1)
    except BlockingIOError:
        return True
    return False


def interfaces_and_lo_up() -> tuple[list[str], bool]:
    names = [name for _, name in socket.if_nameindex()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
    return names, bool(flags & _IFF_UP)


def connect_errno(family: socket.AddressFamily, address: tuple[str, int], proto: int = 0) -> int:
    with socket.socket(family, socket.SOCK_STREAM, proto) as client:
        client.settimeout(5)
        return errno_of(lambda: client.connect(address))


def test_tcp_to_a_host_loopback_listener_is_unreachable(tcp_listener: socket.socket) -> None:
    address = tcp_listener.getsockname()
    assert connect_errno(socket.AF_INET, address) == 0  # control: reachable from the host netns
    tcp_listener.accept()[0].close()

    def child() -> tuple[str, int]:
        how = unshare_network()
        return how, connect_errno(socket.AF_INET, address)

    assert in_child(child).unwrap() == ("netns", errno.ENETUNREACH)
    assert nothing_arrived(tcp_listener)


def test_udp_to_the_host_never_arrives(udp_receiver: socket.socket) -> None:
    address = udp_receiver.getsockname()

    def child() -> int:
        unshare_network()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            return errno_of(lambda: sender.sendto(b"exfiltrated", address))

    assert in_child(child).unwrap() == errno.ENETUNREACH
    assert nothing_arrived(udp_receiver)


def test_ipv6_loopback_is_unreachable() -> None:
    if not socket.has_ipv6:
        pytest.skip("Python built without IPv6")
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this host: {exc}")
    with server:
        port = server.getsockname()[1]

        def child() -> int:
            unshare_network()
            return connect_errno(socket.AF_INET6, ("::1", port))

        # With lo down the namespace does not even have ::1, so there is no source address.
        assert in_child(child).unwrap() == errno.EADDRNOTAVAIL


def test_tcp_fast_open_and_mptcp_are_unreachable_too(tcp_listener: socket.socket) -> None:
    # Both reach around Landlock's TCP connect hook on this kernel; the namespace has no route.
    address = tcp_listener.getsockname()

    def child() -> tuple[int, int]:
        unshare_network()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tfo:
            fast_open = errno_of(
                lambda: tfo.sendto(b"GET / HTTP/1.0\r\n\r\n", _MSG_FASTOPEN, address)
            )
        try:
            mptcp = connect_errno(socket.AF_INET, address, _IPPROTO_MPTCP)
        except OSError as exc:  # kernel without MPTCP: the protocol itself is unavailable
            mptcp = -(exc.errno or 1)
        return fast_open, mptcp

    fast_open, mptcp = in_child(child).unwrap()
    assert fast_open == errno.ENETUNREACH
    assert mptcp in (errno.ENETUNREACH, -errno.EPROTONOSUPPORT, -errno.ENOPROTOOPT)
    assert nothing_arrived(tcp_listener)


def test_only_lo_exists_and_it_stays_down() -> None:
    def child() -> tuple[list[str], bool]:
        unshare_network()
        return interfaces_and_lo_up()

    assert in_child(child).unwrap() == (["lo"], False)


def test_a_port_bound_inside_is_not_reachable_from_the_host() -> None:
    ready_read, ready_write = os.pipe()
    done_read, done_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child listens inside its namespace until the parent has tried
        code = 1
        try:
            unshare_network()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
                server.bind(("0.0.0.0", 0))  # binding works: it just leads nowhere
                server.listen()
                os.write(ready_write, server.getsockname()[1].to_bytes(2, "big"))
                os.read(done_read, 1)
                code = 0
        finally:
            os._exit(code)
    try:
        port = int.from_bytes(os.read(ready_read, 2), "big")
        assert port > 0
        assert connect_errno(socket.AF_INET, ("127.0.0.1", port)) == errno.ECONNREFUSED
        os.write(done_write, b"x")
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (ready_read, ready_write, done_read, done_write):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_hosts_abstract_unix_sockets_are_gone() -> None:
    # Abstract unix addresses are per network namespace (X11, D-Bus and friends live there).
    name = f"\0plugbox-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(name)
        listener.listen()

        def child() -> int:
            unshare_network()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                return errno_of(lambda: client.connect(name))

        assert in_child(child).unwrap() == errno.ECONNREFUSED


def test_the_inherited_broker_socketpair_keeps_working() -> None:
    parent_end, child_end = socket.socketpair()
    with parent_end, child_end:

        def child() -> bool:
            unshare_network()
            child_end.sendall(b"request over the broker")
            return True

        assert in_child(child).unwrap() is True
        assert parent_end.recv(64) == b"request over the broker"


def test_limitation_vsock_is_not_namespaced() -> None:
    # AF_VSOCK talks to the hypervisor and ignores network namespaces: from inside the empty
    # namespace a vsock socket is still created (and on a VM, connects reach the host). seccomp's
    # socket rule (AF_UNIX only) is what stops it; see test_seccomp.py and ADR 0004.
    if not os.path.exists("/dev/vsock"):
        pytest.skip("no vsock transport on this machine")

    def child() -> int:
        unshare_network()
        return errno_of(lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close())

    assert in_child(child).unwrap() == 0


def test_probing_never_moves_the_caller() -> None:
    before = os.readlink("/proc/self/ns/net")
    assert network_namespace_available() is True
    assert namespaces.probe_network() == (True, "netns" if os.geteuid() == 0 else "userns+netns")
    assert os.readlink("/proc/self/ns/net") == before


# -- not root: CLONE_NEWUSER | CLONE_NEWNET ----------------------------------------------------------
def _userns_blocked_reason() -> str | None:
    for path, bad in (
        ("/proc/sys/user/max_user_namespaces", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"),
    ):
        try:
            with open(path) as handle:
                if handle.read().strip() == bad:
                    return f"the kernel forbids unprivileged user namespaces ({path} = {bad})"
        except FileNotFoundError:
            continue
    return None


@pytest.fixture(scope="module")
def unprivileged() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())  # already unprivileged: the child stays as it is
    reason = _userns_blocked_reason()
    if reason:
        pytest.skip(reason)
    for name in ("nobody", "plugbox-test"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "-M", "-r", "plugbox-test"], check=True)
    return pwd.getpwnam("plugbox-test")


def _drop_to(user: pwd.struct_passwd) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)  # also makes the process non-dumpable: unshare_network handles it


def test_unprivileged_path_uses_a_user_namespace_and_keeps_the_uid(
    unprivileged: pwd.struct_passwd, tcp_listener: socket.socket
) -> None:
    address = tcp_listener.getsockname()

    def child() -> dict[str, object]:
        _drop_to(unprivileged)
        how = unshare_network()
        with open("/proc/self/uid_map") as uid_map:
            mapping = uid_map.read().split()
        names, lo_up = interfaces_and_lo_up()
        return {
            "how": how,
            "uid": (os.getuid(), os.geteuid(), os.getgid()),
            "uid_map": mapping,
            "connect": connect_errno(socket.AF_INET, address),
            "interfaces": names,
            "lo_up": lo_up,
        }

    uid, gid = unprivileged.pw_uid, unprivileged.pw_gid
    assert in_child(child).unwrap() == {
        "how": "userns+netns",
        "uid": (uid, uid, gid),
        "uid_map": [str(uid), str(uid), "1"],
        "connect": errno.ENETUNREACH,
        "interfaces": ["lo"],
        "lo_up": False,
    }
    assert nothing_arrived(tcp_listener)


def test_unprivileged_child_keeps_only_its_own_uid(unprivileged: pwd.struct_passwd) -> None:
    # setgroups is "deny" and only the own uid is mapped: becoming root on the host is impossible.
    def child() -> tuple[int, int]:
        _drop_to(unprivileged)
        unshare_network()
        return errno_of(lambda: os.setuid(0)), errno_of(lambda: os.setgroups([0]))

    assert in_child(child).unwrap() == (errno.EINVAL, errno.EPERM)
