"""SIGKILL at random moments never corrupts the database or leaves half a run.

A 30,000-image simulated listing (page size 500, a little latency so kills land mid-scan and
mid-write) is synced by ``python -m etl sync`` subprocesses, killed with SIGKILL at times drawn
from ``random.Random(1234)`` until 20 kills have landed (a run that wins the race is checked too,
at most 10 of them). The simulated day advances before every attempt, so a
half-applied run would show. After each kill: ``PRAGMA integrity_check`` is ``ok``; ``images`` is
exactly as before the attempt (or, if the run finished first, exactly the new listing); every
``success``/``partial`` run has exactly ``rows_loaded`` snapshots and every other run has none.
Finally a clean sync succeeds and marks the killed runs ``failed`` / ``interrupted``.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.simulator import Simulator

pytestmark = pytest.mark.slow

IMAGES = 30_000
KILLS = 20
SEED = 1234
MAX_KILL_DELAY = 4.0  # seconds after the run row appears; bounds the test on slow machines
COLS = ("id, namespace, name, user, description, star_count, pull_count, collection_id, "
        "last_updated")


def sync_cmd(url: str, db: Path) -> list[str]:
    return [sys.executable, "-m", "etl", "sync", "-q", "--no-auth", "--endpoint", url,
            "--db", str(db), "--page-size", "500", "--concurrency", "2", "--timeout", "30"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWR_", "HUAWEICLOUD_"))}
    env["NO_PROXY"] = "127.0.0.1"
    return env


def q(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def normalise(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["id"], row["namespace"], row["name"], row["user"], row["description"],
            row["star_count"], row["pull_count"], row["collection_id"],
            str(row["last_updated"]).replace(" ", "T") + "Z")


def listed(sim: Simulator) -> list[tuple[Any, ...]]:
    return sorted(normalise(r) for r in sim.listing())


def current(db: Path) -> list[tuple[Any, ...]]:
    return q(db, f"SELECT {COLS} FROM images WHERE removed_at IS NULL ORDER BY id")


def check_runs(db: Path) -> None:
    """No run holds a partial set of snapshots."""
    per_run = dict(q(db, "SELECT run_id, COUNT(*) FROM image_snapshots GROUP BY run_id"))
    for run_id, status, rows_loaded in q(db, "SELECT run_id, status, rows_loaded FROM runs"):
        if status in ("success", "partial"):
            assert rows_loaded > 0 and per_run.get(run_id, 0) == rows_loaded, (run_id, status)
        else:
            assert per_run.get(run_id, 0) == 0, (run_id, status)


def test_sigkill_at_random_moments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    rng = random.Random(SEED)
    env = child_env()
    phases: Counter[str] = Counter()
    with Simulator(images=IMAGES, seed=9, scenario={"latency_ms": 1},
                   today=date(2026, 11, 1)) as sim:
        # A first clean run: the previous good state, and how long a run's work takes here.
        first = subprocess.run(sync_cmd(sim.url, db), env=env, capture_output=True, text=True,
                               timeout=300)
        assert first.returncode == 0, first.stderr
        assert current(db) == listed(sim)
        duration = float(q(db, "SELECT duration_s FROM runs WHERE run_id = 1")[0][0])
        window = min(duration * 1.1, MAX_KILL_DELAY)

        attempt = 0
        while KILLS > sum(n for k, n in phases.items() if k != "finished before the kill"):
            attempt += 1
            assert attempt <= KILLS + 10, phases  # a run that always beats the kill: no test
            sim.dataset.advance_day()
            before = q(db, "SELECT * FROM images ORDER BY id")
            runs_before = q(db, "SELECT MAX(run_id) FROM runs")[0][0]
            proc = subprocess.Popen(sync_cmd(sim.url, db), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            # Interpreter start-up is not interesting: wait for the run row, then pick a moment.
            deadline = time.monotonic() + 60
            while (proc.poll() is None and time.monotonic() < deadline
                   and not q(db, "SELECT 1 FROM runs WHERE run_id > ?", runs_before)):
                time.sleep(0.02)
            delay = rng.uniform(0.0, window)
            try:
                proc.wait(timeout=delay)
                finished = True
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                # The run may have ended on its own between the timeout and the signal.
                finished = proc.returncode == 0
            err = proc.stderr.read().decode() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()

            assert q(db, "PRAGMA integrity_check") == [("ok",)]
            new_runs = q(db, "SELECT run_id, status FROM runs WHERE run_id > ?", runs_before)
            if finished:
                assert proc.returncode == 0, err
                phases["finished before the kill"] += 1
            else:
                assert proc.returncode == -signal.SIGKILL
                if not new_runs:
                    phases["before its run row"] += 1
                elif delay < duration / 2:
                    phases["first half of the run"] += 1
                elif delay < duration:
                    phases["second half (chunks written)"] += 1
                else:
                    phases["past the calibrated run time (commit)"] += 1
            if new_runs and new_runs[-1][1] == "success":
                assert current(db) == listed(sim), f"attempt {attempt}: not the new listing"
            else:
                assert q(db, "SELECT * FROM images ORDER BY id") == before, (
                    f"attempt {attempt}: a killed run changed images")
                assert all(status == "running" for _, status in new_runs), new_runs
            check_runs(db)

        # A clean sync afterwards succeeds and closes the books on every killed run.
        killed = [r for (r,) in q(db, "SELECT run_id FROM runs WHERE status = 'running'")]
        last = subprocess.run(sync_cmd(sim.url, db), env=env, capture_output=True, text=True,
                              timeout=300)
        assert last.returncode == 0, last.stderr
        assert current(db) == listed(sim)
    assert q(db, "PRAGMA integrity_check") == [("ok",)]
    assert q(db, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == [(0,)]
    ids = ",".join(map(str, killed or [-1]))
    marked = q(db, f"SELECT run_id, status, error FROM runs WHERE run_id IN ({ids}) "
                   "ORDER BY run_id")
    assert marked == [(r, "failed", "interrupted") for r in killed]
    check_runs(db)
    kills = attempt - phases["finished before the kill"]
    assert kills == KILLS, phases
    with capsys.disabled():
        print(f"\nSIGKILL loop: {kills} kills survived in {attempt} attempts (a run's work "
              f"{duration:.1f} s; kills within {window:.1f} s of its start): {dict(phases)}")
