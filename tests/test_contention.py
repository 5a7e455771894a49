"""Sharing the database: analysts reading during a sync, other writers, another run.

- A long read transaction (WAL) keeps its consistent view while a sync commits, and sees the new
  state once it ends.
- Another connection holding the write lock (``BEGIN IMMEDIATE``): the sync waits up to its busy
  timeout; if the writer lets go in time the sync succeeds, otherwise it fails with
  ``DatabaseBusyError`` (exit 5) and one clear line, and the previous state is intact.
- Another run holding the run lock: ``LockedError`` (exit 5), nothing touched.
- A reader polling while a sync loads sees the old state or the new one, never half of it.

Each test runs on both engines (the ``db`` fixture): on PostgreSQL the long reader is a
REPEATABLE READ transaction, the other writer holds ``images`` in SHARE mode (the sync's upsert
waits for it up to ``--busy-timeout``, its ``lock_timeout``), and the run lock is the schema's
advisory lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.cli.app import main
from etl.config.settings import Settings
from etl.errors import DatabaseBusyError, LockedError
from etl.run.pipeline import run_sync
from etl.simulator import Simulator
from etl.store.dialect import is_postgres_url
from etl.store.pg import PgRunLock, display_url
from etl.store.pg import connect as pg_connect
from tests.helpers import FakeScan, q, rows, table_rows

T0 = "2026-11-20T03:00:00Z"
T1 = "2026-11-21T03:00:00Z"


def state(db: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: table_rows(db, t) for t in (
        "images", "image_snapshots", "runs", "rejects", "quality_issues")}


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(images=150, seed=5, today=date(2026, 11, 20)) as s:
        yield s


@pytest.fixture
def db(sim: Simulator, db: Path | str) -> Path | str:
    """A database holding one good run (conftest's ``db``: each engine in turn)."""
    result = run_sync(settings(sim, db), now=T0)
    assert result.status == "success"
    sim.dataset.advance_day()
    return db


def settings(sim: Simulator, db: Path | str, **kw: Any) -> Settings:
    return Settings(endpoint=sim.url, db=db, allow_anonymous=True, page_size=50,
                    concurrency=2, **kw)


def listing_totals(sim: Simulator) -> tuple[int, int]:
    rows = sim.listing()
    return len(rows), sum(int(r["pull_count"]) for r in rows)  # type: ignore[call-overload]


class LongReader:
    """One read transaction held open: SQLite's (WAL) or PostgreSQL's REPEATABLE READ."""

    def __init__(self, db: Path | str) -> None:
        self.pg = is_postgres_url(db)
        if self.pg:
            self.conn, _schema = pg_connect(str(db))
        else:
            self.conn = sqlite3.connect(db, isolation_level=None)
            assert q(self.conn, "PRAGMA journal_mode") == [("wal",)]

    def begin(self) -> None:
        self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if self.pg else "BEGIN")

    def q(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sql).fetchall()]

    def close(self) -> None:
        self.conn.close()


def test_long_reader_keeps_its_view_then_sees_the_new_state(sim: Simulator,
                                                            db: Path | str) -> None:
    reader = LongReader(db)
    try:
        reader.begin()
        view = reader.q("SELECT COUNT(*), SUM(pull_count) FROM images WHERE removed_at IS NULL")
        runs = reader.q("SELECT run_id, status FROM runs")
        assert runs == [(1, "success")]

        result = run_sync(settings(sim, db, busy_timeout=2.0), now=T1)
        assert (result.run_id, result.status) == (2, "success")

        # Same transaction: still the old, consistent state.
        assert reader.q("SELECT COUNT(*), SUM(pull_count) FROM images "
                        "WHERE removed_at IS NULL") == view
        assert reader.q("SELECT run_id, status FROM runs") == runs
        assert reader.q("SELECT COUNT(*) FROM image_snapshots WHERE run_id = 2") == [(0,)]
        reader.conn.execute("COMMIT")

        # A new transaction sees the sync's commit, whole.
        assert reader.q("SELECT COUNT(*), SUM(pull_count) FROM images "
                        "WHERE removed_at IS NULL") == [listing_totals(sim)]
        assert reader.q("SELECT run_id, status FROM runs ORDER BY run_id") == [
            (1, "success"), (2, "success")]
        assert reader.q("SELECT COUNT(*) FROM image_snapshots WHERE run_id = 2") == [
            (len(sim.listing()),)]
        assert view != [listing_totals(sim)]  # the day really moved
    finally:
        reader.close()


def hold_write_lock(db: Path | str) -> Any:
    """Another writer's open transaction in the way of a sync's load (SQLite: the write lock;
    PostgreSQL: ``images`` in SHARE mode, which the upsert must wait for)."""
    if is_postgres_url(db):
        other, _schema = pg_connect(str(db))
        other.execute("BEGIN")
        other.execute("LOCK TABLE images IN SHARE MODE")
    else:
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO quality_issues (run_id, source, image_id, field, raw_value, "
                  "problem) VALUES (1, 'x', NULL, 'test', 'x', 'held by another writer')")
    return other


def shown(db: Path | str) -> str:
    """The database as messages name it."""
    return display_url(db) if isinstance(db, str) else str(db)


def test_writer_past_busy_timeout_fails_with_exit_5_and_loses_nothing(
        sim: Simulator, db: Path | str) -> None:
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
    assert exc.message == (f"another writer held database {shown(db)} past the busy timeout; "
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
        sim: Simulator, db: Path | str) -> None:
    other = hold_write_lock(db)
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        result = run_sync(settings(sim, db, busy_timeout=10.0), now=T1)
    finally:
        release.join()
        other.close()
    assert (result.run_id, result.status, result.exit_code) == (2, "success", 0)
    assert q(db, "SELECT COUNT(*) FROM quality_issues WHERE problem = "
                 "'held by another writer'") == [(1,)]
    assert q(db, "SELECT COUNT(*) FROM image_snapshots WHERE run_id = 2") == [
        (len(sim.listing()),)]


def test_busy_database_through_the_cli_is_one_line_and_exit_5(
        sim: Simulator, db: Path | str, clean_env: pytest.MonkeyPatch,
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
        f"swr-etl: error: another writer held database {shown(db)} past the busy timeout; "
        "nothing of this run was loaded")
    after = state(db)
    assert after["images"] == before["images"]
    assert after["image_snapshots"] == before["image_snapshots"]


@contextmanager
def another_run(db: Path | str) -> Iterator[str]:
    """Another run's lock held for the block; yields the message a run then gets."""
    if is_postgres_url(db):
        lock = PgRunLock(str(db))
        lock.acquire()
        try:
            yield (f"another run holds the lock for {display_url(str(db))} schema public "
                   f"(swr-etl pid {os.getpid()})")
        finally:
            lock.release()
        return
    fd = os.open(f"{db}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, b"4242\n")
        yield f"another run holds the lock for {db} (pid 4242)"
    finally:
        os.close(fd)


def test_another_run_holding_the_lock_is_exit_5_and_touches_nothing(
        sim: Simulator, db: Path | str) -> None:
    before = state(db)
    with another_run(db) as message, pytest.raises(LockedError) as exc_info:
        run_sync(settings(sim, db), now=T1)
    assert exc_info.value.exit_code == 5
    assert exc_info.value.message == message
    assert state(db) == before
    assert sim.repos_requests() == [r for r in sim.repos_requests() if r.n]  # log readable
    # only the first run's three pages and its second read: no request was sent
    assert len(sim.repos_requests()) == 3 + 1


def test_a_reader_sees_the_old_state_or_the_new_never_half(db: Path | str) -> None:
    """A reader polling in another connection while a sync writes 4,000 rows in many chunks of
    its one transaction: every answer is the state before the sync or after it."""
    from etl.run.stream import ChunkSizes

    def probe() -> tuple[int, int, int]:
        (count, latest, pulls), = q(
            db, "SELECT count(*), (SELECT max(run_id) FROM runs WHERE status = 'success'),"
                " sum(pull_count) FROM images WHERE removed_at IS NULL")
        return int(count), int(latest), int(pulls)

    old = probe()
    seen: set[tuple[int, int, int]] = set()
    first, stop = threading.Event(), threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(probe())
            first.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert first.wait(timeout=60)
        run_sync(Settings(endpoint="http://127.0.0.1:9", db=db, allow_anonymous=True), now=T1,
                 pages=FakeScan(rows(range(1, 4001), pulls=500), page_size=200),
                 chunk_sizes=ChunkSizes(first=200, largest=400))
    finally:
        stop.set()
        reader.join(timeout=60)
    new = probe()
    assert new == (old[0] + 4000, old[1] + 1, old[2] + sum(range(501, 4501)))
    assert seen <= {old, new}, seen - {old, new}
    assert old in seen
