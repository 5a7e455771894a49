"""The run lock and the connection on PostgreSQL (a real throwaway cluster): a second run is
refused at once (exit 5), runs into other schemas are not, and a killed holder's lock is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from etl.errors import ConfigError, LockedError
from etl.store.pg import PgRunLock, connect, display_url
from tests.services import poll
from tests.services.postgres import free_port

pytest.importorskip("psycopg")


def _with_password(url: str, password: str = "s3cret") -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}"
                                            f":{parts.port}"))


def test_display_url_drops_the_password_and_parameters() -> None:
    assert display_url("postgresql://u:s3cret@db.example:5433/swr?schema=a&sslmode=require") == (
        "postgresql://u@db.example:5433/swr")


def test_a_second_run_is_refused_at_once_naming_the_holder(pg_url: str) -> None:
    first, second = PgRunLock(pg_url), PgRunLock(_with_password(pg_url))
    first.acquire()
    try:
        with pytest.raises(LockedError) as caught:
            second.acquire()
    finally:
        first.release()
    assert caught.value.exit_code == 5
    assert f"swr-etl pid {os.getpid()}" in str(caught.value)
    assert "schema public" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    second.acquire()  # released: the next run gets it
    second.release()


class _SessionThatLingers:
    """The lock's connection, whose close the server has not acted on yet (it ends a closed
    session a moment later; here, not until the test says so)."""

    def __init__(self, conn: object) -> None:
        self.conn = conn

    def execute(self, *args: object) -> object:
        return self.conn.execute(*args)  # type: ignore[attr-defined]

    def close(self) -> None:
        pass


def test_a_released_lock_is_free_before_its_session_has_ended(pg_url: str) -> None:
    """Runs back to back (a script's sync then replay, a retry): the next one gets the lock the
    moment the last one let go of it, not once the server has ended the last one's session.
    Closing the connection alone left a window in which the next run was refused (exit 5) with
    nobody holding the lock (seen once in the full suite)."""
    one, other = PgRunLock(pg_url), PgRunLock(pg_url)
    one.acquire()
    session = one.conn
    one.conn = _SessionThatLingers(session)
    try:
        one.release()
        other.acquire()
        other.release()
    finally:
        session.close()
    for _ in range(20):  # and back to back for real
        one.acquire()
        one.release()
        other.acquire()
        other.release()


def test_runs_into_other_schemas_do_not_block_each_other(pg_url: str) -> None:
    locks = [PgRunLock(pg_url + "?schema=team_a"), PgRunLock(pg_url + "?schema=team_b"),
             PgRunLock(pg_url)]
    for lock in locks:
        lock.acquire()
    held = [lock.conn is not None for lock in locks]
    for lock in locks:
        lock.release()
    assert held == [True, True, True]


_HOLDER = ("import sys; from etl.store.pg import PgRunLock; lock = PgRunLock(sys.argv[1]); "
           "lock.acquire(); print('held', flush=True); sys.stdin.read()")


def _try(url: str) -> bool | None:
    lock = PgRunLock(url)
    try:
        lock.acquire()
    except LockedError:
        return None
    lock.release()
    return True


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(pg_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, pg_url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockedError):
            PgRunLock(pg_url).acquire()
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
        # the server notices the closed socket and ends the session: poll, with a deadline
        assert poll(lambda: _try(pg_url), timeout=30, what="the dead holder's lock to go")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


def test_an_unreachable_server_is_a_config_error_without_the_password() -> None:
    url = f"postgresql://swr:s3cret@127.0.0.1:{free_port()}/swr"
    with pytest.raises(ConfigError) as caught:
        connect(url)
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith("cannot open database postgresql://swr@127.0.0.1:")
    assert "s3cret" not in str(caught.value)


def test_the_connection_reads_the_urls_schema(pg_url: str) -> None:
    conn, schema = connect(pg_url + "?schema=Team%20A")
    with conn:
        conn.execute('CREATE SCHEMA "Team A"')
        conn.execute("CREATE TABLE here (x BIGINT)")
        where = conn.execute("SELECT table_schema FROM information_schema.tables "
                             "WHERE table_name = 'here'").fetchone()[0]
    assert (schema, where) == ("Team A", "Team A")
