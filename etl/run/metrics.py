"""Prometheus text-format metrics for ``sync --metrics-file`` (node_exporter textfile collector).

The text is rendered by ``prometheus_client`` (a registry holding one collector of this run's
figures; the library writes the exposition format, its escaping and its number format). It is
written after every run, successful or not, with ``etl.atomic``: a temp file in the same folder,
synced and renamed over the target, so the collector never reads half a file. What must survive
a failed run (the time of the last success, the running totals) is read back from the database,
not from the previous file.

Not ``prometheus_client.write_to_textfile``: it opens a predictable temp name
(``PATH.<pid>.<thread>``) following a symlink planted there, never syncs, and leaves the mode to
the umask (``UMask=0027`` in the systemd unit would hide the file from node_exporter).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from etl.atomic import write_text_atomic
from etl.errors import ConfigError
from etl.store.read import (
    ledger_totals,
    listed_images,
    open_ledger,
    parse_ts,
    source_figures,
)
from etl.store.read import run_row as read_run_row

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# name -> (type, help). Facts as data: the renderer and docs/operators/metrics.md follow this table.
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
# Per source of the last run (label source="<name>"): name -> (type, help, SourceFigures field).
SOURCE_METRICS: dict[str, tuple[str, str, str]] = {
    "swr_etl_source_last_run_status": (
        "gauge", "Exit code of each source in the last sync run (0: loaded completely).",
        "exit_code"),
    "swr_etl_source_last_success_timestamp_seconds": (
        "gauge", "Unix time each source last loaded successfully.", "last_success"),
    "swr_etl_source_images": ("gauge", "Images each source currently lists.", "images"),
    "swr_etl_source_last_run_requests": (
        "gauge", "HTTP requests each source's scan made in the last sync run.", "requests"),
    "swr_etl_source_last_run_retries": (
        "gauge", "Retried requests of each source in the last sync run.", "retries"),
    "swr_etl_source_last_run_rows_loaded": (
        "gauge", "Images each source loaded in the last sync run.", "rows_loaded"),
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
class SourceFigures:
    """One source of the last run, as its ``run_sources`` row and the database say."""

    source: str
    exit_code: int | None = None
    requests: int | None = None
    retries: int | None = None
    rows_loaded: int | None = None
    last_success: float | None = None
    images: int | None = None


@dataclass(frozen=True)
class DatabaseFigures:
    """What the database knows beyond one run (its ledger and its current images)."""

    last_success: float | None = None
    images: int | None = None
    requests_total: int | None = None
    retries_total: int | None = None
    latest_run_id: int | None = None
    sources: tuple[SourceFigures, ...] = ()


def _epoch(value: str | None) -> float | None:
    ts = parse_ts(value)
    return ts.timestamp() if ts else None


def read_database_figures(db: Path | str) -> DatabaseFigures:
    """Read last-success time, current image count and totals; empty figures if unreadable."""
    try:
        with open_ledger(db) as conn:
            try:
                totals = ledger_totals(conn)
            except sqlite3.DatabaseError:
                return DatabaseFigures()
            images: int | None
            try:
                images = listed_images(conn)
                sources = tuple(
                    SourceFigures(s, code, req, ret, rows, _epoch(at), n)
                    for s, code, req, ret, rows, at, n in source_figures(conn))
            except (sqlite3.DatabaseError, ConfigError):  # PostgreSQL: ConfigError (PgReader)
                images, sources = None, ()
    except ConfigError:
        return DatabaseFigures()
    return DatabaseFigures(_epoch(totals.last_success_at), images, totals.requests,
                           totals.retries, totals.latest_run_id, sources)


def run_row(db: Path | str, run_id: int) -> dict[str, object] | None:
    """The ledger row of one run, or None when it is not there (or the db is unreadable)."""
    try:
        with open_ledger(db) as conn:
            return read_run_row(conn, run_id)
    except (ConfigError, sqlite3.DatabaseError):
        return None


def _values(run: RunFigures, database: DatabaseFigures) -> dict[str, float | int | None]:
    """Each metric's value (None: unknown, left out of the file)."""
    return {
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


class _RunCollector:
    """A ``prometheus_client`` collector of one run's figures: each metric of ``METRICS`` with a
    known value, as a gauge or a counter family (a counter's sample is ``<name>_total``). A
    custom collector rather than ``Gauge``/``Counter`` objects: the totals are read from the
    ledger, not counted up in this process."""

    def __init__(self, values: dict[str, float | int | None],
                 sources: tuple[SourceFigures, ...] = ()) -> None:
        self.values = values
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        families = {"gauge": GaugeMetricFamily, "counter": CounterMetricFamily}
        for name, (kind, help_text) in METRICS.items():
            value = self.values[name]
            if value is not None:
                yield families[kind](name, help_text, value=value)
        for name, (_kind, help_text, field) in SOURCE_METRICS.items():
            family = GaugeMetricFamily(name, help_text, labels=["source"])
            for src in self.sources:
                value = getattr(src, field)
                if value is not None:
                    family.add_metric([src.source], value)
            if family.samples:
                yield family


def render(run: RunFigures, database: DatabaseFigures) -> str:
    """The metrics file's text: HELP and TYPE for each family, unknown values left out."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_RunCollector(_values(run, database), database.sources))
    return generate_latest(registry).decode("utf-8")


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
    "METRICS", "SOURCE_METRICS", "RunFigures", "SourceFigures", "DatabaseFigures",
    "read_database_figures", "run_row", "render", "write_metrics", "check_writable",
]
