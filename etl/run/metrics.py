"""Prometheus text-format metrics for ``sync --metrics-file`` (node_exporter textfile collector).

Written after every run, successful or not, to a temp file in the same folder and renamed over
the target, so the collector never reads half a file. What must survive a failed run (the time of
the last success, the running totals) is read back from the database, not from the previous file.
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from etl.errors import ConfigError
from etl.store.ledger import connect_readonly, parse_ts

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
class LedgerFigures:
    """What the database knows beyond one run."""

    last_success: float | None = None
    images: int | None = None
    requests_total: int | None = None
    retries_total: int | None = None
    latest_run_id: int | None = None


def _epoch(value: str | None) -> float | None:
    ts = parse_ts(value)
    return ts.timestamp() if ts else None


def read_ledger(db: Path | str) -> LedgerFigures:
    """Read last-success time, current image count and totals; empty figures if unreadable."""
    try:
        conn = connect_readonly(db)
    except ConfigError:
        return LedgerFigures()
    try:
        last = conn.execute(
            "SELECT MAX(COALESCE(finished_at, started_at)) FROM runs WHERE status = 'success'"
        ).fetchone()[0]
        req, ret, latest = conn.execute(
            "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(retries), 0), MAX(run_id) FROM runs"
        ).fetchone()
        images: int | None
        try:
            images = conn.execute(
                "SELECT COUNT(*) FROM images WHERE removed_at IS NULL"
            ).fetchone()[0]
        except sqlite3.DatabaseError:
            images = None
        return LedgerFigures(_epoch(last), images, int(req), int(ret), latest)
    except sqlite3.DatabaseError:
        return LedgerFigures()
    finally:
        conn.close()


def run_row(db: Path | str, run_id: int) -> dict[str, object] | None:
    """The ledger row of one run, or None when it is not there (or the db is unreadable)."""
    try:
        conn = connect_readonly(db)
    except ConfigError:
        return None
    try:
        row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row else None
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()


def _number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def render(run: RunFigures, ledger: LedgerFigures) -> str:
    """The metrics file's text: HELP and TYPE for each family, unknown values left out."""
    values: dict[str, float | int | None] = {
        "swr_etl_last_run_timestamp_seconds": round(run.finished, 3),
        "swr_etl_last_success_timestamp_seconds": ledger.last_success,
        "swr_etl_last_run_duration_seconds": round(run.duration, 3),
        "swr_etl_last_run_status": run.exit_code,
        "swr_etl_last_run_success": 1 if run.exit_code == 0 else 0,
        "swr_etl_images": ledger.images if ledger.images is not None else run.images,
        "swr_etl_rows_rejected": run.rejected,
        "swr_etl_last_run_requests": run.requests,
        "swr_etl_last_run_retries": run.retries,
        "swr_etl_requests": ledger.requests_total,
        "swr_etl_retries": ledger.retries_total,
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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        # Readable by the collector (node_exporter usually runs as another user).
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check_writable(path: Path) -> None:
    """Fail fast (exit 2) when the metrics file's folder does not exist or is not writable."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ConfigError(f"metrics-file folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"metrics-file folder is not writable: {folder}")


def write_metrics(path: Path, db: Path | str, run: RunFigures) -> str:
    """Render this run's figures plus the ledger's and write them atomically; return the text."""
    text = render(run, read_ledger(db))
    write_atomic(path, text)
    return text


__all__ = [
    "METRICS", "RunFigures", "LedgerFigures", "read_ledger", "run_row", "render",
    "write_atomic", "write_metrics", "check_writable",
]
