"""The trend report's sections, each computed from the window's TEMP tables that
``etl.publish.report`` builds (``cur_steps``, ``cur_images``, ``prev_rank``; named bare: both
engines look among the session's temporary tables first): daily totals, the ranked top movers
with their histories, the listings of unranked, new and removed images, the anomalies and the
region breakdown; and the parts that need no query: the rules the document states (``method``)
and its notice when the window holds one run date. Gains between runs are spread over the
calendar days they span (``daily_rates``): a gap between runs is never a run of zero days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from etl.store import trends
from etl.store.dialect import MAX_BOUND_VALUES, Dialect
from etl.store.read import Queryable, dialect_of
from etl.store.trends import INT32_MAX, MIN_GROWTH_BASELINE

STALE_SHARE = 0.8
MAX_LISTED = 500  # new/removed/anomaly/unranked entries kept in the document (totals count all)

Listing = tuple[list[dict[str, Any]], int]
"""Rows of one listing (at most MAX_LISTED) and how many there are."""


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def shift(text: str, days: int) -> str:
    return (day(text) + dt.timedelta(days=days)).isoformat()


def daily_rates(steps: list[tuple[str, str | None, int | None]]) -> dict[str, float]:
    """Per calendar day, the daily pull rate: each known step ``(date, previous date, gain)``
    spread evenly over the days it spans (a gap is not a run of zero days)."""
    rates: dict[str, float] = {}
    for date, prev, gain in steps:
        if prev is None or gain is None:
            continue
        days = (day(date) - day(prev)).days
        for k in range(days):
            rates[shift(date, -k)] = gain / days
    return rates


def avg_last_7(rates: dict[str, float], as_of: str) -> float | None:
    covered = [rates[day] for k in range(7) if (day := shift(as_of, -k)) in rates]
    return round(sum(covered) / len(covered), 2) if covered else None


class DateGroup(NamedTuple):
    """The window's steps of one (date, images' previous date) group."""

    date: str
    prev_date: str | None
    images: int
    pulls: int
    gain: int  # the known gain (steps whose growth is known)
    comparable: int  # images comparable with their previous count
    unchanged: int  # images whose count did not change
    decreases: int


def per_date(conn: Queryable) -> list[DateGroup]:
    """One scan of the window's steps for the totals, the stale check and the count of
    decreases, per (date, image's previous date) group."""
    return [DateGroup(*row) for row in conn.execute(
        "SELECT snapshot_date, prev_date, COUNT(*), COALESCE(SUM(pull_count), 0), "
        "COALESCE(SUM(pull_delta), 0), "
        # Counted with CASE: PostgreSQL cannot SUM a comparison, as SQLite sums its 0 or 1.
        "COUNT(CASE WHEN prev_date IS NOT NULL AND (anomaly IS NULL OR anomaly <> 'stuck_counter')"
        " THEN 1 END), COUNT(CASE WHEN pull_delta = 0 THEN 1 END), "
        "COUNT(CASE WHEN anomaly = 'decrease' THEN 1 END) "
        "FROM cur_steps GROUP BY snapshot_date, prev_date "
        "ORDER BY snapshot_date, prev_date")]


def daily_totals(per_date: list[DateGroup], window: list[str]) -> list[dict[str, Any]]:
    by_date: dict[str, list[int]] = {}
    for group in per_date:
        acc = by_date.setdefault(group.date, [0, 0, 0])
        acc[0] += group.images
        acc[1] += group.pulls
        acc[2] += group.gain
    out: list[dict[str, Any]] = []
    for i, d in enumerate(window):
        n, total, delta = by_date.get(d, [0, 0, 0])
        if i == 0:
            out.append({"date": d, "images": n, "pull_count": total, "pull_delta": None,
                        "days_elapsed": None, "daily_pulls": None})
            continue
        elapsed = (day(d) - day(window[i - 1])).days
        out.append({"date": d, "images": n, "pull_count": total, "pull_delta": delta,
                    "days_elapsed": elapsed, "daily_pulls": round(delta / elapsed, 2)})
    return out


def _movers(select: str, dialect: Dialect) -> str:
    """``select`` over ``movers`` (alias ``m``): this window's movers, by etl.store.trends'
    rules."""
    return trends.with_ctes(trends.movers_ctes("cur_steps", "SELECT * FROM cur_images",
                                               dialect=dialect), select)


def ranked_movers(conn: Queryable, as_of: str, top: int) -> list[dict[str, Any]]:
    """The first ``top`` movers, each with its history and daily rates (the JSON ``top_movers``)."""
    dialect = dialect_of(conn)
    # The first ``top`` in the view's rank order: rank = position (a bounded sort, where the
    # view's ROW_NUMBER sorts every mover; a million images cost seconds).
    rows = conn.execute(_movers(
        f"SELECT m.image_id, i.namespace, i.name, m.pull_count, m.pull_delta, "
        f"{trends.growth_sql('m', dialect)}, m.pull_count_from, m.from_date, "
        f"{trends.per_day_sql(dialect)}, "
        "m.days_elapsed, p.rank, m.source FROM movers AS m "
        "LEFT JOIN images AS i ON i.source = m.source AND i.id = m.image_id "
        "LEFT JOIN prev_rank AS p ON p.source = m.source AND p.image_id = m.image_id "
        f"WHERE m.anomaly IS NULL ORDER BY {trends.RANK_ORDER}, m.source LIMIT ?", dialect),
        (top,)).fetchall()
    # An image is one (source, id): each region counts its own pulls.
    history: dict[tuple[str, int], list[tuple[str, str | None, int, int | None]]] = {
        (r[11], r[0]): [] for r in rows}
    # One scan of the steps against the --top ids (no ceiling: SQLite's variable count has one).
    conn.execute(f"CREATE TEMP TABLE top_ids (source TEXT, image_id {dialect.types['INTEGER']}, "
                 "PRIMARY KEY (source, image_id))")
    conn.executemany("INSERT INTO top_ids VALUES (?, ?)", list(history))
    for source, image_id, d, prev_date, c, gain in conn.execute(
            "SELECT s.source, s.image_id, s.snapshot_date, s.prev_date, s.pull_count, "
            "s.pull_delta FROM cur_steps AS s JOIN top_ids AS t "
            "ON t.source = s.source AND t.image_id = s.image_id "
            "ORDER BY s.source, s.image_id, s.snapshot_date"):
        history[(source, image_id)].append((d, prev_date, c, gain))
    movers = []
    for rank, (image_id, ns, name, count, delta, growth, start_c, first_d, per_day, elapsed,
               prev, source) in enumerate(rows, 1):
        steps = history[(source, image_id)]
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
            "history": cumulative, "source": source,
        })
    return movers


def _listing(conn: Queryable, sql: str, params: tuple[Any, ...],
             keys: tuple[str, ...]) -> Listing:
    """Rows ``id, namespace, name, *keys, source`` of ``sql`` (at most MAX_LISTED), and how
    many."""
    (count,) = conn.execute(f"SELECT COUNT(*) FROM ({sql}) AS listed", params).fetchone()
    rows = conn.execute(f"{sql} LIMIT {MAX_LISTED}", params).fetchall()
    return [dict(zip(("id", "namespace", "name", *keys, "source"), row, strict=True))
            for row in rows], int(count)


def anomalies(conn: Queryable, per_date: list[DateGroup], window: list[str]) -> Listing:
    found: list[dict[str, Any]] = []
    total = sum(group.decreases for group in per_date)
    for image_id, ns, name, prev_date, d, prev_count, c, source in conn.execute(
            "SELECT s.image_id, i.namespace, i.name, s.prev_date, s.snapshot_date, "
            "s.prev_count, s.pull_count, s.source FROM cur_steps AS s "
            "LEFT JOIN images AS i ON i.source = s.source AND i.id = s.image_id "
            "WHERE s.anomaly = 'decrease' "
            f"ORDER BY s.snapshot_date, s.image_id, s.source LIMIT {MAX_LISTED}"):
        found.append({"id": image_id, "namespace": ns, "name": name, "kind": "decrease",
                      "source": source,
                      "date": d, "detail": f"pull_count fell from {prev_count:,} to {c:,} "
                                          f"between {prev_date} and {d}; growth unknown, not "
                                          "ranked"})
    stuck = conn.execute(
        "SELECT s.image_id, i.namespace, i.name, MIN(s.snapshot_date), MAX(s.snapshot_date), "
        "MAX(s.snapshot_date) = MAX(s.as_of), s.source FROM cur_steps AS s "
        "LEFT JOIN images AS i ON i.source = s.source AND i.id = s.image_id "
        "WHERE s.pull_count = ? GROUP BY s.source, s.image_id, i.namespace, i.name "
        "ORDER BY s.image_id, s.source",
        (INT32_MAX,)).fetchall()
    total += len(stuck)
    for image_id, ns, name, since, until, still, source in stuck[:MAX_LISTED]:
        span = f"since {since}" if still else f"from {since} to {until}"
        found.append({"id": image_id, "namespace": ns, "name": name, "kind": "stuck_counter",
                      "source": source,
                      "date": since, "detail": f"pull_count stuck at {INT32_MAX:,} (the int32 "
                                               f"maximum) {span}; growth unknown, not ranked"})
    previous = dict(zip(window[1:], window, strict=False))
    for group in per_date:
        d, prev_date, n, same = group.date, group.prev_date, group.comparable, group.unchanged
        # Only images observed on both consecutive run dates are compared.
        if previous.get(d) == prev_date and n and same / n > STALE_SHARE:
            total += 1
            found.append({"id": None, "namespace": None, "name": None, "kind": "stale_source",
                          "source": None,
                          "date": d, "detail": f"{same} of {n} images ({same / n:.0%}) kept the "
                                               f"same pull_count as on {prev_date}: the "
                                               "source may not have refreshed"})
    order = {"stuck_counter": 0, "decrease": 1, "stale_source": 2}
    found.sort(key=lambda a: (a["date"], order[a["kind"]], a["id"] or 0))
    return found, total


_IMAGE_OF = "LEFT JOIN images AS i ON i.source = m.source AND i.id = m.image_id "


def image_listings(conn: Queryable, *, start: str,
                   as_of: str) -> tuple[Listing, Listing, Listing]:
    """The unranked movers, the new images and the removed images of the window."""
    unranked = _listing(conn, _movers(
        "SELECT m.image_id, i.namespace, i.name, m.anomaly, "
        "(SELECT MIN(s.snapshot_date) FROM cur_steps AS s WHERE s.source = m.source "
        " AND s.image_id = m.image_id "
        " AND (s.anomaly = m.anomaly OR (m.anomaly = 'stuck_counter' AND s.pull_count = ?))), "
        f"m.pull_count, m.source FROM movers AS m {_IMAGE_OF}"
        f"WHERE m.anomaly IS NOT NULL ORDER BY {trends.UNRANKED_ORDER}, m.source",
        dialect_of(conn)), (INT32_MAX,),
        ("kind", "date", "pull_count"))
    new_images = _listing(conn, "SELECT m.image_id, i.namespace, i.name, m.from_date, "
                          f"m.pull_count, m.source FROM cur_images AS m {_IMAGE_OF}"
                          "WHERE m.from_date > ? AND m.to_date = ? "
                          "ORDER BY m.from_date, m.image_id, m.source",
                          (start, as_of), ("first_seen", "pull_count"))
    # Not observed on as_of may still be listed there, with an unusable (NULL) count: gone
    # means absent from its source's counted run of as_of.
    removed = _listing(conn, "SELECT m.image_id, i.namespace, i.name, m.to_date, m.pull_count, "
                       f"m.source FROM cur_images AS m {_IMAGE_OF}"
                       "WHERE m.to_date < ? AND NOT EXISTS (SELECT 1 FROM report_runs AS c "
                       "  JOIN image_snapshots AS s ON s.run_id = c.run_id "
                       "  AND s.source = c.source WHERE c.snapshot_date = ? "
                       "  AND s.source = m.source AND s.image_id = m.image_id) "
                       "ORDER BY m.to_date, m.image_id, m.source", (as_of, as_of),
                       ("last_seen", "pull_count"))
    return unranked, new_images, removed


def region_breakdown(conn: Queryable, top: int) -> list[dict[str, Any]]:
    """The top ``top`` images by pulls gained summed over their sources (the rule of the
    ``top_movers_total_*`` views, ``etl.store.trends``), each with every source's share: which
    regions drive an image's growth."""
    dialect = dialect_of(conn)
    ctes = trends.movers_ctes("cur_steps", "SELECT * FROM cur_images", dialect=dialect) \
        + trends.totals_ctes()
    totals = conn.execute(trends.with_ctes(ctes, trends.totals_select(dialect) + " LIMIT ?"),
                          (top,)).fetchall()
    ranked = [t for t in totals if t[7] is not None]
    if not ranked:
        return []
    # The shares of the ranked images' names only (matched on both parts below). All of them
    # is a row per image and source, fetched one by one: beside the HTML report's charts, whose
    # thread holds the GIL, that took ~0.2 s of a year of 10,000 images (measured). More names
    # than one statement may bind (a long --top): every share is read, as before.
    names = sorted({t[1] for t in ranked if t[1] is not None})
    fits = len(names) <= MAX_BOUND_VALUES
    bound = names if fits else []
    where = "anomaly IS NULL"
    if fits:
        wanted = [f"name IN ({', '.join('?' * len(names))})"] if names else []
        wanted += ["name IS NULL"] if any(t[1] is None for t in ranked) else []
        where += f" AND ({' OR '.join(wanted)})"
    shares = conn.execute(trends.with_ctes(
        ctes, "SELECT namespace, name, source, pull_count, pull_delta FROM shares"
              f" WHERE {where} ORDER BY pull_delta DESC, source"), bound).fetchall()
    by_image: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for ns, name, source, count, delta in shares:
        by_image.setdefault((ns, name), []).append(
            {"source": source, "pull_count": count, "pull_delta": delta})
    out = []
    for ns, name, n_sources, _from, count, delta, growth, rank, _anomaly, lead, _ld in ranked:
        parts = by_image.get((ns, name), [])
        for part in parts:
            part["share_pct"] = round(part["pull_delta"] * 100.0 / delta, 1) if delta else None
        out.append({"rank": rank, "namespace": ns, "name": name, "sources": n_sources,
                    "pull_count": count, "pull_delta": delta, "pull_growth_pct": growth,
                    "top_source": lead, "by_source": parts})
    return out


def method(days: int) -> dict[str, Any]:
    """The rules the document was computed by, stated in it."""
    return {
        "runs": "the last successful run of each date (partial and failed runs never count)",
        "window": f"run dates from as_of - {days} days to as_of, both included",
        "pull_delta": "net gain from the image's first observation in the window",
        "not_ranked": "a decrease or a counter stuck at the int32 maximum in the window: "
                      "growth unknown",
        "growth_baseline": f"max(count at first observation in window, {MIN_GROWTH_BASELINE})",
        "rank_change": "previous-window rank minus rank (positive = climbed)",
        "ties": "lower id first",
        "stuck_value": INT32_MAX,
        "stale_share": STALE_SHARE,
    }


def single_date_notice(window: list[str], days: int, now: dt.datetime) -> tuple[str, str]:
    """What to say instead of zero growth when the window holds one run date."""
    due = shift(window[-1], 1)  # runs are nightly: the next one is the day after as_of
    head = (f"Trends need at least two run dates; the last {days} days have one "
            f"({window[-1]}), so no growth is shown.")
    if now.date().isoformat() <= due:
        return f"{head} The next nightly sync is due on {due}.", due
    return (f"{head} The next nightly sync was due on {due} and has not succeeded since: check "
            "the schedule and 'swr-etl status'."), due
