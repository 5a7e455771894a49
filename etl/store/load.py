"""Loading into SQLite: the one-transaction load and the run ledger writes.

Order of a run (ARCHITECTURE.md, CONTRACT.md "Database"): take the lock and check the file
(``etl.store.database``) -> ensure the schema -> mark stale ``running`` rows ``failed``
(``interrupted``) -> insert this run's ``running`` row and commit -> one ``BEGIN IMMEDIATE``
transaction for the whole load (a rescan rolls it back and begins again, so nothing of the
earlier pass survives) -> final ``runs`` row -> ``COMMIT``. Any error rolls the load back and
records the run as ``failed`` in a small separate transaction.

Bulk writes use ``executemany`` into a temporary table and set-based ``INSERT ... SELECT``
(PERF-NOTES: per-row Python conversion is the cost).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from etl import __version__
from etl.errors import ConfigError
from etl.store.database import RunLock, check_database_file, connect, write_error
from etl.store.schema import IMAGE_COLUMNS, ensure_schema

log = logging.getLogger("etl.load")

INTERRUPTED = "interrupted"
DUPLICATE_ID = "duplicate id in scan"  # the transform's wording for the same problem

# runs columns the final update may set (facts as data; anything else is ignored).
RUN_STAT_COLUMNS = (
    "requests", "retries", "pages", "total_reported", "rows_seen", "rescans", "bytes",
    "duration_s", "retry_causes", "complete", "proof",
)

_CHUNK_COLS = ", ".join(f'"{c}"' for c in IMAGE_COLUMNS)
# namespace/name are indexed: assigning them, even unchanged, rewrites the index entry of every
# row (5x slower upsert, measured). They rarely change: a separate UPDATE does it (_SQL_RENAME).
_IDENTITY = ("id", "namespace", "name")
_UPDATE_SET = ", ".join(
    f'"{c}" = excluded."{c}"' for c in IMAGE_COLUMNS if c not in _IDENTITY
)
_CHANGED = " OR ".join(f'i."{c}" IS NOT c."{c}"' for c in IMAGE_COLUMNS if c != "id")

# Whether this run's row overwrites the stored one (alias ``i``): only if no later run saw the
# image or marked it removed. A replay of an older run must not move current state backwards
# (nor bring back an image a later run found gone). The upsert, the rename and the new/changed
# counts all use this one predicate, so the counts say what the upsert really wrote.
_APPLIES = "{i}.last_seen_at <= :at AND ({i}.removed_at IS NULL OR {i}.removed_at <= :at)"

# CROSS JOIN below pins the chunk as the outer loop: the temp table has no statistics, and the
# planner would otherwise scan all of images once per chunk.
_SQL_NEW_CHANGED = f"""
SELECT COALESCE(SUM(i.id IS NULL OR (i.removed_at IS NOT NULL AND {_APPLIES.format(i="i")})), 0),
       COALESCE(SUM(i.id IS NOT NULL AND i.removed_at IS NULL AND i.last_seen_run <> :run
                    AND {_APPLIES.format(i="i")} AND ({_CHANGED})), 0),
       COALESCE(SUM(i.id IS NOT NULL AND (i.namespace IS NOT c.namespace
                                           OR i.name IS NOT c.name)), 0)
FROM temp.load_chunk AS c LEFT JOIN images AS i ON i.id = c.id
"""

# An id whose (namespace, name) changed since an earlier run: ids are the identity, names may
# change. The only implementation of this check: it needs the stored state, so it is SQL here.
_SQL_IDENTITY_CHANGED = """
INSERT INTO quality_issues (run_id, image_id, field, raw_value, problem)
SELECT :run, c.id, 'namespace/name',
       COALESCE(c.namespace, '<null>') || '/' || COALESCE(c.name, '<null>'),
       'identity changed, was ' || COALESCE(i.namespace, '<null>') || '/'
       || COALESCE(i.name, '<null>')
FROM temp.load_chunk AS c CROSS JOIN images AS i ON i.id = c.id
WHERE i.last_seen_run <> :run AND (i.namespace IS NOT c.namespace OR i.name IS NOT c.name)
"""

_SQL_RENAME = f"""
UPDATE images
SET namespace = (SELECT c.namespace FROM temp.load_chunk AS c WHERE c.id = images.id),
    name = (SELECT c.name FROM temp.load_chunk AS c WHERE c.id = images.id)
WHERE id IN (SELECT c.id FROM temp.load_chunk AS c CROSS JOIN images AS i ON i.id = c.id
             WHERE (i.namespace IS NOT c.namespace OR i.name IS NOT c.name)
               AND {_APPLIES.format(i="i")})
"""

_SQL_UPSERT = f"""
INSERT INTO images ({_CHUNK_COLS}, first_seen_at, last_seen_at, first_seen_run, last_seen_run,
                    removed_at)
SELECT {_CHUNK_COLS}, :at, :at, :run, :run, NULL FROM temp.load_chunk WHERE true
ON CONFLICT (id) DO UPDATE SET {_UPDATE_SET},
    last_seen_at = excluded.last_seen_at, last_seen_run = excluded.last_seen_run,
    removed_at = NULL
WHERE {_APPLIES.format(i="images")}
"""

_SQL_SNAPSHOTS = """
INSERT INTO image_snapshots (run_id, image_id, captured_at, snapshot_date, star_count,
                             pull_count, last_updated)
SELECT :run, id, :at, :date, star_count, pull_count, last_updated FROM temp.load_chunk WHERE true
ON CONFLICT (run_id, image_id) DO UPDATE SET star_count = excluded.star_count,
    pull_count = excluded.pull_count, last_updated = excluded.last_updated
"""

# One (namespace, name) under two or more listed ids, at least one seen by this run: one issue per
# id, unless the transform already reported it (pairs inside one chunk). Once per run, at the end.
# `dup` reads only the (namespace, name) index (covering); the table is touched for the few
# duplicates only (a per-row check cost more than the whole upsert, measured).
_SQL_NAME_TWO_IDS = """
INSERT INTO quality_issues (run_id, image_id, field, raw_value, problem)
WITH dup AS (
    SELECT namespace, name FROM images
    WHERE name <> '' AND namespace IS NOT NULL
    GROUP BY namespace, name HAVING count(*) > 1
), members AS (
    SELECT i.id, i.namespace, i.name, i.last_seen_run
    FROM dup CROSS JOIN images AS i ON i.namespace = dup.namespace AND i.name = dup.name
    WHERE i.removed_at IS NULL
    ORDER BY i.namespace, i.name, i.id
), g AS (
    SELECT namespace, name, group_concat(id, ', ') AS ids FROM members
    GROUP BY namespace, name
    HAVING count(*) > 1 AND max(last_seen_run = :run) = 1
)
SELECT :run, m.id, 'namespace/name', m.namespace || '/' || m.name,
       'namespace/name shared by ids ' || g.ids
FROM g JOIN members AS m ON m.namespace = g.namespace AND m.name = g.name
WHERE NOT EXISTS (SELECT 1 FROM quality_issues AS q
                  WHERE q.run_id = :run AND q.image_id = m.id AND q.field = 'namespace/name'
                    AND q.problem LIKE 'namespace/name shared by ids %')
ORDER BY m.id
"""

_SQL_MARK_REMOVED = """
UPDATE images SET removed_at = :at
WHERE removed_at IS NULL AND last_seen_run <> :run AND last_seen_at <= :at
"""


@dataclass
class LoadCounts:
    """What the load wrote so far in the current pass."""

    new: int = 0
    changed: int = 0
    removed: int = 0
    rejected: int = 0
    quality_issues: int = 0
    raw_pages: int = 0


@dataclass(frozen=True)
class RawPage:
    """A stored page body (decompressed) for replay."""

    offset: int
    fetched_at: str
    content_range: str | None
    body: bytes


F = TypeVar("F", bound=Callable[..., Any])


def _sqlite_errors(method: F) -> F:
    """Turn SQLite's environmental errors (busy, read-only, disk full) into EtlError leaves."""

    @functools.wraps(method)
    def wrapper(self: Loader, *args: Any, **kwargs: Any) -> Any:
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


def _rows(frame: Any, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Frame -> list of tuples with None for missing values (pandas NA is not bindable).

    Column by column through ``to_numpy(object, na_value=None)``: about twice as fast as
    ``astype(object).where(...).itertuples()`` (PERF-NOTES: per-row conversion is the cost).
    """
    if frame is None or len(frame) == 0:
        return []
    cols = [frame[c].array.to_numpy(dtype=object, na_value=None).tolist() for c in columns]
    return list(zip(*cols, strict=True))


class Loader:
    """One run's writes to one database. Use as a context manager; ``open()`` first.

    Typical use (``etl.run.pipeline`` does this)::

        with Loader(path) as loader:
            loader.open()
            run_id = loader.start_run(started_at=..., snapshot_date=..., endpoint=...)
            loader.begin_load()
            loader.write_chunk(transformed, duplicate_ids=[...])   # many times
            loader.restart_pass()                                  # on a rescan
            loader.finish(status="success", mark_removed=True, stats={...})
    """

    def __init__(self, db: Path, *, busy_timeout: float = 30.0, keep_raw_runs: int = 30) -> None:
        """``keep_raw_runs``: runs whose page bodies survive ``finish``; negative: prune none."""
        self.db = Path(db)
        self.busy_timeout = busy_timeout
        self.keep_raw_runs = keep_raw_runs
        self.lock = RunLock(self.db)
        self.conn: sqlite3.Connection | None = None
        self.run_id: int | None = None
        self.captured_at = ""
        self.snapshot_date = ""
        self.counts = LoadCounts()

    # ------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> sqlite3.Connection:
        """Lock, validate, connect, migrate, and mark stale ``running`` rows as interrupted."""
        self.lock.acquire()
        check_database_file(self.db)
        conn = connect(self.db, busy_timeout=self.busy_timeout)
        self.conn = conn
        try:
            ensure_schema(conn)
            stale = conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, exit_code = COALESCE(exit_code, 1),"
                " finished_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') WHERE status = 'running'",
                (INTERRUPTED,),
            ).rowcount
            if stale:
                log.warning("marked %d interrupted run(s) as failed", stale)
            conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS load_chunk (id INTEGER PRIMARY KEY, "
                + ", ".join(f'"{c}"' for c in IMAGE_COLUMNS if c != "id") + ")"
            )
        except sqlite3.OperationalError as exc:
            raise write_error(self.db, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot use database {self.db}: {exc}") from exc
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
            finally:
                self.conn.close()
                self.conn = None
        self.lock.release()

    @property
    def c(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("Loader.open() was not called")
        return self.conn

    # ---------------------------------------------------------------------------------- ledger

    def start_run(self, *, started_at: str, snapshot_date: str, captured_at: str | None = None,
                  endpoint: str | None = None, namespace: str | None = None,
                  image_name: str | None = None, page_size: int | None = None,
                  replay_of: int | None = None) -> int:
        """Insert this run's ``running`` row and commit it; return the run id."""
        try:
            cur = self.c.execute(
                "INSERT INTO runs (started_at, status, endpoint, namespace, image_name, page_size,"
                " tool_version, snapshot_date, replay_of, pid) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (started_at, "running", endpoint, namespace, image_name, page_size, __version__,
                 snapshot_date, replay_of, os.getpid()),
            )
        except sqlite3.OperationalError as exc:
            raise write_error(self.db, exc) from exc
        self.run_id = int(cur.lastrowid or 0)
        self.captured_at = captured_at or started_at
        self.snapshot_date = snapshot_date
        return self.run_id

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        cur = self.c.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def newer_runs(self, run_id: int, snapshot_date: str) -> list[tuple[int, str]]:
        """(run_id, snapshot_date) of the loaded runs after ``run_id`` on or after its date."""
        return [(int(r), str(d)) for r, d in self.c.execute(
            "SELECT run_id, snapshot_date FROM runs WHERE run_id > ? AND snapshot_date >= ? "
            "AND status IN ('success', 'partial') ORDER BY run_id", (run_id, snapshot_date))]

    def raw_page_offsets(self, run_id: int) -> list[int]:
        return [r[0] for r in self.c.execute(
            "SELECT page_offset FROM raw_pages WHERE run_id = ? ORDER BY page_offset", (run_id,))]

    def raw_pages(self, run_id: int) -> Iterator[RawPage]:
        """Stored pages of a run in offset order, decompressed one at a time."""
        for offset in self.raw_page_offsets(run_id):
            fetched_at, content_range, encoding, body = self.c.execute(
                "SELECT fetched_at, content_range, encoding, body FROM raw_pages"
                " WHERE run_id = ? AND page_offset = ?", (run_id, offset)).fetchone()
            data = zlib.decompress(body) if encoding == "zlib" else bytes(body)
            yield RawPage(offset, fetched_at, content_range, data)

    # ------------------------------------------------------------------------------------ load

    def begin_load(self) -> None:
        """Start the one write transaction of the run (waits up to busy_timeout for writers)."""
        try:
            self.c.execute("BEGIN IMMEDIATE")
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
        self.c.execute("ROLLBACK")
        self.begin_load()

    @_sqlite_errors
    def write_raw_pages(self, pages: Iterable[tuple[int, str, str | None, bytes | str]], *,
                        compressed: bool = False) -> None:
        """Store page bodies, zlib-compressed here unless ``compressed`` (by ``compress_body``)."""
        rows = [
            (self.run_id, offset, fetched_at, content_range, "zlib",
             body if compressed and isinstance(body, bytes) else compress_body(body))
            for offset, fetched_at, content_range, body in pages
        ]
        self.c.executemany(
            "INSERT INTO raw_pages (run_id, page_offset, fetched_at, content_range, encoding,"
            " body) VALUES (?,?,?,?,?,?) ON CONFLICT (run_id, page_offset) DO UPDATE SET"
            " fetched_at = excluded.fetched_at, content_range = excluded.content_range,"
            " body = excluded.body", rows)
        self.counts.raw_pages += len(rows)

    @_sqlite_errors
    def write_chunk(self, transformed: Any, *, duplicate_ids: Iterable[int] = ()) -> None:
        """Write one transformed chunk: images upsert, snapshots, rejects, quality issues."""
        c = self.c
        params = {"run": self.run_id, "at": self.captured_at, "date": self.snapshot_date}
        images = _rows(transformed.images, IMAGE_COLUMNS)
        c.executemany(
            f"INSERT OR REPLACE INTO temp.load_chunk ({_CHUNK_COLS}) "
            f"VALUES ({', '.join('?' * len(IMAGE_COLUMNS))})", images)
        new, changed, renamed = c.execute(_SQL_NEW_CHANGED, params).fetchone()
        issues = 0
        if renamed:  # rare: skip two joins per chunk when no known id changed its name
            issues = c.execute(_SQL_IDENTITY_CHANGED, params).rowcount
            c.execute(_SQL_RENAME, params)
        c.execute(_SQL_UPSERT, params)
        c.execute(_SQL_SNAPSHOTS, params)
        c.execute("DELETE FROM temp.load_chunk")

        rejects = _rows(transformed.rejects, ("page_offset", "reason", "raw"))
        c.executemany("INSERT INTO rejects (run_id, page_offset, reason, raw) VALUES (?,?,?,?)",
                      [(self.run_id, *r) for r in rejects])
        qi = _rows(transformed.quality_issues, ("image_id", "field", "raw_value", "problem"))
        qi += [(i, "id", str(i), DUPLICATE_ID) for i in duplicate_ids]
        c.executemany(
            "INSERT INTO quality_issues (run_id, image_id, field, raw_value, problem)"
            " VALUES (?,?,?,?,?)", [(self.run_id, *q) for q in qi])
        self.counts.new += int(new)
        self.counts.changed += int(changed)
        self.counts.rejected += len(rejects)
        self.counts.quality_issues += issues + len(qi)

    def rows_loaded(self) -> int:
        return int(self.c.execute(
            "SELECT COUNT(*) FROM image_snapshots WHERE run_id = ?", (self.run_id,)).fetchone()[0])

    @_sqlite_errors
    def finish(self, *, status: str, mark_removed: bool, stats: dict[str, Any],
               exit_code: int = 0, finished_at: str) -> LoadCounts:
        """Mark removals (complete unfiltered scans only), prune raw pages, write the final
        ``runs`` row, and COMMIT the whole run."""
        c = self.c
        params = {"run": self.run_id, "at": self.captured_at}
        self.counts.quality_issues += c.execute(_SQL_NAME_TWO_IDS, params).rowcount
        if mark_removed:
            self.counts.removed = c.execute(_SQL_MARK_REMOVED, params).rowcount
        if self.keep_raw_runs >= 0:
            c.execute(
                "DELETE FROM raw_pages WHERE run_id NOT IN (SELECT DISTINCT run_id FROM raw_pages"
                " ORDER BY run_id DESC LIMIT ?)", (self.keep_raw_runs,))
        values = {k: stats[k] for k in RUN_STAT_COLUMNS if k in stats}
        if isinstance(values.get("retry_causes"), dict):
            values["retry_causes"] = json.dumps(values["retry_causes"], sort_keys=True)
        values.update(
            status=status, exit_code=exit_code, finished_at=finished_at,
            rows_loaded=self.rows_loaded(), rows_rejected=self.counts.rejected,
            rows_new=self.counts.new, rows_changed=self.counts.changed,
            rows_removed=self.counts.removed, quality_issues=self.counts.quality_issues,
            error=None,
        )
        sets = ", ".join(f"{k} = :{k}" for k in values)
        c.execute(f"UPDATE runs SET {sets} WHERE run_id = :run_id",
                  {**values, "run_id": self.run_id})
        c.execute("COMMIT")
        return self.counts

    def fail(self, error: str, *, exit_code: int, finished_at: str,
             stats: dict[str, Any] | None = None) -> None:
        """Roll the load back and record the run as failed (own small transaction)."""
        if self.conn is None or self.run_id is None:
            return
        c = self.conn
        try:
            if c.in_transaction:
                c.execute("ROLLBACK")
            values = {k: (stats or {})[k] for k in RUN_STAT_COLUMNS if k in (stats or {})}
            values["proof"] = None  # nothing of a failed run stands, whatever its scan proved
            if isinstance(values.get("retry_causes"), dict):
                values["retry_causes"] = json.dumps(values["retry_causes"], sort_keys=True)
            values.update(status="failed", error=error.replace("\n", " ")[:1000],
                          exit_code=exit_code, finished_at=finished_at, rows_loaded=0)
            sets = ", ".join(f"{k} = :{k}" for k in values)
            c.execute(f"UPDATE runs SET {sets} WHERE run_id = :run_id",
                      {**values, "run_id": self.run_id})
        except sqlite3.Error:  # the original error matters more; the next run marks it stale
            log.warning("could not record run %s as failed", self.run_id, exc_info=True)
