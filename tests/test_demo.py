"""The one-command demo: N nights of history, a Parquet export per night, a report that agrees."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from etl.cli.app import main
from etl.demo import DEMO_REGIONS, run_demo

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, days=6, images=40, interactive=False, now=NOW)


def test_history_spans_the_nights_ending_today(demo) -> None:
    conn = sqlite3.connect(demo.db)
    runs = conn.execute("SELECT status, snapshot_date FROM runs ORDER BY run_id").fetchall()
    expected = [(date(2026, 3, 10) - timedelta(days=5 - i)).isoformat() for i in range(6)]
    assert runs == [("success", d) for d in expected]
    # every night's snapshots equal the images that night's run saw
    per_run = conn.execute(
        "SELECT r.rows_loaded, COUNT(s.image_id) FROM runs r "
        "JOIN image_snapshots s USING (run_id) GROUP BY r.run_id").fetchall()
    assert all(loaded == snaps for loaded, snaps in per_run)
    assert demo.runs_ok == 6 and demo.nights == 6


def test_parquet_history_matches_the_database(demo) -> None:
    df = pd.read_parquet(demo.exports)  # the folder, no arguments
    assert sorted(df["snapshot_date"].astype(str).unique()) == [
        (date(2026, 3, 10) - timedelta(days=5 - i)).isoformat() for i in range(6)]
    conn = sqlite3.connect(demo.db)
    db = pd.read_sql_query(
        "SELECT s.image_id AS id, s.snapshot_date, s.source, s.pull_count FROM image_snapshots s "
        "ORDER BY s.snapshot_date, s.source, s.image_id", conn)
    got = df[["id", "snapshot_date", "source", "pull_count"]].copy()
    got["snapshot_date"] = got["snapshot_date"].astype(str)
    got["source"] = got["source"].astype(str)
    got = got.sort_values(["snapshot_date", "source", "id"]).reset_index(drop=True)
    assert sorted(got["source"].unique()) == sorted(DEMO_REGIONS)
    assert got["id"].tolist() == db["id"].tolist()
    assert got["source"].tolist() == db["source"].tolist()
    assert got["pull_count"].astype("int64").tolist() == db["pull_count"].tolist()


def test_report_numbers_match_the_database(demo) -> None:
    from etl.publish.report import build_report

    html = demo.report.read_text(encoding="utf-8")
    assert "<svg" in html or "data:image/png;base64," in html  # charts are embedded
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained
    assert 'id="regions"' in html  # three regions: the breakdown shows which drive growth
    report = build_report(demo.db, days=6, top=5, now=NOW)
    conn = sqlite3.connect(demo.db)
    first, last = conn.execute("SELECT MIN(run_id), MAX(run_id) FROM runs").fetchone()
    (total_now,) = conn.execute(
        "SELECT SUM(pull_count) FROM image_snapshots WHERE run_id = ?", (last,)).fetchone()
    assert report["totals"]["pull_count"] == total_now
    assert report["totals"]["images"] == conn.execute(
        "SELECT COUNT(*) FROM image_snapshots WHERE run_id = ?", (last,)).fetchone()[0]
    top = report["top_movers"][0]
    start, end = conn.execute(
        "SELECT (SELECT pull_count FROM image_snapshots WHERE run_id = ? AND source = ?"
        "        AND image_id = ?),"
        "       (SELECT pull_count FROM image_snapshots WHERE run_id = ? AND source = ?"
        "        AND image_id = ?)",
        (first, top["source"], top["id"], last, top["source"], top["id"])).fetchone()
    assert top["pull_count"] == end
    assert top["pull_delta"] <= end - start or start is None


def test_the_explore_suggestion_agrees_with_the_report(demo) -> None:
    from etl.demo import describe
    from etl.publish.report import build_report

    line = next(x for x in describe(demo) if "sqlite-utils query" in x)
    sql = line.split('"')[1]
    assert "namespace" in sql  # one name can exist in several namespaces
    rows = sqlite3.connect(demo.db).execute(sql).fetchall()
    report = build_report(demo.db, days=demo.nights, top=10, now=NOW)  # what the demo wrote
    assert rows == [(m["rank"], m["namespace"], m["name"], m["pull_delta"], m["top_source"])
                    for m in report["regions"]]  # the report's region breakdown
    assert len(rows) == 10


def test_the_explore_pandas_line_runs_as_printed(demo) -> None:
    from etl.demo import describe

    line = next(x for x in describe(demo) if "python -c" in x)
    code = line.split('python -c "', 1)[1].rsplit('"', 1)[0]
    assert f"pd.read_parquet('{demo.exports}');" in code  # the plain call, no arguments
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    printed = [tuple(m.groups()) for m in
               re.finditer(r"^(\d{4}-\d\d-\d\d)\s+(\d+)$", done.stdout, re.MULTILINE)]
    totals = sqlite3.connect(demo.db).execute(
        "SELECT snapshot_date, SUM(pull_count) FROM image_snapshots GROUP BY 1 ORDER BY 1")
    assert printed == [(d, str(total)) for d, total in totals]
    assert len(printed) == 6


def test_rerun_replaces_the_demo_instead_of_stacking_it(tmp_path: Path) -> None:
    run_demo(tmp_path, days=2, images=10, interactive=False, now=NOW)
    (tmp_path / "mine.txt").write_text("keep me")
    again = run_demo(tmp_path, days=3, images=10, interactive=False, now=NOW)
    conn = sqlite3.connect(again.db)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
    assert len(list(again.exports.glob("source=*/snapshot_date=*"))) == 3 * len(DEMO_REGIONS)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_demo_prints_where_everything_is(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--dir", str(tmp_path / "d"), "--days", "2", "--images", "12"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"database: {tmp_path / 'd' / 'swr.db'}" in out
    assert "report:" in out and "sqlite-utils query" in out and "swr-etl runs --db" in out
    manifest = json.loads((tmp_path / "d" / "exports" / "_manifest.json").read_text())
    assert len(manifest["partitions"]) == 2 * 3  # one entry per exported partition
    assert len(list((tmp_path / "d" / "exports").glob(
        "source=*/snapshot_date=*/images.parquet"))) == 2 * 3


def test_demo_folder_that_is_a_file_is_a_usage_error(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--dir", str(f), "--days", "1", "--images", "5"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"swr-etl: error: Invalid value for '--dir': Directory '{f}' is a file.")


def test_demo_leaves_the_callers_log_levels_alone(tmp_path: Path) -> None:
    import logging

    names = ("etl.pipeline", "etl.export", "etl.load", "etl.report")
    before = [logging.getLogger(n).level for n in names]
    logging.getLogger("etl").setLevel(logging.INFO)
    run_demo(tmp_path, days=1, images=5, interactive=False, now=NOW)
    assert [logging.getLogger(n).level for n in names] == before
