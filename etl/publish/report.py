"""Pull-count trend reports (README "swr-etl report"): JSON, Markdown, or one self-contained HTML.

``build_report`` is the computation (a plain dict, the JSON document); ``write_report`` renders it.
Which runs count, what a step, a window and a top mover are: ``etl.store.trends``, the same SQL the
analysts' views are made of, run here on the same tables (so ``report --days 7`` and the
``top_movers_7d`` view rank the same images the same way). On top of those rules the report adds:

* Rank change = the image's rank in the previous window of the same length (ending at this
  window's first run date) minus its rank now (positive = climbed; null when it was not ranked
  then, or there is no previous window with two run dates).
* A gap between runs is never filled with zero days: a step's gain is spread evenly over the days
  it spans. The 7-day average is the mean daily rate over the covered days of the last 7.
* Totals: pulls gained = the sum of every known step in the window (a stuck or decreasing step
  adds nothing anywhere). New images: observed on ``as_of`` and first seen in the window after its
  first run date; removed: observed in the window, not listed on ``as_of``.
* A stale day: more than 80 % of the images observed on two consecutive run dates kept the same
  pull count (stuck counters left out).
* Trends need two run dates in the window; with fewer the report says so, and when the next
  nightly run is due, instead of showing zero growth.

Heavy lifting is SQL (window functions over temp tables) so a million-image database does not
have to fit in Python objects; only the top movers' histories come back row by row.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from etl import __version__
from etl.atomic import write_text_atomic
from etl.errors import ConfigError
from etl.store import trends
from etl.store.read import SNAPSHOT_READER, open_readonly
from etl.store.trends import INT32_MAX, MIN_GROWTH_BASELINE

STALE_SHARE = 0.8
MAX_LISTED = 500  # new/removed/anomaly/unranked entries kept in the document (totals count all)
MAX_DAYS = 36_500  # a century of nightly runs; beyond it date arithmetic overflows
REPORT_FORMATS = ("html", "md", "json")
FORMAT_OF_SUFFIX = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md",
                    ".json": "json"}
TEMP_TABLES = ("report_runs", "cur_steps", "cur_images", "prev_steps", "prev_rank", "top_ids")

# The counted runs up to the report's date, and the window steps over them (etl.store.trends).
_RUNS = [("counted", "SELECT snapshot_date, run_id FROM temp.report_runs")]
_PREV_RUNS = [("counted", "SELECT snapshot_date, run_id FROM temp.report_runs "
                          "WHERE snapshot_date <= :prev_end")]


def _day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _shift(text: str, days: int) -> str:
    return (_day(text) + dt.timedelta(days=days)).isoformat()


def daily_rates(steps: list[tuple[str, str | None, int | None]]) -> dict[str, float]:
    """Per calendar day, the daily pull rate: each known step ``(date, previous date, gain)``
    spread evenly over the days it spans (a gap is not a run of zero days)."""
    rates: dict[str, float] = {}
    for date, prev, gain in steps:
        if prev is None or gain is None:
            continue
        days = (_day(date) - _day(prev)).days
        for k in range(days):
            rates[_shift(date, -k)] = gain / days
    return rates


def avg_last_7(rates: dict[str, float], as_of: str) -> float | None:
    covered = [rates[day] for k in range(7) if (day := _shift(as_of, -k)) in rates]
    return round(sum(covered) / len(covered), 2) if covered else None


def _connection(
        conn_or_db: sqlite3.Connection | Path | str) -> AbstractContextManager[sqlite3.Connection]:
    """A caller's connection, left open; or the database, opened read-only for the report."""
    if isinstance(conn_or_db, sqlite3.Connection):
        return nullcontext(conn_or_db)
    return open_readonly(conn_or_db, SNAPSHOT_READER)


def build_report(conn_or_db: sqlite3.Connection | Path | str, *, days: int = 30, top: int = 10,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    """Compute the trend report (the JSON document) from the runs up to ``now``'s date.

    Raises:
        ConfigError: bad ``days``/``top``, or no successful run to report on.
    """
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"--days must be 1..{MAX_DAYS}, got {days}")
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    with _connection(conn_or_db) as conn:
        in_transaction = conn.in_transaction
        try:
            return _compute(conn, days=days, top=top, now=now)
        finally:
            for name in TEMP_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
            if not in_transaction and conn.in_transaction:
                conn.commit()  # only temp tables were written: release the read snapshot


def _compute(conn: sqlite3.Connection, *, days: int, top: int,
             now: dt.datetime) -> dict[str, Any]:
    conn.execute("CREATE TEMP TABLE report_runs AS " + trends.counted_runs_sql(until=True),
                 {"until": now.date().isoformat()})
    run_of = dict(conn.execute("SELECT snapshot_date, run_id FROM temp.report_runs"))
    if not run_of:
        raise ConfigError("no successful run to report on: run 'swr-etl sync' first")
    dates = sorted(run_of)
    as_of = dates[-1]
    window = [d for d in dates if d >= _shift(as_of, -days)]
    start = window[0]
    conn.execute("CREATE TEMP TABLE cur_steps AS " + trends.with_ctes(
        trends.steps_ctes(_RUNS, days), "SELECT * FROM steps"))
    conn.execute("CREATE TEMP TABLE cur_images AS " + trends.per_image_sql("temp.cur_steps"))
    # The previous window ends where this one starts; it needs two run dates to rank anything.
    prev_window = [d for d in dates if _shift(start, -days) <= d <= start]
    prev_start = prev_window[0] if len(prev_window) > 1 else None
    if prev_start is not None:
        conn.execute("CREATE TEMP TABLE prev_steps AS " + trends.with_ctes(
            trends.steps_ctes(_PREV_RUNS, days), "SELECT * FROM steps"), {"prev_end": start})
        conn.execute("CREATE TEMP TABLE prev_rank AS " + trends.with_ctes(
            trends.movers_ctes("temp.prev_steps"),
            f"SELECT m.image_id, ROW_NUMBER() OVER (ORDER BY {trends.RANK_ORDER}) AS rank "
            "FROM movers AS m WHERE m.anomaly IS NULL"))
    else:
        conn.execute("CREATE TEMP TABLE prev_rank (image_id INTEGER, rank INTEGER)")

    trending = len(window) > 1
    n_images, total_pulls = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(pull_count), 0) FROM image_snapshots WHERE run_id = ?",
        (run_of[as_of],)).fetchone()
    (total_delta,) = conn.execute(
        "SELECT COALESCE(SUM(pull_delta), 0) FROM temp.cur_steps").fetchone()
    per_date = _per_date(conn)
    daily = _daily_totals(per_date, window)
    total_rates = daily_rates([(row["date"], window[i], row["pull_delta"])
                               for i, row in enumerate(daily[1:])])
    movers = _ranked_movers(conn, as_of, top) if trending else []
    unranked = _listing(conn, _movers(
        "SELECT m.image_id, i.namespace, i.name, m.anomaly, "
        "(SELECT MIN(s.snapshot_date) FROM temp.cur_steps AS s WHERE s.image_id = m.image_id "
        " AND (s.anomaly = m.anomaly OR (m.anomaly = 'stuck_counter' AND s.pull_count = ?))), "
        "m.pull_count FROM movers AS m LEFT JOIN images AS i ON i.id = m.image_id "
        f"WHERE m.anomaly IS NOT NULL ORDER BY {trends.UNRANKED_ORDER}"), (INT32_MAX,),
        ("kind", "date", "pull_count"))
    new_images = _listing(conn, "SELECT m.image_id, i.namespace, i.name, m.from_date, "
                          "m.pull_count FROM temp.cur_images AS m "
                          "LEFT JOIN images AS i ON i.id = m.image_id "
                          "WHERE m.from_date > ? AND m.to_date = ? "
                          "ORDER BY m.from_date, m.image_id",
                          (start, as_of), ("first_seen", "pull_count"))
    # Not observed on as_of may still be listed there, with an unusable (NULL) count.
    removed = _listing(conn, "SELECT m.image_id, i.namespace, i.name, m.to_date, m.pull_count "
                       "FROM temp.cur_images AS m LEFT JOIN images AS i ON i.id = m.image_id "
                       "WHERE m.to_date < ? AND NOT EXISTS (SELECT 1 FROM image_snapshots AS s "
                       "  WHERE s.run_id = ? AND s.image_id = m.image_id) "
                       "ORDER BY m.to_date, m.image_id", (as_of, run_of[as_of]),
                       ("last_seen", "pull_count"))
    anomalies = _anomalies(conn, per_date, window)
    notice, due = (None, None) if trending else _single_date_notice(window, days, now)
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
        "notice": notice,
        "next_run_due": due,
        "totals": {
            "images": n_images, "pull_count": total_pulls,
            "pull_delta": total_delta if trending else None,
            "daily_avg_7d": avg_last_7(total_rates, as_of),
            "new_images": new_images[1], "removed_images": removed[1],
            "anomalies": anomalies[1], "not_ranked": unranked[1],
        },
        "daily": daily,
        "top_movers": movers,
        "not_ranked": unranked[0],
        "new_images": new_images[0],
        "removed_images": removed[0],
        "anomalies": anomalies[0],
        "method": {
            "runs": "the last successful run of each date (partial and failed runs never count)",
            "window": f"run dates from as_of - {days} days to as_of, both included",
            "pull_delta": "net gain from the image's first observation in the window",
            "not_ranked": "a decrease or a counter stuck at the int32 maximum in the window: "
                          "growth unknown",
            "growth_baseline": f"max(count at first observation in window, "
                               f"{MIN_GROWTH_BASELINE})",
            "rank_change": "previous-window rank minus rank (positive = climbed)",
            "ties": "lower id first",
            "stuck_value": INT32_MAX,
            "stale_share": STALE_SHARE,
        },
    }


def _single_date_notice(window: list[str], days: int, now: dt.datetime) -> tuple[str, str]:
    """What to say instead of zero growth when the window holds one run date."""
    due = _shift(window[-1], 1)  # runs are nightly: the next one is the day after as_of
    head = (f"Trends need at least two run dates; the last {days} days have one "
            f"({window[-1]}), so no growth is shown.")
    if now.date().isoformat() <= due:
        return f"{head} The next nightly sync is due on {due}.", due
    return (f"{head} The next nightly sync was due on {due} and has not succeeded since: check "
            "the schedule and 'swr-etl status'."), due


def _per_date(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    """One scan for the totals and the stale check: per (date, image's previous date) group,
    images, pulls, known gain, images comparable with their previous count, and unchanged ones."""
    return conn.execute(
        "SELECT snapshot_date, prev_date, COUNT(*), COALESCE(SUM(pull_count), 0), "
        "COALESCE(SUM(pull_delta), 0), "
        "SUM(prev_date IS NOT NULL AND anomaly IS NOT 'stuck_counter'), SUM(pull_delta = 0) "
        "FROM temp.cur_steps GROUP BY snapshot_date, prev_date "
        "ORDER BY snapshot_date, prev_date").fetchall()


def _daily_totals(per_date: list[tuple[Any, ...]], window: list[str]) -> list[dict[str, Any]]:
    by_date: dict[str, list[int]] = {}
    for d, _prev_date, n, total, delta, _comparable, _same in per_date:
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
        elapsed = (_day(d) - _day(window[i - 1])).days
        out.append({"date": d, "images": n, "pull_count": total, "pull_delta": delta,
                    "days_elapsed": elapsed, "daily_pulls": round(delta / elapsed, 2)})
    return out


def _movers(select: str) -> str:
    """``select`` over ``movers`` (alias ``m``): this window's movers, by etl.store.trends'
    rules."""
    return trends.with_ctes(trends.movers_ctes("temp.cur_steps", "SELECT * FROM temp.cur_images"),
                            select)


def _ranked_movers(conn: sqlite3.Connection, as_of: str, top: int) -> list[dict[str, Any]]:
    """The first ``top`` movers, each with its history and daily rates (the JSON ``top_movers``)."""
    # The first ``top`` in the view's rank order: rank = position (a bounded sort, where the
    # view's ROW_NUMBER sorts every mover; a million images cost seconds).
    rows = conn.execute(_movers(
        f"SELECT m.image_id, i.namespace, i.name, m.pull_count, m.pull_delta, "
        f"{trends.GROWTH_SQL}, m.pull_count_from, m.from_date, {trends.PER_DAY_SQL}, "
        "m.days_elapsed, p.rank FROM movers AS m LEFT JOIN images AS i ON i.id = m.image_id "
        "LEFT JOIN temp.prev_rank AS p ON p.image_id = m.image_id "
        f"WHERE m.anomaly IS NULL ORDER BY {trends.RANK_ORDER} LIMIT ?"), (top,)).fetchall()
    history: dict[int, list[tuple[str, str | None, int, int | None]]] = {r[0]: [] for r in rows}
    # One scan of the steps against the --top ids (no ceiling: SQLite's variable count has one).
    conn.execute("CREATE TEMP TABLE top_ids (image_id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO temp.top_ids VALUES (?)", [(i,) for i in history])
    for image_id, d, prev_date, c, gain in conn.execute(
            "SELECT s.image_id, s.snapshot_date, s.prev_date, s.pull_count, s.pull_delta "
            "FROM temp.cur_steps AS s JOIN temp.top_ids AS t ON t.image_id = s.image_id "
            "ORDER BY s.image_id, s.snapshot_date"):
        history[image_id].append((d, prev_date, c, gain))
    movers = []
    for rank, (image_id, ns, name, count, delta, growth, start_c, first_d, per_day, elapsed,
               prev) in enumerate(rows, 1):
        steps = history[image_id]
        cumulative, acc = [], 0
        for d, _prev_date, c, gain in steps:
            acc += gain or 0  # a ranked image has no unknown step
            cumulative.append({"date": d, "pull_count": c, "cumulative_delta": acc})
        rates = daily_rates([(d, prev_date, gain) for d, prev_date, _c, gain in steps])
        movers.append({
            "rank": rank, "rank_change": None if prev is None else prev - rank,
            "id": image_id, "namespace": ns, "name": name, "pull_count": count,
            "pull_delta": delta, "pull_growth_pct": growth,
            "start_pull_count": start_c, "since": first_d, "days_elapsed": elapsed,
            "per_day": per_day, "daily_avg_7d": avg_last_7(rates, as_of),
            "daily": [rates[k] for k in sorted(rates)],
            "history": cumulative,
        })
    return movers


def _listing(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...],
             keys: tuple[str, ...]) -> tuple[list[dict[str, Any]], int]:
    """Rows ``id, namespace, name, *keys`` of ``sql`` (at most MAX_LISTED), and how many."""
    (count,) = conn.execute(f"SELECT COUNT(*) FROM ({sql})", params).fetchone()
    rows = conn.execute(f"{sql} LIMIT {MAX_LISTED}", params).fetchall()
    return [dict(zip(("id", "namespace", "name", *keys), row, strict=True))
            for row in rows], int(count)


def _anomalies(conn: sqlite3.Connection, per_date: list[tuple[Any, ...]],
               window: list[str]) -> tuple[list[dict[str, Any]], int]:
    found: list[dict[str, Any]] = []
    total = 0
    (n_dec,) = conn.execute(
        "SELECT COUNT(*) FROM temp.cur_steps WHERE anomaly = 'decrease'").fetchone()
    total += n_dec
    for image_id, ns, name, prev_date, d, prev_count, c in conn.execute(
            "SELECT s.image_id, i.namespace, i.name, s.prev_date, s.snapshot_date, "
            "s.prev_count, s.pull_count FROM temp.cur_steps AS s "
            "LEFT JOIN images AS i ON i.id = s.image_id WHERE s.anomaly = 'decrease' "
            f"ORDER BY s.snapshot_date, s.image_id LIMIT {MAX_LISTED}"):
        found.append({"id": image_id, "namespace": ns, "name": name, "kind": "decrease",
                      "date": d, "detail": f"pull_count fell from {prev_count:,} to {c:,} "
                                          f"between {prev_date} and {d}; growth unknown, not "
                                          "ranked"})
    stuck = conn.execute(
        "SELECT s.image_id, i.namespace, i.name, MIN(s.snapshot_date), MAX(s.snapshot_date), "
        "MAX(s.snapshot_date) = MAX(s.as_of) FROM temp.cur_steps AS s "
        "LEFT JOIN images AS i ON i.id = s.image_id WHERE s.pull_count = ? "
        "GROUP BY s.image_id ORDER BY s.image_id", (INT32_MAX,)).fetchall()
    total += len(stuck)
    for image_id, ns, name, since, until, still in stuck[:MAX_LISTED]:
        span = f"since {since}" if still else f"from {since} to {until}"
        found.append({"id": image_id, "namespace": ns, "name": name, "kind": "stuck_counter",
                      "date": since, "detail": f"pull_count stuck at {INT32_MAX:,} (the int32 "
                                               f"maximum) {span}; growth unknown, not ranked"})
    previous = dict(zip(window[1:], window, strict=False))
    for d, prev_date, _n, _total, _delta, n, same in per_date:
        # Only images observed on both consecutive run dates are compared.
        if previous.get(d) == prev_date and n and same / n > STALE_SHARE:
            total += 1
            found.append({"id": None, "namespace": None, "name": None, "kind": "stale_source",
                          "date": d, "detail": f"{same} of {n} images ({same / n:.0%}) kept the "
                                               f"same pull_count as on {prev_date}: the "
                                               "source may not have refreshed"})
    order = {"stuck_counter": 0, "decrease": 1, "stale_source": 2}
    found.sort(key=lambda a: (a["date"], order[a["kind"]], a["id"] or 0))
    return found, total


# ---------------------------------------------------------------------------------- writing


def format_of(out: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in REPORT_FORMATS:
            raise ConfigError(f"unknown report format {fmt!r}: use html, md or json")
        return fmt
    try:
        return FORMAT_OF_SUFFIX[Path(out).suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"cannot tell the report format from {Path(out).name!r}: name it .html, .md or "
            ".json, or pass --format html|md|json"
        ) from None


def write_report(db: Path, out: Path, *, days: int = 30, top: int = 10, fmt: str | None = None,
                 now: dt.datetime | None = None) -> Path:
    """Build the report and write it atomically as HTML, Markdown or JSON; return ``out``."""
    kind = format_of(out, fmt)
    report = build_report(db, days=days, top=top, now=now)
    if kind == "json":
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    else:
        from etl.publish.render import html, markdown  # matplotlib only when rendering

        text = html(report) if kind == "html" else markdown(report)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
    except OSError as exc:
        raise ConfigError(f"cannot write report to {out}: {exc}") from exc
    return out
