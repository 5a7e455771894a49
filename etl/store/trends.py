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
  NULL, ``anomaly`` says why), never silently dropped. Rank: gain descending, ties by lower id.
  ``per_day`` = gain / days from baseline to ``as_of``; growth % = gain / max(baseline count,
  1000) x 100, so tiny images cannot dominate.
"""

from __future__ import annotations

from collections.abc import Sequence

from etl.integers import INT32_MAX

MIN_GROWTH_BASELINE = 1000
COUNTED_STATUSES: tuple[str, ...] = ("success",)
RUN_STATUSES = ("running", "success", "partial", "failed")
ANOMALIES = ("stuck_counter", "decrease")  # per-image anomaly kinds, in precedence order

# A run's date: the loader's runs.snapshot_date, else its snapshots' date, else its start day.
RUN_DATE_SQL = """COALESCE(r.snapshot_date,
         (SELECT s.snapshot_date FROM image_snapshots AS s WHERE s.run_id = r.run_id LIMIT 1),
         substr(COALESCE(r.finished_at, r.started_at), 1, 10))"""

# A step's anomaly, gain and length (alias ``st`` with pull_count, prev_count, snapshot_date,
# prev_date). ``<>`` and ``=`` against the stuck value, never ``<``: 12 billion pulls are real.
STEP_ANOMALY_SQL = f"""CASE WHEN st.pull_count = {INT32_MAX} OR st.prev_count = {INT32_MAX}
            THEN 'stuck_counter'
            WHEN st.pull_count < st.prev_count THEN 'decrease' END"""
STEP_GAIN_SQL = f"""CASE WHEN st.pull_count <> {INT32_MAX} AND st.prev_count <> {INT32_MAX}
             AND st.pull_count >= st.prev_count THEN st.pull_count - st.prev_count END"""
STEP_DAYS_SQL = "CAST(julianday(st.snapshot_date) - julianday(st.prev_date) AS INTEGER)"

Ctes = list[tuple[str, str]]


def with_ctes(ctes: Ctes, select: str) -> str:
    """``WITH name AS (sql), ... select``."""
    return "WITH " + ",\n".join(f"{name} AS (\n{sql}\n)" for name, sql in ctes) + "\n" + select


def counted_runs_ctes(*, statuses: Sequence[str] = COUNTED_STATUSES, one_scope: bool = True,
                      until: bool = False) -> Ctes:
    """CTEs ending in ``counted (snapshot_date, run_id)``: the run that counts for each date.

    ``statuses`` and ``one_scope`` are the export's knobs (it may export a partial run's
    snapshot, and any run's filter); trends use the defaults. ``until`` adds ``d <= :until``.
    """
    if not statuses or not set(statuses) <= set(RUN_STATUSES):
        raise ValueError(f"unknown run statuses {statuses!r}")
    listed = ", ".join(f"'{s}'" for s in statuses)
    bound = " AND g.d <= :until" if until else ""
    scope = ("""
WHERE (g.ns, g.nm) = (SELECT ns, nm FROM good
                      ORDER BY (ns = '' AND nm = '') DESC, d DESC, run_id DESC LIMIT 1)"""
             if one_scope else "")
    return [
        ("good", f"""SELECT g.* FROM (
    SELECT r.run_id, {RUN_DATE_SQL} AS d,
           COALESCE(r.namespace, '') AS ns, COALESCE(r.image_name, '') AS nm
    FROM runs AS r WHERE r.status IN ({listed})
) AS g
WHERE g.d IS NOT NULL{bound}"""),
        ("counted", f"SELECT g.d AS snapshot_date, MAX(g.run_id) AS run_id FROM good AS g{scope}\n"
                    "GROUP BY g.d"),
    ]


def counted_runs_sql(*, statuses: Sequence[str] = COUNTED_STATUSES, one_scope: bool = True,
                     until: bool = False) -> str:
    """``snapshot_date, run_id`` of every counted run, oldest date first."""
    return with_ctes(counted_runs_ctes(statuses=statuses, one_scope=one_scope, until=until),
                     "SELECT snapshot_date, run_id FROM counted ORDER BY snapshot_date")


def steps_ctes(counted: Ctes, days: int | None = None) -> Ctes:
    """``counted`` CTEs, then ``steps``: one row per observation (in the window of ``days``, or
    the whole history), with its step from the image's previous observation (in that range).

    ``steps`` columns: image_id, snapshot_date, run_id, pull_count, prev_date, prev_count,
    next_date, pull_delta, days_elapsed, anomaly, as_of.
    """
    since = "NULL" if days is None else f"date(MAX(snapshot_date), '-{int(days)} days')"
    return counted + [
        ("bounds", f"SELECT MAX(snapshot_date) AS as_of, {since} AS since FROM counted"),
        ("obs", """SELECT s.image_id, c.snapshot_date, c.run_id, s.pull_count
FROM counted AS c JOIN image_snapshots AS s ON s.run_id = c.run_id, bounds
WHERE s.pull_count IS NOT NULL
  AND (bounds.since IS NULL OR c.snapshot_date >= bounds.since)"""),
        ("st", """SELECT o.*, LAG(o.pull_count) OVER w AS prev_count,
       LAG(o.snapshot_date) OVER w AS prev_date, LEAD(o.snapshot_date) OVER w AS next_date
FROM obs AS o
WINDOW w AS (PARTITION BY o.image_id ORDER BY o.snapshot_date)"""),
        ("steps", f"""SELECT st.image_id, st.snapshot_date, st.run_id, st.pull_count, st.prev_date,
       st.prev_count, st.next_date, {STEP_GAIN_SQL} AS pull_delta,
       {STEP_DAYS_SQL} AS days_elapsed,
       {STEP_ANOMALY_SQL} AS anomaly,
       bounds.as_of
FROM st, bounds"""),
    ]


def daily_pulls_sql() -> str:
    """The ``daily_pulls`` view: every observation of the whole history with its step."""
    return with_ctes(steps_ctes(counted_runs_ctes()), """SELECT st.image_id, i.namespace, i.name,
       st.snapshot_date, st.pull_count, st.pull_delta, st.days_elapsed, st.anomaly, st.run_id
FROM steps AS st LEFT JOIN images AS i ON i.id = st.image_id""")


def per_image_sql(steps: str) -> str:
    """Per image of the window steps relation ``steps``: first and last date and count, the
    number of steps, and its anomaly (``stuck_counter`` before ``decrease``) if any."""
    kinds = " ".join(f"WHEN MAX(anomaly = '{k}') THEN '{k}'" for k in ANOMALIES)
    return f"""SELECT image_id, MIN(snapshot_date) AS from_date,
       MAX(snapshot_date) AS to_date, MAX(as_of) AS as_of,
       MAX(CASE WHEN prev_date IS NULL THEN pull_count END) AS pull_count_from,
       MAX(CASE WHEN next_date IS NULL THEN pull_count END) AS pull_count,
       COUNT(prev_date) AS steps,
       CASE {kinds} END AS anomaly
FROM {steps} GROUP BY image_id"""


def movers_ctes(steps: str, per_image: str | None = None) -> Ctes:
    """CTEs ending in ``movers``, from the window steps relation ``steps`` (or its
    ``per_image_sql`` already computed, as ``per_image``); see ``MOVERS_SELECT``."""
    return [
        ("per_image", per_image or per_image_sql(steps)),
        ("movers", """SELECT p.image_id, p.from_date, p.to_date, p.pull_count_from, p.pull_count,
       CASE WHEN p.anomaly IS NULL THEN p.pull_count - p.pull_count_from END AS pull_delta,
       CAST(julianday(p.to_date) - julianday(p.from_date) AS INTEGER) AS days_elapsed,
       p.anomaly
FROM per_image AS p
WHERE p.to_date = p.as_of AND (p.steps > 0 OR p.anomaly IS NOT NULL)"""),
    ]


# A mover's derived figures and the two orders (alias ``m`` over ``movers``). Rank = position
# among the movers without anomaly in RANK_ORDER: the view numbers them with ROW_NUMBER, the
# report takes the first ``--top`` in that order (a bounded sort instead of ranking a million).
PER_DAY_SQL = "ROUND(CAST(m.pull_delta AS REAL) / m.days_elapsed, 3)"
GROWTH_SQL = f"ROUND(m.pull_delta * 100.0 / MAX(m.pull_count_from, {MIN_GROWTH_BASELINE}), 2)"
RANK_ORDER = "m.pull_delta DESC, m.image_id"  # ties: the lower id first
UNRANKED_ORDER = "m.pull_count DESC, m.image_id"  # the biggest images first

# Ranked movers first (rank 1..n), then the unranked ones.
MOVERS_SELECT = f"""SELECT m.image_id, i.namespace, i.name, m.from_date, m.to_date,
       m.pull_count_from, m.pull_count, m.pull_delta, m.days_elapsed,
       {PER_DAY_SQL} AS per_day,
       {GROWTH_SQL} AS pull_growth_pct,
       CASE WHEN m.anomaly IS NULL THEN ROW_NUMBER() OVER (
           PARTITION BY m.anomaly IS NULL ORDER BY {RANK_ORDER}) END AS rank,
       m.anomaly
FROM movers AS m LEFT JOIN images AS i ON i.id = m.image_id
ORDER BY rank IS NULL, rank, {UNRANKED_ORDER}"""

def top_movers_sql(days: int) -> str:
    """The ``top_movers_<days>d`` view: every mover of the last ``days`` days, ranked."""
    return with_ctes(steps_ctes(counted_runs_ctes(), days) + movers_ctes("steps"),
                     MOVERS_SELECT)
