"""A run's row in the run ledger (the ``runs`` table): started, finished, or failed.

The ``running`` row is committed on its own before the load begins, so a run that dies still
leaves a trace (the next run marks it ``failed``/``interrupted``). The final row is written in the
load's transaction, so it commits with the data. A failure is recorded in its own small
transaction after the load was rolled back, with the error as one masked line (secrets never
reach the database) and the exit code of ``etl.errors.exit_code_of``; figures SQLite cannot hold
(a hostile total beyond INTEGER) are left out rather than let them stop the record.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from etl import __version__
from etl.config.regions import source_name
from etl.errors import EtlError, Terminated
from etl.logs import mask
from etl.store.read import Queryable

INTERRUPTED = "interrupted"

# runs columns the final update may set from a run's figures (facts as data; others ignored).
RUN_STAT_COLUMNS = (
    "requests", "retries", "pages", "total_reported", "rows_seen", "rescans", "bytes",
    "duration_s", "retry_causes", "complete", "proof",
)

_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class LoadCounts:
    """What a load wrote so far in the current pass (``rows``: set by ``finish``): the run's
    row figures written with its data."""

    new: int = 0
    changed: int = 0
    removed: int = 0
    rejected: int = 0
    quality_issues: int = 0
    raw_pages: int = 0
    rows: int = 0


@dataclass(frozen=True)
class RunStart:
    """What the ``running`` row of a new run says."""

    started_at: str
    snapshot_date: str
    endpoint: str | None = None
    namespace: str | None = None
    image_name: str | None = None
    page_size: int | None = None
    replay_of: int | None = None
    captured_at: str | None = None  # images' capture time; default: started_at (replay: the
    #                                 original run's, so its snapshots keep their time)
    source: str | None = None  # the source loaded; default: named from the endpoint

    @property
    def source_name(self) -> str:
        return self.source or source_name(self.endpoint)


# RunStart fields that are no column of `runs`.
_NOT_RUN_COLUMNS = ("captured_at", "source")
_START_COLUMNS = tuple(f.name for f in fields(RunStart) if f.name not in _NOT_RUN_COLUMNS)
# run_sources columns a source's row may set (facts as data: the rest of what finish() writes
# for a run also describes its one source).
SOURCE_COLUMNS = frozenset((
    "endpoint", "status", "exit_code", "error", "started_at", "finished_at", "requests",
    "retries", "pages", "total_reported", "rows_seen", "rows_loaded", "rows_rejected",
    "rows_new", "rows_changed", "rows_removed", "quality_issues", "rescans", "bytes",
    "duration_s", "retry_causes", "complete", "proof"))


def mark_interrupted(conn: Queryable) -> int:
    """Mark ``running`` rows (runs that died; the lock says none is alive) ``failed``.

    The time is bound, not the engine's clock function: the same statement runs on PostgreSQL
    (``etl.store.pg_load``), whose connection takes SQLite's placeholders."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    conn.execute(
        "UPDATE run_sources SET status = 'failed', error = ?, exit_code = COALESCE(exit_code, 1),"
        " finished_at = ? WHERE status = 'running'", (INTERRUPTED, now))
    return int(conn.execute(
        "UPDATE runs SET status = 'failed', error = ?, exit_code = COALESCE(exit_code, 1),"
        " finished_at = ? WHERE status = 'running'", (INTERRUPTED, now),
    ).rowcount)


def insert_running(conn: Queryable, start: RunStart) -> int:
    """Insert the ``running`` row (autocommit: committed at once); return the run id
    (``RETURNING``, which both engines have: a psycopg cursor has no ``lastrowid``)."""
    values = tuple(getattr(start, c) for c in _START_COLUMNS)
    cur = conn.execute(
        f"INSERT INTO runs ({', '.join(_START_COLUMNS)}, status, tool_version, pid) "
        f"VALUES ({', '.join('?' * (len(_START_COLUMNS) + 3))}) RETURNING run_id",
        (*values, "running", __version__, os.getpid()),
    )
    (run_id,), = cur.fetchall()  # all: SQLite ends the statement (and its write) only then
    return int(run_id)


def update_run(conn: Queryable, run_id: int, values: Mapping[str, Any]) -> None:
    """Set ``values`` (column -> value) on the run's row."""
    sets = ", ".join(f"{k} = :{k}" for k in values)
    conn.execute(f"UPDATE runs SET {sets} WHERE run_id = :run_id", {**values, "run_id": run_id})


def upsert_source(conn: Queryable, run_id: int, source: str,
                  values: Mapping[str, Any]) -> None:
    """Insert or update the run's row for ``source`` in ``run_sources`` (known columns only)."""
    kept = {k: v for k, v in values.items() if k in SOURCE_COLUMNS}
    cols = ", ".join(kept)
    marks = ", ".join(f":{k}" for k in kept)
    sets = ", ".join(f"{k} = excluded.{k}" for k in kept)
    conn.execute(
        f"INSERT INTO run_sources (run_id, source, {cols}) VALUES (:run_id, :source, {marks})"
        f" ON CONFLICT (run_id, source) DO UPDATE SET {sets}",
        {**kept, "run_id": run_id, "source": source})


def stat_values(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run figures among ``stats`` that the ``runs`` row holds (retry causes as JSON)."""
    stats = stats or {}
    values = {k: stats[k] for k in RUN_STAT_COLUMNS if k in stats}
    if isinstance(values.get("retry_causes"), dict):
        values["retry_causes"] = json.dumps(values["retry_causes"], sort_keys=True)
    return values


def storable(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """The figures SQLite can store as they are: a count beyond INTEGER (hostile totals) or a
    value of an odd type is left out, so writing the failure itself cannot fail on it."""
    out: dict[str, Any] = {}
    for key, value in (stats or {}).items():
        if isinstance(value, dict):  # retry causes: stored as JSON text
            out[key] = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, bool) or value is None or isinstance(value, float | str):
            out[key] = value
        elif isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            out[key] = value
    return out


def error_line(exc: BaseException) -> str:
    """The error as one line for the ledger and the log, secrets masked."""
    if isinstance(exc, EtlError):
        text = exc.message
    elif isinstance(exc, Terminated):
        text = _text_of(exc) or "terminated"
    elif isinstance(exc, KeyboardInterrupt):
        text = INTERRUPTED
    else:
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        at = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
        text = f"internal error: {type(exc).__name__}: {_text_of(exc)}{at}"
    return mask(text.replace("\r", " ").replace("\n", " "))


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when even that fails (a hostile value inside the error)."""
    try:
        return str(exc)
    except Exception:  # the failure must still be recorded
        return f"<unprintable {type(exc).__name__}>"
