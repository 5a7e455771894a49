"""Which database engine a ``--db`` value names, and what a run asks of each: the one place that
dispatches on it (``etl.store.dialect.dialect_for`` decides; nothing else branches on the name).

A SQLite file is checked (``check_database_file``, ``check_ours``) and written by
``etl.store.load.Loader``; a ``postgresql://`` URL's schema is checked by
``etl.store.pg_load.check_schema`` and written by ``PgLoader``. psycopg is imported only for a
URL, so SQLite users never load it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl.store.database import check_database_file
from etl.store.dialect import POSTGRES, SQLITE, dialect_for
from etl.store.load import Loader
from etl.store.read import check_ours


@dataclass(frozen=True)
class Engine:
    """What a run does with one engine's database."""

    loader: Callable[..., Loader]  # (db, busy_timeout=, keep_raw_runs=, adopt=) -> a writer
    check: Callable[[Any, bool], None]  # (db, adopt): refuse what a sync cannot write
    exists: Callable[[Any], bool]  # whether there is a database with a ledger to replay from


def _sqlite_check(db: Path | str, adopt: bool) -> None:
    check_database_file(db)
    check_ours(db, adopt=adopt)


def _pg_loader(db: Path | str, **kw: Any) -> Loader:
    from etl.store.pg_load import PgLoader

    return PgLoader(db, **kw)


def _pg_check(db: Path | str, _adopt: bool) -> None:
    from etl.store.pg_load import check_schema

    check_schema(str(db))


def _pg_exists(db: Path | str) -> bool:
    from etl.store.pg_load import has_ledger

    return has_ledger(str(db))


ENGINES: dict[str, Engine] = {
    SQLITE.name: Engine(loader=Loader, check=_sqlite_check,
                        exists=lambda db: Path(db).is_file()),
    POSTGRES.name: Engine(loader=_pg_loader, check=_pg_check, exists=_pg_exists),
}


def engine_for(db: Path | str) -> Engine:
    """The engine the ``--db`` value names."""
    return ENGINES[dialect_for(db).name]


def open_loader(db: Path | str, *, busy_timeout: float = 30.0, keep_raw_runs: int = 30,
                adopt: bool = False) -> Loader:
    """The database's writer, to use as ``with open_loader(db) as loader`` (see ``Loader``)."""
    return engine_for(db).loader(db, busy_timeout=busy_timeout, keep_raw_runs=keep_raw_runs,
                                 adopt=adopt)


def check_writable(db: Path | str, *, adopt: bool = False) -> None:
    """Refuse, before a sync opens, creates, locks or sends anything, a database it cannot
    write (a file: not SQLite, another application's without ``adopt``; a URL: a server that
    refuses us or a schema that is not swr-etl's).

    Raises:
        ConfigError: (exit 2) saying which.
    """
    engine_for(db).check(db, adopt)


def database_exists(db: Path | str) -> bool:
    """Whether ``db`` holds a database to replay from (a URL: its schema has a ledger)."""
    return engine_for(db).exists(db)
