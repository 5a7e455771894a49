"""The pipeline: run_sync / replay_run over fake pages handed in with ``pages=`` (the extractor has
its own tests), then end to end against the simulated endpoint: the CLI and partial scans
(SIGKILL at random moments: tests/test_kill.py)."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etl.cli.app import main
from etl.config.settings import Settings
from etl.errors import ConfigError, QualityError, UpstreamError
from etl.extract.scan import Page
from etl.logs import current_run_id
from etl.run.pipeline import SyncResult, replay_run, run_sync
from etl.run.stream import ChunkSizes
from tests.helpers import FakeScan, q, rows

T0 = "2026-11-20T03:00:00Z"
T1 = "2026-11-21T03:00:00Z"


@pytest.fixture()
def scans(scan_queue: list[FakeScan]) -> list[FakeScan]:
    """Queue of scans the next CLI syncs get instead of the API (tests/conftest.py); direct
    calls hand theirs in with ``pages=``."""
    return scan_queue


@pytest.fixture()
def settings(db: Path | str) -> Settings:
    """A run into a new database: a SQLite file, then a PostgreSQL schema (conftest ``db``)."""
    return Settings(endpoint="http://127.0.0.1:9", db=db, allow_anonymous=True)


@pytest.fixture()
def file_settings(tmp_path: Path) -> Settings:
    """A run into a new SQLite file, for what only SQLite has (its own writer lock, exports)."""
    return Settings(endpoint="http://127.0.0.1:9", db=tmp_path / "swr.db", allow_anonymous=True)


def test_sync_result_and_ledger(settings: Settings) -> None:
    result = run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 251)), retries=1))
    assert result == SyncResult(
        run_id=1, status="success", exit_code=0, rows=250, new=250, changed=0, removed=0,
        rejected=0, quality_issues=0, requests=3, retries=1, rescans=0,
        seconds=result.seconds, complete=True, db=settings.db)
    assert result.summary_line() == (
        f"run 1 success: 250 rows (250 new, 0 changed, 0 removed, 0 rejected) in 3 requests, "
        f"1 retries, {result.seconds:.2f} s")
    assert q(settings.db, "SELECT run_id, started_at, status, endpoint, page_size, requests, "
                          "retries, pages, total_reported, rows_seen, rows_loaded, rows_rejected, "
                          "rescans, error, snapshot_date, exit_code, complete FROM runs") == [
        (1, T0, "success", "http://127.0.0.1:9", 100, 3, 1, 3, 250, 250, 250, 0, 0, None,
         "2026-11-20", 0, 1)]
    assert q(settings.db, "SELECT count(*), min(captured_at), max(snapshot_date) "
                          "FROM image_snapshots") == [(250, T0, "2026-11-20")]
    assert q(settings.db, "SELECT count(*) FROM raw_pages WHERE run_id = 1") == [(3,)]
    assert current_run_id.get() is None


def test_sync_twice_is_idempotent(settings: Settings) -> None:
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 30))))
    images = q(settings.db, "SELECT * FROM images ORDER BY id")
    snaps = q(settings.db, "SELECT * FROM image_snapshots ORDER BY image_id")
    second = run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 30))))
    assert (second.new, second.changed, second.removed, second.rows) == (0, 0, 0, 29)
    assert q(settings.db, "SELECT * FROM images ORDER BY id") == [
        (*r[:12], 2, None, r[14]) for r in images]
    assert q(settings.db, "SELECT * FROM image_snapshots WHERE run_id = 2 ORDER BY image_id") == [
        (2, *r[1:]) for r in snaps]


def test_now_override_and_time_travel(settings: Settings) -> None:
    run_sync(settings.replace(now_override="2026-01-02T23:59:59Z"),
             pages=FakeScan(rows(range(1, 3))))
    from datetime import datetime, timezone
    run_sync(settings, now=datetime(2026, 1, 3, 1, 2, 3, tzinfo=timezone.utc),
             pages=FakeScan(rows(range(1, 3))))
    assert q(settings.db, "SELECT run_id, started_at, snapshot_date FROM runs") == [
        (1, "2026-01-02T23:59:59Z", "2026-01-02"), (2, "2026-01-03T01:02:03Z", "2026-01-03")]
    assert q(settings.db, "SELECT DISTINCT run_id, captured_at FROM image_snapshots") == [
        (1, "2026-01-02T23:59:59Z"), (2, "2026-01-03T01:02:03Z")]
    with pytest.raises(ConfigError, match="invalid time 'yesterday'"):
        run_sync(settings, now="yesterday", pages=FakeScan(rows(range(1, 3))))


def test_removed_only_after_complete_unfiltered_scan(settings: Settings) -> None:
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 6))))
    filtered = run_sync(settings.replace(namespace="library"), now=T1,  # removes nothing
                        pages=FakeScan(rows(range(1, 3))))
    assert (filtered.status, filtered.removed) == ("success", 0)
    partial = run_sync(settings, now=T1,  # incomplete: removes nothing
                       pages=FakeScan(rows(range(1, 3)), complete=False))
    assert (partial.status, partial.exit_code, partial.removed, partial.rows) == (
        "partial", 6, 0, 2)
    assert partial.summary_line().endswith("; incomplete: the total changed (5 -> 6)")
    assert q(settings.db, "SELECT count(*) FROM images WHERE removed_at IS NOT NULL") == [(0,)]
    full = run_sync(settings, now="2026-11-22T03:00:00Z",  # complete: 4 and 5 removed
                    pages=FakeScan(rows(range(1, 4))))
    assert full.removed == 2
    assert q(settings.db, "SELECT id, removed_at FROM images WHERE removed_at IS NOT NULL") == [
        (4, "2026-11-22T03:00:00Z"), (5, "2026-11-22T03:00:00Z")]
    assert q(settings.db, "SELECT run_id, status, exit_code, rows_removed FROM runs") == [
        (1, "success", 0, 0), (2, "success", 0, 0), (3, "partial", 6, 0), (4, "success", 0, 2)]


def test_rescan_discards_the_first_pass(settings: Settings) -> None:
    result = run_sync(settings, now=T0,
                      pages=FakeScan(rows(range(1, 151)), rows(range(101, 201), pulls=7)))
    assert (result.rows, result.new, result.rescans) == (100, 100, 1)
    assert q(settings.db, "SELECT min(image_id), max(image_id), sum(pull_count) "
                          "FROM image_snapshots") == [(101, 200, sum(range(108, 208)))]
    assert q(settings.db, "SELECT page_offset FROM raw_pages") == [(0,)]


def test_streams_in_chunks_with_cross_chunk_duplicates(settings: Settings) -> None:
    data = rows(range(1, 301))
    data[250] = {**data[10], "pull_count": 999}  # id 11 again, two chunks later: later wins
    result = run_sync(settings, now=T0, pages=FakeScan(data),
                      chunk_sizes=ChunkSizes(largest=100))
    assert (result.rows, result.new, result.quality_issues) == (299, 299, 1)
    assert q(settings.db, "SELECT image_id, field, raw_value, problem FROM quality_issues") == [
        (11, "id", "11", "duplicate id in scan")]
    assert q(settings.db, "SELECT pull_count FROM image_snapshots WHERE image_id = 11") == [(999,)]
    assert q(settings.db, "SELECT pull_count FROM images WHERE id = 11") == [(999,)]


def test_duplicate_inside_one_page_is_one_issue(settings: Settings) -> None:
    data = rows(range(1, 41))
    data[5] = {**data[3], "pull_count": 7}  # id 4 twice on page 0: the later row wins
    result = run_sync(settings, now=T0, pages=FakeScan(data))
    assert (result.rows, result.quality_issues) == (39, 1)
    assert q(settings.db, "SELECT image_id, field, problem FROM quality_issues") == [
        (4, "id", "duplicate id in scan")]
    assert q(settings.db, "SELECT pull_count FROM images WHERE id = 4") == [(7,)]


def test_reject_ratio_exceeded_loads_nothing(settings: Settings) -> None:
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 5))))
    bad = rows(range(1, 11), pulls=500)
    for i in range(2):
        bad[i] = {"no": "id"}
    with pytest.raises(QualityError) as err:
        run_sync(settings.replace(max_reject_ratio=0.1), now=T1, pages=FakeScan(bad))
    message = ("2 of 10 rows rejected (20.0%), above --max-reject-ratio 10.0%; nothing of this "
               "run was loaded")
    assert str(err.value) == message
    assert err.value.exit_code == 7
    assert q(settings.db, "SELECT run_id, status, error, exit_code FROM runs") == [
        (1, "success", None, 0), (2, "failed", message, 7)]
    assert q(settings.db, "SELECT count(*), max(pull_count) FROM images") == [(4, 104)]
    for t in ("image_snapshots", "rejects", "quality_issues", "raw_pages"):
        assert q(settings.db, f"SELECT count(*) FROM {t} WHERE run_id = 2") == [(0,)]
    # at the ratio itself the run loads, rejects recorded
    result = run_sync(settings.replace(max_reject_ratio=0.2), now=T1, pages=FakeScan(bad))
    assert (result.status, result.rows, result.rejected) == ("success", 8, 2)
    assert q(settings.db, "SELECT page_offset, reason, raw FROM rejects") == [
        (0, "missing id", '{"no": "id"}'), (0, "missing id", '{"no": "id"}')]


@pytest.mark.parametrize("max_ratio,loads", [(0.19, False), (0.2, True), (0.21, True)])
def test_dry_run_and_sync_share_the_reject_ratio_rule(settings: Settings, max_ratio: float,
                                                      loads: bool) -> None:
    # 2 of 10 rows rejected, two of them for ids the transform and the extractor both refuse.
    bad = rows(range(1, 11))
    bad[0], bad[1] = {"id": 0}, {"id": "-5"}
    dry = run_sync(settings.replace(dry_run=True, max_reject_ratio=max_ratio),
                   pages=FakeScan(bad))
    assert (dry.status, dry.exit_code, dry.rejected) == (
        ("success", 0, 2) if loads else ("failed", 7, 2))
    if loads:
        assert run_sync(settings.replace(max_reject_ratio=max_ratio), now=T0,
                        pages=FakeScan(bad)).exit_code == 0
    else:
        with pytest.raises(QualityError):
            run_sync(settings.replace(max_reject_ratio=max_ratio), now=T0, pages=FakeScan(bad))


def test_upstream_error_mid_scan_rolls_back(settings: Settings) -> None:
    with pytest.raises(UpstreamError):
        run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 301)), fail_at_page=2))
    assert q(settings.db, "SELECT run_id, status, error, exit_code, requests FROM runs") == [
        (1, "failed", "GET /v2/manage/dockerhub/repos: HTTP 503 after 5 attempts", 4, 2)]
    assert q(settings.db, "SELECT (SELECT count(*) FROM images) + "
                          "(SELECT count(*) FROM image_snapshots) + "
                          "(SELECT count(*) FROM raw_pages)") == [(0,)]


def test_cli_reject_ratio_exit_7(scans: list[FakeScan], settings: Settings,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    scans.append(FakeScan([{"id": "x"}] + rows(range(1, 4))))
    with pytest.raises(SystemExit) as exc:
        main(["sync", "-q", "--db", str(settings.db), "--endpoint", "http://127.0.0.1:9",
              "--no-auth", "--max-reject-ratio", "0.2"])
    assert exc.value.code == 7
    # -q shows errors only: the failed run's log line (level ERROR), then the final error.
    log_line, final = capsys.readouterr().err.strip().splitlines()
    assert log_line.endswith(" ERROR   [run 1] run 1 failed: 1 of 4 rows rejected (25.0%), "
                             "above --max-reject-ratio 20.0%; nothing of this run was loaded")
    assert final == (
        "swr-etl: error: 1 of 4 rows rejected (25.0%), above --max-reject-ratio 20.0%; "
        "nothing of this run was loaded")


def test_cli_sync_prints_the_summary(scans: list[FakeScan], settings: Settings,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    scans.append(FakeScan(rows(range(1, 4))))
    with pytest.raises(SystemExit) as exc:
        main(["sync", "--db", str(settings.db), "--endpoint", "http://127.0.0.1:9", "--no-auth"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("run 1 success: 3 rows (3 new, 0 changed, 0 removed, 0 rejected) "
                          "in 1 requests, 0 retries, ")


def test_dry_run_writes_nothing(settings: Settings, tmp_path: Path) -> None:
    data = rows(range(1, 41)) + [{"id": None}]
    target = settings.db if isinstance(settings.db, str) else tmp_path / "new" / "swr.db"
    result = run_sync(settings.replace(dry_run=True, db=target), pages=FakeScan(data))
    assert (result.run_id, result.status, result.exit_code, result.rows, result.rejected) == (
        None, "success", 0, 40, 1)
    assert result.summary_line() == (
        f"dry run (success, nothing written): 40 rows (1 rejected, 0 quality issues) in 1 "
        f"requests, 0 retries, {result.seconds:.2f} s")
    if isinstance(target, str):  # PostgreSQL: not even the schema's tables
        assert q(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    else:
        assert list(tmp_path.iterdir()) == []


def test_progress_events(settings: Settings) -> None:
    events: list[dict[str, Any]] = []
    run_sync(settings, now=T0, on_progress=lambda e: events.append(dict(e)),
             pages=FakeScan(rows(range(1, 251))), chunk_sizes=ChunkSizes(largest=100))
    # chunks are written by a worker thread, so rows_loaded lags the pages by up to a chunk
    assert [(e["pages_done"], e["pages_total"]) for e in events] == [(1, 3), (2, 3), (3, 3),
                                                                     (3, 3)]
    loaded = [e["rows_loaded"] for e in events]
    assert loaded == sorted(loaded)
    assert loaded[0] >= 0 and loaded[1] >= 100 and loaded[2] >= 100  # one chunk in flight
    assert loaded[-1] == 250  # the last event comes after the last chunk is written


def test_export_after_load(settings: Settings, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    import etl.publish.export

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(etl.publish.export, "export_snapshots",
                        lambda db, out, **kw: calls.append((db, out, kw)) or [])
    run_sync(settings.replace(export_dir=tmp_path / "out", format="csv"), now=T0,
             pages=FakeScan(rows(range(1, 3))))
    assert calls == [(settings.db, tmp_path / "out",
                      {"fmt": "csv", "date": None, "all_dates": False})]


def test_replay_reproduces_a_run(settings: Settings) -> None:
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 151), when="2026-11-01 10:00:00")))
    settings = settings.replace(keep_raw_runs=0)  # a replay prunes nothing, whatever this says
    before = q(settings.db, "SELECT image_id, captured_at, snapshot_date, star_count, pull_count,"
                            " last_updated FROM image_snapshots WHERE run_id = 1 ORDER BY 1")
    again = replay_run(settings, 1)
    assert (again.run_id, again.replay_of, again.status, again.rows, again.changed) == (
        2, 1, "success", 150, 0)
    assert q(settings.db, "SELECT image_id, captured_at, snapshot_date, star_count, pull_count,"
                          " last_updated FROM image_snapshots WHERE run_id = 2 ORDER BY 1"
             ) == before
    # with another source zone, naive timestamps move; snapshot date and capture time stay
    shifted = replay_run(settings.replace(source_timezone="Asia/Shanghai"), 1)
    assert (shifted.run_id, shifted.changed) == (3, 150)
    assert q(settings.db, "SELECT DISTINCT captured_at, snapshot_date, last_updated "
                          "FROM image_snapshots WHERE run_id = 3") == [
        (T0, "2026-11-20", "2026-11-01T02:00:00Z")]
    assert q(settings.db, "SELECT run_id, replay_of, status, snapshot_date, rows_loaded "
                          "FROM runs ORDER BY run_id") == [
        (1, None, "success", "2026-11-20", 150), (2, 1, "success", "2026-11-20", 150),
        (3, 1, "success", "2026-11-20", 150)]
    assert q(settings.db, "SELECT DISTINCT run_id FROM raw_pages") == [(1,)]  # none pruned
    assert again.summary_line().startswith(
        "run 2 success: 150 rows (0 new, 0 changed, 0 removed, 0 rejected) replayed from run 1")


def test_replay_of_an_older_run_counts_only_what_changed_and_warns(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    # run 1, 2026-11-20: images 1..5; run 2, 2026-11-21: counts moved, image 5 gone
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 6), pulls=100)))
    run_sync(settings, now=T1, pages=FakeScan(rows(range(1, 5), pulls=200)))
    state = "SELECT id, pull_count, last_seen_run, removed_at FROM images ORDER BY id"
    before = q(settings.db, state)
    assert before[-1] == (5, 105, 1, T1)
    with caplog.at_level(logging.WARNING, logger="etl.pipeline"):
        old = replay_run(settings, 1)
    # Every image of run 1 differs from what images holds, but a later run saw (or removed) each
    # one: nothing in images changed, so nothing is counted as new or changed.
    assert (old.run_id, old.new, old.changed, old.removed, old.rows) == (3, 0, 0, 0, 5)
    assert q(settings.db, state) == before
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "replaying run 1 of 2026-11-20, which newer runs follow (2, up to 2026-11-21): images "
        "they saw keep their newer values; only what 2026-11-20 shows can change"]
    caplog.clear()
    # The latest run replayed under another zone: every image's last_updated really changes.
    with caplog.at_level(logging.WARNING, logger="etl.pipeline"):
        latest = replay_run(settings.replace(source_timezone="Asia/Shanghai"), 2)
    assert (latest.new, latest.changed) == (0, 4)
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []
    assert q(settings.db, "SELECT DISTINCT last_updated, last_seen_run FROM images "
                          "WHERE id < 5") == [("2026-11-01T02:00:00Z", 4)]


def test_replay_of_unknown_or_pruned_run_is_exit_2(settings: Settings,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="^no database at "):
        replay_run(settings, 1)
    run_sync(settings.replace(keep_raw_runs=0), now=T0, pages=FakeScan(rows(range(1, 3))))
    with pytest.raises(SystemExit) as exc:
        main(["replay", "1", "--db", str(settings.db)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "swr-etl: error: run 1 has no stored pages to replay (pruned by --keep-raw-runs, or the "
        "run failed)")
    with pytest.raises(SystemExit) as exc:
        main(["replay", "9", "--db", str(settings.db)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == f"swr-etl: error: no run 9 in {settings.db}"


# ----------------------------------------------------------------- against the simulator


def sync_cmd(url: str, db: Path | str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "etl", "sync", "--endpoint", url, "--db", str(db), "--no-auth",
            *extra]


def test_cli_sync_against_the_simulator(simulator: Callable[..., Any], db: Path | str) -> None:
    sim = simulator(images=180, seed=7)
    first = subprocess.run(sync_cmd(sim.url, db), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    # two pages and the completeness proof's second read of the whole listing
    assert first.stdout.startswith("run 1 success: 180 rows (180 new, 0 changed, 0 removed, "
                                   "0 rejected) in 3 requests, 0 retries, ")
    gone = sim.dataset.delete(2)
    second = subprocess.run(sync_cmd(sim.url, db, "-q"), capture_output=True, text=True,
                            timeout=120)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert q(db, "SELECT run_id, status, exit_code, rows_loaded, rows_new, rows_removed "
                 "FROM runs") == [(1, "success", 0, 180, 180, 0), (2, "success", 0, 178, 0, 2)]
    assert q(db, "SELECT id FROM images WHERE removed_at IS NOT NULL ORDER BY id") == [
        (i,) for i in sorted(gone)]
    expected = sorted((r["id"], r["pull_count"]) for r in sim.listing())
    assert q(db, "SELECT image_id, pull_count FROM image_snapshots WHERE run_id = 2 "
                 "ORDER BY image_id") == expected


def test_partial_scan_exit_6_loads_what_was_seen(simulator: Callable[..., Any],
                                                 db: Path | str) -> None:
    sim = simulator(images=300, seed=3)
    assert subprocess.run(sync_cmd(sim.url, db, "-q"), timeout=120).returncode == 0
    sim.set_scenario({"drift": [{"at": 2, "kind": "insert_front", "count": 1}]})
    out = subprocess.run(sync_cmd(sim.url, db, "--max-rescans", "0", "--concurrency", "1"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 6, out.stderr
    assert out.stdout.startswith("run 2 partial: 300 rows (0 new, ")
    assert "; incomplete: " in out.stdout
    assert q(db, "SELECT status, exit_code, complete, rows_removed FROM runs WHERE run_id = 2") \
        == [("partial", 6, 0, 0)]
    assert q(db, "SELECT count(*) FROM images WHERE removed_at IS NOT NULL") == [(0,)]


def test_another_writer_past_busy_timeout_is_exit_5(scans: list[FakeScan],
                                                    file_settings: Settings,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """SQLite's writer lock (PostgreSQL's rows held by another writer: tests/test_pg_load.py)."""
    settings = file_settings
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 3))))
    scans.append(FakeScan(rows(range(1, 3))))  # for the CLI run: never reached
    other = sqlite3.connect(settings.db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. an analyst's write transaction left open
    try:
        with pytest.raises(SystemExit) as exc:
            main(["sync", "-q", "--db", str(settings.db), "--endpoint", "http://127.0.0.1:9",
                  "--no-auth", "--busy-timeout", "0.1"])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert exc.value.code == 5
    assert capsys.readouterr().err.strip() == (
        f"swr-etl: error: another writer held database {settings.db} past the busy timeout; "
        "nothing of this run was loaded")
    assert q(settings.db, "SELECT run_id, status FROM runs") == [(1, "success")]


def test_sync_exports_what_it_loaded(simulator: Callable[..., Any], tmp_path: Path) -> None:
    sim = simulator(images=50, seed=5)
    db, out = tmp_path / "swr.db", tmp_path / "exports"
    done = subprocess.run(sync_cmd(sim.url, db, "-q", "--export-dir", str(out), "--format", "csv"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (date, source), = q(db, "SELECT snapshot_date, source FROM runs "
                            "JOIN run_sources USING (run_id)")
    key = f"source={source}/snapshot_date={date}"  # the simulator's host:port
    assert source == f"127.0.0.1:{sim.port}"
    csv_file = out / key / "images.csv"
    with open(csv_file, newline="", encoding="utf-8") as f:
        exported = list(csv.DictReader(f))
    assert sorted((int(r["id"]), int(r["pull_count"])) for r in exported) == sorted(
        (r["id"], r["pull_count"]) for r in sim.listing())
    entry = json.loads((out / "_manifest.json").read_text())["partitions"][key]
    assert (entry["rows"], entry["run_id"]) == (50, 1)


def test_replaying_a_replay_uses_the_original_pages(settings: Settings) -> None:
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 4))))
    replay_run(settings, 1)
    again = replay_run(settings, 2)
    assert (again.run_id, again.replay_of, again.rows) == (3, 1, 3)
    assert q(settings.db, "SELECT run_id, replay_of, snapshot_date FROM runs") == [
        (1, None, "2026-11-20"), (2, 1, "2026-11-20"), (3, 1, "2026-11-20")]
    assert q(settings.db, "SELECT DISTINCT captured_at FROM image_snapshots") == [(T0,)]


class Interrupting(FakeScan):
    def __iter__(self) -> Iterator[Page]:
        for n, page in enumerate(super().__iter__()):
            if n == 2:
                raise KeyboardInterrupt
            yield page


def test_ctrl_c_rolls_back_and_records_interrupted(settings: Settings) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_sync(settings, now=T0, pages=Interrupting(rows(range(1, 400))))
    assert q(settings.db, "SELECT run_id, status, error, exit_code FROM runs") == [
        (1, "failed", "interrupted", 130)]
    assert q(settings.db, "SELECT count(*) FROM images") == [(0,)]
    assert current_run_id.get() is None


class Leaky(FakeScan):
    def __iter__(self) -> Iterator[Page]:
        raise UpstreamError("GET https://x/?sig=Zz9-secret-value-Zz9 failed")
        yield from ()


def test_secrets_never_reach_the_ledger(settings: Settings) -> None:
    from etl.logs import register_secrets

    register_secrets(["Zz9-secret-value-Zz9"])
    with pytest.raises(UpstreamError):
        run_sync(settings, now=T0, pages=Leaky(rows(range(1, 3))))
    assert q(settings.db, "SELECT error FROM runs") == [("GET https://x/?sig=*** failed",)]


def test_pages_from_a_factory_are_asked_for_once_the_run_row_exists(settings: Settings) -> None:
    asked: list[tuple[Any, ...]] = []

    def factory(given: Settings) -> FakeScan:
        asked.append((given, q(settings.db, "SELECT run_id, status FROM runs")))
        return FakeScan(rows(range(1, 4)), retries=2)

    result = run_sync(settings, now=T0, pages=factory)
    assert asked == [(settings, [(1, "running")])]
    assert (result.status, result.rows, result.retries) == ("success", 3, 2)
    assert current_run_id.get() is None


def test_pages_without_stats_load_as_a_complete_scan(settings: Settings) -> None:
    pages = [Page(0, 0, rows(range(1, 3)), b"[]", None, T0)]
    result = run_sync(settings, now=T0, pages=pages)
    assert (result.status, result.exit_code, result.rows, result.requests) == (
        "success", 0, 2, 0)
    assert q(settings.db, "SELECT status, requests, rows_loaded, complete FROM runs") == [
        ("success", 0, 2, None)]


def test_a_failing_factory_is_a_failed_run_and_the_log_context_is_reset(
        settings: Settings) -> None:
    def factory(given: Settings) -> FakeScan:
        raise ConfigError("--ca-bundle /nope: no such file")

    with pytest.raises(ConfigError):
        run_sync(settings, now=T0, pages=factory)
    assert q(settings.db, "SELECT status, error, exit_code FROM runs") == [
        ("failed", "--ca-bundle /nope: no such file", 2)]
    assert current_run_id.get() is None


def test_summary_counts_read_with_thousands_separators() -> None:
    """One number style in human output: ``200,000 rows``, like the progress line."""
    result = SyncResult(run_id=3, status="success", exit_code=0, rows=200_000, new=1_500,
                        changed=198_000, removed=12_345, rejected=1_001, quality_issues=2_000,
                        requests=2_001, retries=1_200, rescans=0, seconds=7.5, complete=True,
                        db=None)
    assert result.summary_line() == (
        "run 3 success: 200,000 rows (1,500 new, 198,000 changed, 12,345 removed, 1,001 "
        "rejected) in 2,001 requests, 1,200 retries, 7.50 s")
    dry = dataclasses.replace(result, dry_run=True, run_id=None)
    assert dry.summary_line() == (
        "dry run (success, nothing written): 200,000 rows (1,001 rejected, 2,000 quality "
        "issues) in 2,001 requests, 1,200 retries, 7.50 s")
