"""Sharing the database: analysts reading during a sync, other writers, another run.

- A long read transaction (WAL) keeps its consistent view while a sync commits, and sees the new
  state once it ends.
- Another connection holding the write lock (``BEGIN IMMEDIATE``): the sync waits up to its busy
  timeout; if the writer lets go in time the sync succeeds, otherwise it fails with
  ``DatabaseBusyError`` (exit 5) and one clear line, and the previous state is intact.
- Another run holding the run lock: ``LockedError`` (exit 5), nothing touched.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.cli.app import main
from etl.config.settings import Settings
from etl.errors import DatabaseBusyError, LockedError
from etl.run.pipeline import run_sync
from etl.simulator import Simulator
from tests.helpers import q

T0 = "2026-11-20T03:00:00Z"
T1 = "2026-11-21T03:00:00Z"


def state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(db)
    try:
        return {t: q(conn, f"SELECT * FROM {t} ORDER BY {key}") for t, key in (
            ("images", "id"), ("image_snapshots", "run_id, image_id"), ("runs", "run_id"),
            ("rejects", "rowid"), ("quality_issues", "rowid"))}
    finally:
        conn.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(images=150, seed=5, today=date(2026, 11, 20)) as s:
        yield s


@pytest.fixture
def db(sim: Simulator, tmp_path: Path) -> Path:
    """A database holding one good run."""
    path = tmp_path / "swr.db"
    result = run_sync(settings(sim, path), now=T0)
    assert result.status == "success"
    sim.dataset.advance_day()
    return path


def settings(sim: Simulator, db: Path, **kw: Any) -> Settings:
    return Settings(endpoint=sim.url, db=db, allow_anonymous=True, page_size=50,
                    concurrency=2, **kw)


def listing_totals(sim: Simulator) -> tuple[int, int]:
    rows = sim.listing()
    return len(rows), sum(int(r["pull_count"]) for r in rows)  # type: ignore[call-overload]


def test_long_reader_keeps_its_view_then_sees_the_new_state(sim: Simulator, db: Path) -> None:
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        assert q(reader, "PRAGMA journal_mode") == [("wal",)]
        reader.execute("BEGIN")
        view = q(reader, "SELECT COUNT(*), SUM(pull_count) FROM images WHERE removed_at IS NULL")
        runs = q(reader, "SELECT run_id, status FROM runs")
        assert runs == [(1, "success")]

        result = run_sync(settings(sim, db, busy_timeout=2.0), now=T1)
        assert (result.run_id, result.status) == (2, "success")

        # Same transaction: still the old, consistent state.
        assert q(reader, "SELECT COUNT(*), SUM(pull_count) FROM images "
                         "WHERE removed_at IS NULL") == view
        assert q(reader, "SELECT run_id, status FROM runs") == runs
        assert q(reader, "SELECT COUNT(*) FROM image_snapshots WHERE run_id = 2") == [(0,)]
        reader.execute("COMMIT")

        # A new transaction sees the sync's commit, whole.
        assert q(reader, "SELECT COUNT(*), SUM(pull_count) FROM images "
                         "WHERE removed_at IS NULL") == [listing_totals(sim)]
        assert q(reader, "SELECT run_id, status FROM runs") == [(1, "success"), (2, "success")]
        assert q(reader, "SELECT COUNT(*) FROM image_snapshots WHERE run_id = 2") == [
            (len(sim.listing()),)]
        assert view != [listing_totals(sim)]  # the day really moved
    finally:
        reader.close()


def hold_write_lock(db: Path) -> sqlite3.Connection:
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO quality_issues (run_id, source, image_id, field, raw_value, "
                  "problem) VALUES (1, 'x', NULL, 'test', 'x', 'held by another writer')")
    return other


def test_writer_past_busy_timeout_fails_with_exit_5_and_loses_nothing(
        sim: Simulator, db: Path) -> None:
    before = state(db)
    other = hold_write_lock(db)
    try:
        t = time.monotonic()
        with pytest.raises(DatabaseBusyError) as exc_info:
            run_sync(settings(sim, db, busy_timeout=0.5), now=T1)
        waited = time.monotonic() - t
    finally:
        other.execute("ROLLBACK")
        other.close()
    exc = exc_info.value
    assert exc.exit_code == 5
    assert exc.message == (f"another writer held database {db} past the busy timeout; "
                           "nothing of this run was loaded")
    assert waited >= 0.45  # it did wait for the other writer (a lower bound, not a speed)
    after = state(db)
    for table in ("images", "image_snapshots", "rejects", "quality_issues"):
        assert after[table] == before[table], table
    # The run row itself may not have been writable; if it was, it is a failed run.
    extra = after["runs"][len(before["runs"]):]
    assert after["runs"][:len(before["runs"])] == before["runs"]
    assert all(r[3] == "failed" for r in extra), extra
    # The next sync, with nobody in the way, succeeds.
    assert run_sync(settings(sim, db), now=T1).status == "success"


def test_writer_that_lets_go_within_the_busy_timeout_is_waited_for(
        sim: Simulator, db: Path) -> None:
    other = hold_write_lock(db)
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        result = run_sync(settings(sim, db, busy_timeout=10.0), now=T1)
    finally:
        release.join()
        other.close()
    assert (result.run_id, result.status, result.exit_code) == (2, "success", 0)
    conn = sqlite3.connect(db)
    try:
        assert q(conn, "SELECT COUNT(*) FROM quality_issues WHERE problem = "
                       "'held by another writer'") == [(1,)]
        assert q(conn, "SELECT COUNT(*) FROM image_snapshots WHERE run_id = 2") == [
            (len(sim.listing()),)]
    finally:
        conn.close()


def test_busy_database_through_the_cli_is_one_line_and_exit_5(
        sim: Simulator, db: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = state(db)
    other = hold_write_lock(db)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["sync", "-q", "--no-auth", "--endpoint", sim.url, "--db", str(db),
                  "--busy-timeout", "0.5"])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert exc.value.code == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"swr-etl: error: another writer held database {db} past the busy timeout; "
        "nothing of this run was loaded")
    after = state(db)
    assert after["images"] == before["images"]
    assert after["image_snapshots"] == before["image_snapshots"]


def test_another_run_holding_the_lock_is_exit_5_and_touches_nothing(
        sim: Simulator, db: Path) -> None:
    before = state(db)
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, b"4242\n")
        with pytest.raises(LockedError) as exc_info:
            run_sync(settings(sim, db), now=T1)
    finally:
        os.close(fd)
    assert exc_info.value.exit_code == 5
    assert exc_info.value.message == f"another run holds the lock for {db} (pid 4242)"
    assert state(db) == before
    assert sim.repos_requests() == [r for r in sim.repos_requests() if r.n]  # log readable
    # only the first run's three pages and its second read: no request was sent
    assert len(sim.repos_requests()) == 3 + 1
