"""``report`` from PostgreSQL says what it says from SQLite: the same histories copied into both
engines give the same JSON document, and so the same HTML and Markdown."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from etl.errors import ConfigError
from etl.publish.report import build_report, write_report
from tests.fixtures.report_db import build_trend_db
from tests.helpers import cli, spy_on_ranks_aside
from tests.test_pg_export import OTHER, golden_two_sources, in_postgres

psycopg = pytest.importorskip("psycopg")

TREND_NOW = dt.datetime(2026, 11, 8, 12, 0, tzinfo=dt.timezone.utc)  # tests/test_report.py's
GOLDEN_NOW = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.timezone.utc)


def both(build: Any, tmp_path: Path, url: str) -> tuple[Path, str]:
    db = build(tmp_path / "swr.db")
    return db, in_postgres(db, url)


@pytest.mark.parametrize(("days", "top", "sources"), [
    (7, 10, ()), (30, 2, ()), (1, 10, ()), (3, 1, ()), (7, 10, ("cn-north-4",))])
def test_the_hand_worked_history_reports_alike(tmp_path: Path, pg_url: str, days: int,
                                               top: int, sources: tuple[str, ...]) -> None:
    db, url = both(build_trend_db, tmp_path, pg_url)
    from_pg = build_report(url, days=days, top=top, now=TREND_NOW, sources=sources)
    assert from_pg == build_report(db, days=days, top=top, now=TREND_NOW, sources=sources)
    if days == 7:  # the values, not only their agreement (tests/test_report.py works them out)
        assert (from_pg["totals"]["pull_delta"], from_pg["totals"]["daily_avg_7d"]) == (8890,
                                                                                       1270.0)
        assert [(m["name"], m["pull_growth_pct"], m["per_day"]) for m in
                from_pg["top_movers"]] == [("alpine", 229.41, 557.143), ("new", 30.0, 150.0)]
        assert isinstance(from_pg["top_movers"][1]["pull_growth_pct"], float)
        assert isinstance(from_pg["totals"]["pull_count"], int)


@pytest.mark.parametrize(("days", "top", "sources"), [
    (7, 10, ()), (30, 3, ()), (7, 5, (OTHER,)), (30, 10, ("cn-north-4", OTHER))])
def test_the_golden_history_of_two_sources_reports_alike(tmp_path: Path, pg_url: str, days: int,
                                                         top: int,
                                                         sources: tuple[str, ...]) -> None:
    db, url = both(golden_two_sources, tmp_path, pg_url)
    from_pg = build_report(url, days=days, top=top, now=GOLDEN_NOW, sources=sources)
    assert from_pg == build_report(db, days=days, top=top, now=GOLDEN_NOW, sources=sources)
    assert from_pg["top_movers"] and from_pg["anomalies"]
    if not sources:
        assert from_pg["sources"] == ["cn-north-4", OTHER] and from_pg["regions"]


@pytest.mark.parametrize("fmt", ["json", "md", "html"])
def test_every_format_renders_the_same_from_both_engines(tmp_path: Path, pg_url: str,
                                                         fmt: str) -> None:
    db, url = both(golden_two_sources, tmp_path, pg_url)
    a = write_report(db, tmp_path / f"a.{fmt}", days=30, top=5, now=GOLDEN_NOW)
    b = write_report(url, tmp_path / f"b.{fmt}", days=30, top=5, now=GOLDEN_NOW)
    assert b.read_bytes() == a.read_bytes()
    assert "nginx" in b.read_text(encoding="utf-8")


def test_the_second_backend_ranks_in_the_reports_own_snapshot(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """From PostgreSQL the previous window is ranked in a second backend that imports the
    report's snapshot: a run failed by another session after the report began is still counted
    there, as in the report's own transaction (a fresh transaction would not count it, and the
    ranks would be computed a second time, on the report's connection)."""
    db, url = both(build_trend_db, tmp_path, pg_url)
    expected = build_report(db, days=7, top=10, now=TREND_NOW)

    def fail_one(runs: Any) -> None:
        with psycopg.connect(url, autocommit=True) as other:  # commits after the snapshot
            other.execute("UPDATE run_sources SET status = 'failed' WHERE run_id = %s",
                          (runs[0][2],))

    aside = spy_on_ranks_aside(monkeypatch, before=fail_one)
    assert build_report(url, days=7, top=10, now=TREND_NOW) == expected
    # nginx 10000, stuck 3000, alpine 700, old 100 in 10-25..11-01 (tests/test_report.py)
    assert len(aside) == 1 and sorted(aside[0], key=lambda r: r[2]) == [
        ("cn-north-4", 2, 1), ("cn-north-4", 3, 2), ("cn-north-4", 1, 3), ("cn-north-4", 4, 4)]


def test_a_refused_snapshot_export_leaves_the_reader_usable(tmp_path: Path,
                                                          pg_url: str) -> None:
    """The server refuses to export from a subtransaction: the reader gets None, its
    transaction is rolled back, and its next query runs in a new one."""
    from etl.store import pg

    _db, url = both(build_trend_db, tmp_path, pg_url)
    with pg.open_reader(url, ("runs",), "{db}", read_only=False) as reader:
        reader.execute("SAVEPOINT inner_one")
        assert reader.export_snapshot() is None
        assert reader.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 11
        assert reader.export_snapshot()  # a new top-level transaction exports


def test_a_snapshot_id_is_checked_before_it_is_written_into_sql(pg_url: str) -> None:
    from etl.store import pg

    with pytest.raises(ConfigError, match="not a snapshot id"):
        with pg.open_reader(pg_url, ("runs",), "{db}", snapshot="1'; DROP TABLE runs; --"):
            pass


def test_the_report_writes_nothing_to_the_database(tmp_path: Path, pg_url: str) -> None:
    _db, url = both(build_trend_db, tmp_path, pg_url)

    def state() -> dict[str, Any]:
        with psycopg.connect(url) as conn:
            tables = [t for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                "'public' ORDER BY 1")]
            return {t: conn.execute(f"SELECT md5(string_agg(x::text, ',' ORDER BY x::text)), "
                                    f"count(*) FROM {t} AS x").fetchone() for t in tables}

    before = state()
    build_report(url, days=7, top=3, now=TREND_NOW)
    assert state() == before
    assert before["image_snapshots"][1] == 36 and "report_runs" not in before


def test_the_cli_reports_a_url_and_refuses_what_it_cannot_use(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db, url = both(build_trend_db, tmp_path, pg_url)
    # No --now on the command line: a report of "today" over this history says the same
    # from both engines all the same.
    lite = cli(["report", "--db", str(db), "--out", "-", "--format", "json"], capsys)
    pg = cli(["report", "--db", url, "--out", "-", "--format", "json"], capsys)
    assert lite.code == pg.code == 0
    strip = [{k: v for k, v in json.loads(r.out).items() if k != "generated_at"}
             for r in (lite, pg)]
    assert strip[0] == strip[1] and strip[1]["as_of"] == "2026-11-09"
    unknown = cli(["report", "--db", url, "--out", "-", "--format", "json", "--source", "x"],
                  capsys)
    assert (unknown.code, unknown.err) == (
        2, "swr-etl: error: no source 'x' in the database (its sources: cn-north-4)\n")
    other = cli(["report", "--db", url + "?schema=elsewhere", "--out", str(tmp_path / "r.md")],
                capsys)
    assert other.code == 2 and other.err.count("\n") == 1
    assert "is not an swr-etl database" in other.err and not (tmp_path / "r.md").exists()


def test_an_empty_schema_has_nothing_to_report(pg_url: str) -> None:
    from etl.store.pg_schema import ensure_schema

    with psycopg.connect(pg_url, autocommit=True) as conn:
        ensure_schema(conn, "public")
    with pytest.raises(ConfigError, match="^no successful run to report on"):
        build_report(pg_url, now=TREND_NOW)


@pytest.mark.parametrize(("query", "params", "expected"), [
    ("SELECT a FROM t WHERE b = ? AND c = ?", (1, 2),
     ("SELECT a FROM t WHERE b = %s AND c = %s", (1, 2))),
    ("SELECT CAST(:d AS date)::text, '%' FROM t WHERE x <= :until AND y = :other",
     {"d": "2026-01-01", "until": "2026-02-01"},
     ("SELECT CAST(%(d)s AS date)::text, '%%' FROM t WHERE x <= %(until)s AND y = :other",
      {"d": "2026-01-01", "until": "2026-02-01"})),
    ("SELECT '%' FROM t", (), ("SELECT '%' FROM t", None)),  # no parameters: taken as is
    ("SELECT 1 FROM t", {"until": None}, ("SELECT 1 FROM t", {"until": None})),
])
def test_sqlite_placeholders_become_psycopg_ones(query: str, params: Any,
                                                 expected: tuple[str, Any]) -> None:
    from etl.store.pg import pg_query

    assert pg_query(query, params) == expected


def test_a_callers_sqlite_connection_still_works(tmp_path: Path) -> None:
    conn = sqlite3.connect(build_trend_db(tmp_path / "swr.db"))
    try:
        assert build_report(conn, days=7, now=TREND_NOW)["as_of"] == "2026-11-08"
    finally:
        conn.close()


def test_postgresql_leaves_a_core_free_at_once(tmp_path: Path, pg_url: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL computes the report in its backends: an HTML report's renderers are imported
    at once, before the previous window is ranked beside this one, even on two cores (from a
    SQLite file they wait for the window's steps: tests/test_report.py)."""
    from etl.publish import report as report_module

    monkeypatch.setattr(report_module, "cores", lambda: 2)
    _, url = both(build_trend_db, tmp_path, pg_url)
    order: list[str] = []
    ranks_aside = report_module._ranks_aside

    def spy(*args: Any) -> Any:
        order.append("ranks aside")
        return ranks_aside(*args)

    monkeypatch.setattr(report_module, "_ranks_aside", spy)
    report_module._build_report(url, days=7, top=10, now=TREND_NOW, sources=(),
                                on_core_free=lambda: order.append("core free"))
    assert order == ["core free", "ranks aside"]
