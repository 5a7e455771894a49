"""SIGKILL at random moments never corrupts the database or leaves half a run.

A 30,000-image simulated listing (page size 500, a little latency so kills land mid-scan and
mid-write) is synced by ``python -m etl sync`` subprocesses, killed with SIGKILL until 20 kills
have landed (a run that wins the race is checked too, at most 10 of them). The moments come from
``random.Random(1234)`` and take turns: a random time after the run row appears, a random number
of page requests into the scan, and a little after the scan's last request (transform, load,
commit). The simulated day advances before every attempt, so a half-applied run would show.

After each attempt: ``PRAGMA integrity_check`` is ``ok``; ``images`` is exactly as before the
attempt, or, if the run committed first, exactly the new listing; every ``success`` run has
exactly ``rows_loaded`` snapshots and every other run has neither snapshots nor raw pages; no
image is marked seen by a run that did not commit. Finally a clean sync succeeds and marks exactly
the killed runs ``failed`` / ``interrupted``.

Both engines (the ``db`` fixture): on PostgreSQL the file check is the server's business, and
before each check the killed client's session must have ended (the server rolls its transaction
back and frees its advisory lock when it notices the closed socket).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.simulator import Simulator
from etl.store.dialect import is_postgres_url
from tests.helpers import q

pytestmark = pytest.mark.slow

IMAGES = 30_000
KILLS = 20
SEED = 1234
MAX_KILL_DELAY = 4.0  # seconds after the run row appears; bounds the test on slow machines
COLS = ('id, namespace, name, "user", description, star_count, pull_count, collection_id, '
        "last_updated")
MODES = ("a moment after the run row", "some page requests in", "after the last request")


def sync_cmd(url: str, db: Path | str) -> list[str]:
    return [sys.executable, "-m", "etl", "sync", "-q", "--no-auth", "--endpoint", url,
            "--db", str(db), "--page-size", "500", "--concurrency", "2", "--timeout", "30"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWR_", "HUAWEICLOUD_"))}
    env["NO_PROXY"] = "127.0.0.1"
    return env


def normalise(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["id"], row["namespace"], row["name"], row["user"], row["description"],
            row["star_count"], row["pull_count"], row["collection_id"],
            str(row["last_updated"]).replace(" ", "T") + "Z")


def listed(sim: Simulator) -> list[tuple[Any, ...]]:
    return sorted(normalise(r) for r in sim.listing())


def current(db: Path | str) -> list[tuple[Any, ...]]:
    return q(db, f"SELECT {COLS} FROM images WHERE removed_at IS NULL ORDER BY id")


def check_consistent(db: Path | str) -> None:
    """The file is sound and every run is whole: a committed run has all its snapshots, any
    other run has none and no stored pages, and no image points at a run that never committed."""
    if not is_postgres_url(db):
        assert q(db, "PRAGMA integrity_check") == [("ok",)]
    snaps = dict(q(db, "SELECT run_id, COUNT(*) FROM image_snapshots GROUP BY run_id"))
    pages = dict(q(db, "SELECT run_id, COUNT(*) FROM raw_pages GROUP BY run_id"))
    for run_id, status, rows_loaded in q(db, "SELECT run_id, status, rows_loaded FROM runs"):
        if status in ("success", "partial"):
            assert rows_loaded > 0 and snaps.get(run_id, 0) == rows_loaded, (run_id, status)
        else:
            assert (snaps.get(run_id, 0), pages.get(run_id, 0)) == (0, 0), (run_id, status)
    assert q(db, "SELECT COUNT(*) FROM images WHERE last_seen_run NOT IN "
                 "(SELECT run_id FROM runs WHERE status IN ('success', 'partial'))") == [(0,)]


def wait_for(condition: Callable[[], bool], deadline_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds or the deadline passes."""
    end = time.monotonic() + deadline_s
    while not condition() and time.monotonic() < end:
        time.sleep(0.005)


def session_ended(db: Path | str, pid: int) -> None:
    """PostgreSQL: wait until the killed client's session is gone (nothing to wait for with
    SQLite, whose lock the kernel dropped with the process)."""
    if is_postgres_url(db):
        wait_for(lambda: q(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name "
                               "= ?", f"swr-etl pid {pid}") == [(0,)])


def kill_moment(mode: str, proc: subprocess.Popen[bytes], sim: Simulator, db: Path | str,
                rng: random.Random, *, served: int, requests: int, runs_before: int,
                window: float) -> float:
    """Wait for where ``mode`` starts counting (interpreter start-up is not interesting); return
    how much longer to wait before the kill."""
    def running() -> bool:
        return proc.poll() is None

    if mode == MODES[1]:
        target = served + rng.randint(1, requests - 1)
        wait_for(lambda: not running() or len(sim.repos_requests()) >= target)
        return 0.0
    if mode == MODES[0]:
        wait_for(lambda: not running()
                 or bool(q(db, "SELECT 1 FROM runs WHERE run_id > ?", runs_before)))
        return rng.uniform(0.0, window)
    wait_for(lambda: not running() or len(sim.repos_requests()) >= served + requests)
    return rng.uniform(0.0, 0.4)


def test_sigkill_at_random_moments(db: Path | str, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    env = child_env()
    phases: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    killed: list[int] = []
    with Simulator(images=IMAGES, seed=9, scenario={"latency_ms": 1},
                   today=date(2026, 11, 1)) as sim:
        # A first clean run: the previous good state, and how long and how many requests a run's
        # work takes here.
        first = subprocess.run(sync_cmd(sim.url, db), env=env, capture_output=True, text=True,
                               timeout=300)
        assert first.returncode == 0, first.stderr
        assert current(db) == listed(sim)
        duration, requests = q(db, "SELECT duration_s, requests FROM runs WHERE run_id = 1")[0]
        window = min(float(duration) * 1.1, MAX_KILL_DELAY)

        attempt = 0
        while KILLS > sum(n for k, n in phases.items() if k != "finished before the kill"):
            attempt += 1
            assert attempt <= KILLS + 10, phases  # a run that always beats the kill: no test
            mode = MODES[attempt % len(MODES)]
            sim.dataset.advance_day()
            before = q(db, "SELECT * FROM images ORDER BY id")
            runs_before = q(db, "SELECT MAX(run_id) FROM runs")[0][0]
            served = len(sim.repos_requests())
            proc = subprocess.Popen(sync_cmd(sim.url, db), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            delay = kill_moment(mode, proc, sim, db, rng, served=served, requests=requests,
                                runs_before=runs_before, window=window)
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
            session_ended(db, proc.pid)

            check_consistent(db)
            new_runs = q(db, "SELECT run_id, status FROM runs WHERE run_id > ?", runs_before)
            if finished:
                assert proc.returncode == 0, err
                phases["finished before the kill"] += 1
            else:
                assert proc.returncode == -signal.SIGKILL
                modes[mode] += 1
                if not new_runs:
                    phases["before its run row"] += 1
                elif new_runs[-1][1] == "running":
                    phases["mid-run"] += 1
                    killed.append(new_runs[-1][0])
                else:
                    phases["after its commit"] += 1
            if new_runs and new_runs[-1][1] == "success":
                assert current(db) == listed(sim), f"attempt {attempt}: not the new listing"
            else:
                assert q(db, "SELECT * FROM images ORDER BY id") == before, (
                    f"attempt {attempt}: a killed run changed images")
                assert all(status == "running" for _, status in new_runs), new_runs

        # A clean sync afterwards succeeds and closes the books on every killed run.
        last = subprocess.run(sync_cmd(sim.url, db), env=env, capture_output=True, text=True,
                              timeout=300)
        assert last.returncode == 0, last.stderr
        assert current(db) == listed(sim)
    check_consistent(db)
    assert q(db, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == [(0,)]
    assert q(db, "SELECT run_id FROM runs WHERE status = 'failed' AND error = 'interrupted' "
                 "ORDER BY run_id") == [(r,) for r in killed]
    kills = attempt - phases["finished before the kill"]
    assert kills == KILLS, phases
    # Most kills must land while a run is under way: that is the case this test is about.
    assert phases["mid-run"] >= KILLS // 2, phases
    with capsys.disabled():
        engine = "postgres" if is_postgres_url(db) else "sqlite"
        print(f"\nSIGKILL loop ({engine}): {kills} kills survived in {attempt} attempts (a "
              f"run's work {duration:.1f} s, {requests} requests): {dict(phases)}; by moment: "
              f"{dict(modes)}")
