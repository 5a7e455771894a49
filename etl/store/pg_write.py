"""The writer's PostgreSQL connection: SQLite's statement text accepted, psycopg's errors named.

``PgWriter`` wraps a psycopg connection in autocommit mode (the load issues ``BEGIN``, ``COMMIT``
and ``ROLLBACK`` itself, as it does on SQLite) and takes statements written for ``sqlite3``:
``?`` and ``:name`` placeholders become psycopg's ``%s`` and ``%(name)s``, so the run ledger's
statements (``etl.store.run_record``) and a replay's reads (``etl.store.stored``) are written
once for both engines. A statement given parameters must hold no ``?`` or ``:word`` inside a
literal (none does). Bulk rows go in with ``COPY`` (``copy_rows``).

Every error the server or the network raises becomes one ``etl.errors`` leaf, worded with
``display_url`` (never the password): ``pg_error`` has the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from etl.errors import ConfigError, DatabaseBusyError, EtlError
from etl.store.pg import _driver, _reason, pg_query

# SQLSTATE (its class: the first two characters, or the whole code) -> what it means for a run.
# Another session holding the rows past --busy-timeout (lock_timeout), a serialization failure
# or a deadlock is what SQLite's busy database is: exit 5, retry later. The rest is the
# environment (exit 2, like an unwritable SQLite file): rights, a full disk, a server that went
# away.
_BUSY = "another writer held database {db} past the busy timeout; nothing of this run was loaded"
_UNWRITABLE = "cannot write database {db}: {reason}; nothing of this run was loaded"
_LOST = "lost the connection to database {db}: {reason}; nothing of this run was loaded"
SQLSTATES: dict[str, tuple[type[EtlError], str]] = {
    "40": (DatabaseBusyError, _BUSY),  # serialization failure, deadlock detected
    "55P03": (DatabaseBusyError, _BUSY),  # lock_not_available: lock_timeout ran out
    "57014": (DatabaseBusyError, _BUSY),  # query_canceled: a statement_timeout set on the role
    "42501": (ConfigError, _UNWRITABLE),  # insufficient_privilege
    "25006": (ConfigError, _UNWRITABLE),  # read_only_sql_transaction: a standby, a read-only role
    "53": (ConfigError, _UNWRITABLE),  # insufficient resources: disk full, out of memory
    "08": (ConfigError, _LOST),  # connection exception
    "57P": (ConfigError, _LOST),  # the server shut down or crashed (admin/crash shutdown)
}


def pg_error(db: str, exc: Exception) -> Exception:
    """The ``EtlError`` a psycopg error means for this run (``exc`` itself when it is none of
    the environment's doing: a bug, reported as one). ``db``: the database as messages show it.
    """
    psycopg = _driver()
    state = getattr(exc, "sqlstate", None) or ""
    for key in (state, state[:3], state[:2]):
        if key in SQLSTATES:
            kind, text = SQLSTATES[key]
            return kind(text.format(db=db, reason=_reason(exc)))
    if isinstance(exc, psycopg.OperationalError):  # no SQLSTATE: the socket closed under us
        return ConfigError(_LOST.format(db=db, reason=_reason(exc)))
    return exc


class PgWriter:
    """What the load needs of a connection, as ``sqlite3.Connection`` offers it: ``execute``,
    ``executemany``, ``interrupt``, ``in_transaction``, ``close``; plus ``copy_rows``."""

    def __init__(self, conn: Any, db: str) -> None:
        self.raw = conn
        self.db = db

    def execute(self, query: str, parameters: Any = (), /) -> Any:
        psycopg = _driver()
        sql, bound = pg_query(query, parameters)
        try:
            return self.raw.execute(sql, bound)
        except psycopg.Error as exc:
            raise pg_error(self.db, exc) from exc

    def executemany(self, query: str, seq: Iterable[Any], /) -> None:
        rows = list(seq)
        if not rows:
            return
        psycopg = _driver()
        sql, _bound = pg_query(query, rows[0])
        try:
            with self.raw.cursor() as cur:
                cur.executemany(sql, rows)
        except psycopg.Error as exc:
            raise pg_error(self.db, exc) from exc

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """``COPY table (columns) FROM STDIN`` of ``rows``, in one round trip per call (psycopg
        formats the values); returns how many rows went in. Columns named, never by position."""
        psycopg = _driver()
        names = ", ".join(f'"{c}"' for c in columns)
        count = 0
        try:
            with self.raw.cursor() as cur, cur.copy(
                    f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except psycopg.Error as exc:
            raise pg_error(self.db, exc) from exc
        return count

    def interrupt(self) -> None:
        """Cancel the statement the server is running for this connection, from any thread (as
        ``sqlite3.Connection.interrupt``); none running: the server ignores the request."""
        cancel = getattr(self.raw, "cancel_safe", None) or self.raw.cancel  # psycopg >= 3.2
        try:
            cancel()
        except _driver().Error:  # the server is gone: so is the statement
            pass

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.info.transaction_status != _driver().pq.TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()
