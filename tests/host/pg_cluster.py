"""A throwaway PostgreSQL server for tests and benchmarks: initdb into a temp dir, start, stop.

Not a test module (pytest collects ``test_*.py`` only); ``tests/host/conftest.py`` and
``tests/benchmarks/bench_store.py`` load it by path.

PostgreSQL's ``initdb`` and ``postgres`` refuse to run as root, and CI runs as root: there the
cluster belongs to an unprivileged system user, :data:`PG_USER`, created when missing. The data
directory, the unix socket and the log live in one private temp dir owned by the server's user;
the server listens on a port found free just before and on 127.0.0.1 (so a test can log in with a
password over TCP), with fsync off — a test cluster is thrown away, never recovered.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

#: Owner of the server process when the tests run as root.
PG_USER = "plugbox-pg"
#: The database superuser initdb creates (the tests connect as it, trusted over the socket).
SUPERUSER = "plugbox"
#: A role that must log in with a password over TCP (for the redaction tests).
PASSWORD_ROLE, PASSWORD = "plugbox_pw", "s3cret-Pa55word"


class PostgresMissingError(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def server_bindir() -> Path:
    """The newest installed server's bin directory (Debian keeps it off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresMissingError(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or"
        " on PATH; install them with `apt-get install postgresql` (what .ci/run does)"
    )


def require_server(ci: bool) -> None:
    """Fail (on CI: never a silent skip of the PostgreSQL half) or skip (elsewhere, with the
    reason) when there is no PostgreSQL server to start."""
    try:
        server_bindir()
    except PostgresMissingError as err:
        if ci:
            pytest.fail(f"CI must test the PostgreSQL store: {err}", pytrace=False)
        pytest.skip(f"PostgreSQL tests skipped: {err}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: None (this user) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            [shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--user-group",
             "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
             PG_USER],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return pwd.getpwnam(PG_USER)


@dataclass
class PostgresCluster:
    """A running throwaway server; :meth:`url` names a database on it."""

    root: Path
    port: int
    bindir: Path
    user: pwd.struct_passwd | None

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def url(self, database: str = "postgres", *, schema: str | None = None) -> str:
        """A ``postgresql://`` URL over the unix socket; ``schema`` sets the search_path."""
        url = f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir), safe='')}&port={self.port}"
        if schema is not None:
            url += "&options=" + quote(f"-csearch_path={schema}", safe="")
        return url

    def tcp_url(self, database: str, user: str = PASSWORD_ROLE, password: str = PASSWORD) -> str:
        return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, "-d", database,
             "-c", sql],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """A fresh empty database; its URL."""
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        self.psql(f'GRANT ALL ON DATABASE "{name}" TO {PASSWORD_ROLE}')
        self.psql(f"GRANT ALL ON SCHEMA public TO {PASSWORD_ROLE}", database=name)
        return self.url(name)

    def _as_server_user(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        user = self.user
        return subprocess.run(
            args,
            check=True,
            capture_output=True,
            text=True,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
            cwd=self.root,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
        )

    def start(self) -> None:
        data = self.root / "data"
        self._as_server_user(
            [str(self.bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth-local=trust",
             "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        try:
            self._as_server_user(
                [str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
                 "-o", options, "-w", "-t", "60", "start"]
            )  # fmt: skip
        except subprocess.CalledProcessError as err:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the test PostgreSQL did not start: {err.stderr}\n{log}") from err
        self.psql(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_server_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                 "-w", "stop"]
            )  # fmt: skip


@contextlib.contextmanager
def running_cluster() -> Iterator[PostgresCluster]:
    """Start a throwaway server; stop it and delete every file it wrote on the way out."""
    bindir = server_bindir()
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="plugbox-pg-"))
    try:
        (root / "socket").mkdir()
        if user is not None:
            for path in (root, root / "socket"):
                os.chown(path, user.pw_uid, user.pw_gid)
        cluster = PostgresCluster(root, _free_port(), bindir, user)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
