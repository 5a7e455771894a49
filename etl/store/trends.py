"""The analytic rules, each stated once, as SQL: which runs count, what a step between two
observations is, the trend window, and what a top mover is.

The analysts' views (``etl.store.schema.VIEWS``) are built from these statements; the report
(``etl.publish.report``) runs the same statements on the same tables (so it also works on a
database whose stored views are older); the export picks its runs with ``counted_runs_sql``
(``etl.store.read.run_days``); Datasette's canned queries read the views. One question, one
answer, wherever it is asked.

The rules (docs/analysts/views.md, "The rules behind every view", says the same to users):

* **Which runs count.** Status ``success`` only. A ``partial`` run saw a listing that moved under
  it: its rows were loaded, but its image set is not the whole listing, so images missing from it
  would look removed and totals would dip; a ``failed`` run committed nothing. Runs filtered with
  ``--namespace``/``--image-name`` are ignored when unfiltered runs exist (when every run is
  filtered, the latest run's filter is used). One run per snapshot date: the latest of that date
  (the highest run id, so a replay of the date replaces it).
* **Observation.** An image's snapshot in its date's counted run, with a known ``pull_count`` (a
  NULL count, an unusable API value recorded in ``quality_issues``, is no observation).
* **Step.** From an image's previous observation to this one; gaps and absences are bridged, and
  ``days_elapsed`` says how long the step took. Its gain is the count minus the previous count,
  unless it is an anomaly: ``stuck_counter`` when either end is exactly 2147483647 (the int32
  maximum, where upstream counters stick; larger counts are normal and count), else
  ``decrease`` when the count went down. An anomaly's gain is unknown (NULL): never negative
  growth, never zero.
* **Window of N days.** Observations dated from ``as_of - N days`` to ``as_of``, both included;
  ``as_of`` is the latest counted date. An image's baseline is its first observation in the
  window (for an image new in the window: its first sighting).
* **Top mover.** An image observed on ``as_of`` with at least one step in the window. Its gain is
  its count on ``as_of`` minus its baseline count (the net gain; it equals the sum of its steps,
  since none is unknown). An image with an anomaly in the window is not ranked (rank and gain
  NULL, ``anomaly`` says why), never silently dropped. Rank: within its source, gain
  descending, ties by lower id.
  ``per_day`` = gain / days from baseline to ``as_of``; growth % = gain / max(baseline count,
  1000) x 100, so tiny images cannot dominate.
"""

from __future__ import annotations

from collections.abc import Sequence

from etl.integers import INT32_MAX
from etl.store.dialect import SQLITE, Dialect

MIN_GROWTH_BASELINE = 1000
COUNTED_STATUSES: tuple[str, ...] = ("success",)
RUN_STATUSES = ("running", "success", "partial", "failed")
ANOMALIES = ("stuck_counter", "decrease")  # per-image anomaly kinds, in precedence order

# A run's date: the loader's runs.snapshot_date, else its snapshots' date, else its start day.
RUN_DATE_SQL = """COALESCE(r.snapshot_date,
         (SELECT s.snapshot_date FROM image_snapshots AS s WHERE s.run_id = r.run_id LIMIT 1),
         substr(COALESCE(r.finished_at, r.started_at), 1, 10))"""

# A step's anomaly and gain (its length: ``Dialect.days_between``), alias ``st`` with pull_count,
# prev_count, snapshot_date, prev_date. ``<>`` and ``=`` against the stuck value, never ``<``:
# 12 billion pulls are real.
STEP_ANOMALY_SQL = f"""CASE WHEN st.pull_count = {INT32_MAX} OR st.prev_count = {INT32_MAX}
            THEN 'stuck_counter'
            WHEN st.pull_count < st.prev_count THEN 'decrease' END"""
STEP_GAIN_SQL = f"""CASE WHEN st.pull_count <> {INT32_MAX} AND st.prev_count <> {INT32_MAX}
             AND st.pull_count >= st.prev_count THEN st.pull_count - st.prev_count END"""

Ctes = list[tuple[str, str]]


def with_ctes(ctes: Ctes, select: str) -> str:
    """``WITH name AS (sql), ... select``."""
    return "WITH " + ",\n".join(f"{name} AS (\n{sql}\n)" for name, sql in ctes) + "\n" + select


def counted_runs_ctes(*, statuses: Sequence[str] = COUNTED_STATUSES, one_scope: bool = True,
                      until: bool = False) -> Ctes:
    """CTEs ending in ``counted (source, snapshot_date, run_id)``: the run that counts for each
    source and date. A run counts for a source by that source's own status
    (``run_sources.status``): a region that failed in a run leaves the others counted.

    ``statuses`` and ``one_scope`` are the export's knobs (it may export a partial run's
    snapshot, and any run's filter); trends use the defaults. ``until`` adds ``d <= :until``.
    """
    listed = statuses_sql(statuses)
    bound = " AND g.d <= :until" if until else ""
    scope = ("""
WHERE (g.ns, g.nm) = (SELECT ns, nm FROM good
                      ORDER BY (ns = '' AND nm = '') DESC, d DESC, run_id DESC LIMIT 1)"""
             if one_scope else "")
    return [
        ("good", f"""SELECT g.* FROM (
    SELECT rs.source, r.run_id, {RUN_DATE_SQL} AS d,
           COALESCE(r.namespace, '') AS ns, COALESCE(r.image_name, '') AS nm
    FROM runs AS r JOIN run_sources AS rs ON rs.run_id = r.run_id
    WHERE rs.status IN ({listed})
) AS g
WHERE g.d IS NOT NULL{bound}"""),
        ("counted", "SELECT g.source, g.d AS snapshot_date, MAX(g.run_id) AS run_id"
                    f" FROM good AS g{scope}\nGROUP BY g.source, g.d"),
    ]


def statuses_sql(statuses: Sequence[str] = COUNTED_STATUSES) -> str:
    """Run ``statuses`` as the SQL list after ``status IN``: by default, those that count."""
    if not statuses or not set(statuses) <= set(RUN_STATUSES):
        raise ValueError(f"unknown run statuses {statuses!r}")
    return ", ".join(f"'{s}'" for s in statuses)


def counted_runs_sql(*, statuses: Sequence[str] = COUNTED_STATUSES, one_scope: bool = True,
                     until: bool = False) -> str:
    """``snapshot_date, run_id, source`` of every counted run, oldest date first."""
    return with_ctes(counted_runs_ctes(statuses=statuses, one_scope=one_scope, until=until),
                     "SELECT snapshot_date, run_id, source FROM counted"
                     " ORDER BY snapshot_date, source")


def obs_ctes(counted: Ctes, days: int | None = None, *, dialect: Dialect = SQLITE) -> Ctes:
    """``counted`` CTEs, then ``bounds (as_of, since)`` and ``obs``: every observation in the
    window of ``days`` (or the whole history): source, image_id, snapshot_date, run_id,
    pull_count."""
    since = "NULL" if days is None else dialect.days_before("MAX(snapshot_date)", days)
    return counted + [
        ("bounds", f"SELECT MAX(snapshot_date) AS as_of, {since} AS since FROM counted"),
        ("obs", """SELECT s.source, s.image_id, c.snapshot_date, c.run_id, s.pull_count
FROM counted AS c
JOIN image_snapshots AS s ON s.run_id = c.run_id AND s.source = c.source, bounds
WHERE s.pull_count IS NOT NULL
  AND (bounds.since IS NULL OR c.snapshot_date >= bounds.since)"""),
    ]


def steps_ctes(counted: Ctes, days: int | None = None, *, named: bool = False,
               dialect: Dialect = SQLITE) -> Ctes:
    """``counted`` CTEs, then ``steps``: one row per observation (in the window of ``days``, or
    the whole history), with its step from the image's previous observation (in that range).

    An image is one ``(source, image_id)``: each source counts its own pulls.
    ``steps`` columns: source, image_id, snapshot_date, run_id, pull_count, prev_date, prev_count,
    pull_delta, days_elapsed, anomaly, as_of.

    ``named`` (the ``daily_pulls`` view): each observation also carries its image's namespace
    and name (after image_id; NULL where ``images`` has no row for it), joined before the window
    and part of its partition. A partition's rows are one image's, so this changes no step; but
    a condition on a partition column can be applied before the window (SQLite and PostgreSQL
    both do), so ``WHERE namespace = ? AND name = ?`` on the view reads one image's history
    through the indexes instead of computing every image's steps first: ~0.02 s against ~13 s
    over a year of 10,000 images (docs/development/benchmarks.md). The whole view costs 15-25 %
    more CPU (the rows sorted for the window carry the two names); the integer key first, as in
    ``ranked_ctes``.
    """
    ctes = obs_ctes(counted, days, dialect=dialect)
    rows, key, names = "obs", "o.source, o.image_id", ""
    if named:
        ctes.append(("named", """SELECT o.*, i.namespace, i.name
FROM obs AS o LEFT JOIN images AS i ON i.source = o.source AND i.id = o.image_id"""))
        rows, key, names = "named", "o.image_id, o.source, o.namespace, o.name", \
            "st.namespace, st.name, "
    return ctes + [
        ("st", f"""SELECT o.*, LAG(o.pull_count) OVER w AS prev_count,
       LAG(o.snapshot_date) OVER w AS prev_date
FROM {rows} AS o
WINDOW w AS (PARTITION BY {key} ORDER BY o.snapshot_date)"""),
        ("steps", f"""SELECT st.source, st.image_id, {names}st.snapshot_date, st.run_id,
       st.pull_count, st.prev_date, st.prev_count, {STEP_GAIN_SQL} AS pull_delta,
       {dialect.days_between("st.snapshot_date", "st.prev_date")} AS days_elapsed,
       {STEP_ANOMALY_SQL} AS anomaly,
       bounds.as_of
FROM st, bounds"""),
    ]


def daily_pulls_sql(*, dialect: Dialect = SQLITE) -> str:
    """The ``daily_pulls`` view: every observation of the whole history with its step."""
    return with_ctes(steps_ctes(counted_runs_ctes(), named=True, dialect=dialect),
                     """SELECT st.image_id, st.namespace, st.name,
       st.snapshot_date, st.pull_count, st.pull_delta, st.days_elapsed, st.anomaly, st.run_id,
       st.source
FROM steps AS st""")


def per_image_sql(steps: str, *, dialect: Dialect = SQLITE) -> str:
    """Per image of the window steps relation ``steps``: first and last date and count, the
    number of steps, and its anomaly (``stuck_counter`` before ``decrease``) if any."""
    kinds = " ".join(f"WHEN {dialect.any_true(f'anomaly = {k!r}')} THEN '{k}'"
                     for k in ANOMALIES)
    # The count at the last observation. Dates are fixed-width 'YYYY-MM-DD' text, one per image
    # and date, so the greatest "date count" text is the last observation's: one pass over the
    # group, where a LEAD per observation to mark the last one cost ~40 % of the steps in SQLite
    # (docs/development/benchmarks.md).
    last_count = (f"CAST(substr(MAX(snapshot_date || ' ' || pull_count), 12) "
                  f"AS {dialect.types['INTEGER']})")
    return f"""SELECT source, image_id, MIN(snapshot_date) AS from_date,
       MAX(snapshot_date) AS to_date, MAX(as_of) AS as_of,
       MAX(CASE WHEN prev_date IS NULL THEN pull_count END) AS pull_count_from,
       {last_count} AS pull_count,
       COUNT(prev_date) AS steps,
       CASE {kinds} END AS anomaly
FROM {steps} GROUP BY image_id, source"""


def movers_ctes(steps: str, per_image: str | None = None, *,
                dialect: Dialect = SQLITE) -> Ctes:
    """CTEs ending in ``movers``, from the window steps relation ``steps`` (or its
    ``per_image_sql`` already computed, as ``per_image``); see ``movers_select``."""
    return [
        ("per_image", per_image or per_image_sql(steps, dialect=dialect)),
        ("movers", f"""SELECT p.source, p.image_id, p.from_date, p.to_date, p.pull_count_from,
       p.pull_count,
       CASE WHEN p.anomaly IS NULL THEN p.pull_count - p.pull_count_from END AS pull_delta,
       {dialect.days_between("p.to_date", "p.from_date")} AS days_elapsed,
       p.anomaly
FROM per_image AS p
WHERE p.to_date = p.as_of AND (p.steps > 0 OR p.anomaly IS NOT NULL)"""),
    ]


def ranked_ctes(counted: Ctes, days: int, *, dialect: Dialect = SQLITE) -> Ctes:
    """CTEs ending in ``ranked (source, image_id, pull_delta)``: the movers of the window of
    ``days`` that have a rank (no anomaly), with their gain, as ``movers`` has them, at a
    fraction of the cost (the report's previous window needs nothing else).

    Without ``steps``: a ranked mover's counts never go down, so its baseline is its smallest
    count and its count on ``as_of`` its largest; it has an anomaly exactly when one of its
    observations is at the stuck value (with two or more, each is an end of a step) or falls
    from the one before (the one ``LAG`` left). ``steps`` needs two more window functions per
    observation, ``LEAD`` the dearest in SQLite: ``movers`` over ``steps`` took ~1.7x the CPU
    of this over a month of 10,000 images (docs/development/benchmarks.md).
    """
    return obs_ctes(counted, days, dialect=dialect) + [
        # The integer key first: SQLite sorts and compares it cheaper (~14 % of this, measured).
        ("lagged", """SELECT o.source, o.image_id, o.snapshot_date, o.pull_count,
       LAG(o.pull_count) OVER (PARTITION BY o.image_id, o.source ORDER BY o.snapshot_date)
           AS prev_count
FROM obs AS o"""),
        ("ranked", f"""SELECT l.source, l.image_id,
       MAX(l.pull_count) - MIN(l.pull_count) AS pull_delta
FROM lagged AS l, bounds
GROUP BY l.image_id, l.source
HAVING MAX(l.snapshot_date) = MAX(bounds.as_of) AND COUNT(*) > 1
   AND COUNT(CASE WHEN l.pull_count = {INT32_MAX} OR l.pull_count < l.prev_count
                  THEN 1 END) = 0"""),
    ]


# A mover's derived figures and the two orders (alias ``m`` over ``movers``). Rank = position
# among the movers without anomaly in RANK_ORDER: the view numbers them with ROW_NUMBER, the
# report takes the first ``--top`` in that order (a bounded sort instead of ranking a million).
def per_day_sql(dialect: Dialect = SQLITE) -> str:
    return f"ROUND({dialect.exact('m.pull_delta')} / m.days_elapsed, 3)"


def growth_sql(alias: str, dialect: Dialect = SQLITE) -> str:
    """Growth % of the mover or total ``alias``: gain over its baseline, floored."""
    floor = dialect.greatest(f"{alias}.pull_count_from", str(MIN_GROWTH_BASELINE))
    return f"ROUND({alias}.pull_delta * 100.0 / {floor}, 2)"


def unranked_last(alias: str, dialect: Dialect = SQLITE) -> str:
    """Order key putting the unranked (``rank IS NULL``: those with an anomaly) last. Where the
    engine cannot name an output column inside an expression, the anomaly says the same."""
    return "rank IS NULL" if dialect.alias_in_expressions else f"{alias}.anomaly IS NOT NULL"


RANK_ORDER = "m.pull_delta DESC, m.image_id"  # ties: the lower id first
UNRANKED_ORDER = "m.pull_count DESC, m.image_id"  # the biggest images first

def movers_select(dialect: Dialect = SQLITE) -> str:
    """Ranked movers first (rank 1..n), then the unranked ones."""
    return f"""SELECT m.image_id, i.namespace, i.name, m.from_date, m.to_date,
       m.pull_count_from, m.pull_count, m.pull_delta, m.days_elapsed,
       {per_day_sql(dialect)} AS per_day,
       {growth_sql("m", dialect)} AS pull_growth_pct,
       CASE WHEN m.anomaly IS NULL THEN ROW_NUMBER() OVER (
           PARTITION BY m.source, m.anomaly IS NULL ORDER BY {RANK_ORDER}) END AS rank,
       m.anomaly, m.source
FROM movers AS m LEFT JOIN images AS i ON i.source = m.source AND i.id = m.image_id
ORDER BY m.source, {unranked_last("m", dialect)}, rank, {UNRANKED_ORDER}"""


def top_movers_sql(days: int, *, dialect: Dialect = SQLITE) -> str:
    """The ``top_movers_<days>d`` view: every mover of the last ``days`` days, ranked."""
    return with_ctes(steps_ctes(counted_runs_ctes(), days, dialect=dialect)
                     + movers_ctes("steps", dialect=dialect), movers_select(dialect))


# ------------------------------------------------------------------- totals across sources
# Pulls are counted per region: an image's total is the sum over the sources that list it,
# matched by (namespace, name) (ids are each source's own). A source's mover (above) is its
# share; the total's gain is unknown when any share's is (an anomaly in one region).

def totals_ctes() -> Ctes:
    """CTEs after ``movers``: ``shares`` (each source's mover with its namespace and name, and
    ``n``, its place by gain among the image's shares without anomaly) and ``totals`` (one row
    per namespace and name, summed over its sources, with the share that gained most)."""
    return [
        ("shares", """SELECT i.namespace, i.name, m.source, m.image_id, m.pull_count_from,
       m.pull_count, m.pull_delta, m.anomaly,
       ROW_NUMBER() OVER (PARTITION BY i.namespace, i.name, m.anomaly IS NULL
                          ORDER BY m.pull_delta DESC, m.source) AS n
FROM movers AS m JOIN images AS i ON i.source = m.source AND i.id = m.image_id"""),
        # MAX(anomaly): 'stuck_counter' sorts after 'decrease', the precedence of ANOMALIES.
        # The leading share is picked inside the aggregate, not joined back to it: PostgreSQL
        # estimates the counted runs at one row, and so every relation after them, and joined
        # 10,000 totals to 10,000 leading shares by a nested loop (~70 s over a year of 10,000
        # images, docs/development/benchmarks.md).
        ("totals", """SELECT namespace, name, COUNT(*) AS sources,
       SUM(pull_count_from) AS pull_count_from, SUM(pull_count) AS pull_count,
       CASE WHEN COUNT(anomaly) = 0 THEN SUM(pull_delta) END AS pull_delta,
       MAX(anomaly) AS anomaly,
       MAX(CASE WHEN n = 1 AND anomaly IS NULL THEN source END) AS top_source,
       MAX(CASE WHEN n = 1 AND anomaly IS NULL THEN pull_delta END) AS top_source_delta
FROM shares GROUP BY namespace, name"""),
    ]


def totals_select(dialect: Dialect = SQLITE) -> str:
    """Ranked totals first; ``top_source``: the source that gained most (what drives the
    growth)."""
    return f"""SELECT t.namespace, t.name, t.sources, t.pull_count_from, t.pull_count,
       t.pull_delta,
       {growth_sql("t", dialect)}
           AS pull_growth_pct,
       CASE WHEN t.anomaly IS NULL THEN ROW_NUMBER() OVER (
           PARTITION BY t.anomaly IS NULL ORDER BY t.pull_delta DESC, t.namespace, t.name)
       END AS rank,
       t.anomaly, t.top_source, t.top_source_delta
FROM totals AS t
ORDER BY {unranked_last("t", dialect)}, rank, t.pull_count DESC, t.namespace, t.name"""


def top_movers_total_sql(days: int, *, dialect: Dialect = SQLITE) -> str:
    """The ``top_movers_total_<days>d`` view: every image's gain over the last ``days`` days
    summed over its sources, ranked, with the source that gained most."""
    return with_ctes(steps_ctes(counted_runs_ctes(), days, dialect=dialect)
                     + movers_ctes("steps", dialect=dialect) + totals_ctes(),
                     totals_select(dialect))


# Images still listed, summed over the sources that list them.
IMAGE_TOTALS_SQL = """SELECT namespace, name, COUNT(*) AS sources, SUM(pull_count) AS pull_count,
       SUM(star_count) AS star_count, MAX(last_updated) AS last_updated
FROM latest_images GROUP BY namespace, name"""
