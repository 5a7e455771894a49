"""Pull-count trend reports (CONTRACT.md ``report``): JSON, Markdown, or one self-contained HTML.

``build_report`` is the computation (a plain dict, the JSON document); ``write_report`` renders it.
The rules, stated once here and in the README:

* Each snapshot date counts once: its last successful run (``partial``/``failed`` never count),
  restricted to unfiltered runs (or, when every run is filtered, to the latest run's filter).
* The window ends at the latest date (``as_of``) and starts at the last date on or before
  ``as_of - days`` (the earliest date if the history is shorter).
* An image's pull delta is the sum of its increases between consecutive observations. A
  decrease contributes 0 and is listed as an anomaly; so does a step onto the int32 maximum
  (2147483647, a counter stuck by an upstream overflow: its true growth is unknown).
* Growth % = delta / max(count at the image's first observation in the window, 1000) * 100,
  so tiny images cannot dominate. Rank = position by delta (ties: lower id first) among images
  listed at ``as_of``; rank change = rank in the previous window of the same length minus this
  rank (positive = climbed; null when the image or the previous window is missing).
* A gap between runs is never filled with zero days: the interval's delta is spread evenly over
  the days elapsed (daily rate = delta / days). The 7-day average is the mean daily rate over
  the covered days among the last 7 calendar days.
* A stale day: more than 80 % of the images listed on two consecutive run dates kept the same
  pull count (stuck counters left out).

Heavy lifting is SQL (window functions over temp tables) so a million-image database does not
have to fit in Python objects; only the top movers' histories come back row by row.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from etl import __version__
from etl.errors import ConfigError
from etl.export import open_readonly, run_days, write_text_atomic

INT32_MAX = 2147483647
MIN_GROWTH_BASELINE = 1000
STALE_SHARE = 0.8
MAX_LISTED = 500  # new/removed/anomaly entries kept in the document (totals count them all)
FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}

# An interval's contribution: increases only; a step onto the stuck int32 value is unknown.
DELTA = f"CASE WHEN c > pc AND c <> {INT32_MAX} THEN c - pc ELSE 0 END"

STEPS_SQL = """
CREATE TEMP TABLE {name} AS
SELECT id, d, c, LAG(c) OVER w AS pc, LAG(d) OVER w AS pd, LEAD(d) OVER w AS nd
FROM (SELECT s.image_id AS id, r.d AS d, s.pull_count AS c
      FROM temp.report_runs AS r JOIN image_snapshots AS s ON s.run_id = r.run_id
      WHERE r.d BETWEEN :lo AND :hi)
WINDOW w AS (PARTITION BY id ORDER BY d)
"""

AGG_SQL = f"""
CREATE TEMP TABLE {{name}} AS
SELECT id, MIN(d) AS first_d, MAX(d) AS last_d, SUM({DELTA}) AS delta,
       MAX(CASE WHEN pd IS NULL THEN c END) AS start_c,
       MAX(CASE WHEN nd IS NULL THEN c END) AS end_c
FROM {{steps}} GROUP BY id
"""


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _shift(text: str, days: int) -> str:
    return (_day(text) + dt.timedelta(days=days)).isoformat()


def _elapsed(a: str, b: str) -> int:
    return (_day(b) - _day(a)).days


def _start_of(dates: list[str], end: str, days: int) -> str:
    """The window's first date: the last on or before ``end - days``, else the earliest."""
    target = _shift(end, -days)
    before = [d for d in dates if d <= target]
    return before[-1] if before else dates[0]


def daily_rates(points: list[tuple[str, int | None]]) -> dict[str, float]:
    """Per calendar day, the daily pull rate: each interval's clamped delta spread over its days."""
    rates: dict[str, float] = {}
    for (d0, c0), (d1, c1) in zip(points, points[1:], strict=False):
        if c0 is None or c1 is None:
            continue
        delta = c1 - c0 if c1 > c0 and c1 != INT32_MAX else 0
        days = _elapsed(d0, d1)
        for k in range(1, days + 1):
            rates[_shift(d0, k)] = delta / days
    return rates


def avg_last_7(rates: dict[str, float], as_of: str) -> float | None:
    covered = [rates[day] for k in range(7) if (day := _shift(as_of, -k)) in rates]
    return round(sum(covered) / len(covered), 2) if covered else None


def growth_pct(delta: int, start: int | None) -> float:
    return round(delta * 100 / max(start or 0, MIN_GROWTH_BASELINE), 2)


@contextmanager
def _connection(conn_or_db: sqlite3.Connection | Path | str) -> Iterator[sqlite3.Connection]:
    if isinstance(conn_or_db, sqlite3.Connection):
        yield conn_or_db
    else:
        with open_readonly(Path(conn_or_db)) as conn:
            yield conn


def build_report(conn_or_db: sqlite3.Connection | Path | str, *, days: int = 30, top: int = 10,
                 now: dt.datetime | None = None, include_partial: bool = False) -> dict[str, Any]:
    """Compute the trend report (the JSON document) from the runs up to ``now``'s date.

    Raises:
        ConfigError: bad ``days``/``top``, or no successful run to report on.
    """
    if days < 1 or top < 1:
        raise ConfigError("--days and --top must be at least 1")
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    with _connection(conn_or_db) as conn:
        run_list = run_days(conn, include_partial=include_partial, one_scope=True,
                            until=now.date().isoformat())
        if not run_list:
            raise ConfigError("no successful run to report on: run 'swr-etl sync' first")
        in_transaction = conn.in_transaction
        try:
            return _compute(conn, run_list, days=days, top=top, now=now)
        finally:
            for name in ("report_runs", "cur_steps", "cur", "prev_steps", "prev", "prev_rank"):
                conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
            if not in_transaction and conn.in_transaction:
                conn.commit()  # only temp tables were written: release the read snapshot


def _compute(conn: sqlite3.Connection, run_list: list[Any], *, days: int, top: int,
             now: dt.datetime) -> dict[str, Any]:
    dates = [r.date for r in run_list]
    run_of = {r.date: r.run_id for r in run_list}
    as_of = dates[-1]
    start = _start_of(dates, as_of, days)
    prev_start = _start_of(dates, start, days) if start != dates[0] else None
    window = [d for d in dates if start <= d <= as_of]
    lo = prev_start or start
    conn.execute("CREATE TEMP TABLE report_runs (run_id INTEGER PRIMARY KEY, d TEXT NOT NULL)")
    conn.executemany("INSERT INTO temp.report_runs VALUES (?, ?)",
                     [(run_of[d], d) for d in dates if lo <= d <= as_of])

    conn.execute(STEPS_SQL.format(name="cur_steps"), {"lo": start, "hi": as_of})
    conn.execute(AGG_SQL.format(name="cur", steps="cur_steps"))
    if prev_start is not None:
        conn.execute(STEPS_SQL.format(name="prev_steps"), {"lo": prev_start, "hi": start})
        conn.execute(AGG_SQL.format(name="prev", steps="prev_steps"))
        conn.execute("CREATE TEMP TABLE prev_rank AS SELECT id, ROW_NUMBER() OVER "
                     "(ORDER BY delta DESC, id) AS rank FROM temp.prev WHERE last_d = ?",
                     (start,))
    else:
        conn.execute("CREATE TEMP TABLE prev_rank (id INTEGER, rank INTEGER)")

    n_images, total_pulls = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(pull_count), 0) FROM image_snapshots WHERE run_id = ?",
        (run_of[as_of],)).fetchone()
    (total_delta,) = conn.execute("SELECT COALESCE(SUM(delta), 0) FROM temp.cur").fetchone()

    per_date = _per_date(conn)
    daily = _daily_totals(per_date, window)
    total_rates: dict[str, float] = {}
    for row in daily[1:]:
        for k in range(row["days_elapsed"]):
            total_rates[_shift(row["date"], -k)] = row["daily_pulls"]

    movers = _top_movers(conn, as_of, top)
    new_images = _listing(conn, "SELECT c.id, i.namespace, i.name, c.first_d, c.end_c "
                          "FROM temp.cur AS c LEFT JOIN images AS i ON i.id = c.id "
                          "WHERE c.first_d > ? AND c.last_d = ? ORDER BY c.first_d, c.id",
                          (start, as_of), "first_seen")
    removed = _listing(conn, "SELECT c.id, i.namespace, i.name, c.last_d, c.end_c "
                       "FROM temp.cur AS c LEFT JOIN images AS i ON i.id = c.id "
                       "WHERE c.last_d < ? ORDER BY c.last_d, c.id", (as_of,), "last_seen")
    anomalies = _anomalies(conn, per_date, window, as_of)
    return {
        "title": "SWR official images: pull-count trends",
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool_version": __version__,
        "as_of": as_of,
        "as_of_run_id": run_of[as_of],
        "window_days": days,
        "window_start": start,
        "previous_window_start": prev_start,
        "run_dates": window,
        "totals": {
            "images": n_images, "pull_count": total_pulls, "pull_delta": total_delta,
            "daily_avg_7d": avg_last_7(total_rates, as_of),
            "new_images": new_images[1], "removed_images": removed[1],
            "anomalies": anomalies[1],
        },
        "daily": daily,
        "top_movers": movers,
        "new_images": new_images[0],
        "removed_images": removed[0],
        "anomalies": anomalies[0],
        "method": {
            "growth_baseline": f"max(count at first observation in window, "
                               f"{MIN_GROWTH_BASELINE})",
            "rank_change": "previous-window rank minus rank (positive = climbed)",
            "decrease": "interval counted as 0 and listed as an anomaly",
            "stuck_value": INT32_MAX,
            "stale_share": STALE_SHARE,
        },
    }


def _per_date(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """One scan for the totals and the stale check: per (date, image's previous date) group,
    images, pulls, delta, images comparable with their previous count, and unchanged ones."""
    return conn.execute(
        f"SELECT d, pd, COUNT(*), COALESCE(SUM(c), 0), SUM({DELTA}), "
        f"SUM(pc IS NOT NULL AND c IS NOT NULL AND c <> {INT32_MAX}), "
        f"SUM(pc IS NOT NULL AND c <> {INT32_MAX} AND c = pc) "
        "FROM temp.cur_steps GROUP BY d, pd ORDER BY d, pd").fetchall()


def _daily_totals(per_date: list[tuple[Any, ...]], window: list[str]) -> list[dict[str, Any]]:
    by_date: dict[str, list[int]] = {}
    for d, _pd, n, total, delta, _cmp, _same in per_date:
        acc = by_date.setdefault(d, [0, 0, 0])
        acc[0] += n
        acc[1] += total
        acc[2] += delta
    out: list[dict[str, Any]] = []
    for i, d in enumerate(window):
        n, total, delta = by_date.get(d, [0, 0, 0])
        if i == 0:
            out.append({"date": d, "images": n, "pull_count": total, "pull_delta": None,
                        "days_elapsed": None, "daily_pulls": None})
            continue
        elapsed = _elapsed(window[i - 1], d)
        out.append({"date": d, "images": n, "pull_count": total, "pull_delta": delta,
                    "days_elapsed": elapsed, "daily_pulls": round(delta / elapsed, 2)})
    return out


def _top_movers(conn: sqlite3.Connection, as_of: str, top: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT c.id, i.namespace, i.name, c.end_c, c.delta, c.start_c, c.first_d, p.rank "
        "FROM temp.cur AS c LEFT JOIN images AS i ON i.id = c.id "
        "LEFT JOIN temp.prev_rank AS p ON p.id = c.id "
        "WHERE c.last_d = ? ORDER BY c.delta DESC, c.id LIMIT ?", (as_of, top)).fetchall()
    history: dict[int, list[tuple[str, int | None]]] = {r[0]: [] for r in rows}
    # A join rather than IN (?, ...): --top has no ceiling, SQLite's variable count has.
    for image_id, d, c in conn.execute(
            "SELECT s.id, s.d, s.c FROM temp.cur_steps AS s JOIN (SELECT id FROM temp.cur "
            "WHERE last_d = ? ORDER BY delta DESC, id LIMIT ?) AS t ON t.id = s.id "
            "ORDER BY s.id, s.d", (as_of, top)):
        history[image_id].append((d, c))
    movers = []
    for rank, (image_id, ns, name, count, delta, start_c, first_d, prev) in enumerate(rows, 1):
        points = history[image_id]
        cumulative, acc = [], 0
        for k, (d, c) in enumerate(points):
            if k:
                c0 = points[k - 1][1]
                if c is not None and c0 is not None and c > c0 and c != INT32_MAX:
                    acc += c - c0
            cumulative.append({"date": d, "pull_count": c, "cumulative_delta": acc})
        rates = daily_rates(points)
        movers.append({
            "rank": rank, "rank_change": None if prev is None else prev - rank,
            "id": image_id, "namespace": ns, "name": name, "pull_count": count,
            "pull_delta": delta, "pull_growth_pct": growth_pct(delta, start_c),
            "start_pull_count": start_c, "since": first_d,
            "daily_avg_7d": avg_last_7(rates, as_of),
            "daily": [rates[k] for k in sorted(rates)],
            "history": cumulative,
        })
    return movers


def _listing(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...],
             date_key: str) -> tuple[list[dict[str, Any]], int]:
    (count,) = conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()
    rows = conn.execute(f"{sql} LIMIT {MAX_LISTED}", params).fetchall()
    return [{"id": i, "namespace": ns, "name": n, date_key: d, "pull_count": c}
            for i, ns, n, d, c in rows], int(count)


def _anomalies(conn: sqlite3.Connection, per_date: list[tuple[Any, ...]], window: list[str],
               as_of: str) -> tuple[list[dict[str, Any]], int]:
    found: list[dict[str, Any]] = []
    total = 0
    (n_dec,) = conn.execute("SELECT COUNT(*) FROM temp.cur_steps WHERE c < pc").fetchone()
    total += n_dec
    for image_id, ns, name, pd, d, pc, c in conn.execute(
            "SELECT s.id, i.namespace, i.name, s.pd, s.d, s.pc, s.c FROM temp.cur_steps AS s "
            "LEFT JOIN images AS i ON i.id = s.id WHERE s.c < s.pc ORDER BY s.d, s.id "
            f"LIMIT {MAX_LISTED}"):
        found.append({"id": image_id, "namespace": ns, "name": name, "kind": "decrease",
                      "date": d, "detail": f"pull_count fell from {pc:,} to {c:,} between "
                                          f"{pd} and {d}; the interval counts as 0"})
    stuck = conn.execute(
        "SELECT s.id, i.namespace, i.name, MIN(s.d) FROM temp.cur_steps AS s "
        "JOIN temp.cur AS c ON c.id = s.id LEFT JOIN images AS i ON i.id = s.id "
        "WHERE c.last_d = ? AND c.end_c = ? AND s.c = ? GROUP BY s.id ORDER BY s.id",
        (as_of, INT32_MAX, INT32_MAX)).fetchall()
    total += len(stuck)
    for image_id, ns, name, since in stuck[:MAX_LISTED]:
        found.append({"id": image_id, "namespace": ns, "name": name, "kind": "stuck_counter",
                      "date": since, "detail": f"pull_count stuck at {INT32_MAX:,} (the int32 "
                                               f"maximum) since {since}; growth unknown"})
    previous = dict(zip(window[1:], window, strict=False))
    for d, pd, _n, _total, _delta, n, same in per_date:
        # Only images listed on both consecutive run dates are compared.
        if previous.get(d) == pd and n and same / n > STALE_SHARE:
            total += 1
            found.append({"id": None, "namespace": None, "name": None, "kind": "stale_source",
                          "date": d, "detail": f"{same} of {n} images ({same / n:.0%}) kept the "
                                               f"same pull_count as on {pd}: the source may "
                                               "not have refreshed"})
    order = {"stuck_counter": 0, "decrease": 1, "stale_source": 2}
    found.sort(key=lambda a: (a["date"], order[a["kind"]], a["id"] or 0))
    return found, total


# ---------------------------------------------------------------------------------- writing


def format_of(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise ConfigError(f"unknown report format {fmt!r}: use html, md or json")
        return fmt
    try:
        return FORMATS[Path(out).suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"cannot tell the report format from {Path(out).name!r}: name it .html, .md or "
            ".json, or pass --format html|md|json"
        ) from None


def write_report(db: Path, out: Path, *, days: int = 30, top: int = 10, fmt: str | None = None,
                 now: dt.datetime | None = None, include_partial: bool = False) -> Path:
    """Build the report and write it atomically as HTML, Markdown or JSON; return ``out``."""
    kind = format_of(out, fmt)
    report = build_report(db, days=days, top=top, now=now, include_partial=include_partial)
    if kind == "json":
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    else:
        from etl.report_render import html, markdown  # matplotlib only when rendering

        text = html(report) if kind == "html" else markdown(report)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
    except OSError as exc:
        raise ConfigError(f"cannot write report to {out}: {exc}") from exc
    return out
