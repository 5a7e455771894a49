"""Trend report: numbers checked against values worked out by hand, formats, browser rendering."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from etl.cli.app import main
from etl.errors import ConfigError
from etl.publish import report as report_module
from etl.publish.report import build_report, write_report
from etl.store.snapshot_read import second_reader
from tests.fixtures.report_db import SOURCE, STUCK, add_run, build_trend_db, new_db
from tests.helpers import spy_on_ranks_aside

# The hand-worked history (a table of pull counts per date) is in tests/fixtures/report_db.py.

NOW = dt.datetime(2026, 11, 8, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture()
def trend_db(tmp_path: Path) -> Path:
    return build_trend_db(tmp_path / "swr.db")


def test_numbers_match_hand_computation(trend_db: Path) -> None:
    r = build_report(trend_db, days=7, top=10, now=NOW)
    # as_of 11-08; the window holds the run dates from 11-08 minus 7 days = 11-01 (included);
    # the previous window ends where this one starts: 10-25..11-01.
    assert (r["as_of"], r["window_days"], r["window_start"], r["previous_window_start"]) == (
        "2026-11-08", 7, "2026-11-01", "2026-10-25")
    assert (r["notice"], r["next_run_due"]) == (None, None)
    assert r["as_of_run_id"] == 8  # 10-25 is run 1, ..., 11-06 runs 5 and 6, 11-08 run 8
    assert r["run_dates"] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-06",
                              "2026-11-07", "2026-11-08"]
    # images at 11-08: alpine, nginx, stuck, new; 5600 + 64100 + 2147483647 + 400.
    # Known steps in the window (a decrease and a step touching STUCK are unknown, add nothing):
    #   alpine 1000 + 500 + 1800 + 0 + 600 = 3900   nginx 1000 + ? + 3000 + 0 + 600 = 4600
    #   stuck ? (2147483000 -> STUCK) and STUCK -> STUCK   old 50 + 40 = 90
    #   new (from its first sighting) 0 + 300 = 300                     total 8890
    assert r["totals"] == {"images": 4, "pull_count": 2147553747, "pull_delta": 8890,
                           # window daily rates 11-02..11-08: 2050, 540, 1600 x3, 0, 1500
                           "daily_avg_7d": 1270.0,
                           "new_images": 1, "removed_images": 1, "anomalies": 3,
                           "not_ranked": 2}
    # Ranked: images listed on 11-08 with no decrease or stuck step in the window. nginx fell on
    # 11-03 and stuck is stuck: both unranked, marked. Previous window (10-25 -> 11-01) ranks:
    # nginx 10000, stuck 3000, alpine 700, old 100 -> alpine climbed from 3 to 1.
    # Growth: alpine 3900/1700, new 300/max(100, 1000). per_day: gain / days since baseline.
    # 7-day averages over 11-02..11-08, gap days at delta/3:
    #   alpine (1000 + 500 + 600*3 + 0 + 600)/7; new only has 11-07 and 11-08 covered: 300/2.
    got = [{k: m[k] for k in ("rank", "rank_change", "id", "namespace", "name", "pull_count",
                              "pull_delta", "pull_growth_pct", "start_pull_count", "since",
                              "days_elapsed", "per_day", "daily_avg_7d")}
           for m in r["top_movers"]]
    assert got == [
        {"rank": 1, "rank_change": 2, "id": 1, "namespace": "library", "name": "alpine",
         "pull_count": 5600, "pull_delta": 3900, "pull_growth_pct": 229.41,
         "start_pull_count": 1700, "since": "2026-11-01", "days_elapsed": 7, "per_day": 557.143,
         "daily_avg_7d": 557.14},
        {"rank": 2, "rank_change": None, "id": 5, "namespace": "acme", "name": "new",
         "pull_count": 400, "pull_delta": 300, "pull_growth_pct": 30.0,
         "start_pull_count": 100, "since": "2026-11-06", "days_elapsed": 2, "per_day": 150.0,
         "daily_avg_7d": 150.0},
    ]
    assert r["not_ranked"] == [  # biggest first
        {"id": 3, "namespace": "library", "name": "stuck", "kind": "stuck_counter",
         "date": "2026-11-02", "pull_count": STUCK, "source": SOURCE},
        {"id": 2, "namespace": "library", "name": "nginx", "kind": "decrease",
         "date": "2026-11-03", "pull_count": 64100, "source": SOURCE},
    ]
    # alpine's calendar-day rates 11-02..11-08 (the sparkline) and its cumulative gain.
    assert r["top_movers"][0]["daily"] == [1000.0, 500.0, 600.0, 600.0, 600.0, 0.0, 600.0]
    assert [(h["date"], h["cumulative_delta"]) for h in r["top_movers"][0]["history"]] == [
        ("2026-11-01", 0), ("2026-11-02", 1000), ("2026-11-03", 1500), ("2026-11-06", 3300),
        ("2026-11-07", 3300), ("2026-11-08", 3900)]
    assert r["new_images"] == [{"id": 5, "namespace": "acme", "name": "new",
                                "first_seen": "2026-11-06", "pull_count": 400,
                                "source": SOURCE}]
    assert r["removed_images"] == [{"id": 4, "namespace": "acme", "name": "old",
                                    "last_seen": "2026-11-03", "pull_count": 990,
                                    "source": SOURCE}]
    assert r["anomalies"] == [
        {"id": 3, "namespace": "library", "name": "stuck", "kind": "stuck_counter",
         "date": "2026-11-02", "source": SOURCE,
         "detail": "pull_count stuck at 2,147,483,647 (the int32 maximum) since 2026-11-02; "
                   "growth unknown, not ranked"},
        {"id": 2, "namespace": "library", "name": "nginx", "kind": "decrease",
         "date": "2026-11-03", "source": SOURCE,
         "detail": "pull_count fell from 61,000 to 60,500 between 2026-11-02 and 2026-11-03; "
                   "growth unknown, not ranked"},
        # 11-07 vs 11-06: alpine, nginx, new unchanged (stuck left out) = 3 of 3 > 80 %.
        # No other day qualifies (11-03: all three moved; nginx's drop is a move).
        {"id": None, "namespace": None, "name": None, "kind": "stale_source",
         "date": "2026-11-07", "source": None,
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
    # Whole history 10-25..11-08, known steps: nginx 10000 + 1000 + 3000 + 0 + 600 = 14600;
    # alpine 700 + 3900 = 4600; stuck 3000 (below the stuck value); old 100 + 90; new 300.
    assert r["totals"]["pull_delta"] == 22690
    assert [(m["name"], m["pull_delta"], m["rank"], m["rank_change"])
            for m in r["top_movers"]] == [("alpine", 4600, 1, None), ("new", 300, 2, None)]
    # alpine grew 4600 on a 1000 start: 460 %.
    assert r["top_movers"][0]["pull_growth_pct"] == 460.0


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
    assert "| 1 | ▲ 2 | library/alpine | 5.6 k | 3.9 k | 229.4 % | 557.1 |" in lines
    assert "| 2 | new | acme/new | 400 | 300 | 30.0 % | 150 |" in lines
    # the unranked are marked on their rows, right under the ranking
    assert ("| – | not ranked | library/stuck | 2.1 B | stuck counter since 2026-11-02 | – | – |"
            in lines)
    assert "| – | not ranked | library/nginx | 64.1 k | decrease on 2026-11-03 | – | – |" in lines
    assert "| 5 | acme/new | 2026-11-06 | 400 |" in lines
    assert "| 4 | acme/old | 2026-11-03 | 990 |" in lines

    page = write_report(trend_db, tmp_path / "trend.HTML", days=7, top=3, now=NOW)
    text = page.read_text(encoding="utf-8")
    assert text.count('src="data:image/svg+xml;base64,') == 3
    assert text.count('<svg class="spark"') == 2  # one per ranked mover
    for needle in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert needle not in text.replace("http://www.w3.org", ""), needle
    assert "pull_count fell from 61,000 to 60,500 between 2026-11-02 and 2026-11-03" in text
    assert ">64.1 k<" in text and "229.4 %" in text
    assert '<span class="tag stuck_counter">stuck counter since 2026-11-02</span>' in text
    assert '<span class="tag decrease">decrease on 2026-11-03</span>' in text


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


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a throwaway profile and nothing reaching out to the network."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [str(_browser()), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--no-first-run",
           "--disable-sync", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason="no chromium binary on PATH (apt-get install "
                                                "chromium); cannot render the HTML report")
@pytest.mark.parametrize("width", [1280, 420])  # a desktop, a phone
def test_html_renders_in_headless_chromium(trend_db: Path, tmp_path: Path, width: int) -> None:
    from PIL import Image

    page = write_report(trend_db, tmp_path / "report.html", days=7, top=5, now=NOW)
    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},2000",
                     page.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (width, 2000)
    counts = image.getcolors(maxcolors=width * 2000)  # [(pixels, (r, g, b)), ...]
    assert counts is not None
    total = width * 2000
    colours = {(r // 16, g // 16, b // 16) for _n, (r, g, b) in counts}
    inked = sum(n for n, (r, g, b) in counts if min(r, g, b) < 200) / total
    # A blank page is one or two colours; text, tables, cards and charts add many.
    assert len(colours) >= 40, len(colours)
    assert inked > 0.03, inked
    # Chart colours made it to the screen: the blue first series, the pink second one.
    blue = sum(n for n, (r, g, b) in counts if b > 180 and r < 90 and g < 140)
    pink = sum(n for n, (r, g, b) in counts if r > 180 and g < 80 and b > 80)
    assert blue > 500 and pink > 200, (blue, pink)


# Measures the laid-out report from inside it, and writes what it finds into the page around it,
# which --dump-dom prints. The report sits in an iframe of the width under test: Chromium's own
# window is at least 500 px wide in --dump-dom mode. (The report itself has no script.)
MEASURE = """<script>
const box = e => ({scroll: e.scrollWidth, client: e.clientWidth,
                   right: Math.ceil(e.getBoundingClientRect().right),
                   overflow: getComputedStyle(e).overflowX});
const title = e => e.closest('section') ? e.closest('section').querySelector('h2').textContent
                                        : e.tagName + ' ' + e.className;
const found = {
  viewport: window.innerWidth, page: document.documentElement.scrollWidth,
  boxes: [...document.querySelectorAll('header, .card, section')].map(
    e => ({title: title(e), ...box(e)})),
  scrollers: [...document.querySelectorAll('.scroll')].map(e => ({title: title(e), ...box(e)})),
  heads: [...document.querySelectorAll('section')].map(
    e => [title(e), [...e.querySelectorAll('thead th')].map(th => th.textContent)]),
};
const out = parent.document.createElement('pre');
out.id = 'measured';
out.textContent = JSON.stringify(found);
parent.document.body.appendChild(out);
</script>"""


def _measure(page: Path, width: int, tmp_path: Path) -> dict[str, Any]:
    """Lay ``page`` out in headless Chromium ``width`` px wide; return what MEASURE found."""
    import html as html_lib

    report = page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>")
    probe = tmp_path / f"measure-{width}.html"
    probe.write_text(
        '<!DOCTYPE html><html><body style="margin:0"><iframe style="border:0; '
        f'width:{width}px; height:8000px" srcdoc="{html_lib.escape(report)}"></iframe>'
        "</body></html>", encoding="utf-8")
    done = _chromium(tmp_path, "--hide-scrollbars", "--window-size=1400,2000", "--dump-dom",
                     probe.as_uri())
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, done.stderr[-2000:]
    measured: dict[str, Any] = json.loads(html_lib.unescape(found[1]))
    assert measured["viewport"] == width, measured  # laid out at the width under test
    return measured


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason="no chromium binary on PATH (apt-get install "
                                                "chromium); cannot lay out the HTML report")
@pytest.mark.parametrize("width", [420, 1280])
def test_html_fits_a_phone_and_a_desktop(trend_db: Path, tmp_path: Path, width: int) -> None:
    page = write_report(trend_db, tmp_path / "report.html", days=7, top=5, now=NOW)
    found = _measure(page, width, tmp_path)
    # Nothing widens the page: no sideways scrolling of the whole report, and no card or
    # section has anything sticking out of it.
    assert found["page"] <= width, found
    for b in found["boxes"]:
        assert b["scroll"] <= b["client"] and b["right"] <= width, b
    movers = next(s for s in found["scrollers"] if s["title"] == "Top movers")
    assert movers["overflow"] == "auto"
    if width < 500:  # the movers table is wider than a phone: it scrolls inside its card
        assert movers["scroll"] > movers["client"], movers
    else:  # a desktop shows it whole
        assert movers["scroll"] == movers["client"], movers
    heads = dict(found["heads"])
    assert heads["Top movers"] == ["#", "Change", "Image", "Pulls", "Gained", "Growth",
                                   "Per day (7 d)", "Daily pulls"]
    # Without a previous window (the 30 days cover the whole history) there is no Change.
    page = write_report(trend_db, tmp_path / "report.html", days=30, top=5, now=NOW)
    heads = dict(_measure(page, width, tmp_path)["heads"])
    assert heads["Top movers"] == ["#", "Image", "Pulls", "Gained", "Growth", "Per day (7 d)",
                                   "Daily pulls"]


def test_the_change_column_shows_only_with_a_previous_window(trend_db: Path,
                                                             tmp_path: Path) -> None:
    def top_table(days: int) -> tuple[list[str], list[int]]:
        text = write_report(trend_db, tmp_path / f"r{days}.html", days=days, top=5,
                            now=NOW).read_text(encoding="utf-8")
        section = text.split("<h2>Top movers</h2>", 1)[1].split("</section>", 1)[0]
        head = re.findall(r"<th[^>]*>([^<]*)</th>", section.split("</thead>")[0])
        rows = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>")[1], re.DOTALL)
        return head, [row.count("<td") for row in rows]

    head, cells = top_table(7)  # previous window 10-25..11-01: rank changes known
    assert head[:3] == ["#", "Change", "Image"] and cells == [8, 8]
    head, cells = top_table(30)  # the whole history: no previous window, no column
    assert head[:2] == ["#", "Image"] and "Change" not in head and cells == [7, 7]
    text = (tmp_path / "r30.html").read_text(encoding="utf-8")
    assert "<th colspan=7>Not ranked: growth unknown in this window (2)</th>" in text


def test_a_single_run_date_says_trends_need_two(tmp_path: Path) -> None:
    conn = new_db(tmp_path / "one.db")
    add_run(conn, 1, "2026-11-08", counts={1: 10, 2: (None, None)})
    r = build_report(conn, days=30, top=5, now=NOW)  # a connection works as well as a path
    conn.close()
    assert (r["as_of"], r["window_start"], r["previous_window_start"]) == (
        "2026-11-08", "2026-11-08", None)
    # No growth is known from one date: null, not 0, and no one ranked.
    assert r["totals"] == {"images": 2, "pull_count": 10, "pull_delta": None,
                           "daily_avg_7d": None, "new_images": 0, "removed_images": 0,
                           "anomalies": 0, "not_ranked": 0}
    assert r["top_movers"] == []
    assert (r["notice"], r["next_run_due"]) == (
        "Trends need at least two run dates; the last 30 days have one (2026-11-08), so no "
        "growth is shown. The next nightly sync is due on 2026-11-09.", "2026-11-09")
    text = write_report(tmp_path / "one.db", tmp_path / "one.html", now=NOW).read_text(
        encoding="utf-8")
    assert "data:image/svg+xml;base64," not in text  # no chart from one date
    assert "Trends need at least two run dates" in text and "due on 2026-11-09" in text
    assert "needs two run dates" in text  # the "pulls gained" card
    md = write_report(tmp_path / "one.db", tmp_path / "one.md", now=NOW).read_text(
        encoding="utf-8")
    assert "- Pulls gained in the window: needs two run dates" in md.splitlines()
    # Days later, still one date: the next run is overdue, and the report says so.
    late = build_report(tmp_path / "one.db", now=NOW + dt.timedelta(days=4))
    assert late["notice"] == (
        "Trends need at least two run dates; the last 30 days have one (2026-11-08), so no "
        "growth is shown. The next nightly sync was due on 2026-11-09 and has not succeeded "
        "since: check the schedule and 'swr-etl status'.")


def test_a_gap_longer_than_the_window_is_one_run_date_too(trend_db: Path) -> None:
    # --days 1 from 11-08: 11-07 is in (the first day is included), so trends exist ...
    assert build_report(trend_db, days=1, now=NOW)["run_dates"] == ["2026-11-07", "2026-11-08"]
    # ... but as of 11-06 with --days 2 the window 11-04..11-06 holds only 11-06.
    r = build_report(trend_db, days=2, now=dt.datetime(2026, 11, 6, 12, tzinfo=dt.timezone.utc))
    assert (r["run_dates"], r["totals"]["pull_delta"], r["top_movers"]) == (
        ["2026-11-06"], None, [])
    assert r["next_run_due"] == "2026-11-07"


@pytest.mark.parametrize("args,message", [
    (["--days", "1000000"], "Invalid value for '--days': 1000000 is not in the range 1<=x<=36500."),
    (["--top", "0"], "Invalid value for '--top': 0 is not in the range 1<=x<=10000."),
])
def test_out_of_range_days_and_top_are_exit_2(trend_db: Path, tmp_path: Path, args: list[str],
                                              message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["report", "--db", str(trend_db), "--out", str(tmp_path / "r.json"), *args])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)
    assert not (tmp_path / "r.json").exists()


def test_a_callers_connection_is_left_as_found(trend_db: Path) -> None:
    conn = sqlite3.connect(trend_db)  # default (implicit-transaction) mode
    assert build_report(conn, days=7, now=NOW)["totals"]["pull_delta"] == 8890
    assert not conn.in_transaction  # no read snapshot held against the next sync
    assert conn.execute("SELECT name FROM sqlite_temp_master").fetchall() == []
    conn.close()


def test_a_files_previous_window_is_ranked_on_a_second_connection(
        trend_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report of a file ranks the previous window on a connection of its own (in parallel),
    and ranks exactly as the report's connection does when it has to do it itself."""
    aside = spy_on_ranks_aside(monkeypatch)
    by_file = build_report(trend_db, days=7, top=10, now=NOW)
    # nginx 10000, stuck 3000, alpine 700, old 100 in 10-25..11-01 (the hand-worked history)
    assert len(aside) == 1 and sorted(aside[0], key=lambda r: r[2]) == [
        (SOURCE, 2, 1), (SOURCE, 3, 2), (SOURCE, 1, 3), (SOURCE, 4, 4)]
    assert by_file["top_movers"][0]["rank_change"] == 2
    for days in (2, 3, 4, 5, 7):  # windows with history before the previous one, and without
        by_file = build_report(trend_db, days=days, top=10, now=NOW)
        with sqlite3.connect(trend_db) as conn:  # a caller's connection: no second one
            assert build_report(conn, days=days, top=10, now=NOW) == by_file, days
        with monkeypatch.context() as gave_up:
            gave_up.setattr(report_module, "_ranks_aside", lambda *args: None)
            assert build_report(trend_db, days=days, top=10, now=NOW) == by_file, days
    assert all(ranks for ranks in aside)


def test_a_run_committed_meanwhile_does_not_reach_the_second_connection(
        trend_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second connection opens after the report chose its runs, and may see a later state:
    here a replay of 10-25 that would count instead of run 1 and move 'old' from fourth to
    second in the previous window. It ranks the report's runs, so the report is unchanged."""
    expected = build_report(trend_db, days=7, top=10, now=NOW)

    def replay(_runs: Any) -> None:
        conn = sqlite3.connect(trend_db, isolation_level=None)
        add_run(conn, 100, "2026-10-25", hour=23,
                counts={1: 1000, 2: 50000, 3: 2147480000, 4: 0})
        conn.close()

    aside = spy_on_ranks_aside(monkeypatch, before=replay)
    assert build_report(trend_db, days=7, top=10, now=NOW) == expected
    assert aside[0] is not None and (SOURCE, 4, 4) in aside[0]
    monkeypatch.undo()
    later = build_report(trend_db, days=7, top=10, now=NOW)  # the replay counts from now on
    assert later["top_movers"][0]["rank_change"] != expected["top_movers"][0]["rank_change"]


def test_the_second_connection_is_not_used_unless_it_sees_the_reports_runs(
        trend_db: Path, tmp_path: Path) -> None:
    """The second connection may see a later state than the report's: it ranks the runs the
    report chose, and gives up (None: the report ranks them itself) when it does not see each
    of them counted, as a file replaced under the report would show, or cannot read the file."""
    with sqlite3.connect(trend_db) as conn:
        runs = conn.execute("SELECT rs.source, r.snapshot_date, r.run_id FROM runs AS r JOIN"
                            " run_sources AS rs USING (run_id) WHERE r.snapshot_date"
                            " <= '2026-11-01' AND rs.status = 'success'").fetchall()
        aside = second_reader(trend_db, conn)
        assert aside is not None
        gone = second_reader(tmp_path / "gone.db", conn)
        assert gone is not None
    assert report_module._ranks_aside(aside, runs, "2026-11-01", 7)
    assert report_module._ranks_aside(aside, [*runs, (SOURCE, "2026-10-30", 99)],
                                      "2026-11-01", 7) is None
    with sqlite3.connect(trend_db) as conn:
        conn.execute("UPDATE run_sources SET status = 'failed' WHERE run_id = ?", (runs[0][2],))
    assert report_module._ranks_aside(aside, runs, "2026-11-01", 7) is None
    assert report_module._ranks_aside(gone, runs, "2026-11-01", 7) is None


HOSTILE = {  # id -> (namespace, name): names a server may send, each to render as written
    1: ("library", "$\\foo$"),          # matplotlib would fail on this TeX command (exit 1)
    2: ("library", "$\\alpha$"),        # ... and draw this one as a Greek letter
    3: ("acme", "<script>alert(1)</script>"),
    4: ("acme", "a\rb|c\nd"),           # a CR or LF would split a Markdown table row
    5: ("_under", "*bold* [x](y) &lt;"),  # Markdown emphasis, a link, an entity
}


def test_names_render_literally_in_html_markdown_and_charts(tmp_path: Path) -> None:
    import base64
    import re

    conn = new_db(tmp_path / "h.db")
    for image_id, (ns, name) in HOSTILE.items():
        conn.execute("INSERT INTO images (source, id, namespace, name, first_seen_at, "
                     "last_seen_at, first_seen_run, last_seen_run) "
                     "VALUES ('cn-north-4', ?, ?, ?, '', '', 1, 2)",
                     (image_id, ns, name))
    add_run(conn, 1, "2026-11-07", counts={i: 100 * i for i in [*HOSTILE, 9]})
    add_run(conn, 2, "2026-11-08", counts={i: 100 * i + 10 * i for i in [*HOSTILE, 9]})
    conn.close()
    page = write_report(tmp_path / "h.db", tmp_path / "h.html", days=7, top=10, now=NOW)
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>$\\foo$</b>" in html and "<b>$\\alpha$</b>" in html
    assert "<b>a\\rb|c\\nd</b>" in html  # control characters shown, never obeyed
    assert "<td><b>#9</b></td>" in html  # an id without an images row is shown by id
    svgs = [base64.b64decode(uri).decode("utf-8")
            for uri in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]
    bars = svgs[0]  # the bar chart labels every mover
    assert "$\\foo$" in bars and "$\\alpha$" in bars and "α" not in bars
    assert "&lt;script&gt;" in bars
    assert any("_under/" in svg for svg in svgs[1:])  # a legend keeps a name starting with _

    md = write_report(tmp_path / "h.db", tmp_path / "h.md", days=7, top=10, now=NOW)
    text = md.read_text(encoding="utf-8")
    assert re.search(r"(?<!\\)<", text) is None and "\r" not in text  # every < escaped
    lines = text.splitlines()
    table = lines[lines.index("## Top movers") + 2:lines.index("## Anomalies (0)") - 1]
    assert len(table) == 2 + 6  # header, separator, the six ranked images: no row split
    assert [row.count(" | ") for row in table[2:]] == [6] * 6  # and no cell split
    assert "| acme/\\<script\\>alert(1)\\</script\\> |" in text
    assert "| acme/a\\\\rb\\|c\\\\nd |" in text
    assert "| library/\\$\\\\foo\\$ |" in text and "| library/\\$\\\\alpha\\$ |" in text
    assert "| \\_under/\\*bold\\* \\[x\\](y) \\&lt; |" in text


def _tick_labels(uri: str) -> dict[str, list[str]]:
    """The tick labels of a chart (an SVG data URI with text kept as text), per axis, and every
    other text drawn on it under "other" (title, offset text, bar values)."""
    import base64
    import xml.etree.ElementTree as ET

    svg = ET.fromstring(base64.b64decode(uri.split(",", 1)[1]))
    ns = "{http://www.w3.org/2000/svg}"
    labels: dict[str, list[str]] = {"x": [], "y": [], "other": []}
    ticks = set()
    for group in svg.iter(f"{ns}g"):
        axis = group.get("id", "").split("tick_")[0]
        if axis in ("x", "y") and group.get("id", "").startswith(f"{axis}tick_"):
            # a label of two lines is two text elements
            labels[axis].append("\n".join("".join(t.itertext())
                                          for t in group.iter(f"{ns}text")))
            ticks.update(id(t) for t in group.iter(f"{ns}text"))
    labels["other"] = ["".join(t.itertext()) for t in svg.iter(f"{ns}text")
                       if id(t) not in ticks]
    return labels


def _days(first: str, n: int) -> list[str]:
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


@pytest.mark.parametrize("first,n,months,years", [
    ("2026-11-01", 30, {"Nov"}, ["2026"]),           # a November: no "Dec" anywhere
    ("2026-11-02", 30, {"Nov", "Dec"}, ["2026"]),    # ends on 1 Dec, which is labelled so
    ("2026-11-29", 2, {"Nov"}, ["2026"]),            # two days: day ticks, never hours
    ("2026-12-20", 20, {"Dec", "Jan"}, ["2026", "2027"]),  # the year where it changes
])
def test_date_axes_name_only_the_days_they_show(first: str, n: int, months: set[str],
                                                years: list[str]) -> None:
    from etl.publish import charts

    dates = _days(first, n)
    for uri in (charts.daily_bars(dates, [40e6 + 2e6 * i for i in range(n)]),
                charts.cumulative_lines([("library/a", dates, list(range(n)))])):
        labels = _tick_labels(uri)
        # "8 Nov", or "1 Nov\n2026" under the first tick and where the year changes
        parsed = [re.fullmatch(r"(\d{1,2}) ([A-Z][a-z]{2})(?:\n(\d{4}))?", t) for t in labels["x"]]
        assert all(parsed), labels["x"]
        shown = [dt.datetime.strptime(f"{m[1]} {m[2]} {first[:4]}", "%d %b %Y").date()
                 for m in parsed if m]
        assert {m[2] for m in parsed if m} == months
        assert [m[3] for m in parsed if m and m[3]] == years
        # every tick is a day of the data (years aside: checked above)
        assert {d.strftime("%m-%d") for d in shown} <= {d[5:] for d in dates}
        assert len(shown) >= min(n, 3)
        # no offset text such as "2026-Dec" left over
        assert not [t for t in labels["other"] if re.search(r"\d{4}-[A-Z][a-z]{2}", t)]


def test_count_axes_use_one_number_format() -> None:
    from etl.publish import charts

    # The chart the issue showed: daily pulls from 40 M to 98 M (an axis up to 100 M) had
    # "80.0 M" under "100 M".
    n = 30
    uri = charts.daily_bars(_days("2026-11-01", n), [40e6 + 2e6 * i for i in range(n)])
    labels = [t for t in _tick_labels(uri)["y"] if t != "0"]
    assert labels and all(re.fullmatch(r"\d+ M", t) for t in labels), labels
    bars = _tick_labels(charts.top_movers_bar(["a", "b"], [711_000_000, 84_700_000]))["x"]
    assert [t for t in bars if t != "0"] and all(
        re.fullmatch(r"\d+ M", t) for t in bars if t != "0"), bars

    from etl.publish.axes import AxisNumbers

    fmt = AxisNumbers()
    assert fmt.format_ticks([0, 20e6, 40e6, 60e6, 80e6, 100e6]) == [
        "0", "20 M", "40 M", "60 M", "80 M", "100 M"]
    assert fmt.format_ticks([0, 0.5e6, 1e6, 1.5e6]) == ["0", "0.5 M", "1.0 M", "1.5 M"]
    assert fmt.format_ticks([0, 2e5, 4e5, 1.2e6]) == ["0", "0.2 M", "0.4 M", "1.2 M"]
    assert fmt.format_ticks([0, 250, 500, 1000]) == ["0", "250", "500", "1,000"]
    assert fmt.format_ticks([0, 0.25, 0.5]) == ["0", "0.25", "0.50"]


def test_html_autoescape_covers_every_field(trend_db: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Every text of the document, and the numbers shown as they are (ids, ranks, the run id),
    carries a tag of its own: the page must show each as text, whichever cell it lands in."""
    from markupsafe import escape

    from etl.publish import charts
    from etl.publish.render import html

    # The charts would parse the tagged dates; they draw names as text anyway (tested above).
    for name in ("top_movers_bar", "cumulative_lines", "daily_bars"):
        monkeypatch.setattr(charts, name, lambda *_a, **_k: "data:image/svg+xml;base64,AAAA")
    shown_as_is = {"id", "rank", "as_of_run_id"}
    probes: dict[str, str] = {}

    def tag(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            # kind is a closed vocabulary the renderer looks up, not text from anyone
            return {k: v if k == "kind" else tag(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [tag(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)
                                      and path.rsplit(".", 1)[-1] in shown_as_is):
            probes[path] = f'<i title="{len(probes)}" onclick=\'x()\'>&amp;'
            return f"{probes[path]}{value}"
        return value

    report = tag(build_report(trend_db, days=7, top=10, now=NOW), "r")
    page = html(report)
    assert "<i " not in page  # no tag made it through as markup
    found = {path for path, probe in probes.items() if str(escape(probe)) in page}
    for path in ("r.title", "r.as_of", "r.as_of_run_id", "r.tool_version", "r.generated_at",
                 "r.window_start", "r.top_movers[0].name", "r.top_movers[0].namespace",
                 "r.top_movers[0].rank", "r.not_ranked[0].name", "r.not_ranked[1].namespace",
                 "r.not_ranked[0].date", "r.anomalies[0].detail", "r.anomalies[2].date",
                 "r.new_images[0].name", "r.new_images[0].id", "r.new_images[0].first_seen",
                 "r.removed_images[0].namespace", "r.removed_images[0].last_seen"):
        assert path in found, path
    report["notice"] = probes["r.notice"] = "<i title='notice'>"
    page = html(report)
    assert "<i " not in page and str(escape(probes["r.notice"])) in page


@pytest.fixture(scope="module")
def regions_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight nights of three simulated regions (the demo's), in one database."""
    from etl.config.settings import Settings
    from etl.demo import DEMO_REGIONS
    from etl.run.pipeline import run_sync
    from etl.simulator.regions import Regions

    db = tmp_path_factory.mktemp("regions") / "swr.db"
    with Regions(DEMO_REGIONS, images=40) as regions:
        settings = Settings(sources=regions.sources(), db=db, allow_anonymous=True)
        for night in range(8):
            regions.advance_day()
            run_sync(settings, now=f"2026-11-0{night + 1}T02:00:00Z")
    return db


@pytest.mark.browser
@pytest.mark.skipif(_browser() is None, reason="no chromium binary on PATH (apt-get install "
                                                "chromium); cannot lay out the HTML report")
@pytest.mark.parametrize("width", [1280, 420])
def test_the_region_breakdown_renders_and_fits(regions_db: Path, tmp_path: Path,
                                               width: int) -> None:
    from PIL import Image

    page = write_report(regions_db, tmp_path / "report.html", days=7, top=10, now=NOW)
    found = _measure(page, width, tmp_path)
    assert found["page"] <= width, found
    for b in found["boxes"]:
        assert b["scroll"] <= b["client"] and b["right"] <= width, b
    title = "Regions: where the growth comes from"
    assert dict(found["heads"])[title] == ["#", "Image", "Gained, all regions", "By region",
                                          "Most from"]
    regions = next(s for s in found["scrollers"] if s["title"] == title)
    assert regions["overflow"] == "auto"
    if width < 500:  # wider than a phone: it scrolls inside its section, the page does not
        assert regions["scroll"] > regions["client"], regions
    # The bars reach the screen in each region's colour: the legend's blue, pink and green.
    html = page.read_text(encoding="utf-8")
    start = html.index('<section id="regions">')
    only = tmp_path / "regions.html"  # the page's head and the Regions section alone
    only.write_text(html[:html.index("<section")] + html[start:html.index("</section>", start)]
                    + "</section></main></body></html>", encoding="utf-8")
    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={width},1600",
                     only.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    counts = Image.open(shot).convert("RGB").getcolors(maxcolors=width * 1600)
    assert counts is not None
    blue = sum(n for n, (r, g, b) in counts if b > 180 and r < 90 and g < 140)
    pink = sum(n for n, (r, g, b) in counts if r > 180 and g < 80 and b > 80)
    green = sum(n for n, (r, g, b) in counts if g > 120 and r < 40 and b < 130)
    assert min(blue, pink, green) > 100, (blue, pink, green)


def test_rows_of_several_sources_say_where_they_were_read(tmp_path: Path) -> None:
    """The same image in two regions is two rows of the movers: with more than one source in
    the report each row names its source (HTML, Markdown, chart labels); with one, none does."""
    from etl.publish.render import html, markdown
    from tests.fixtures.report_db import add_image

    conn = new_db(tmp_path / "two.db")
    run = 0
    for source, gain in (("r-a", 50), ("r-b", 70)):
        add_image(conn, 1, "nginx", source=source, last_run=run + 2)
        for date, pulls in (("2026-11-07", 1000), ("2026-11-08", 1000 + gain)):
            run += 1
            add_run(conn, run, date, counts={1: pulls}, source=source)
    r = build_report(conn, days=7, top=5, now=NOW)
    only_a = build_report(conn, days=7, top=5, now=NOW, sources=["r-a"])
    conn.close()
    assert [(m["source"], m["pull_delta"]) for m in r["top_movers"]] == [("r-b", 70), ("r-a", 50)]
    page, text = html(r), markdown(r)
    assert page.count("library/</span><b>nginx</b><span class=ns> · r-b</span>") == 1
    assert page.count("library/</span><b>nginx</b><span class=ns> · r-a</span>") == 1
    assert "library/nginx · r-b" in text and "library/nginx · r-a" in text
    assert "top_movers" in r and "where" not in r["top_movers"][0]  # the JSON is unchanged
    assert " · r-a" not in html(only_a) and " · r-a" not in markdown(only_a)


def test_each_ranked_images_regions_are_its_own(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The region breakdown lists each ranked image's own shares: not those of an image of the
    same name in another namespace, and images with no namespace or no name keep theirs."""
    from tests.fixtures.report_db import add_image

    conn = new_db(tmp_path / "two.db")
    # id -> (namespace, name, gain in r-a, gain in r-b); None: not listed in that source
    images: dict[int, tuple[str | None, str | None, int | None, int | None]] = {
        1: ("library", "nginx", 50, 70), 2: ("other", "nginx", 1000, None),
        3: (None, "x", 5, 6), 4: ("library", None, 9, None), 5: ("library", "y", 1, 1)}
    run = 0
    for source, column in (("r-a", 2), ("r-b", 3)):
        listed = {i: spec for i, spec in images.items() if spec[column] is not None}
        for i, spec in listed.items():
            add_image(conn, i, spec[1], namespace=spec[0], source=source,  # type: ignore[arg-type]
                      last_run=run + 2)
        for date, grown in (("2026-11-07", False), ("2026-11-08", True)):
            run += 1
            add_run(conn, run, date, source=source, counts={
                i: 1000 + (spec[column] if grown else 0) for i, spec in listed.items()})
    regions = {top: build_report(conn, days=7, top=top, now=NOW)["regions"] for top in (2, 10)}
    from etl.publish import sections

    monkeypatch.setattr(sections, "MAX_BOUND_VALUES", 2)  # more names than that: every share
    assert build_report(conn, days=7, top=10, now=NOW)["regions"] == regions[10]
    conn.close()
    shares = [((r["namespace"], r["name"]),
               [(p["source"], p["pull_delta"]) for p in r["by_source"]]) for r in regions[10]]
    assert shares == [
        (("other", "nginx"), [("r-a", 1000)]),
        (("library", "nginx"), [("r-b", 70), ("r-a", 50)]),
        ((None, "x"), [("r-b", 6), ("r-a", 5)]),
        (("library", None), [("r-a", 9)]),
        (("library", "y"), [("r-a", 1), ("r-b", 1)])]
    assert [r["pull_delta"] for r in regions[10]] == [1000, 120, 11, 9, 2]
    assert regions[2] == regions[10][:2]


def test_a_day_whose_every_comparable_image_fell_is_not_stale_and_no_crash(
        tmp_path: Path) -> None:
    """No known gain that day (the only step is a decrease): the stale check counts 0 unchanged
    images, where a SUM over no known gain was NULL and the division failed."""
    conn = new_db(tmp_path / "fell.db")
    from tests.fixtures.report_db import add_image

    add_image(conn, 1, "x")
    add_run(conn, 1, "2026-11-07", counts={1: 100})
    add_run(conn, 2, "2026-11-08", counts={1: 90})
    conn.close()
    r = build_report(tmp_path / "fell.db", days=7, now=NOW)
    assert [a["kind"] for a in r["anomalies"]] == ["decrease"]
    assert r["totals"]["anomalies"] == 1 and r["top_movers"] == []


@pytest.mark.parametrize("db", ["trend_db", "regions_db"])
def test_html_charts_drawn_early_on_their_own_thread_are_the_page_s_charts(
        db: str, request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTML writer draws the charts on a thread from the movers and daily totals while the
    report's last queries run; the page is the one drawn from the finished document (several
    sources: the image names in the charts say where each was read)."""
    import threading

    from etl.publish import render

    path = request.getfixturevalue(db)
    drawn_on: list[str] = []
    charts_of = render.charts_of

    def spy(part: dict[str, Any]) -> list[tuple[str, str]]:
        drawn_on.append(threading.current_thread().name)
        return charts_of(part)

    monkeypatch.setattr(render, "charts_of", spy)
    page = write_report(path, tmp_path / "early.html", days=7, top=10, now=NOW)
    assert len(drawn_on) == 1 and drawn_on[0] != threading.main_thread().name, drawn_on
    monkeypatch.setattr(render, "charts_of", charts_of)
    whole = render.html(build_report(path, days=7, top=10, now=NOW))
    assert page.read_text(encoding="utf-8") == whole
    assert whole.count("data:image/svg+xml;base64,") == 3


@pytest.mark.parametrize("cores", [2, 3])
def test_the_core_free_hook_waits_for_the_window_on_two_cores(
        trend_db: Path, cores: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """An HTML report imports its renderers when the report's heaviest SQL leaves a core free:
    on two cores once this window's steps are computed (a caller's connection has no second
    one), on more at once; never twice."""
    monkeypatch.setattr(report_module, "cores", lambda: cores)
    seen: list[str] = []
    conn = sqlite3.connect(trend_db)
    conn.set_trace_callback(lambda sql: seen.append(" ".join(sql.split()[:4])))
    report_module._build_report(conn, days=7, top=10, now=NOW, sources=(),
                                on_core_free=lambda: seen.append("core free"))
    conn.close()
    assert seen.count("core free") == 1
    at = seen.index("core free")
    steps = seen.index("CREATE TEMP TABLE cur_steps")
    assert at == (steps + 1 if cores == 2 else 0), seen[:at + 2]


def test_the_core_free_hook_is_called_once_of_two_threads(
        trend_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From a file the hook is called by whichever comes first, the window's steps or the
    previous window's ranks on the second connection; the other finds it called."""
    monkeypatch.setattr(report_module, "cores", lambda: 2)
    asides: list[bool] = []
    ranks_aside = report_module._ranks_aside

    def spy(*args: Any) -> Any:
        asides.append(True)
        return ranks_aside(*args)

    monkeypatch.setattr(report_module, "_ranks_aside", spy)
    calls: list[str] = []
    for _ in range(5):
        report_module._build_report(trend_db, days=7, top=10, now=NOW, sources=(),
                                    on_core_free=lambda: calls.append("core free"))
    assert asides == [True] * 5 and calls == ["core free"] * 5
