"""A throwaway PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` in a temporary folder.

The server listens on 127.0.0.1 only, on a free port, with its Unix socket inside the temporary
folder, ``trust`` authentication for local connections and no fsync. ``initdb`` refuses to run as
root, so when the tests run as root (CI does) the cluster runs as the unprivileged ``postgres``
user that Debian's package creates, and the folder is handed to that user.

    cluster = PostgresCluster(find_pg_bin()).start()
    with cluster.database() as url:      # a fresh database, dropped on exit
        psycopg.connect(url)
    cluster.close()                       # pg_ctl stop -m immediate, folder removed
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.services import ServiceFailed, ServiceUnavailable, poll

PG_BIN_ENV = "PG_BIN"
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
REQUIRED_PROGRAMS = ("initdb", "pg_ctl")
SERVICE_USER = "postgres"  # created by Debian's postgresql-common package
SUPERUSER = "postgres"  # the role initdb creates, whoever runs it
INSTALL_HINT = ("install Debian's server package (apt-get install postgresql) or point "
                f"{PG_BIN_ENV} at a directory holding initdb and pg_ctl")

# Durability is worthless for throwaway test data. fsync off still hands every write to the
# kernel, so killing the server (the kill tests) loses no committed transaction; only an OS crash
# would. synchronous_commit stays on for that reason.
TEST_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "60",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
}

# No passwords, and no remote clients: the Unix socket lives in a 0700 folder, and TCP is only
# trusted from 127.0.0.1 (where any local user could connect while it runs: it holds test data).
PG_HBA = """\
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
"""

INITDB_TIMEOUT_S = 120.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
STATEMENT_TIMEOUT_MS = 60_000
PORT_ATTEMPTS = 3  # a free port can be taken between probing it and the server binding it
LOG_TAIL_LINES = 20


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/9.6/bin`` -> (9, 6); unparsable names sort first."""
    parts = bin_dir.parent.name.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else (-1,)


def _has_programs(bin_dir: Path) -> list[str]:
    """The required programs missing from ``bin_dir`` (empty when it has them all)."""
    return [name for name in REQUIRED_PROGRAMS
            if not os.access(bin_dir / name, os.X_OK) or not (bin_dir / name).is_file()]


def find_pg_bin(environ: Mapping[str, str] = os.environ,
                debian_root: Path = DEBIAN_PG_ROOT) -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$PG_BIN``, else the newest
    ``/usr/lib/postgresql/<version>/bin``, else the directory of ``initdb`` on PATH.

    Raises:
        ServiceFailed: ``PG_BIN`` is set but lacks the programs (a mistake to report, not skip).
        ServiceUnavailable: no server binaries anywhere.
    """
    override = environ.get(PG_BIN_ENV, "").strip()
    if override:
        missing = _has_programs(Path(override))
        if missing:
            raise ServiceFailed(f"{PG_BIN_ENV}={override} has no executable "
                                f"{' or '.join(missing)}")
        return Path(override)
    found = [p.parent for p in debian_root.glob("*/bin/initdb") if not _has_programs(p.parent)]
    if found:
        return max(found, key=_version_key)
    on_path = shutil.which("initdb", path=environ.get("PATH"))
    if on_path and not _has_programs(Path(on_path).parent):
        return Path(on_path).parent
    raise ServiceUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) in "
                             f"{debian_root}/<version>/bin or on PATH: {INSTALL_HINT}")


def service_account() -> pwd.struct_passwd | None:
    """The user the cluster runs as: None (this process's user) unless we are root.

    Raises:
        ServiceUnavailable: running as root and there is no ``postgres`` user to switch to.
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise ServiceUnavailable(
            f"the tests run as root, initdb refuses root, and there is no '{SERVICE_USER}' "
            f"user to run the cluster as: {INSTALL_HINT} (it creates that user), or run the "
            "tests as an ordinary user") from None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    """True while ``pid`` runs. The postmaster is not our child (pg_ctl detaches it), so a dead
    one may linger as a zombie until init reaps it: that counts as dead."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:  # no procfs (macOS): fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = re.search(r"^State:\s+(\S)", status, re.M)
    return not (state and state.group(1) in "ZX")


def _blocking_folder(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The first folder from ``path`` up to ``/`` that ``account`` cannot enter, if any."""
    for folder in [path, *path.parents]:
        info = folder.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid == account.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


class PostgresCluster:
    """One PostgreSQL cluster in its own temporary folder, owned by this test session."""

    def __init__(self, bin_dir: Path, *, settings: Mapping[str, str] | None = None,
                 run_as: pwd.struct_passwd | None = None) -> None:
        self.bin_dir = bin_dir
        self.run_as = run_as
        self.settings = {**TEST_SETTINGS, **(settings or {})}
        parent = Path(tempfile.gettempdir()).resolve()
        if run_as is not None and (blocked := _blocking_folder(parent, run_as)) is not None:
            raise ServiceFailed(f"user {run_as.pw_name} cannot enter {blocked}, so a cluster "
                                f"in {parent} cannot run as that user: point TMPDIR at a "
                                "folder others can enter, such as /tmp")
        self.base = Path(tempfile.mkdtemp(prefix="swr-etl-pg-", dir=parent))
        self.data_dir = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log_file = self.base / "server.log"
        self.port = 0
        self._names = itertools.count(1)
        if run_as is not None:
            # mkdtemp made it 0700 and ours; the cluster's user must own it to write there.
            os.chown(self.base, run_as.pw_uid, run_as.pw_gid)

    # --- running the server's programs -------------------------------------------------------

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run one of the server's programs as the cluster's user, output captured, bounded."""
        account: dict[str, Any] = {}
        if self.run_as is not None:
            # subprocess switches user in the child before exec, without preexec_fn (unsafe
            # with threads, and the S3 test server is a thread).
            account = {"user": self.run_as.pw_uid, "group": self.run_as.pw_gid,
                       "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C", "LANG": "C",
               "TZ": "UTC"}
        try:
            return subprocess.run(
                [str(self.bin_dir / args[0]), *args[1:]], cwd=self.base, env=env,
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                check=False, **account)
        except subprocess.TimeoutExpired as exc:
            raise ServiceFailed(f"{args[0]} did not finish within {timeout:g} s"
                                f"{self._log_tail()}") from exc

    def _log_tail(self) -> str:
        """The last lines of the server log, as a message suffix naming the file."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            return f"; no server log at {self.log_file}"
        return f"; last lines of {self.log_file}:\n" + "\n".join(lines)

    def _initdb(self) -> None:
        done = self._run("initdb", "--pgdata", str(self.data_dir), "--username", SUPERUSER,
                         "--auth", "trust", "--encoding", "UTF8", "--locale", "C",
                         "--no-instructions", timeout=INITDB_TIMEOUT_S)
        if done.returncode != 0:
            raise ServiceFailed(f"initdb failed (exit {done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()}")
        self.socket_dir.mkdir()
        if self.run_as is not None:
            os.chown(self.socket_dir, self.run_as.pw_uid, self.run_as.pw_gid)
        conf = {**self.settings, "unix_socket_directories": f"'{self.socket_dir}'"}
        # Appended lines win over initdb's defaults earlier in the file; files initdb made keep
        # their owner because they are rewritten in place, not replaced.
        with (self.data_dir / "postgresql.conf").open("a") as out:
            out.write("\n# swr-etl test cluster\n")
            out.writelines(f"{key} = {value}\n" for key, value in conf.items())
        (self.data_dir / "pg_hba.conf").write_text(PG_HBA)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def start(self) -> PostgresCluster:
        """initdb on first use, then start the server and wait until it accepts connections.

        Raises:
            ServiceFailed: the server did not come up; the message ends with the log's tail.
        """
        if not self.initialized:
            self._initdb()
        self._clear_stale_lock_files()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if not self.port or attempt > 1:
                self.port = free_port()
            done = self._run("pg_ctl", "start", "--pgdata", str(self.data_dir), "--wait",
                             "--timeout", str(int(START_TIMEOUT_S)), "--log", str(self.log_file),
                             "-o", f"-p {self.port}", timeout=START_TIMEOUT_S + 10)
            if done.returncode == 0:
                break
            taken = "Address already in use" in self._log_tail()
            if not taken or attempt == PORT_ATTEMPTS:
                raise ServiceFailed(f"PostgreSQL did not start (pg_ctl exit {done.returncode}: "
                                    f"{done.stderr.strip()}){self._log_tail()}")
        self._wait_accepting()
        return self

    def _wait_accepting(self) -> None:
        """pg_ctl --wait trusts the pid file; a real login is the proof the server is usable."""
        import psycopg

        def login() -> bool | None:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                return None

        try:
            poll(login, timeout=START_TIMEOUT_S, interval=0.1,
                 what=f"PostgreSQL on 127.0.0.1:{self.port} to accept a login")
        except ServiceFailed as exc:
            raise ServiceFailed(f"{exc}{self._log_tail()}") from None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while its pid file exists."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def processes(self) -> list[int]:
        """Live processes of this cluster: the postmaster and every child work in the data
        directory, which is how they are found once the postmaster is gone (Linux /proc)."""
        target = self.data_dir.resolve()
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if Path(os.readlink(entry / "cwd")) == target and _alive(int(entry.name)):
                    found.append(int(entry.name))
        return found

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the postmaster and wait until it and its children are gone (for
        crash tests); ``start()`` then recovers the same data on the same port."""
        pid = self.pid
        if pid is None or not _alive(pid):
            return
        os.kill(pid, sig)
        poll(lambda: True if not _alive(pid) and not self.processes() else None,
             timeout=STOP_TIMEOUT_S,
             what=f"the PostgreSQL server (pid {pid}) and its children to exit after "
                  f"signal {sig}")

    def _clear_stale_lock_files(self) -> None:
        """A killed postmaster stays a zombie until init reaps it, and a new server takes that
        for a running one ("lock file already exists"). Remove the lock files (the pid file and
        the socket's, each starting with the owner's pid) once no process of the cluster lives."""
        if self.processes():
            return
        for lock in [self.data_dir / "postmaster.pid", *self.socket_dir.glob(".s.PGSQL.*.lock")]:
            with contextlib.suppress(OSError, ValueError):
                if not _alive(int(lock.read_text().split("\n", 1)[0])):
                    lock.unlink()

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``; a server that outlives it is killed. Idempotent."""
        pid = self.pid
        if pid is None:
            return
        if _alive(pid):
            self._run("pg_ctl", "stop", "--pgdata", str(self.data_dir), "--mode", "immediate",
                      "--wait", "--timeout", str(int(STOP_TIMEOUT_S)),
                      timeout=STOP_TIMEOUT_S + 10)
        if _alive(pid):
            self.kill()

    def close(self) -> None:
        """Stop the server and remove its folder."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- databases ---------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def admin(self) -> Any:
        """An autocommit superuser connection to the ``postgres`` database (psycopg)."""
        import psycopg

        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10,
                               options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")

    def create_database(self, template: str = "template0") -> str:
        """A new empty database ``test_<n>``; returns its name. template0 takes no connections,
        so copying it never fails with "source database is being accessed by other users"."""
        from psycopg import sql

        name = f"test_{next(self._names)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any connection a test left open on it."""
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    @contextlib.contextmanager
    def database(self, template: str = "template0") -> Iterator[str]:
        """A fresh database's URL for the ``with`` block; dropped afterwards, even on error."""
        name = self.create_database(template)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def databases(self) -> set[str]:
        """Names of the databases that take connections (template0 does not)."""
        with self.admin() as conn:
            return {row[0] for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datallowconn")}


def start_cluster(**kw: Any) -> PostgresCluster:
    """Find the binaries and the account, start a cluster; what is missing raises
    ServiceUnavailable, a cluster that fails raises ServiceFailed (its folder removed)."""
    try:
        import psycopg  # noqa: F401  (the tests talk to the server through it)
    except ImportError:
        raise ServiceUnavailable("psycopg (3) is not installed: pip install -e '.[test]' "
                                 "(or pip install 'psycopg[binary]')") from None
    cluster = PostgresCluster(find_pg_bin(), run_as=service_account(), **kw)
    try:
        return cluster.start()
    except BaseException:
        cluster.close()
        raise

