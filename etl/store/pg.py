"""Opening a PostgreSQL database: the connection and the run lock.

psycopg (3) comes with the ``postgres`` extra and is imported here only, on first use, so SQLite
users never load it. The run lock is a session-level advisory lock keyed by the schema
(``etl.store.dialect.lock_key``): ``pg_try_advisory_lock`` does not wait, and the server releases
the lock when the session ends, which a killed process's does as its socket closes.
Messages name the database by ``display_url``: never the password.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from etl.errors import ConfigError, LockedError
from etl.store.dialect import POSTGRES, lock_key, pg_target

CONNECT_TIMEOUT_S = 10
APP_NAME = "swr-etl pid {pid}"  # shown in pg_stat_activity: who holds the lock


def display_url(url: str) -> str:
    """``postgresql://user@host:port/dbname``: the URL as messages may show it (no password,
    no parameters)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}"


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError("a postgresql:// database needs psycopg: "
                          "pip install 'swr-etl[postgres]'") from None
    return psycopg


def connect(url: str) -> tuple[Any, str]:
    """An autocommit connection to the URL's database with its search_path on the URL's schema,
    and that schema's name.

    Raises:
        ConfigError: psycopg is missing, or the server refused or could not be reached.
    """
    psycopg = _driver()
    conninfo, schema = pg_target(url)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                               application_name=APP_NAME.format(pid=os.getpid()))
    except psycopg.Error as exc:
        raise ConfigError(f"cannot open database {display_url(url)}: {_reason(exc)}") from None
    conn.execute("SELECT set_config('search_path', %s, false)", (_quoted(schema),))
    return conn, schema


def _reason(exc: Exception) -> str:
    """The first line of a psycopg error: libpq's own words on why (refused, unknown database,
    authentication, a missing column); it never carries the password."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _quoted(schema: str) -> str:
    """``schema`` as one search_path entry (quoted: a name with capitals or commas stays one)."""
    return '"' + schema.replace('"', '""') + '"'


# The holder of an advisory lock on a bigint key: pg_locks splits the key into two oids.
_HOLDER_SQL = """SELECT a.pid, a.application_name FROM pg_locks AS l
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %s AND l.objid = %s AND l.database = (
      SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1"""


class PgRunLock:
    """The run lock of one schema: ``acquire`` or LockedError at once; ``release``. Held by a
    connection of its own, open for the whole run."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        self._key = 0

    def acquire(self) -> None:
        conn, schema = connect(self.url)
        key = lock_key(schema)
        if conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            self.conn, self._key = conn, key
            return
        unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(_HOLDER_SQL, (unsigned >> 32, unsigned & 0xFFFF_FFFF)).fetchone()
        conn.close()
        who = f" ({row[1] or 'server pid ' + str(row[0])})" if row else ""
        raise LockedError(f"another run holds the lock for {display_url(self.url)} schema "
                          f"{schema}{who}")

    def release(self) -> None:
        """Free the lock at once, then close its connection. The session's end would free it
        too, but the server ends a closed session a moment later: a run started right after
        this one was then sometimes refused, with nobody holding the lock."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except _driver().Error:  # a broken connection: its session's end frees the lock
            pass
        finally:
            conn.close()


class PgReader:
    """A PostgreSQL connection in one REPEATABLE READ transaction that takes the read side's
    queries as written for SQLite's driver: ``?`` and ``:name`` placeholders (our read queries
    hold neither inside a literal), and numbers as SQLite gives them (``_sqlite_numbers``), so
    one query text serves both engines. A query the server refuses is a one-line ConfigError
    (exit 2), as an unreadable SQLite file is."""

    dialect = POSTGRES

    def __init__(self, conn: Any, name: str) -> None:
        self._conn = conn
        self._name = name
        conn.adapters.register_loader("numeric", _sqlite_numbers())

    def execute(self, query: str, parameters: Sequence[Any] | Mapping[str, Any] = (), /) -> Any:
        """Run one query; the cursor holds its whole result."""
        with self._refused():
            return self._conn.execute(*pg_query(query, parameters))

    def executemany(self, query: str, rows: Sequence[Sequence[Any]], /) -> None:
        with self._refused():
            self._conn.cursor().executemany(pg_query(query, rows[0] if rows else ())[0], rows)

    def batches(self, query: str, parameters: Mapping[str, Any],
                size: int) -> Iterator[list[tuple[Any, ...]]]:
        """The result in lists of at most ``size`` rows, read through a server-side cursor: the
        client holds one batch at a time, however large the result."""
        with self._refused(), self._conn.cursor(name="swr_etl_batches") as cursor:
            cursor.execute(*pg_query(query, parameters))
            while rows := cursor.fetchmany(size):
                yield rows

    def export_snapshot(self) -> str | None:
        """The id of this transaction's snapshot, for ``open_reader(snapshot=...)`` in another
        session while this transaction lasts. None where the server refuses (one that speaks
        PostgreSQL's protocol without its snapshots): the failed statement ends the transaction,
        which is rolled back, and the next query begins another. So call it before the
        transaction has read anything the caller keeps (a savepoint cannot take the error: a
        subtransaction exports no snapshot)."""
        psycopg = _driver()
        try:
            (snapshot,) = self._conn.execute("SELECT pg_export_snapshot()").fetchone()
        except psycopg.Error:
            self._conn.rollback()
            return None
        return str(snapshot)

    @contextmanager
    def _refused(self) -> Iterator[None]:
        psycopg = _driver()
        try:
            yield
        except psycopg.Error as exc:
            raise ConfigError(f"cannot read database {self._name}: {_reason(exc)}") from None


# What pg_export_snapshot returns ("00000003-0000001B-1"): checked before it is written into
# SET TRANSACTION SNAPSHOT, which takes no parameters.
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+(-[0-9A-F]+)+")
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def pg_query(query: str, parameters: Sequence[Any] | Mapping[str, Any]) -> tuple[str, Any]:
    """``query`` in psycopg's spelling and its parameters: ``?`` is ``%s``, ``:name`` is
    ``%(name)s`` (a ``::`` cast is left alone), a literal ``%`` doubled."""
    if isinstance(parameters, Mapping):
        if not parameters:
            return query, None
        text = _NAMED.sub(lambda m: f"%({m.group(1)})s" if m.group(1) in parameters
                          else m.group(0), query.replace("%", "%%"))
        return text, dict(parameters)
    if not parameters:
        return query, None
    return query.replace("%", "%%").replace("?", "%s"), tuple(parameters)


@functools.cache
def _sqlite_numbers() -> type:
    """A loader of PostgreSQL's ``numeric`` giving what SQLite gives for the same expression:
    an int for a whole number (``SUM`` of a bigint is a numeric of scale 0 there) and a float
    for a fractional one (``ROUND(x, 2)`` keeps its scale, ``30.00``), never a Decimal that JSON
    and the report's formats cannot take."""
    from psycopg.adapt import Loader

    class SqliteNumbers(Loader):  # type: ignore[misc]
        def load(self, data: Any) -> int | float:
            text = bytes(data)
            return float(text) if b"." in text or not text.lstrip(b"-").isdigit() else int(text)

    return SqliteNumbers


@contextmanager
def open_reader(url: str, tables: Sequence[str], not_ours: str, *,
                read_only: bool = True, snapshot: str | None = None) -> Iterator[PgReader]:
    """The URL's schema, every query in one REPEATABLE READ transaction (all of them see one
    committed state: a run's load is there whole or not at all), closed at the end without a
    commit. ``read_only=False`` lets the transaction make TEMP tables (the report's; the
    server refuses every CREATE in a read-only one): nothing it does outlives the session.
    ``snapshot``: another reader's ``export_snapshot``, the state this one then sees too.

    Raises:
        ConfigError: the server cannot be reached, the snapshot is gone (its transaction
            ended), or the schema lacks one of ``tables`` (``not_ours`` formatted with ``db``
            and ``tables``).
    """
    psycopg = _driver()
    conn, _schema = connect(url)
    try:
        conn.set_autocommit(False)
        conn.set_read_only(read_only)
        conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
        reader = PgReader(conn, display_url(url))
        if snapshot is not None:  # the transaction's first statement, as the server requires
            if not _SNAPSHOT_ID.fullmatch(snapshot):
                raise ConfigError(f"cannot read database {display_url(url)}: "
                                  "not a snapshot id from the server")
            reader.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        missing = [t for t in tables
                   if reader.execute(POSTGRES.table_exists_sql, (t,)).fetchone() is None]
        if missing:
            raise ConfigError(not_ours.format(db=display_url(url), tables=", ".join(missing)))
        yield reader
    finally:
        conn.close()
