"""Trend report: numbers checked against values worked out by hand, formats, browser rendering."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from etl.cli import main
from etl.errors import ConfigError
from etl.report import build_report, write_report
from tests.fixtures.report_db import STUCK, add_run, build_trend_db, new_db

# The hand-worked history (a table of pull counts per date) is in tests/fixtures/report_db.py.

NOW = dt.datetime(2026, 11, 8, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture()
def trend_db(tmp_path: Path) -> Path:
    return build_trend_db(tmp_path / "swr.db")


def test_numbers_match_hand_computation(trend_db: Path) -> None:
    r = build_report(trend_db, days=7, top=10, now=NOW)
    # as_of 11-08; 11-08 minus 7 days = 11-01, a run date, so the window starts there;
    # the previous window is 10-25..11-01.
    assert (r["as_of"], r["window_days"], r["window_start"], r["previous_window_start"]) == (
        "2026-11-08", 7, "2026-11-01", "2026-10-25")
    assert r["as_of_run_id"] == 8  # 10-25 is run 1, ..., 11-06 runs 5 and 6, 11-08 run 8
    assert r["run_dates"] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-06",
                              "2026-11-07", "2026-11-08"]
    # images at 11-08: alpine, nginx, stuck, new; 5600 + 64100 + 2147483647 + 400.
    # Deltas in the window (increases only; a step onto STUCK and a decrease count 0):
    #   alpine 1000 + 500 + 1800 + 0 + 600 = 3900   nginx 1000 + 0 + 3000 + 0 + 600 = 4600
    #   stuck 0 (2147483000 -> STUCK is a step onto the stuck value)   old 50 + 40 = 90
    #   new (from its first sighting) 0 + 300 = 300                     total 8890
    assert r["totals"] == {"images": 4, "pull_count": 2147553747, "pull_delta": 8890,
                           # window daily rates 11-02..11-08: 2050, 540, 1600 x3, 0, 1500
                           "daily_avg_7d": 1270.0,
                           "new_images": 1, "removed_images": 1, "anomalies": 3}
    # Previous window ranks (10-25 -> 11-01): nginx 10000, stuck 3000, alpine 700, old 100.
    # Growth: nginx 4600/60000, alpine 3900/1700, new 300/max(100, 1000), stuck 0.
    # 7-day averages over 11-02..11-08, gap days at delta/3:
    #   nginx (1000 + 0 + 1000*3 + 0 + 600)/7, alpine (1000 + 500 + 600*3 + 0 + 600)/7,
    #   new only has 11-07 and 11-08 covered: (0 + 300)/2.
    got = [{k: m[k] for k in ("rank", "rank_change", "id", "namespace", "name", "pull_count",
                              "pull_delta", "pull_growth_pct", "start_pull_count", "since",
                              "daily_avg_7d")} for m in r["top_movers"]]
    assert got == [
        {"rank": 1, "rank_change": 0, "id": 2, "namespace": "library", "name": "nginx",
         "pull_count": 64100, "pull_delta": 4600, "pull_growth_pct": 7.67,
         "start_pull_count": 60000, "since": "2026-11-01", "daily_avg_7d": 657.14},
        {"rank": 2, "rank_change": 1, "id": 1, "namespace": "library", "name": "alpine",
         "pull_count": 5600, "pull_delta": 3900, "pull_growth_pct": 229.41,
         "start_pull_count": 1700, "since": "2026-11-01", "daily_avg_7d": 557.14},
        {"rank": 3, "rank_change": None, "id": 5, "namespace": "acme", "name": "new",
         "pull_count": 400, "pull_delta": 300, "pull_growth_pct": 30.0,
         "start_pull_count": 100, "since": "2026-11-06", "daily_avg_7d": 150.0},
        {"rank": 4, "rank_change": -2, "id": 3, "namespace": "library", "name": "stuck",
         "pull_count": STUCK, "pull_delta": 0, "pull_growth_pct": 0.0,
         "start_pull_count": 2147483000, "since": "2026-11-01", "daily_avg_7d": 0.0},
    ]
    # nginx's calendar-day rates 11-02..11-08 (the sparkline) and its cumulative delta.
    assert r["top_movers"][0]["daily"] == [1000.0, 0.0, 1000.0, 1000.0, 1000.0, 0.0, 600.0]
    assert [(h["date"], h["cumulative_delta"]) for h in r["top_movers"][0]["history"]] == [
        ("2026-11-01", 0), ("2026-11-02", 1000), ("2026-11-03", 1000), ("2026-11-06", 4000),
        ("2026-11-07", 4000), ("2026-11-08", 4600)]
    assert r["new_images"] == [{"id": 5, "namespace": "acme", "name": "new",
                                "first_seen": "2026-11-06", "pull_count": 400}]
    assert r["removed_images"] == [{"id": 4, "namespace": "acme", "name": "old",
                                    "last_seen": "2026-11-03", "pull_count": 990}]
    assert r["anomalies"] == [
        {"id": 3, "namespace": "library", "name": "stuck", "kind": "stuck_counter",
         "date": "2026-11-02",
         "detail": "pull_count stuck at 2,147,483,647 (the int32 maximum) since 2026-11-02; "
                   "growth unknown"},
        {"id": 2, "namespace": "library", "name": "nginx", "kind": "decrease",
         "date": "2026-11-03",
         "detail": "pull_count fell from 61,000 to 60,500 between 2026-11-02 and 2026-11-03; "
                   "the interval counts as 0"},
        # 11-07 vs 11-06: alpine, nginx, new unchanged (stuck left out) = 3 of 3 > 80 %.
        # No other day qualifies (11-03: all three moved; nginx's drop is a move).
        {"id": None, "namespace": None, "name": None, "kind": "stale_source",
         "date": "2026-11-07",
         "detail": "3 of 3 images (100%) kept the same pull_count as on 2026-11-06: the "
                   "source may not have refreshed"},
    ]
    # Whole-listing totals per run date; the gap's 4800 spread over 3 days.
    assert [(d["date"], d["pull_delta"], d["days_elapsed"], d["daily_pulls"])
            for d in r["daily"]] == [
        ("2026-11-01", None, None, None), ("2026-11-02", 2050, 1, 2050.0),
        ("2026-11-03", 540, 1, 540.0), ("2026-11-06", 4800, 3, 1600.0),
        ("2026-11-07", 0, 1, 0.0), ("2026-11-08", 1500, 1, 1500.0)]


def test_window_longer_than_history_has_no_rank_change(trend_db: Path) -> None:
    r = build_report(trend_db, days=30, top=2, now=NOW)
    assert (r["window_start"], r["previous_window_start"]) == ("2026-10-25", None)
    # Whole history 10-25..11-08: nginx 10000 + 1000 + 0 + 3000 + 0 + 600 = 14600;
    # alpine 700 + 3900 = 4600; stuck 3000 + 0; old 100 + 90; new 300 -> 22690.
    assert r["totals"]["pull_delta"] == 22690
    assert [(m["name"], m["pull_delta"], m["rank"], m["rank_change"])
            for m in r["top_movers"]] == [("nginx", 14600, 1, None), ("alpine", 4600, 2, None)]
    # nginx grew 14600 on a 50000 start: 29.2 %.
    assert r["top_movers"][0]["pull_growth_pct"] == 29.2


def test_filtered_runs_do_not_mix_with_whole_listings(trend_db: Path) -> None:
    conn = sqlite3.connect(trend_db)
    add_run(conn, 95, "2026-11-08", hour=11, namespace="acme", counts={5: 1})
    conn.commit()
    conn.close()
    r = build_report(trend_db, days=7, top=1, now=NOW)
    assert (r["as_of_run_id"], r["totals"]["images"], r["totals"]["pull_delta"]) == (8, 4, 8890)


def test_json_markdown_html_and_format_choice(trend_db: Path, tmp_path: Path) -> None:
    expected = build_report(trend_db, days=7, top=3, now=NOW)
    out = write_report(trend_db, tmp_path / "r" / "trend.json", days=7, top=3, now=NOW)
    assert out == tmp_path / "r" / "trend.json"
    assert json.loads(out.read_text(encoding="utf-8")) == expected
    assert sorted(p.name for p in out.parent.iterdir()) == ["trend.json"]  # no temp left

    md = write_report(trend_db, tmp_path / "trend.txt", days=7, top=3, fmt="md", now=NOW)
    lines = md.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# SWR official images: pull-count trends"
    assert "- Pulls gained in the window: **8.9 k** (8,890)" in lines
    assert "| 1 | = | library/nginx | 64.1 k | 4.6 k | 7.7 % | 657.1 |" in lines
    assert "| 2 | ▲ 1 | library/alpine | 5.6 k | 3.9 k | 229.4 % | 557.1 |" in lines
    assert "| 3 | new | acme/new | 400 | 300 | 30.0 % | 150 |" in lines
    assert "| 5 | acme/new | 2026-11-06 | 400 |" in lines
    assert "| 4 | acme/old | 2026-11-03 | 990 |" in lines

    page = write_report(trend_db, tmp_path / "trend.HTML", days=7, top=3, now=NOW)
    text = page.read_text(encoding="utf-8")
    assert text.count('src="data:image/svg+xml;base64,') == 3
    assert text.count('<svg class="spark"') == 3
    for needle in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert needle not in text.replace("http://www.w3.org", ""), needle
    assert "pull_count fell from 61,000 to 60,500 between 2026-11-02 and 2026-11-03" in text
    assert ">64.1 k<" in text and "229.4 %" in text


@pytest.mark.parametrize("name,fmt,message", [
    ("r.txt", None, "cannot tell the report format from 'r.txt': name it .html, .md or .json, "
                    "or pass --format html|md|json"),
    ("r.html", "pdf", "unknown report format 'pdf': use html, md or json"),
])
def test_unknown_format_is_config_error(trend_db: Path, tmp_path: Path, name: str,
                                        fmt: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        write_report(trend_db, tmp_path / name, fmt=fmt, now=NOW)
    assert str(exc.value) == message
    assert list(tmp_path.glob("r.*")) == []


def test_no_data_is_a_one_line_exit_2(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "swr.db"
    conn = new_db(empty)
    add_run(conn, 1, "2026-11-01", status="failed", counts={1: 5})
    conn.close()
    with pytest.raises(ConfigError) as exc:
        build_report(empty, now=NOW)
    assert str(exc.value) == "no successful run to report on: run 'swr-etl sync' first"
    for db in (empty, tmp_path / "missing.db"):
        with pytest.raises(SystemExit) as stop:
            main(["report", "--db", str(db), "--out", str(tmp_path / "r.html")])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("swr-etl: error: "), err
    assert err == [f"swr-etl: error: database not found: {tmp_path / 'missing.db'} "
                   "(run 'swr-etl sync' first)"]
    assert not (tmp_path / "r.html").exists()


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason="no chromium binary on PATH (apt-get install "
                                                "chromium); cannot render the HTML report")
def test_html_renders_in_headless_chromium(trend_db: Path, tmp_path: Path) -> None:
    from PIL import Image

    page = write_report(trend_db, tmp_path / "report.html", days=7, top=5, now=NOW)
    shot = tmp_path / "shot.png"
    cmd = [str(_browser()), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--no-first-run",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    counts = image.getcolors(maxcolors=1280 * 2000)  # [(pixels, (r, g, b)), ...]
    assert counts is not None
    total = 1280 * 2000
    colours = {(r // 16, g // 16, b // 16) for _n, (r, g, b) in counts}
    inked = sum(n for n, (r, g, b) in counts if min(r, g, b) < 200) / total
    # A blank page is one or two colours; text, tables, cards and charts add many.
    assert len(colours) >= 40, len(colours)
    assert inked > 0.03, inked
    # Chart colours made it to the screen: the blue first series, the pink second one.
    blue = sum(n for n, (r, g, b) in counts if b > 180 and r < 90 and g < 140)
    pink = sum(n for n, (r, g, b) in counts if r > 180 and g < 80 and b > 80)
    assert blue > 500 and pink > 200, (blue, pink)


def test_a_single_run_reports_zero_movement(tmp_path: Path) -> None:
    conn = new_db(tmp_path / "one.db")
    add_run(conn, 1, "2026-11-08", counts={1: 10, 2: (None, None)})
    r = build_report(conn, days=30, top=5, now=NOW)  # a connection works as well as a path
    conn.close()
    assert (r["as_of"], r["window_start"], r["previous_window_start"]) == (
        "2026-11-08", "2026-11-08", None)
    assert r["totals"] == {"images": 2, "pull_count": 10, "pull_delta": 0, "daily_avg_7d": None,
                           "new_images": 0, "removed_images": 0, "anomalies": 0}
    assert [(m["id"], m["pull_delta"], m["rank_change"], m["daily_avg_7d"])
            for m in r["top_movers"]] == [(1, 0, None, None), (2, 0, None, None)]
    text = write_report(tmp_path / "one.db", tmp_path / "one.html", now=NOW).read_text(
        encoding="utf-8")
    assert text.count("data:image/svg+xml;base64,") == 2  # no per-day chart from one date
    assert "<td><b>#2</b></td>" in text  # an id without an images row is shown by id


def test_a_callers_connection_is_left_as_found(trend_db: Path) -> None:
    conn = sqlite3.connect(trend_db)  # default (implicit-transaction) mode
    assert build_report(conn, days=7, now=NOW)["totals"]["pull_delta"] == 8890
    assert not conn.in_transaction  # no read snapshot held against the next sync
    assert conn.execute("SELECT name FROM sqlite_temp_master").fetchall() == []
    conn.close()
