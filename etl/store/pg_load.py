"""Loading into PostgreSQL: the same writer as SQLite's (``etl.store.load``), over the network.

``PgLoader`` is a ``Loader`` whose lock is ``etl.store.pg.PgRunLock`` (a session advisory lock:
a second run gets exit 5 at once, a dead run's lock goes with its session), whose schema comes
from ``etl.store.pg_schema.ensure_schema``, and whose connection is a ``PgWriter`` (SQLite's
statement text accepted, psycopg's errors turned into ``etl.errors`` leaves). The run ledger,
failure recording and replay reads are ``Loader``'s own, unchanged.

``PgLoadRun`` keeps SQLite's transaction shape: the ``running`` row commits on its own, then one
transaction per source load (``BEGIN`` .. ``COMMIT``; a rescan rolls it back and begins again).
Readers in other sessions see the previous commit until it ends. Each chunk is ``COPY``'d into a
temporary table, then merged by one statement per step (``etl.store.pg_load_sql``): the same
new/changed counts, snapshots, identity issues, removals, raw pages, rejects and quality issues
as SQLite, so one listing gives the same rows on both engines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from etl.errors import ConfigError, EtlError
from etl.store import pg_load_sql as sql
from etl.store import run_record
from etl.store.bind import bind_rows, issue_rows
from etl.store.load import Loader, LoadRun, _utc_now
from etl.store.pg import PgRunLock, _driver, connect, display_url
from etl.store.pg_write import PgWriter, pg_error
from etl.store.run_record import LoadCounts, RunStart
from etl.store.schema import IMAGE_COLUMNS

log = logging.getLogger("etl.load")


def check_schema(url: str) -> None:
    """Refuse, creating and changing nothing, a database a sync cannot write: a server that
    cannot be reached or refuses us, or a schema that is neither swr-etl's nor free of the names
    swr-etl creates (``pg_schema.check_ours``). The preflight of a ``postgresql://`` --db.

    Raises:
        ConfigError: (exit 2) saying which, naming the database by ``display_url``.
    """
    from etl.store import pg_schema

    psycopg = _driver()
    conn, schema = connect(url)
    try:
        pg_schema.check_ours(conn, schema)
    except psycopg.Error as exc:
        raise _or_config(pg_error(display_url(url), exc), url) from exc
    finally:
        conn.close()


def has_ledger(url: str) -> bool:
    """Whether the URL's schema holds swr-etl's run ledger (a replay needs one)."""
    psycopg = _driver()
    conn, _schema = connect(url)
    try:
        return conn.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone()[0] is True
    except psycopg.Error as exc:
        raise _or_config(pg_error(display_url(url), exc), url) from exc
    finally:
        conn.close()


def _or_config(err: Exception, url: str) -> Exception:
    """An error before the run began is the database's to explain (exit 2), never a bug."""
    if isinstance(err, EtlError):
        return err
    return ConfigError(f"cannot use database {display_url(url)}: {err}")


class PgLoader(Loader):
    """The writer of one PostgreSQL schema (``postgresql://…[?schema=NAME]``): locked, its
    schema ensured and stale ``running`` rows marked while the block lasts. Used as ``Loader``.

    Raises (on entering): LockedError (another run holds the schema's lock), ConfigError (the
    server cannot be reached or refuses us, the schema is another application's or a newer
    swr-etl's).
    """

    def __init__(self, db: Path | str, *, busy_timeout: float = 30.0, keep_raw_runs: int = 30,
                 adopt: bool = False) -> None:
        # Not Loader.__init__: SQLite's lock file and Path have no place here. ``db`` is what
        # messages show: the URL without password or parameters.
        self.url = str(db)
        self.db = display_url(self.url)  # type: ignore[assignment]
        self.busy_timeout = busy_timeout
        self.keep_raw_runs = keep_raw_runs
        self.adopt = adopt  # SQLite's --adopt; a schema is shared with other tables anyway
        self._lock = PgRunLock(self.url)  # type: ignore[assignment]
        self._writer: PgWriter | None = None

    @property
    def conn(self) -> Any:
        """The open connection (a ``PgWriter``; transactions are begun explicitly)."""
        if self._writer is None:
            raise RuntimeError("the Loader is used outside its with-block")
        return self._writer

    def _open(self) -> None:
        """Lock, connect, ensure the schema, mark stale ``running`` rows as interrupted."""
        from etl.store.pg_schema import ensure_schema

        self._lock.acquire()
        raw, schema = connect(self.url)
        self._writer = PgWriter(raw, cast(str, self.db))
        try:
            ensure_schema(raw, schema)
            # --busy-timeout: how long a statement waits for rows another session holds.
            raw.execute("SELECT set_config('lock_timeout', %s, false)",
                        (f"{max(1, round(self.busy_timeout * 1000))}ms",))
        except _driver().Error as exc:
            raise _or_config(pg_error(cast(str, self.db), exc), self.url) from exc
        stale = run_record.mark_interrupted(self._writer)
        if stale:
            log.warning("marked %d interrupted run(s) as failed", stale)

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        try:
            if writer is not None:
                try:
                    if writer.in_transaction:
                        writer.execute("ROLLBACK")
                except EtlError:  # the server is gone: so is the transaction
                    pass
                writer.close()
        finally:
            self._lock.release()

    def run(self, start: RunStart, *, finished_at: Callable[[], str] = _utc_now,
            figures: Callable[[], Mapping[str, Any] | None] = lambda: None,
            on_started: Callable[[int], None] | None = None,
            run_id: int | None = None) -> LoadRun:
        """As ``Loader.run``: a new run (or one more source of a run begun by ``begin_run``)."""
        return PgLoadRun(self, start, finished_at=finished_at, figures=figures,
                         on_started=on_started, run_id=run_id)


class PgLoadRun(LoadRun):
    """One source's writes in a run, in their one PostgreSQL transaction."""

    raw_pages_sql = sql.RAW_PAGES_SQL
    name_two_ids_sql = sql.NAME_TWO_IDS_SQL

    @property
    def writer(self) -> PgWriter:
        return cast(PgWriter, self.loader.conn)

    def _begin(self) -> None:
        """Begin the load's transaction and its chunk table (dropped when it ends)."""
        self.writer.execute("BEGIN")
        for statement in sql.LOAD_SETTINGS_SQL:
            self.writer.execute(statement)
        self.writer.execute(sql.CHUNK_TABLE_SQL)
        self.writer.execute(sql.CHUNK_KEY_SQL)
        self.counts = LoadCounts()

    def fill_chunk(self, transformed: Any) -> None:
        """COPY the chunk's images rows into the chunk table."""
        self.writer.copy_rows(sql.CHUNK_TABLE, IMAGE_COLUMNS,
                              bind_rows(transformed.images, IMAGE_COLUMNS))

    def merge_chunk(self) -> None:
        """Merge the chunk table: one statement per step (psycopg lets go of the GIL while the
        server works)."""
        w, params = self.writer, self._params()
        new, changed, renamed, stored, repeated = w.execute(sql.NEW_CHANGED_SQL,
                                                            params).fetchone()
        issues = w.execute(sql.IDENTITY_CHANGED_SQL, params).rowcount if renamed else 0
        w.execute(sql.UPSERT_SQL if stored else sql.INSERT_IMAGES_SQL, params)
        w.execute(sql.SNAPSHOTS_SQL if repeated else sql.INSERT_SNAPSHOTS_SQL, params)
        w.execute(sql.CLEAR_CHUNK_SQL)
        self.counts.new += int(new)
        self.counts.changed += int(changed)
        self.counts.quality_issues += int(issues)

    def write_issues(self, transformed: Any, duplicate_ids: Iterable[int] = ()) -> None:
        """COPY the chunk's rejects and quality issues (its duplicate ids among them)."""
        head = (self.run_id, self.source)
        rejects, qi = issue_rows(transformed, duplicate_ids)
        rejected = self.writer.copy_rows("rejects", sql.REJECT_COLUMNS,
                                         ((*head, *r) for r in rejects))
        self.writer.copy_rows("quality_issues", sql.ISSUE_COLUMNS, ((*head, *q) for q in qi))
        self.counts.rejected += rejected
        self.counts.quality_issues += len(qi)

    def _fail(self, error: str, *, exit_code: int, finished_at: str,
              stats: Mapping[str, Any] | None) -> None:
        """As on SQLite; a server that is gone cannot take the record: one line, and the next
        run marks the row ``interrupted``."""
        try:
            super()._fail(error, exit_code=exit_code, finished_at=finished_at, stats=stats)
        except EtlError as exc:
            log.warning("could not record run %s as failed: %s", self.run_id, exc.message)
