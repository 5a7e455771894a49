"""Reading the snapshots for ``export`` and ``report`` from either engine: a SQLite file or a
PostgreSQL schema (``postgresql://`` URL), with the few things that differ asked of the open
connection, so the readers' query text is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from etl.store.dialect import is_postgres_url
from etl.store.read import SNAPSHOT_READER, Queryable, dialect_of, open_readonly


@contextmanager
def open_snapshots(db: Path | str, *, temp_tables: bool = False) -> Iterator[Queryable]:
    """The snapshots read-only, as ``SNAPSHOT_READER`` says, in a SQLite file or (a
    ``postgresql://`` URL) a PostgreSQL schema, where every query of the block sees one
    committed state. ``temp_tables``: the block makes TEMP tables (the report), which a
    read-only PostgreSQL transaction refuses; the transaction is never committed."""
    if is_postgres_url(db):
        from etl.store import pg  # psycopg only for a PostgreSQL database

        with pg.open_reader(str(db), SNAPSHOT_READER.tables, SNAPSHOT_READER.not_ours,
                            read_only=not temp_tables) as reader:
            yield reader
        return
    with open_readonly(db, SNAPSHOT_READER) as conn:
        yield conn


Opener = Callable[[], AbstractContextManager[Queryable]]


def second_reader(db: Path | str, conn: Queryable) -> Opener | None:
    """An opener of another connection to ``db`` for work beside ``conn``, which
    ``open_snapshots(db, temp_tables=True)`` opened (the report's previous window, on a second
    core). Call it before reading anything through ``conn``.

    From PostgreSQL, the second transaction imports ``conn``'s snapshot: both see exactly one
    committed state. A SQLite file's second connection sees the latest committed state, which
    may be later than ``conn``'s. What it reads must not depend on that: rows of runs that
    ``conn`` saw committed do not change. None: the server exports no snapshot, or ``conn``
    is not the schema's reader.
    """
    if is_postgres_url(db):
        from etl.store import pg

        snapshot = conn.export_snapshot() if isinstance(conn, pg.PgReader) else None
        if snapshot is None:
            return None
        return lambda: pg.open_reader(str(db), SNAPSHOT_READER.tables, SNAPSHOT_READER.not_ours,
                                      read_only=False, snapshot=snapshot)
    return lambda: open_readonly(db, SNAPSHOT_READER)


def shown(db: Path | str) -> str:
    """The database as messages name it: a path, or a URL without its password."""
    if is_postgres_url(db):
        from etl.store.pg import display_url

        return display_url(str(db))
    return str(Path(db))


def schema_version(conn: Queryable) -> int:
    """The version of swr-etl's schema in the database (SQLite's ``PRAGMA user_version``,
    PostgreSQL's ``swr_etl_schema`` table)."""
    return int(conn.execute(dialect_of(conn).schema_version_sql).fetchone()[0])


def batches(conn: Queryable, sql: str, params: dict[str, Any],
            size: int) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``sql`` in lists of at most ``size``, one list in memory at a time (SQLite
    steps its cursor; PostgreSQL reads through a server-side cursor)."""
    stream = getattr(conn, "batches", None)
    if stream is not None:
        yield from stream(sql, params, size)
        return
    cursor = conn.execute(sql, params)
    while rows := cursor.fetchmany(size):
        yield rows
