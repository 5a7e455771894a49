"""The ``runs`` and ``status`` commands: the run ledger (the ``runs`` table) as a table, and the
freshness verdict.

Both are read-only probes (``etl.store.read``): a typo in ``--db`` is reported (exit 2) instead of
silently creating an empty database, and a probe can never block or alter a running sync.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from etl.errors import ConfigError
from etl.logs import printable
from etl.store.read import (
    Queryable,
    latest_run,
    latest_success,
    open_ledger,
    parse_ts,
    recent_runs,
    source_successes,
)

DEFAULT_MAX_AGE_HOURS = 26.0
# `status` exit codes (0 = fresh; 2 = missing/unusable database, raised as ConfigError).
EXIT_STALE = 8
"""Exit code of ``status`` when the last success is older than --max-age or there is none."""

# Columns of `swr-etl runs` (header -> how to render it from a runs row).
_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", ">"),
    ("started_at", "<"),
    ("status", "<"),
    # how the scan was proven complete (the extractor's proof names); - when it was not
    ("proof", "<"),
    ("rows", ">"),
    ("new/changed/removed", ">"),
    ("rejected", ">"),
    ("requests", ">"),
    ("retries", ">"),
    ("duration", ">"),
    ("error", "<"),
)
_ERROR_WIDTH = 60
# A success stamped up to this far ahead of our clock counts as "just now" (the probe and the
# sync may run on hosts whose clocks differ a little). Further ahead the stamp says nothing
# about age, so it is never taken as fresh.
CLOCK_SKEW_TOLERANCE_HOURS = 5 / 60

T = TypeVar("T")


def _read(db: Path | str, query: Callable[[Queryable], T]) -> T:
    """Run ``query`` on the ledger read-only; a failing query is a one-line error too."""
    with open_ledger(db) as conn:
        try:
            return query(conn)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot read database {db}: {exc}") from exc


def list_runs(db: Path | str, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` most recent runs, newest first, as dicts of every ``runs`` column.

    ``retry_causes`` (stored as JSON text) is decoded into a dict.
    """
    return _read(db, lambda conn: recent_runs(conn, limit))


def _duration(row: dict[str, Any]) -> str:
    seconds = row.get("duration_s")
    if seconds is None:
        start, end = parse_ts(row.get("started_at")), parse_ts(row.get("finished_at"))
        if start is None or end is None:
            return "-"
        seconds = (end - start).total_seconds()
    return f"{float(seconds):.1f}s"


def _cell(row: dict[str, Any], column: str) -> str:
    """One table cell, printable: the error column holds what a server said."""
    return printable(_raw_cell(row, column))


# Table columns that show a count of a runs column (with thousands separators, as all human
# output writes counts).
_COUNTS = {"rows": "rows_loaded", "rejected": "rows_rejected", "requests": "requests",
           "retries": "retries"}


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value or 0)


def _shortened(text: str, width: int = _ERROR_WIDTH) -> str:
    """``text`` cut in the middle to ``width`` characters: an error's beginning says what
    failed and its end why (``...: Connection refused``), so both are kept."""
    if len(text) <= width:
        return text
    head = (width - 1) // 3
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _raw_cell(row: dict[str, Any], column: str) -> str:
    if column in _COUNTS:
        return _count(row.get(_COUNTS[column]))
    if column == "new/changed/removed":
        return "/".join(_count(row.get(k)) for k in ("rows_new", "rows_changed", "rows_removed"))
    if column == "duration":
        return _duration(row)
    if column == "error":
        return _shortened(" ".join(str(row.get("error") or "").split()))
    value = row.get(column)
    return "-" if value is None else str(value)


def format_runs_table(rows: Sequence[dict[str, Any]]) -> str:
    """Render runs as an aligned plain-text table (numbers right-aligned, no trailing spaces)."""
    if not rows:
        return "no runs recorded yet"
    cells = []
    for r in rows:
        cells.append([_cell(dict(r), name) for name, _ in _TABLE_COLUMNS])
        many = r.get("sources") or []
        for source in many if len(many) > 1 else []:  # a run of several: a line per source
            cells.append([_cell({**source, "run_id": ""}, name) if name != "started_at"
                          else printable(f"  {source['source']}") for name, _ in _TABLE_COLUMNS])
    headers = [name for name, _ in _TABLE_COLUMNS]
    widths = [max(len(headers[i]), *(len(c[i]) for c in cells)) for i in range(len(headers))]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if align == ">" else v.ljust(w)
            for v, w, (_, align) in zip(values, widths, _TABLE_COLUMNS, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(c) for c in cells)])


def _age_text(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _stale_sources(per_source: list[tuple[str, int | None, str | None]], lines: list[str],
                   max_age_hours: float, now: datetime) -> list[str]:
    """One line per source of the latest run (appended to ``lines``); the stale ones' names."""
    stale = []
    for source, run_id, when in per_source:
        finished = parse_ts(when)
        age_h = (now - finished).total_seconds() / 3600 if finished else float("inf")
        if finished is None:
            lines.append(printable(f"source {source}: never succeeded"))
        else:
            lines.append(printable(f"source {source}: last success {when} (run {run_id}), "
                                   f"age {_age_text(max(age_h, 0.0))}"))
        if not -CLOCK_SKEW_TOLERANCE_HOURS <= age_h < max_age_hours:
            stale.append(source)
    return stale


def freshness(
    db: Path | str, max_age_hours: float = DEFAULT_MAX_AGE_HOURS, now: datetime | None = None
) -> tuple[bool, str, int]:
    """Is the latest successful run younger than ``max_age_hours``?

    Returns ``(ok, message, exit_code)``: ``(True, …, 0)`` when fresh, ``(False, …, 8)`` when the
    last success is too old or there has never been one. The message has three lines: last
    success (time, run, age), last run (id, status, time, error), verdict.

    Raises:
        ConfigError: (exit 2) the database is missing or unusable.
    """
    now = now or datetime.now(timezone.utc)
    success, last, per_source = _read(db, lambda conn: (
        latest_success(conn), latest_run(conn), source_successes(conn)))
    lines: list[str] = []
    ok = False
    future = False
    if success:
        row = success
        when = row["finished_at"] or row["started_at"]
        finished = parse_ts(when)
        age_h = (now - finished).total_seconds() / 3600 if finished else float("inf")
        future = age_h < -CLOCK_SKEW_TOLERANCE_HOURS
        ok = not future and age_h < max_age_hours
        age = (f"{_age_text(-age_h)} in the future (clock skew?)" if future
               else f"age {_age_text(max(age_h, 0.0))}")
        lines.append(f"last success: {printable(str(when))} (run {row['run_id']}), {age}")
    else:
        lines.append("last success: never")
    if last:
        r = last
        when = r.get("finished_at") or r.get("started_at")
        text = f"last run:     {r['run_id']} {r['status']} at {when}"
        if r.get("error"):
            text += f": {' '.join(str(r['error']).split())}"
        lines.append(printable(text))
    else:
        lines.append("last run:     none")
    limit = f"{max_age_hours:g} h"
    stale = _stale_sources(per_source, lines, max_age_hours, now) if len(per_source) > 1 else []
    if stale:  # several sources: each must be fresh on its own
        ok = False
        lines.append(f"status:       STALE: {', '.join(stale)}: last success older than {limit} "
                     "or none")
    elif len(per_source) > 1 and not future:
        ok = True
        lines.append(f"status:       fresh: every source (max age {limit})")
    elif ok:
        lines.append(f"status:       fresh (max age {limit})")
    elif future:
        lines.append("status:       STALE: last success is stamped in the future; check the "
                     "clocks of this host and of the host running sync")
    elif success:
        lines.append(f"status:       STALE: last success older than {limit}")
    else:
        lines.append("status:       STALE: no successful run recorded")
    return ok, "\n".join(lines), 0 if ok else EXIT_STALE
