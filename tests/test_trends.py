"""The analytic rules (etl.store.trends): every view against values worked out by hand on the golden
history, window boundaries pinned, and one answer to "who moved most" from the view, the
Datasette canned query and the report alike."""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from etl.publish.report import build_report
from etl.store import trends
from etl.store.dialect import POSTGRES, SQLITE, Dialect
from etl.store.read import run_days
from tests.fixtures.report_db import (
    GOLDEN_DATES,
    GOLDEN_IMAGES,
    GOLDEN_RUNS,
    STUCK,
    add_image,
    add_run,
    build_golden_db,
    new_db,
)

METADATA = Path(__file__).resolve().parent.parent / "datasette" / "metadata.json"
NOW = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.timezone.utc)
TWO_31 = 2**31


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_golden_db(tmp_path_factory.mktemp("golden") / "swr.db")


@pytest.fixture()
def conn(golden: Path) -> Any:
    db = sqlite3.connect(f"file:{golden}?mode=ro", uri=True)
    yield db
    db.close()


def test_counted_runs_are_the_last_successful_unfiltered_run_of_each_date(
        conn: sqlite3.Connection) -> None:
    # Not the partial run 6 (03-25), the failed run 9 or the filtered run 10 (03-27), nor
    # run 7, which run 8 replaces on 03-26.
    assert counted(conn) == list(
        zip(GOLDEN_DATES, GOLDEN_RUNS, strict=True))
    # The export's knobs on the same rule: partial runs in, any filter in.
    assert [(d.date, d.run_id) for d in run_days(conn, include_partial=True)][4:7] == [
        ("2026-03-24", 5), ("2026-03-25", 6), ("2026-03-26", 8)]
    assert [(d.date, d.run_id) for d in run_days(conn)][6] == ("2026-03-27", 10)
    assert [d.date for d in run_days(conn, one_scope=True, until="2026-03-24")] == (
        GOLDEN_DATES[:5])


def _history(conn: sqlite3.Connection, image_id: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT snapshot_date, pull_count, pull_delta, days_elapsed, anomaly, run_id "
        "FROM daily_pulls WHERE image_id = ? ORDER BY snapshot_date", (image_id,)).fetchall()


def test_daily_pulls_golden(conn: sqlite3.Connection) -> None:
    # Days between counted dates: 1, 9, 13, 1, 2, 4, 1.
    assert _history(conn, 3) == [  # stuck: every step touching 2147483647 is unknown
        ("2026-02-28", 2147480000, None, None, None, 1),
        ("2026-03-01", 2147483000, 3000, 1, None, 2),
        ("2026-03-10", STUCK, None, 9, "stuck_counter", 3),
        ("2026-03-23", STUCK, None, 13, "stuck_counter", 4),
        ("2026-03-24", STUCK, None, 1, "stuck_counter", 5),
        ("2026-03-26", STUCK, None, 2, "stuck_counter", 8),
        ("2026-03-30", STUCK, None, 4, "stuck_counter", 11),
        ("2026-03-31", STUCK, None, 1, "stuck_counter", 12),
    ]
    assert _history(conn, 4) == [  # dips: a decrease has no delta, never a negative one
        ("2026-02-28", 5000, None, None, None, 1), ("2026-03-01", 6000, 1000, 1, None, 2),
        ("2026-03-10", 7000, 1000, 9, None, 3), ("2026-03-23", 8000, 1000, 13, None, 4),
        ("2026-03-24", 9000, 1000, 1, None, 5), ("2026-03-26", 10000, 1000, 2, None, 8),
        ("2026-03-30", 9500, None, 4, "decrease", 11), ("2026-03-31", 9800, 300, 1, None, 12),
    ]
    assert _history(conn, 6) == [  # flat: equal consecutive counts are a known 0
        ("2026-02-28", 100, None, None, None, 1), ("2026-03-01", 200, 100, 1, None, 2),
        ("2026-03-10", 300, 100, 9, None, 3), ("2026-03-23", 400, 100, 13, None, 4),
        ("2026-03-24", 500, 100, 1, None, 5), ("2026-03-26", 600, 100, 2, None, 8),
        ("2026-03-30", 700, 100, 4, None, 11), ("2026-03-31", 700, 0, 1, None, 12),
    ]
    assert _history(conn, 7) == [  # comeback: the absence is one 20-day step
        ("2026-02-28", 50, None, None, None, 1), ("2026-03-01", 60, 10, 1, None, 2),
        ("2026-03-10", 70, 10, 9, None, 3), ("2026-03-30", 400, 330, 20, None, 11),
        ("2026-03-31", 450, 50, 1, None, 12),
    ]
    assert _history(conn, 11)[-2:] == [  # nullcount: the NULL of 03-30 is no observation
        ("2026-03-26", 150, 10, 2, None, 8), ("2026-03-31", 170, 20, 5, None, 12)]
    assert _history(conn, 1)[-2:] == [  # 12 billion pulls are real counts, not anomalies
        ("2026-03-30", 12_300_000_000, 40_000_000, 4, None, 11),
        ("2026-03-31", 12_310_000_000, 10_000_000, 1, None, 12)]
    assert _history(conn, 9) == [("2026-03-31", 5, None, None, None, 12)]
    # 8 dates x 7 images + comeback 5 + late 1 + gone 6 + nullcount 7, namespaces from images
    assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM daily_pulls").fetchone() == (
        75, 8)
    assert conn.execute("SELECT DISTINCT namespace, name FROM daily_pulls WHERE name = 'nginx' "
                        "ORDER BY namespace").fetchall() == [("bitnami", "nginx"),
                                                             ("library", "nginx")]


# One image's history as analysts ask for it (docs/analysts/views.md).
ONE_IMAGE = ["namespace = :ns AND name = :name",
             "source = :source AND namespace = :ns AND name = :name",
             "name = :name", "image_id = :id AND source = :source"]


@pytest.mark.parametrize("where", ONE_IMAGE)
def test_one_images_history_is_the_whole_views_rows_for_it(conn: sqlite3.Connection,
                                                          where: str) -> None:
    # The filter is applied before the window (below): it must leave every step as it was.
    names = [d[0] for d in conn.execute("SELECT * FROM daily_pulls LIMIT 0").description]
    whole = [dict(zip(names, row, strict=True)) for row in conn.execute(
        "SELECT * FROM daily_pulls")]
    keys = {(r["source"], r["namespace"], r["name"], r["image_id"]) for r in whole}
    assert len({k[1:3] for k in keys}) > 5, "too few images to compare"
    column = {"source": "source", "ns": "namespace", "name": "name", "id": "image_id"}
    asked = [p for p in column if f":{p} " in f"{where} "]  # the parameters ``where`` names
    assert asked
    for source, ns, name, image_id in keys:
        params = {"source": source, "ns": ns, "name": name, "id": image_id}
        mine = sorted(tuple(r.values()) for r in whole
                      if all(r[column[p]] == params[p] for p in asked))
        got = conn.execute(f"SELECT * FROM daily_pulls WHERE {where}", params).fetchall()
        assert sorted(got) == mine and mine


def test_a_filter_on_an_image_reads_its_history_through_the_indexes(
        conn: sqlite3.Connection) -> None:
    # namespace and name are partition columns of the window, so SQLite applies the filter to
    # the observations first: the image by the name index, then its snapshots by image, not
    # every counted run's snapshots (~13 s over a year of 10,000 images, docs/development/
    # benchmarks.md).
    # The name alone finds it too: the name index has the name first (schema v5).
    for where, found in (("namespace = :ns AND name = :name", "(name=? AND namespace=?)"),
                         ("name = :name", "(name=?)")):
        plan = [row[3] for row in conn.execute(
            f"EXPLAIN QUERY PLAN SELECT * FROM daily_pulls WHERE {where}",
            {"ns": "library", "name": "nginx"})]
        assert f"SEARCH i USING INDEX images_name {found}" in plan, plan
        assert "SEARCH s USING INDEX image_snapshots_image (source=? AND image_id=?)" in plan, plan


# Worked out by hand, per image and window (7 days from 03-24, 30 days from 03-01, as_of 03-31):
# (from_date = baseline, pull_count_from, pull_count, pull_delta, days_elapsed, per_day,
#  pull_growth_pct, rank, anomaly); growth = delta x 100 / max(from, 1000), per_day = delta / days.
MOVERS = {
    # above 2^31: real counts, ranked first in both windows
    1: {7: ("2026-03-24", 12_240_000_000, 12_310_000_000, 70_000_000, 7, 10_000_000.0, 0.57, 1,
            None),
        30: ("2026-03-01", 12_010_000_000, 12_310_000_000, 300_000_000, 30, 10_000_000.0, 2.5, 1,
             None)},
    2: {7: ("2026-03-24", 3_024_000_000, 3_031_000_000, 7_000_000, 7, 1_000_000.0, 0.23, 2,
            None),
        30: ("2026-03-01", 3_001_000_000, 3_031_000_000, 30_000_000, 30, 1_000_000.0, 1.0, 2,
             None)},
    # stuck and dips: growth unknown in both windows, unranked
    3: {7: ("2026-03-24", STUCK, STUCK, None, 7, None, None, None, "stuck_counter"),
        30: ("2026-03-01", 2147483000, STUCK, None, 30, None, None, None, "stuck_counter")},
    4: {7: ("2026-03-24", 9000, 9800, None, 7, None, None, None, "decrease"),
        30: ("2026-03-01", 6000, 9800, None, 30, None, None, None, "decrease")},
    # olddip fell on 03-23: outside the 7-day window (ranked there), inside the 30-day one
    5: {7: ("2026-03-24", 2600, 3300, 700, 7, 100.0, 26.92, 3, None),
        30: ("2026-03-01", 2000, 3300, None, 30, None, None, None, "decrease")},
    # flat and bitnami/nginx tie at 200 in 7 days: the lower id first
    6: {7: ("2026-03-24", 500, 700, 200, 7, 28.571, 20.0, 4, None),
        30: ("2026-03-01", 200, 700, 500, 30, 16.667, 50.0, 4, None)},
    8: {7: ("2026-03-24", 500, 700, 200, 7, 28.571, 20.0, 5, None),
        30: ("2026-03-01", 20, 700, 680, 30, 22.667, 68.0, 3, None)},
    # comeback's 7-day baseline is its return on 03-30
    7: {7: ("2026-03-30", 400, 450, 50, 1, 50.0, 5.0, 6, None),
        30: ("2026-03-01", 60, 450, 390, 30, 13.0, 39.0, 5, None)},
    11: {7: ("2026-03-24", 140, 170, 30, 7, 4.286, 3.0, 7, None),
         30: ("2026-03-01", 110, 170, 60, 30, 2.0, 6.0, 6, None)},
}  # late (one observation) and gone (not listed on as_of) have no row
# Row order: ranked by rank, then the unranked, biggest pull_count first.
ORDER = {7: [1, 2, 5, 6, 8, 7, 11, 3, 4], 30: [1, 2, 8, 6, 7, 11, 3, 4, 5]}


@pytest.mark.parametrize("days", [7, 30])
def test_top_movers_golden(conn: sqlite3.Connection, days: int) -> None:
    names = {i: (ns, name) for i, (ns, name, _) in GOLDEN_IMAGES.items()}
    expected = []
    for image_id in ORDER[days]:
        since, start, end, *rest = MOVERS[image_id][days]
        expected.append((image_id, *names[image_id], since, "2026-03-31", start, end,
                         *rest, "cn-north-4"))
    assert conn.execute(f"SELECT * FROM top_movers_{days}d").fetchall() == expected


def test_latest_images_golden(conn: sqlite3.Connection) -> None:
    # Current state from images (gone is removed); the date of the run that last saw each.
    assert conn.execute("SELECT id, namespace, name, snapshot_date FROM latest_images "
                        "ORDER BY id").fetchall() == [
        (i, ns, name, "2026-02-28") for i, ns, name in [
            (1, "library", "nginx"), (2, "library", "busybox"), (3, "library", "stuck"),
            (4, "library", "dips"), (5, "acme", "olddip"), (6, "acme", "flat"),
            (7, "acme", "comeback"), (8, "bitnami", "nginx"), (9, "acme", "late"),
            (11, "acme", "nullcount")]]


def test_a_window_never_reaches_back_past_its_first_day(golden: Path, tmp_path: Path) -> None:
    # Without the 03-24 run, the 7-day window holds 03-26..03-31: the baseline moves forward to
    # 03-26 rather than back to 03-23 (8 days).
    db = tmp_path / "swr.db"
    db.write_bytes(golden.read_bytes())
    with sqlite3.connect(db) as edit:
        edit.execute("DELETE FROM image_snapshots WHERE run_id = 5")
        edit.execute("DELETE FROM runs WHERE run_id = 5")
    check = sqlite3.connect(db)
    assert check.execute("SELECT image_id, from_date, pull_count_from, pull_delta, days_elapsed "
                         "FROM top_movers_7d WHERE rank <= 2").fetchall() == [
        (1, "2026-03-26", 12_260_000_000, 50_000_000, 5),
        (2, "2026-03-26", 3_026_000_000, 5_000_000, 5)]
    check.close()


def _canned(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    sql = json.loads(METADATA.read_text(encoding="utf-8"))["databases"]["swr"]["queries"][key]
    cur = conn.execute(sql["sql"])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


@pytest.mark.parametrize("days,query", [(7, "top_movers_this_week"),
                                        (30, "top_movers_this_month")])
def test_view_canned_query_and_report_agree(conn: sqlite3.Connection, golden: Path, days: int,
                                            query: str) -> None:
    fields = ("id", "namespace", "name", "pull_count", "pull_delta", "pull_growth_pct", "rank")
    cur = conn.execute(f"SELECT * FROM top_movers_{days}d")
    cols = [d[0] for d in cur.description]
    view = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
    from_view = [(v["image_id"], v["namespace"], v["name"], v["pull_count"], v["pull_delta"],
                  v["pull_growth_pct"], v["rank"]) for v in view if v["rank"] is not None]
    canned = _canned(conn, query)
    from_canned = [(c["id"], c["namespace"], c["name"], c["pull_count"], c["pulls_gained"],
                    c["growth_pct"], c["rank"]) for c in canned if c["rank"] is not None]
    report = build_report(golden, days=days, top=50, now=NOW)
    from_report = [tuple(m[k] for k in fields) for m in report["top_movers"]]
    assert from_view == from_canned == from_report
    assert [r[0] for r in from_report][:2] == [1, 2]  # 12 B and 3 B pulls, ranked first
    assert all(r[3] > TWO_31 for r in from_report[:2])
    # the unranked ones agree too, with the same reason
    assert ([(v["image_id"], v["anomaly"]) for v in view if v["rank"] is None]
            == [(c["id"], c["anomaly"]) for c in canned if c["rank"] is None]
            == [(u["id"], u["kind"]) for u in report["not_ranked"]])
    assert report["window_start"] == ("2026-03-24" if days == 7 else "2026-03-01")
    # the report's top 3 are the view's first three rows
    assert [m["id"] for m in build_report(golden, days=days, top=3, now=NOW)["top_movers"]] == [
        v["image_id"] for v in view[:3]]


# --- rules the mutation campaign found unpinned (docs/development/mutation.md) -------------

def counted(conn: sqlite3.Connection, **kw: Any) -> list[tuple[str, int]]:
    """The counted runs as (date, run id): every run of these tests read the default source."""
    got = conn.execute(trends.counted_runs_sql(**kw)).fetchall()
    assert {source for _d, _r, source in got} <= {"cn-north-4"}
    return [(d, r) for d, r, _source in got]


def _runs(tmp_path: Path, *runs: tuple[int, str, dict[str, Any]]) -> sqlite3.Connection:
    conn = new_db(tmp_path / "swr.db")
    for run_id, date, extra in runs:
        add_run(conn, run_id, date, **extra)
    return conn


def test_a_runs_date_without_snapshot_date_comes_from_its_snapshots_then_its_end(
        tmp_path: Path) -> None:
    conn = _runs(tmp_path, (1, "2026-03-01", {"counts": {1: 5}, "set_snapshot_date": False}),
                 (2, "2026-03-02", {"set_snapshot_date": False}),  # no snapshots: its end day
                 (3, "2026-03-04", {}))
    # run 1's snapshots say 03-01 although it finished on another day
    conn.execute("UPDATE runs SET finished_at = '2026-03-09T00:00:00Z' WHERE run_id = 1")
    # run 2 ended past midnight: the day it ended, as the loader's date would be
    conn.execute("UPDATE runs SET finished_at = '2026-03-03T00:10:00Z' WHERE run_id = 2")
    add_run(conn, 4, "2026-03-05", set_snapshot_date=False)
    conn.execute("UPDATE runs SET finished_at = NULL WHERE run_id = 4")  # then its start day
    assert counted(conn) == [
        ("2026-03-01", 1), ("2026-03-03", 2), ("2026-03-04", 3), ("2026-03-05", 4)]


def test_filtered_runs_count_only_when_every_run_is_filtered(tmp_path: Path) -> None:
    conn = _runs(tmp_path, (1, "2026-03-01", {}), (2, "2026-03-02", {}),
                 (3, "2026-03-03", {"namespace": "library"}))
    conn.execute("INSERT INTO runs (run_id, started_at, finished_at, status, image_name, "
                 "snapshot_date) VALUES (4, '2026-03-04T02:00:00Z', '2026-03-04T02:05:00Z', "
                 "'success', 'nginx', '2026-03-04')")
    conn.execute("INSERT INTO run_sources (run_id, source, status) "
                 "VALUES (4, 'cn-north-4', 'success')")
    # a filter on the namespace alone or on the name alone is still a filter
    assert counted(conn) == [
        ("2026-03-01", 1), ("2026-03-02", 2)]
    conn.execute("DELETE FROM runs WHERE run_id IN (1, 2)")
    # every run filtered: the latest run's filter is the scope
    assert counted(conn) == [("2026-03-04", 4)]
    # two filters on the latest date: the later run decides
    add_run(conn, 5, "2026-03-04", namespace="library")
    assert counted(conn) == [
        ("2026-03-03", 3), ("2026-03-04", 5)]


@pytest.mark.parametrize("statuses", [(), ("success", "done"), ("SUCCESS",)])
def test_unknown_run_statuses_are_refused(statuses: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="unknown run statuses"):
        trends.counted_runs_sql(statuses=statuses)


def test_every_status_may_be_asked_for(tmp_path: Path) -> None:
    conn = _runs(tmp_path, (1, "2026-03-01", {"status": "failed"}),
                 (2, "2026-03-02", {"status": "partial"}), (3, "2026-03-03", {}))
    assert counted(conn, statuses=trends.RUN_STATUSES) == [
        ("2026-03-01", 1), ("2026-03-02", 2), ("2026-03-03", 3)]


def test_an_image_that_did_not_grow_is_a_mover_with_zero_gain(tmp_path: Path) -> None:
    conn = _runs(tmp_path, (1, "2026-03-01", {"counts": {1: 500, 2: 100}}),
                 (2, "2026-03-05", {"counts": {1: 500, 2: 150}}))
    add_image(conn, 1, "still")
    add_image(conn, 2, "grows")
    assert conn.execute("SELECT image_id, pull_delta, per_day, pull_growth_pct, rank "
                        "FROM top_movers_7d").fetchall() == [
        (2, 50, 12.5, 5.0, 1), (1, 0, 0.0, 0.0, 2)]


def test_observations_without_an_images_row_are_kept(tmp_path: Path) -> None:
    # The views never lose an observation for want of its name (an images row deleted by hand).
    conn = _runs(tmp_path, (1, "2026-03-01", {"counts": {1: 500}}),
                 (2, "2026-03-02", {"counts": {1: 600}}))
    assert conn.execute("SELECT image_id, namespace, name, pull_delta FROM daily_pulls "
                        "ORDER BY snapshot_date").fetchall() == [
        (1, None, None, None), (1, None, None, 100)]
    assert conn.execute("SELECT image_id, name, pull_delta, rank FROM top_movers_30d"
                        ).fetchall() == [(1, None, 100, 1)]
    # latest_images: an image whose last run is gone still lists, without a date
    add_image(conn, 1, "orphan", last_run=99)
    assert conn.execute("SELECT id, name, snapshot_date FROM latest_images").fetchall() == [
        (1, "orphan", None)]


def test_a_stuck_counter_outranks_a_decrease_in_the_same_window(tmp_path: Path) -> None:
    # 100 -> 2147483647 (stuck) -> 3e9 (stuck: one end is the int32 maximum) -> 2000 (decrease):
    # the image has both anomalies; it is reported as stuck, and never ranked.
    conn = _runs(tmp_path, (1, "2026-03-01", {"counts": {1: 100, 2: 10}}),
                 (2, "2026-03-02", {"counts": {1: STUCK, 2: 20}}),
                 (3, "2026-03-03", {"counts": {1: 3_000_000_000, 2: 30}}),
                 (4, "2026-03-04", {"counts": {1: 2000, 2: 40}}))
    add_image(conn, 1, "mixed")
    add_image(conn, 2, "steady")
    assert conn.execute("SELECT anomaly FROM daily_pulls WHERE image_id = 1 "
                        "ORDER BY snapshot_date").fetchall() == [
        (None,), ("stuck_counter",), ("stuck_counter",), ("decrease",)]
    assert conn.execute("SELECT image_id, pull_delta, rank, anomaly FROM top_movers_7d"
                        ).fetchall() == [(2, 30, 1, None), (1, None, None, "stuck_counter")]


def two_days_of_sources(conn: sqlite3.Connection,
                        plan: dict[str, dict[str, tuple[int, int, int]]]) -> None:
    """Two nightly runs per source (11-07, 11-08) of ``plan``: source -> image name -> (id,
    pulls on 11-07, pulls on 11-08)."""
    run = 0
    for source, images in plan.items():
        for name, (image_id, _, last) in images.items():
            add_image(conn, image_id, name, source=source, last_run=run + 2, pull_count=last)
        for day, column in (("2026-11-07", 1), ("2026-11-08", 2)):
            run += 1
            add_run(conn, run, day, source=source,
                    counts={i[0]: i[column] for i in images.values()})


def test_totals_across_sources_golden(tmp_path: Path) -> None:
    """top_movers_total_7d and image_totals on a hand-worked fixture of three sources: a sum
    with its growth and leading source, the 1,000-pull growth floor, a zero gain that still
    ranks, and two totals no one can rank — one with a stuck counter in one region and a decrease
    in another (stuck wins, as for one source), which has no leading source and is listed all
    the same, and one with a decrease — unranked totals by pull count, largest first."""
    from tests.helpers import q

    conn = new_db(tmp_path / "swr.db")
    # source -> image name -> (id, pulls on 11-07, pulls on 11-08)
    plan = {"a": {"x": (1, 1000, 1500), "y": (2, 500, 400), "z": (3, 100, 150)},
            "b": {"x": (11, 2000, 2734), "y": (12, STUCK, STUCK)},
            "c": {"w": (21, 10, 10), "v": (22, 9000, 8000)}}
    two_days_of_sources(conn, plan)
    conn.execute("UPDATE images SET last_updated = '2026-11-08T00:00:00Z' "
                 "WHERE source = 'b' AND id = 11")
    conn.commit()
    got = q(conn, "SELECT name, sources, pull_count_from, pull_count, pull_delta, "
                  "pull_growth_pct, rank, anomaly, top_source, top_source_delta "
                  "FROM top_movers_total_7d")
    assert got == [
        ("x", 2, 3000, 4234, 1234, 41.13, 1, None, "b", 734),  # 1234 / 3000, 2 decimals
        ("z", 1, 100, 150, 50, 5.0, 2, None, "a", 50),        # 50 / max(100, 1000)
        ("w", 1, 10, 10, 0, 0.0, 3, None, "c", 0),            # no growth, still ranked
        ("y", 2, 500 + STUCK, 400 + STUCK, None, None, None, "stuck_counter", None, None),
        ("v", 1, 9000, 8000, None, None, None, "decrease", None, None),
    ]
    assert q(conn, "SELECT name, sources, pull_count, last_updated FROM image_totals "
                   "WHERE name IN ('x', 'w') ORDER BY name") == [
        ("w", 1, 10, "2026-01-01T00:00:00Z"), ("x", 2, 4234, "2026-11-08T00:00:00Z")]
    conn.close()


def test_an_unranked_totals_leading_source_is_its_best_share_without_anomaly(
        tmp_path: Path) -> None:
    # x fell in region a (the total's gain is unknown: unranked), grew in b and c: b leads.
    # w gained 10 in b, d and e: a tie goes to the source first in order, b.
    from tests.helpers import q

    conn = new_db(tmp_path / "swr.db")
    plan = {"a": {"x": (1, 900, 800)}, "b": {"x": (11, 1000, 1100), "w": (12, 10, 20)},
            "c": {"x": (21, 500, 550)}, "d": {"w": (31, 5, 15)}, "e": {"w": (41, 1, 11)}}
    two_days_of_sources(conn, plan)
    conn.commit()
    assert q(conn, "SELECT name, sources, pull_delta, rank, anomaly, top_source, "
                   "top_source_delta FROM top_movers_total_7d") == [
        ("w", 3, 30, 1, None, "b", 10), ("x", 3, None, None, "decrease", "b", 100)]
    conn.close()


def test_the_leading_share_is_picked_inside_the_totals_aggregate() -> None:
    # Not joined back to the totals: PostgreSQL estimated both sides at one row and joined
    # 10,000 totals to 10,000 shares by a nested loop, ~70 s over a year of 10,000 images
    # (docs/development/benchmarks.md). The shares are read once.
    sql = trends.with_ctes(trends.totals_ctes(), trends.totals_select(POSTGRES))
    assert sql.count("FROM shares") == 1 and " JOIN " not in sql.split("totals AS (")[1], sql


# --- the previous window's ranks without steps (trends.ranked_ctes) ---------------------------

@functools.cache
def _empty_db() -> sqlite3.Connection:
    return new_db(Path(":memory:"))


_COUNTS = st.one_of(st.none(), st.sampled_from([0, 5, 999, 1000, 4000, STUCK - 1, STUCK,
                                                 STUCK + 1, 3 * TWO_31]))


@hypothesis_settings(max_examples=80, deadline=None)
@given(days=st.sampled_from([1, 2, 4]), history=st.lists(
    st.tuples(st.integers(0, 6), st.sampled_from(["a", "b"]),
              st.dictionaries(st.integers(1, 4), _COUNTS, max_size=4)),
    min_size=1, max_size=9))
@example(days=4, history=[(0, "a", {1: 5, 2: 5}), (1, "a", {1: STUCK, 2: 5}),
                          (2, "a", {1: STUCK, 2: 4})])  # stuck, zero gain, then a fall
@example(days=1, history=[(0, "a", {1: 5}), (3, "a", {1: 9, 2: 1}), (4, "a", {2: 3}),
                          (4, "b", {1: 3, 2: 3}), (5, "b", {1: 4})])  # gaps, late, two sources
def test_ranked_is_the_movers_with_a_rank(
        days: int, history: list[tuple[int, str, dict[int, int | None]]]) -> None:
    # Random histories (gaps, two sources, a replayed date, NULL, stuck and falling counts):
    # ranked_ctes names exactly the movers that movers_ctes ranks, with the same gains.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    _empty_db().backup(conn)  # a copy of an empty database: creating the schema costs ~80 ms
    for run_id, (day, source, counts) in enumerate(history, 1):
        add_run(conn, run_id, f"2026-03-0{day + 1}", counts=counts, source=source)
    counted = trends.counted_runs_ctes()
    movers = conn.execute(trends.with_ctes(
        trends.steps_ctes(counted, days) + trends.movers_ctes("steps"),
        "SELECT source, image_id, pull_delta FROM movers WHERE anomaly IS NULL")).fetchall()
    ranked = conn.execute(trends.with_ctes(
        trends.ranked_ctes(counted, days),
        "SELECT source, image_id, pull_delta FROM ranked")).fetchall()
    assert sorted(ranked) == sorted(movers)


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=["sqlite", "postgres"])
def test_each_engines_order_key_puts_the_unranked_last(dialect: Dialect) -> None:
    # PostgreSQL cannot name an output column (rank) inside an expression: its key must not.
    key = trends.unranked_last("m", dialect)
    assert ("rank" in key) is dialect.alias_in_expressions
    conn = sqlite3.connect(":memory:")
    got = conn.execute(
        "SELECT m.id FROM (SELECT 1 AS id, NULL AS rank, 'decrease' AS anomaly UNION ALL"
        " SELECT 2, 1, NULL UNION ALL SELECT 3, NULL, 'stuck_counter' UNION ALL"
        f" SELECT 4, 2, NULL) AS m ORDER BY {key}, m.id").fetchall()
    assert got == [(2,), (4,), (1,), (3,)]
