"""The read side of the database: opening it read-only, and the queries its readers share.

Every reader (``export``, ``report``, ``runs``, ``status``, the metrics file) opens the database
here, with a ``mode=ro`` URI: none can create it (a typo in ``--db`` is an error, exit 2, not a new
empty database), migrate it, block a sync or alter what a sync writes (the report's TEMP tables
stay allowed). Which runs count for a date is ``etl.store.trends``' rule; the run-ledger queries
(the ``runs`` table) behind ``runs``, ``status`` and the metrics file are below.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from etl.errors import ConfigError, DatabaseBusyError
from etl.store.database import NOT_SQLITE, is_sqlite_file
from etl.store.dialect import SQLITE, Dialect, is_postgres_url


class Queryable(Protocol):
    """What the ledger queries need of a connection: SQLite's, or ``etl.store.pg.PgReader``,
    which takes the same query text (``?`` placeholders)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Any, /) -> Any: ...


@dataclass(frozen=True)
class Reader:
    """What one family of reading commands needs of the database, and how it words a database
    it cannot use (each sentence is what users' scripts and the docs quote; formatted with
    ``db``, ``error`` and ``tables``)."""

    tables: tuple[str, ...]
    missing: str
    unopenable: str  # SQLite could not open the file (I/O, permissions, a damaged file)
    not_ours: str  # a SQLite database without swr-etl's tables
    query_only: bool  # refuse every write, TEMP tables included
    # A database from before sources (schema 4, no run_sources) that this reader cannot read
    # until a sync or replay upgrades it; empty: the reader reads such a database too.
    older: str = ""


# ``runs``, ``status`` and the metrics file: probes that only read the ledger.
LEDGER_READER = Reader(
    tables=("runs",),
    missing="database not found: {db} (run `swr-etl sync --db {db}` first)",
    unopenable="cannot read database {db}: {error}",
    not_ours="not an swr-etl database (no {tables} table): {db}",
    query_only=True,
)
# ``export`` and ``report``: they read the snapshots (the report builds TEMP tables).
SNAPSHOT_READER = Reader(
    tables=("image_snapshots", "images", "runs"),
    missing="database not found: {db} (run 'swr-etl sync' first)",
    unopenable="cannot open database {db}: {error}",
    not_ours="{db} is not an swr-etl database (no {tables} table); run 'swr-etl sync' first",
    query_only=False,
    older="{db} was written by an older swr-etl (before sources, database schema 4): run "
          "'swr-etl sync' with this version once, which upgrades it in place",
)


@contextmanager
def open_readonly(db: Path | str, reader: Reader) -> Iterator[sqlite3.Connection]:
    """An existing swr-etl database, read-only, closed when the block ends.

    Raises:
        ConfigError: (exit 2) the file is missing, unreadable or lacks ``reader.tables``,
            worded as ``reader`` says; or is not SQLite (``NOT_SQLITE``, one sentence for all).
    """
    path = Path(db)
    if not path.is_file():
        raise ConfigError(reader.missing.format(db=path))
    try:
        sqlite = is_sqlite_file(path)
    except OSError as exc:
        raise ConfigError(reader.unopenable.format(db=path, error=exc.strerror)) from exc
    if not sqlite:
        raise ConfigError(NOT_SQLITE.format(db=path))
    try:
        conn = _connect_readonly(path)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(reader.unopenable.format(db=path, error=exc)) from exc
    try:
        try:
            if reader.query_only:
                conn.execute("PRAGMA query_only = ON")
            names = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise ConfigError(reader.unopenable.format(db=path, error=exc)) from exc
        missing = sorted(set(reader.tables) - names)
        if missing:
            raise ConfigError(reader.not_ours.format(db=path, tables=", ".join(missing)))
        if reader.older and "run_sources" not in names:
            raise ConfigError(reader.older.format(db=path))
        yield conn
    finally:
        conn.close()


@contextmanager
def open_ledger(db: Path | str) -> Iterator[Queryable]:
    """The run ledger read-only, as ``LEDGER_READER`` says, in a SQLite file or (a
    ``postgresql://`` URL) a PostgreSQL schema."""
    if is_postgres_url(db):
        from etl.store import pg  # psycopg only for a PostgreSQL database

        with pg.open_reader(str(db), LEDGER_READER.tables, LEDGER_READER.not_ours) as reader:
            yield reader
        return
    with open_readonly(db, LEDGER_READER) as conn:
        yield conn


def dialect_of(conn: Queryable) -> Dialect:
    """The dialect of an open connection (sqlite3's carries none)."""
    return getattr(conn, "dialect", SQLITE)


def has_table(conn: Queryable, name: str) -> bool:
    """Whether the database holds table ``name`` (a database from before v4 has no
    run_sources)."""
    return conn.execute(dialect_of(conn).table_exists_sql, (name,)).fetchone() is not None


_NEEDS_WRITE_ACCESS = re.compile(r"readonly database|unable to open database file")


def _connect_readonly(db: Path) -> sqlite3.Connection:
    """Open ``db`` with a ``mode=ro`` URI (never creates it). Raises ``sqlite3.Error``."""
    base = "file:" + quote(str(Path(db).resolve())) + "?mode=ro"
    try:
        return _open_uri(base)
    except sqlite3.OperationalError as exc:
        if not _NEEDS_WRITE_ACCESS.search(str(exc)):
            raise
        # A WAL database whose -shm/-wal files are gone cannot be opened read-only by a user who
        # may not write its folder (a monitoring user). No writer is running then (the last one
        # removed those files), so the file alone is the whole state.
        return _open_uri(base + "&immutable=1")


def _open_uri(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # fails on a non-database
    except BaseException:
        conn.close()
        raise
    return conn


def check_ours(db: Path | str, *, adopt: bool = False) -> bool:
    """Refuse, without modifying it, a non-empty SQLite database that swr-etl did not make,
    unless ``adopt`` (``sync --adopt``): a sync would add its tables to another application's
    file and switch it to WAL mode. Ours: a ``runs`` table and a schema version
    (``PRAGMA user_version``); empty: neither tables nor a version. Call after
    ``check_database_file``. Returns True when it is another application's database, to be
    adopted.

    Raises:
        ConfigError: not ours and not to be adopted, or impossible to adopt: its own
            ``user_version``, or tables of the names swr-etl creates.
    """
    db = Path(db)
    if not db.is_file() or db.stat().st_size == 0:
        return False
    try:
        conn = _connect_readonly(db)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            names = {str(n) for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise DatabaseBusyError(f"database {db} is busy: {exc}") from exc
        raise ConfigError(f"cannot read database {db}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"cannot read database {db}: {exc}") from exc
    if ("runs" in names and version >= 1) or (not names and version == 0):
        return False
    if not adopt:
        raise ConfigError(
            f"{db} is not an swr-etl database ({_describe(names, version)}), left untouched: "
            "`swr-etl sync --adopt` adds swr-etl's tables to it and switches it to WAL mode")
    from etl.store.schema import object_names

    clash = sorted(names & object_names())
    if clash or version:
        why = (f"it already has {', '.join(clash)}, which swr-etl would create" if clash else
               f"its PRAGMA user_version is {version}, where swr-etl keeps its schema version")
        raise ConfigError(f"cannot adopt {db}: {why} (left untouched)")
    return True


def _describe(names: set[str], version: int) -> str:
    """``it holds notes, tags`` (at most five names) or ``its user_version is 7``."""
    if not names:
        return f"it has no tables, but its user_version is {version}"
    shown = sorted(names)
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return f"it holds {', '.join(shown[:5])}{more}"


# ------------------------------------------------------------------------- which runs count


@dataclass(frozen=True)
class RunDay:
    """The run that stands for one source's snapshot date: its last good run of that date."""

    date: str
    run_id: int
    source: str = ""


def run_days(conn: Queryable, *, include_partial: bool = False,
             one_scope: bool = False, until: str | None = None) -> list[RunDay]:
    """The last good run of every source's snapshot date, oldest date first (then by source).

    The rule is ``etl.store.trends.counted_runs_sql`` (the one the views and the report use),
    with the export's two knobs: "good" is ``success``; ``include_partial`` adds ``partial`` runs
    (an incomplete scan: what was seen was loaded; ``sync --export-dir`` exports such a run),
    which are left out by default because their image set is not the whole listing.
    ``one_scope`` keeps unfiltered runs (no namespace/image-name filter) when there are any,
    else the runs with the latest run's filter, so trends never compare a filtered listing with
    a whole one. ``until`` (YYYY-MM-DD) ignores later dates.
    """
    from etl.store import trends  # the analytic rules: not imported by runs and status

    statuses = ("success", "partial") if include_partial else trends.COUNTED_STATUSES
    sql = trends.counted_runs_sql(statuses=statuses, one_scope=one_scope,
                                  until=until is not None)
    return [RunDay(d, int(r), s) for d, r, s in conn.execute(sql, {"until": until})]


# ------------------------------------------------------------------------ the run ledger


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def recent_runs(conn: Queryable, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs, newest first, every ``runs`` column; ``retry_causes``
    (stored as JSON text) decoded into a dict."""
    rows = _dicts(conn.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT ?", (int(limit),)))
    for row in rows:
        _decode_causes(row)
    if rows and has_table(conn, "run_sources"):  # each run's per-source results (v4)
        by_run: dict[Any, list[dict[str, Any]]] = {row["run_id"]: [] for row in rows}
        # One query for every run shown (rows[-1] is the oldest), in name order within a run.
        for source in _dicts(conn.execute(
                "SELECT * FROM run_sources WHERE run_id >= ? ORDER BY run_id, source",
                (rows[-1]["run_id"],))):
            if source["run_id"] in by_run:
                _decode_causes(source)
                by_run[source["run_id"]].append(source)
        for row in rows:
            row["sources"] = by_run[row["run_id"]]
    return rows


def _decode_causes(row: dict[str, Any]) -> None:
    causes = row.get("retry_causes")
    if isinstance(causes, str):
        try:
            row["retry_causes"] = json.loads(causes)
        except ValueError:
            pass


def run_row(conn: Queryable, run_id: int) -> dict[str, Any] | None:
    """The ``runs`` row of one run, or None."""
    rows = _dicts(conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)))
    return rows[0] if rows else None


def latest_run(conn: Queryable) -> dict[str, Any] | None:
    """The ``runs`` row of the latest run (whatever its status), or None."""
    rows = _dicts(conn.execute("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1"))
    return rows[0] if rows else None


def latest_success(conn: Queryable) -> dict[str, Any] | None:
    """``run_id, started_at, finished_at`` of the successful run that finished last, or None."""
    rows = _dicts(conn.execute(
        "SELECT run_id, started_at, finished_at FROM runs WHERE status = 'success' "
        "ORDER BY COALESCE(finished_at, started_at) DESC, run_id DESC LIMIT 1"))
    return rows[0] if rows else None


# Each source of the latest run, with its own latest success (NULLs: none yet).
SOURCE_SUCCESS_SQL = """
WITH cur AS (
    SELECT source FROM run_sources WHERE run_id = (SELECT MAX(run_id) FROM run_sources)
), ok AS (
    SELECT rs.source, rs.run_id, COALESCE(rs.finished_at, r.finished_at, r.started_at) AS at,
           ROW_NUMBER() OVER (PARTITION BY rs.source ORDER BY
               COALESCE(rs.finished_at, r.finished_at, r.started_at) DESC, rs.run_id DESC) AS n
    FROM run_sources AS rs JOIN runs AS r ON r.run_id = rs.run_id
    WHERE rs.status = 'success'
)
SELECT cur.source, ok.run_id, ok.at FROM cur LEFT JOIN ok ON ok.source = cur.source AND ok.n = 1
ORDER BY cur.source"""


# Each source of the latest run: its outcome in that run, its last success, its listed images.
SOURCE_FIGURES_SQL = f"""
WITH succ AS ({SOURCE_SUCCESS_SQL}),
img AS (SELECT source, COUNT(*) AS n FROM images WHERE removed_at IS NULL GROUP BY source)
SELECT rs.source, rs.exit_code, rs.requests, rs.retries, rs.rows_loaded, succ.at, img.n
FROM run_sources AS rs
LEFT JOIN succ ON succ.source = rs.source
LEFT JOIN img ON img.source = rs.source
WHERE rs.run_id = (SELECT MAX(run_id) FROM run_sources)
ORDER BY rs.source"""


def source_figures(conn: Queryable) -> list[tuple[Any, ...]]:
    """``(source, exit_code, requests, retries, rows_loaded, last_success_at, images)`` of each
    source of the latest run; empty before v4."""
    if not has_table(conn, "run_sources"):
        return []
    return conn.execute(SOURCE_FIGURES_SQL).fetchall()


def source_successes(conn: Queryable) -> list[tuple[str, int | None, str | None]]:
    """``(source, run_id, finished_at)`` of each source of the latest run: its last success
    (None, None when it never had one). Empty for a database from before sources (v3)."""
    if not has_table(conn, "run_sources"):
        return []
    return [(str(s), r, t) for s, r, t in conn.execute(SOURCE_SUCCESS_SQL)]


@dataclass(frozen=True)
class LedgerTotals:
    """What the ledger says about every run: the last success, work totals, the latest run."""

    last_success_at: str | None
    requests: int
    retries: int
    latest_run_id: int | None


def ledger_totals(conn: Queryable) -> LedgerTotals:
    (last,) = conn.execute(
        "SELECT MAX(COALESCE(finished_at, started_at)) FROM runs WHERE status = 'success'"
    ).fetchone()
    requests, retries, latest = conn.execute(
        "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(retries), 0), MAX(run_id) FROM runs"
    ).fetchone()
    return LedgerTotals(last, int(requests), int(retries), latest)


def listed_images(conn: Queryable) -> int:
    """Images currently listed (not marked removed)."""
    return int(conn.execute("SELECT COUNT(*) FROM images WHERE removed_at IS NULL").fetchone()[0])


def parse_ts(value: str | None) -> datetime | None:
    """Parse a stored UTC timestamp (``YYYY-MM-DDTHH:MM:SSZ``, fractions tolerated)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
