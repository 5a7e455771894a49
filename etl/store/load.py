"""Loading into SQLite: the database's one writer and a run's one-transaction load.

``with Loader(db) as loader`` takes the lock and checks the file (``etl.store.database``),
ensures the schema and marks stale ``running`` rows ``failed`` (``interrupted``). ``with
loader.run(start) as run`` then commits this run's ``running`` row on its own and begins one
``BEGIN IMMEDIATE`` transaction for the whole load: chunks are written into it (a rescan rolls it
back and begins again, so nothing of the earlier pass survives), and ``run.finish()`` writes the
final ``runs`` row and commits. Leaving the block by an exception rolls the load back and records
the run ``failed`` in a small transaction of its own (``etl.store.run_record``).

Bulk writes use ``executemany`` into a temporary table and set-based ``INSERT ... SELECT``
(``etl.store.load_sql``): per-row Python work is what a load costs.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from etl.errors import ConfigError, exit_code_of
from etl.store import load_sql, run_record
from etl.store.bind import batched, bind_columns, issue_rows
from etl.store.database import RunLock, check_database_file, connect, write_error
from etl.store.dialect import is_postgres_url
from etl.store.name_index import NameIndex
from etl.store.read import check_ours
from etl.store.run_record import LoadCounts, RunStart
from etl.store.schema import IMAGE_COLUMNS, ensure_schema
from etl.store.stored import StoredRuns

log = logging.getLogger("etl.load")

INTERRUPTED = run_record.INTERRUPTED


F = TypeVar("F", bound=Callable[..., Any])


def _sqlite_errors(method: F) -> F:
    """Turn SQLite's environmental errors (busy, read-only, disk full) into EtlError leaves."""

    @functools.wraps(method)
    def wrapper(self: Loader | LoadRun, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            err = write_error(self.db, exc)
            if err is exc:
                raise
            raise err from exc

    return cast(F, wrapper)


def compress_body(body: bytes | str) -> bytes:
    """A page body as stored in ``raw_pages``: zlib level 1 (fast; JSON compresses ~10x anyway).

    zlib releases the GIL, so the pipeline runs this in a worker thread while it transforms."""
    return zlib.compress(body.encode() if isinstance(body, str) else body, 1)


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Loader(StoredRuns):
    """The writer of one database: locked, checked and migrated while the block lasts.

    ::

        with Loader(path, busy_timeout=30, keep_raw_runs=30) as loader:
            with loader.run(RunStart(started_at=..., snapshot_date=...)) as run:
                run.write_raw_pages([...])
                run.write_chunk(transformed, duplicate_ids=[...])   # many times
                run.restart_pass()                                  # on a rescan
                counts = run.finish(status="success", mark_removed=True, stats={...},
                                    finished_at=...)

    Raises (on entering): LockedError (another run holds the lock), ConfigError (not a usable
    database file or location, or another application's database without ``adopt``),
    DatabaseBusyError (another writer past the busy timeout).
    """

    def __init__(self, db: Path | str, *, busy_timeout: float = 30.0, keep_raw_runs: int = 30,
                 adopt: bool = False) -> None:
        """``keep_raw_runs``: runs whose page bodies survive ``finish``; negative: prune none.
        ``adopt``: add the schema to a SQLite database another application made
        (``etl.store.database.check_ours``)."""
        if is_postgres_url(db):  # Path() would collapse the URL's // into a file name
            raise ConfigError("Loader writes a SQLite file; open a postgresql:// database with "
                              "etl.store.engine.open_loader")
        self.db = Path(db)
        self.busy_timeout = busy_timeout
        self.keep_raw_runs = keep_raw_runs
        self.adopt = adopt
        self._lock = RunLock(self.db)
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> Loader:
        try:
            self._open()
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (autocommit mode: transactions are begun explicitly)."""
        if self._conn is None:
            raise RuntimeError("the Loader is used outside its with-block")
        return self._conn

    def _open(self) -> None:
        """Validate, lock, validate again, connect, migrate, and mark stale ``running`` rows as
        interrupted. The file is checked before the lock so that a path that is no database of
        ours gets nothing created beside it (no lock file), and again under the lock."""
        check_database_file(self.db)
        adopting = check_ours(self.db, adopt=self.adopt)
        self._lock.acquire()
        check_database_file(self.db)
        if adopting:
            log.info("adopting %s: adding swr-etl's tables to it (--adopt)", self.db)
        self._conn = conn = connect(self.db, busy_timeout=self.busy_timeout)
        try:
            ensure_schema(conn)
            stale = run_record.mark_interrupted(conn)
            if stale:
                log.warning("marked %d interrupted run(s) as failed", stale)
            conn.execute(load_sql.LOAD_CHUNK_TABLE_SQL)
        except sqlite3.OperationalError as exc:
            raise write_error(self.db, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot use database {self.db}: {exc}") from exc

    def _close(self) -> None:
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            finally:
                self._conn.close()
                self._conn = None
        self._lock.release()

    def run(self, start: RunStart, *, finished_at: Callable[[], str] = _utc_now,
            figures: Callable[[], Mapping[str, Any] | None] = lambda: None,
            on_started: Callable[[int], None] | None = None,
            run_id: int | None = None) -> LoadRun:
        """A new run of this database (or, with ``run_id``, one more source of a run already
        begun by ``begin_run``), to use as a context manager.

        ``finished_at`` and ``figures`` say, should the run fail, when it ended and what its
        scan did (both asked for only then); ``on_started(run_id)`` is called once the
        ``running`` row is committed (e.g. to tag log lines with the run id). The source loaded
        is ``start.source`` (default: named from ``start.endpoint``).
        """
        return LoadRun(self, start, finished_at=finished_at, figures=figures,
                       on_started=on_started, run_id=run_id)

    @_sqlite_errors
    def begin_run(self, start: RunStart) -> int:
        """Commit the ``running`` row of a run of several sources; return its id. Each source
        then loads in its own transaction (``run(start, run_id=...)``) and ``end_run`` writes
        the run's final row."""
        return run_record.insert_running(self.conn, start)

    @_sqlite_errors
    def end_run(self, run_id: int, values: Mapping[str, Any]) -> None:
        """Write a run's final figures (its own small transaction)."""
        run_record.update_run(self.conn, run_id, values)


class LoadRun:
    """One source's writes in a run, inside their one transaction (see ``Loader.run``). A run
    of one source owns its ``runs`` row: the final row commits with the data."""

    raw_pages_sql = load_sql.RAW_PAGES_SQL  # the engine's statement storing page bodies
    name_two_ids_sql = load_sql.NAME_TWO_IDS_SQL  # ... and recording a name held by two ids

    def __init__(self, loader: Loader, start: RunStart, *, finished_at: Callable[[], str],
                 figures: Callable[[], Mapping[str, Any] | None],
                 on_started: Callable[[int], None] | None, run_id: int | None = None) -> None:
        self.loader = loader
        self.db = loader.db
        self.start = start
        self.source = start.source_name
        self.captured_at = start.captured_at or start.started_at
        self.run_id: int | None = run_id
        self.owns_run = run_id is None
        self.counts = LoadCounts()
        self.finished = False
        self.name_index = NameIndex()
        self._finished_at = finished_at
        self._figures = figures
        self._on_started = on_started

    def __enter__(self) -> LoadRun:
        try:
            if self.owns_run:
                self.run_id = run_record.insert_running(self.loader.conn, self.start)
            run_record.upsert_source(self.loader.conn, cast(int, self.run_id), self.source, {
                "endpoint": self.start.endpoint, "started_at": self.start.started_at,
                "status": "running"})
        except sqlite3.OperationalError as exc:
            raise write_error(self.db, exc) from exc
        if self._on_started is not None:
            self._on_started(cast(int, self.run_id))
        try:
            self._begin()
        except BaseException as exc:
            self._record_failure(exc)
            raise
        return self

    def __exit__(self, _type: type[BaseException] | None, exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        if self.finished:
            return
        self._record_failure(exc or RuntimeError("the run's block ended without finish()"))

    def _begin(self) -> None:
        """Start the one write transaction of the run (waits up to busy_timeout for writers)."""
        try:
            conn = self.loader.conn
            conn.execute("BEGIN IMMEDIATE")
            self.name_index.begin(conn)
        except sqlite3.OperationalError as exc:
            raise write_error(self.db, exc) from exc
        self.counts = LoadCounts()

    def restart_pass(self) -> None:
        """A rescan began: discard everything the earlier pass wrote.

        The load transaction holds nothing but this run's writes (the ``running`` row was
        committed before it), so rolling it back and beginning again is exactly "discard the
        earlier pass". A SAVEPOINT would do the same but makes SQLite keep a sub-journal copy
        of every page the load modifies (+120 MiB RSS at 200k rows, measured).
        """
        self.loader.conn.execute("ROLLBACK")
        self._begin()

    @_sqlite_errors
    def write_raw_pages(self, pages: Iterable[tuple[int, str, str | None, bytes | str]], *,
                        compressed: bool = False) -> None:
        """Store page bodies, zlib-compressed here unless ``compressed`` (by ``compress_body``)."""
        rows = [
            (self.run_id, self.source, offset, fetched_at, content_range, "zlib",
             body if compressed and isinstance(body, bytes) else compress_body(body))
            for offset, fetched_at, content_range, body in pages
        ]
        self.loader.conn.executemany(self.raw_pages_sql, rows)
        self.counts.raw_pages += len(rows)

    def write_chunk(self, transformed: Any, *, duplicate_ids: Iterable[int] = ()) -> None:
        """Write one transformed chunk: images upsert, snapshots, rejects, quality issues. In
        three steps, so that a caller may run the set-based middle one on another thread."""
        self.fill_chunk(transformed)
        self.merge_chunk()
        self.write_issues(transformed, duplicate_ids)

    @_sqlite_errors
    def fill_chunk(self, transformed: Any) -> None:
        """Bind the chunk's images rows into the chunk table: per-row work, holding the GIL
        (``load_sql.FILL_ROWS`` rows per statement). Rows of one id: the last one stays."""
        many, rest = batched(bind_columns(transformed.images, IMAGE_COLUMNS), load_sql.FILL_ROWS)
        conn = self.loader.conn
        conn.executemany(load_sql.FILL_CHUNK_MANY_SQL, many)
        conn.executemany(load_sql.FILL_CHUNK_SQL, rest)

    @_sqlite_errors
    def merge_chunk(self) -> None:
        """Merge the chunk table into the stored state: one step per statement, during which
        SQLite releases the GIL."""
        conn, params = self.loader.conn, self._params()
        new, changed, renamed = conn.execute(load_sql.NEW_CHANGED_SQL, params).fetchone()
        issues = 0
        if renamed:  # rare: skip two joins per chunk when no known id changed its name
            issues = conn.execute(load_sql.IDENTITY_CHANGED_SQL, params).rowcount
            conn.execute(load_sql.RENAME_SQL, params)
        conn.execute(load_sql.UPSERT_SQL, params)
        conn.execute(load_sql.SNAPSHOTS_SQL, params)
        conn.execute("DELETE FROM temp.load_chunk")
        self.counts.new += int(new)
        self.counts.changed += int(changed)
        self.counts.quality_issues += issues

    @_sqlite_errors
    def write_issues(self, transformed: Any, duplicate_ids: Iterable[int] = ()) -> None:
        """Store the chunk's rejects and quality issues (its duplicate ids among them)."""
        conn = self.loader.conn
        rejects, qi = issue_rows(transformed, duplicate_ids)
        conn.executemany(load_sql.REJECTS_SQL, [(self.run_id, self.source, *r) for r in rejects])
        conn.executemany(load_sql.QUALITY_ISSUES_SQL,
                         [(self.run_id, self.source, *q) for q in qi])
        self.counts.rejected += len(rejects)
        self.counts.quality_issues += len(qi)

    def _rows_loaded(self) -> int:
        return int(self.loader.conn.execute(
            "SELECT COUNT(*) FROM image_snapshots WHERE run_id = ? AND source = ?",
            (self.run_id, self.source)).fetchone()[0])

    def _params(self) -> dict[str, Any]:
        """The named parameters of the load's statements (each engine's ``*_SQL``)."""
        return {"run": self.run_id, "source": self.source, "at": self.captured_at,
                "date": self.start.snapshot_date}

    @_sqlite_errors
    def finish(self, *, status: str, mark_removed: bool, stats: Mapping[str, Any],
               exit_code: int = 0, finished_at: str) -> LoadCounts:
        """Mark removals (complete unfiltered scans only), prune raw pages, write the final
        ``runs`` row, and COMMIT the whole run."""
        conn, params = self.loader.conn, self._params()
        self.name_index.restore(conn)
        self.counts.quality_issues += conn.execute(self.name_two_ids_sql, params).rowcount
        if mark_removed:
            self.counts.removed = conn.execute(load_sql.MARK_REMOVED_SQL, params).rowcount
        if self.loader.keep_raw_runs >= 0:
            conn.execute(load_sql.PRUNE_RAW_PAGES_SQL, (self.loader.keep_raw_runs,))
        return self._commit(status=status, stats=stats, exit_code=exit_code,
                            finished_at=finished_at)

    def _commit(self, *, status: str, stats: Mapping[str, Any], exit_code: int,
                finished_at: str) -> LoadCounts:
        """Write the source's (and a run of one source's) final ledger row and COMMIT the load:
        the end of ``finish`` on every engine."""
        conn = self.loader.conn
        self.counts.rows = self._rows_loaded()
        values = run_record.stat_values(stats)
        values.update(
            status=status, exit_code=exit_code, finished_at=finished_at,
            rows_loaded=self.counts.rows, rows_rejected=self.counts.rejected,
            rows_new=self.counts.new, rows_changed=self.counts.changed,
            rows_removed=self.counts.removed, quality_issues=self.counts.quality_issues,
            error=None,
        )
        run_record.upsert_source(conn, cast(int, self.run_id), self.source, values)
        if self.owns_run:
            run_record.update_run(conn, cast(int, self.run_id), values)
        conn.execute("COMMIT")
        self.finished = True
        return self.counts

    # ----------------------------------------------------------------------------- failure

    def _record_failure(self, exc: BaseException) -> None:
        """Record the run ``failed`` with its exit code and error, whatever went wrong: should
        even that raise (a figure the ledger cannot hold), record it again without figures."""
        error, code = run_record.error_line(exc), exit_code_of(exc)
        try:
            figures = run_record.storable(self._figures())
            finished_at = self._finished_at()
        except Exception:  # a hostile figure must not stop the record
            figures, finished_at = {}, _utc_now()
        for attempt in (figures, None):
            try:
                self._fail(error, exit_code=code, finished_at=finished_at, stats=attempt)
                return
            except Exception:
                log.warning("could not record run %s as failed%s", self.run_id,
                            " with its figures" if attempt else "", exc_info=True)

    def _fail(self, error: str, *, exit_code: int, finished_at: str,
              stats: Mapping[str, Any] | None) -> None:
        """Roll the load back and record the run as failed (own small transaction)."""
        conn = self.loader.conn
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            values = run_record.stat_values(stats)
            values["proof"] = None  # nothing of a failed run stands, whatever its scan proved
            values.update(status="failed", error=error.replace("\n", " ")[:1000],
                          exit_code=exit_code, finished_at=finished_at, rows_loaded=0)
            run_record.upsert_source(conn, cast(int, self.run_id), self.source, values)
            if self.owns_run:
                run_record.update_run(conn, cast(int, self.run_id), values)
        except sqlite3.Error:  # the original error matters more; the next run marks it stale
            log.warning("could not record run %s as failed", self.run_id, exc_info=True)
