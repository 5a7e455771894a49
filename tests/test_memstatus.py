"""SQLite's allocation statistics, turned off before the library starts (etl.store.memstatus):
in a fresh process, by the commands that do much SQLite work, and not by the small ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The high-water mark of SQLite's allocation statistics (0 when they were never kept) of the
# library the sqlite3 module uses, into ``mark``.
HIGHWATER = r"""
import ctypes, _sqlite3
lib = ctypes.CDLL(_sqlite3.__file__)
lib.sqlite3_memory_highwater.restype = ctypes.c_int64
mark = lib.sqlite3_memory_highwater(0)
"""
# Runs the command line in a fresh interpreter, then prints the mark.
PROBE = r"""
import sys
{before}
from etl.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
""" + HIGHWATER + "print(mark)\n"
# Some SQLite work once sqlite3 is imported, then the mark.
WORK = r"""
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x)")
conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5000)])
""" + HIGHWATER
# What SQLite keeps by itself, with nothing turned off.
PLAIN = "import sqlite3\n" + WORK + "print(mark)\n"


def highwater(*argv: str, before: str = "") -> int:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(before=before), *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return int(proc.stdout.split()[-1])


@pytest.fixture(scope="module", autouse=True)
def keeps_statistics() -> None:
    """Skip where the library keeps no allocation statistics by default (nothing to turn off).
    Asked of a process that never calls ``memstatus_off``, so a command that turns them off
    where it should not fails the tests below instead of skipping them."""
    proc = subprocess.run([sys.executable, "-c", PLAIN], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if int(proc.stdout.split()[-1]) == 0:
        pytest.skip("this SQLite keeps no allocation statistics by default")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of two nightly runs, made by the demo's own data (no network)."""
    from etl.demo import DB_NAME, run_demo

    folder = tmp_path_factory.mktemp("memstatus")
    run_demo(folder, days=2, images=30, interactive=False)
    return folder / DB_NAME


def test_the_function_turns_the_statistics_off_only_before_sqlite_starts() -> None:
    off_first = ("from etl.store.memstatus import memstatus_off\n"
                 "done = memstatus_off()\nimport sqlite3\nagain = memstatus_off()\n"
                 + WORK + "print(done, again, mark)\n")
    late = off_first.replace("done = memstatus_off()\nimport sqlite3",
                             "import sqlite3\ndone = memstatus_off()")
    assert late != off_first
    results = []
    for program in (off_first, late):
        proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        done, again, mark = proc.stdout.split()
        results.append((done, again, int(mark)))
    (done, again, mark), (late_done, late_again, late_mark) = results
    assert (done, again, mark) == ("True", "False", 0)
    assert (late_done, late_again) == ("False", "False") and late_mark > 0


def test_the_heavy_commands_turn_them_off_and_the_small_ones_do_not(
        db: Path, tmp_path: Path, simulator: Callable[..., Any]) -> None:
    assert highwater("runs", "--db", str(db)) > 0
    assert highwater("status", "--db", str(db), "--max-age", "876000") > 0
    assert highwater("-q", "report", "--db", str(db), "--out", str(tmp_path / "r.json")) == 0
    assert (tmp_path / "r.json").stat().st_size > 0  # the report was written, not skipped
    assert highwater("-q", "export", "--db", str(db), "--out", str(tmp_path / "x"),
                     "--all") == 0
    assert sorted((tmp_path / "x").rglob("images.parquet"))  # exported, not refused
    sim = simulator(images=120)
    nightly = tmp_path / "nightly.db"
    for _ in range(2):  # into a new database, then into the one it made
        assert highwater("-q", "sync", "--endpoint", sim.url, "--db", str(nightly),
                         "--no-auth") == 0
    assert highwater("-q", "replay", "1", "--db", str(nightly)) == 0
    assert highwater("-q", "demo", "--dir", str(tmp_path / "demo"), "--days", "2",
                     "--images", "20") == 0
    # Too late once sqlite3 is imported: the command still runs, the statistics stay on.
    assert highwater("-q", "report", "--db", str(db), "--out", str(tmp_path / "r2.json"),
                     before="import sqlite3") > 0
