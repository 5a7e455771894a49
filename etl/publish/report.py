"""Pull-count trend reports (docs/analysts/report.md): JSON, Markdown, or one self-contained HTML.

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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl import __version__
from etl.atomic import write_text_atomic
from etl.errors import ConfigError
from etl.preload import cores, once, preload
from etl.publish import MAX_DAYS, sections
from etl.publish.sections import avg_last_7, daily_rates, shift
from etl.store import trends
from etl.store.dialect import Dialect
from etl.store.read import Queryable, dialect_of
from etl.store.snapshot_read import Opener, open_snapshots, second_reader

REPORT_FORMATS = ("html", "md", "json")
FORMAT_OF_SUFFIX = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md",
                    ".json": "json"}
TEMP_TABLES = ("report_runs", "cur_steps", "cur_images", "prev_rank", "top_ids")

# The counted runs up to the report's date, and the window steps over them (etl.store.trends).
# The TEMP tables are named bare: both engines look a name up among the session's temporary
# tables first (SQLite's ``temp`` schema is PostgreSQL's ``pg_temp``).
_RUNS = [("counted", "SELECT source, snapshot_date, run_id FROM report_runs")]
_PREV_RUNS = [("counted", "SELECT source, snapshot_date, run_id FROM report_runs "
                          "WHERE snapshot_date <= :prev_end")]


def _connection(
        conn_or_db: sqlite3.Connection | Path | str) -> AbstractContextManager[Queryable]:
    """A caller's connection, left open; or the database (a SQLite file or a PostgreSQL
    schema), opened for the report: reading one committed state, writing TEMP tables only."""
    if isinstance(conn_or_db, sqlite3.Connection):
        return nullcontext(conn_or_db)
    return open_snapshots(conn_or_db, temp_tables=True)


def build_report(conn_or_db: sqlite3.Connection | Path | str, *, days: int = 30, top: int = 10,
                 now: dt.datetime | None = None, sources: Sequence[str] = ()) -> dict[str, Any]:
    """Compute the trend report (the JSON document) from the runs up to ``now``'s date, over
    every source or those named in ``sources``.

    Raises:
        ConfigError: bad ``days``/``top``, a source the database does not hold, or no
            successful run to report on.
    """
    return _build_report(conn_or_db, days=days, top=top, now=now, sources=sources)


# Called with the part of the document the HTML charts are drawn from (``sources``, ``daily``,
# ``top_movers``) as soon as it is known, before the rest of the report's SQL runs.
ChartsHook = Callable[[dict[str, Any]], None]
# Called once, as soon as the report leaves this process a core to spare: at once from
# PostgreSQL (its backends compute) or on a machine of more than two cores; else when the first
# of the two heaviest statements, which SQLite computes on this machine's cores, is done (this
# window's steps, the previous window's ranks on the second connection). An HTML report imports
# its renderers then: beside both statements on two cores, the import slowed the steps by
# ~0.3 s (a year of 10,000 images, measured).
CoreHook = Callable[[], None]


def _build_report(conn_or_db: sqlite3.Connection | Path | str, *, days: int, top: int,
                  now: dt.datetime | None, sources: Sequence[str],
                  on_chart_data: ChartsHook | None = None,
                  on_core_free: CoreHook | None = None) -> dict[str, Any]:
    """``build_report``; ``on_chart_data`` is handed the charts' part of the document early,
    ``on_core_free`` is called once the heaviest SQL is done (``_build_window``)."""
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"--days must be 1..{MAX_DAYS}, got {days}")
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    caller = conn_or_db if isinstance(conn_or_db, sqlite3.Connection) else None
    with _connection(conn_or_db) as conn:
        # The report's own connection can be read by a second one beside it. Closing it ends its
        # TEMP tables (a PostgreSQL session, its pg_temp): dropping them one by one first cost
        # ~65 ms of a year of 10,000 images (measured). A caller's is left as it was given.
        aside = (None if isinstance(conn_or_db, sqlite3.Connection)
                 else second_reader(conn_or_db, conn))
        in_transaction = caller is not None and caller.in_transaction
        try:
            return _compute(conn, days=days, top=top, now=now, sources=tuple(sources),
                            aside=aside, on_chart_data=on_chart_data,
                            on_core_free=on_core_free)
        finally:
            if caller is not None:
                for name in TEMP_TABLES:
                    caller.execute(f"DROP TABLE IF EXISTS temp.{name}")
                if not in_transaction and caller.in_transaction:
                    caller.commit()  # only temp tables were written: release the read snapshot


@dataclass(frozen=True)
class _Window:
    """The report's window over the counted run dates (and the previous window's start)."""

    as_of: str
    as_of_run_id: int
    dates: list[str]  # the run dates in the window, oldest first
    previous_start: str | None  # None: no previous window with two run dates

    @property
    def start(self) -> str:
        return self.dates[0]


def _narrow(conn: Queryable, sources: tuple[str, ...]) -> None:
    """Keep the counted runs of ``sources`` only (``report --source``).

    Raises:
        ConfigError: a name no run of the database read.
    """
    known = [s for (s,) in conn.execute("SELECT DISTINCT source FROM run_sources ORDER BY 1")]
    unknown = [s for s in sources if s not in known]
    if unknown:
        raise ConfigError(f"no source {unknown[0]!r} in the database (its sources: "
                          f"{', '.join(known) or 'none'})")
    marks = ", ".join("?" * len(sources))
    conn.execute(f"DELETE FROM report_runs WHERE source NOT IN ({marks})", sources)


def _build_window(conn: Queryable, days: int, now: dt.datetime,
                  sources: tuple[str, ...] = (), aside: Opener | None = None,
                  on_core_free: CoreHook | None = None) -> _Window:
    """The counted runs up to ``now``'s date and the window steps over them, as TEMP tables
    (``report_runs``, ``cur_steps``, ``cur_images``, ``prev_rank``) the queries below read.
    ``aside``: opens a second connection to the database, on which the previous window's ranks
    are then computed while ``conn`` computes this window (``_ranks_aside``). ``on_core_free``:
    called once this process has a core to spare (``CoreHook``)."""
    dialect = dialect_of(conn)
    core_free = once(on_core_free)
    if dialect.name != "sqlite" or cores() > 2:
        core_free()
    conn.execute("CREATE TEMP TABLE report_runs AS " + trends.counted_runs_sql(until=True),
                 {"until": now.date().isoformat()})
    if sources:
        _narrow(conn, sources)
    # A date's run: the latest of its sources' counted runs (several rows per date otherwise,
    # and which one dict() kept would follow the engine's row order).
    run_of = dict(conn.execute(
        "SELECT snapshot_date, MAX(run_id) FROM report_runs GROUP BY snapshot_date"))
    if not run_of:
        raise ConfigError("no successful run to report on: run 'swr-etl sync' first")
    dates = sorted(run_of)
    as_of = dates[-1]
    window = [d for d in dates if d >= shift(as_of, -days)]
    start = window[0]
    # The previous window ends where this one starts; it needs two run dates to rank anything.
    prev_window = [d for d in dates if shift(start, -days) <= d <= start]
    prev_start = prev_window[0] if len(prev_window) > 1 else None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="swr-etl-report") as pool:
        ranks = None
        if prev_start is not None and aside is not None:
            runs = conn.execute("SELECT source, snapshot_date, run_id FROM report_runs "
                                "WHERE snapshot_date <= ?", (start,)).fetchall()
            ranks = pool.submit(_ranks_aside, aside, runs, start, days)
            ranks.add_done_callback(lambda _: core_free())
        conn.execute("CREATE TEMP TABLE cur_steps AS " + trends.with_ctes(
            trends.steps_ctes(_RUNS, days, dialect=dialect), "SELECT * FROM steps"))
        core_free()
        _settle(conn, dialect, "cur_steps")
        conn.execute("CREATE TEMP TABLE cur_images AS "
                     + trends.per_image_sql("cur_steps", dialect=dialect))
        _settle(conn, dialect, "cur_images")
        rows = ranks.result() if ranks is not None else None
    integer = dialect.types["INTEGER"]
    if prev_start is None or rows is not None:
        conn.execute(f"CREATE TEMP TABLE prev_rank (source TEXT, image_id {integer}, "
                     f"rank {integer})")
        if rows:
            conn.executemany("INSERT INTO prev_rank VALUES (?, ?, ?)", rows)
            _settle(conn, dialect, "prev_rank")
    else:
        conn.execute("CREATE TEMP TABLE prev_rank AS " + _prev_rank_sql(days, dialect),
                     {"prev_end": start})
        _settle(conn, dialect, "prev_rank")
    return _Window(as_of, run_of[as_of], window, prev_start)


def _prev_rank_sql(days: int, dialect: Dialect) -> str:
    """Each ranked mover's rank in the previous window (ending at ``:prev_end``): its ranks
    only, from ``ranked``, not a second ``steps`` (~half the report's CPU, measured)."""
    return trends.with_ctes(
        trends.ranked_ctes(_PREV_RUNS, days, dialect=dialect),
        f"SELECT m.source, m.image_id, ROW_NUMBER() OVER (ORDER BY {trends.RANK_ORDER}, "
        "m.source) AS rank FROM ranked AS m")


def _ranks_aside(aside: Opener, runs: list[tuple[str, str, int]], start: str,
                 days: int) -> list[tuple[str, int, int]] | None:
    """The previous window's ranks from a second connection (``aside``), on its own thread:
    SQLite lets go of the GIL while it computes and PostgreSQL computes in a second backend,
    so this window and the previous one take two cores (a year of 10,000 images from SQLite:
    0.8 s of the report's 2.2 s of SQL).

    The second connection is given the report's own choice of counted runs (``runs``). From a
    SQLite file it may see a later committed state than the report's, which holds the same rows
    for those runs: a run's snapshots never change once it has committed. None (the caller then
    computes the ranks itself) when it does not see each of those runs counted for its source,
    as a database file replaced under the report would show, or cannot read the database."""
    try:
        with aside() as other:
            dialect = dialect_of(other)
            integer = dialect.types["INTEGER"]
            other.execute("CREATE TEMP TABLE report_runs "
                          f"(source TEXT, snapshot_date TEXT, run_id {integer})")
            other.executemany("INSERT INTO report_runs VALUES (?, ?, ?)", runs)
            (seen,) = other.execute(
                "SELECT COUNT(*) FROM report_runs AS c JOIN run_sources AS rs"
                " ON rs.run_id = c.run_id AND rs.source = c.source"
                f" WHERE rs.status IN ({trends.statuses_sql()})").fetchone()
            if seen != len(runs):
                return None
            ranked: list[tuple[str, int, int]] = other.execute(
                _prev_rank_sql(days, dialect), {"prev_end": start}).fetchall()
            return ranked
    except (sqlite3.Error, ConfigError):
        return None


def _settle(conn: Queryable, dialect: Dialect, table: str) -> None:
    """Make the filled TEMP table ``table`` fit for the planner, as the engine needs (an image's
    rows are looked up by source and id: a correlated subquery, the history of the top ids)."""
    for statement in dialect.settle_temp:
        conn.execute(statement.format(table=table, key="source, image_id"))


def _compute(conn: Queryable, *, days: int, top: int, now: dt.datetime,
             sources: tuple[str, ...] = (), aside: Opener | None = None,
             on_chart_data: ChartsHook | None = None,
             on_core_free: CoreHook | None = None) -> dict[str, Any]:
    w = _build_window(conn, days, now, sources, aside, on_core_free)
    trending = len(w.dates) > 1
    n_images, total_pulls = conn.execute(  # the as-of date's counted run of each source
        "SELECT COUNT(*), COALESCE(SUM(s.pull_count), 0) FROM report_runs AS c"
        " JOIN image_snapshots AS s ON s.run_id = c.run_id AND s.source = c.source"
        " WHERE c.snapshot_date = ?", (w.as_of,)).fetchone()
    per_date = sections.per_date(conn)
    total_delta = sum(group.gain for group in per_date)  # the window's known gain
    daily = sections.daily_totals(per_date, w.dates)
    total_rates = daily_rates([(row["date"], w.dates[i], row["pull_delta"])
                               for i, row in enumerate(daily[1:])])
    movers = sections.ranked_movers(conn, w.as_of, top) if trending else []
    names = [s for (s,) in conn.execute("SELECT DISTINCT source FROM report_runs ORDER BY source")]
    if on_chart_data is not None:
        on_chart_data({"sources": names, "daily": daily, "top_movers": movers})
    unranked, new_images, removed = sections.image_listings(conn, start=w.start, as_of=w.as_of)
    anomalies = sections.anomalies(conn, per_date, w.dates)
    notice, due = (None, None) if trending else sections.single_date_notice(w.dates, days, now)
    return {
        "title": "SWR official images: pull-count trends",
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool_version": __version__,
        "as_of": w.as_of,
        "as_of_run_id": w.as_of_run_id,
        "window_days": days,
        "window_start": w.start,
        "previous_window_start": w.previous_start,
        "run_dates": w.dates,
        "notice": notice,
        "next_run_due": due,
        "totals": {
            "images": n_images, "pull_count": total_pulls,
            "pull_delta": total_delta if trending else None,
            "daily_avg_7d": avg_last_7(total_rates, w.as_of),
            "new_images": new_images[1], "removed_images": removed[1],
            "anomalies": anomalies[1], "not_ranked": unranked[1],
        },
        "daily": daily,
        "top_movers": movers,
        "not_ranked": unranked[0],
        "new_images": new_images[0],
        "removed_images": removed[0],
        "anomalies": anomalies[0],
        "sources": names,
        "regions": sections.region_breakdown(conn, top) if trending else [],
        "method": sections.method(days),
    }


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


def _draw_charts(part: dict[str, Any]) -> list[tuple[str, str]]:
    # Imported here, on the charts' thread: this thread waits for the renderers' import to
    # finish, the report's queries go on.
    from etl.publish.render import charts_of

    return charts_of(part)


def _html_report(db: Path | str, *, days: int, top: int, now: dt.datetime | None,
                 sources: Sequence[str]) -> str:
    """The HTML page. Its renderers (~0.5 s to import) load on a thread once the report's
    heaviest SQL leaves a core free, while the rest of it computes, and its charts are drawn on
    a thread from the movers and daily totals as soon as they are known, while the report's
    last queries run: SQLite lets go of the GIL while it computes, so the two take a core each
    (a year of 10,000 images: 0.3-0.45 s of charts beside 0.3-0.4 s of queries)."""
    drawing: list[Future[list[tuple[str, str]]]] = []  # the one drawing, once its data is known
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="swr-etl-charts") as pool:
        report = _build_report(db, days=days, top=top, now=now, sources=sources,
                               on_chart_data=lambda part: drawing.append(
                                   pool.submit(_draw_charts, part)),
                               on_core_free=lambda: preload(
                                   "matplotlib.figure", "matplotlib.backends.backend_agg",
                                   "etl.publish.render", "jinja2"))
        charts = drawing[0].result()  # _compute hands the hook its part before it returns
    from etl.publish.render import html

    return html(report, charts=charts)


def write_report(db: Path | str, out: Path, *, days: int = 30, top: int = 10,
                 fmt: str | None = None, now: dt.datetime | None = None,
                 sources: Sequence[str] = ()) -> Path:
    """Build the report and write it atomically as HTML, Markdown or JSON; return ``out``."""
    kind = format_of(out, fmt)
    if kind == "html":
        text = _html_report(db, days=days, top=top, now=now, sources=sources)
    else:
        report = build_report(db, days=days, top=top, now=now, sources=sources)
        if kind == "json":
            text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        else:
            from etl.publish.render import markdown

            text = markdown(report)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text)
    except OSError as exc:
        raise ConfigError(f"cannot write report to {out}: {exc}") from exc
    return out
