"""Prometheus text-format metrics for ``sync --metrics-file`` (node_exporter textfile collector).

Written after every run, successful or not, to a temp file in the same folder and renamed over
the target, so the collector never reads half a file. What must survive a failed run (the time of
the last success, the running totals) is read back from the database, not from the previous file.
"""

from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from etl.atomic import write_text_atomic
from etl.errors import ConfigError
from etl.store.read import (
    LEDGER_READER,
    ledger_totals,
    listed_images,
    open_readonly,
    parse_ts,
)
from etl.store.read import run_row as read_run_row

# name -> (type, help). Facts as data: the renderer and the README follow this table.
METRICS: dict[str, tuple[str, str]] = {
    "swr_etl_last_run_timestamp_seconds": (
        "gauge", "Unix time the last sync run finished (successful or not)."),
    "swr_etl_last_success_timestamp_seconds": (
        "gauge", "Unix time the last successful sync finished (from the database ledger)."),
    "swr_etl_last_run_duration_seconds": ("gauge", "Wall-clock seconds of the last sync run."),
    "swr_etl_last_run_status": (
        "gauge", "Exit code of the last sync run: 0 success, 6 incomplete, other codes failed."),
    "swr_etl_last_run_success": ("gauge", "1 if the last sync run exited 0, else 0."),
    "swr_etl_images": ("gauge", "Images currently listed in the database (not removed)."),
    "swr_etl_rows_rejected": ("gauge", "Rows rejected by the last sync run."),
    "swr_etl_last_run_requests": ("gauge", "HTTP requests made by the last sync run."),
    "swr_etl_last_run_retries": ("gauge", "Retried requests in the last sync run."),
    "swr_etl_requests": ("counter", "HTTP requests made by all runs recorded in the ledger."),
    "swr_etl_retries": ("counter", "Retried requests over all runs recorded in the ledger."),
}


@dataclass(frozen=True)
class RunFigures:
    """What one run reports; ``None`` means unknown (e.g. it failed before fetching)."""

    finished: float
    duration: float
    exit_code: int
    rejected: int | None = None
    requests: int | None = None
    retries: int | None = None
    images: int | None = None


@dataclass(frozen=True)
class DatabaseFigures:
    """What the database knows beyond one run (its ledger and its current images)."""

    last_success: float | None = None
    images: int | None = None
    requests_total: int | None = None
    retries_total: int | None = None
    latest_run_id: int | None = None


def _epoch(value: str | None) -> float | None:
    ts = parse_ts(value)
    return ts.timestamp() if ts else None


def read_database_figures(db: Path | str) -> DatabaseFigures:
    """Read last-success time, current image count and totals; empty figures if unreadable."""
    try:
        with open_readonly(db, LEDGER_READER) as conn:
            try:
                totals = ledger_totals(conn)
            except sqlite3.DatabaseError:
                return DatabaseFigures()
            images: int | None
            try:
                images = listed_images(conn)
            except sqlite3.DatabaseError:
                images = None
    except ConfigError:
        return DatabaseFigures()
    return DatabaseFigures(_epoch(totals.last_success_at), images, totals.requests,
                           totals.retries, totals.latest_run_id)


def run_row(db: Path | str, run_id: int) -> dict[str, object] | None:
    """The ledger row of one run, or None when it is not there (or the db is unreadable)."""
    try:
        with open_readonly(db, LEDGER_READER) as conn:
            return read_run_row(conn, run_id)
    except (ConfigError, sqlite3.DatabaseError):
        return None


def _number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def render(run: RunFigures, database: DatabaseFigures) -> str:
    """The metrics file's text: HELP and TYPE for each family, unknown values left out."""
    values: dict[str, float | int | None] = {
        "swr_etl_last_run_timestamp_seconds": round(run.finished, 3),
        "swr_etl_last_success_timestamp_seconds": database.last_success,
        "swr_etl_last_run_duration_seconds": round(run.duration, 3),
        "swr_etl_last_run_status": run.exit_code,
        "swr_etl_last_run_success": 1 if run.exit_code == 0 else 0,
        "swr_etl_images": database.images if database.images is not None else run.images,
        "swr_etl_rows_rejected": run.rejected,
        "swr_etl_last_run_requests": run.requests,
        "swr_etl_last_run_retries": run.retries,
        "swr_etl_requests": database.requests_total,
        "swr_etl_retries": database.retries_total,
    }
    lines: list[str] = []
    for name, (kind, help_text) in METRICS.items():
        value = values[name]
        if value is None:
            continue
        sample = f"{name}_total" if kind == "counter" else name
        lines += [f"# HELP {sample} {help_text}", f"# TYPE {sample} {kind}",
                  f"{sample} {_number(value)}"]
    return "\n".join(lines) + "\n"


def check_writable(path: Path) -> None:
    """Fail fast (exit 2) when the metrics file's folder does not exist or is not writable."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(f"metrics-file folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"metrics-file folder is not writable: {folder}")


def write_metrics(path: Path, db: Path | str, run: RunFigures) -> str:
    """Render this run's figures plus the database's and write them atomically (readable by
    the collector, which usually runs as another user); return the text."""
    text = render(run, read_database_figures(db))
    write_text_atomic(path, text, mode=0o644)
    return text


__all__ = [
    "METRICS", "RunFigures", "DatabaseFigures", "read_database_figures", "run_row", "render",
    "write_metrics", "check_writable",
]
