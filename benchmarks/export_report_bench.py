"""Export and report cost: wall time, CPU time and peak RSS of ``swr-etl export``/``report``.

Builds a synthetic database of N images x R nightly runs (plain ``executemany``, no simulator),
then runs each command as a child process (interpreter start included, like cron) and prints one
line per command. Prints figures only; nothing is asserted.

Usage: python -m benchmarks.export_report_bench [--images N] [--runs R] [--keep DIR] [--s3]
                                                [--postgres]
       python -m benchmarks.export_report_bench --base REV [--export] [--db FILE] [--images N]
                                                [--runs R]

``--base REV`` measures ``report`` alone (JSON, then HTML; with ``--export``, ``export --all``
first), as an A/B: ``etl/`` at the git revision REV against this checkout, alternating runs
(``benchmarks.ab``'s launcher), B/A per round in CPU and in wall time. ``--db FILE`` reuses
that database (built there first if missing): building a year of 10,000 images takes ~1
minute.

``--s3`` also exports to a bucket of moto's S3 server on 127.0.0.1 (the test extra's), so the
upload path (temp object, size check, server-side copy) is measured against the folder's.
``--postgres`` copies the database into a throwaway PostgreSQL cluster on 127.0.0.1 (the tests'
own, tests/services/postgres.py: fsync off) and runs the same commands against its URL; each
line then also shows the server's CPU for the command (its backend's, as the postmaster
collects it), which the child's own CPU does not include.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.run import Sample
from benchmarks.run import measure as run_measure
from etl.store.database import connect
from etl.store.schema import ensure_schema

REPEAT = 3  # runs of each command (--repeat)
SOURCE = "cn-north-4"  # the default region: the one source of a single-source database


def build(path: Path, images: int, runs: int) -> None:
    conn = connect(path)  # as sync opens it: WAL, its page size
    ensure_schema(conn)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    first = dt.date(2026, 1, 1)
    days = [(first + dt.timedelta(days=k)).isoformat() for k in range(runs)]
    conn.executemany(
        "INSERT INTO runs (run_id, started_at, finished_at, status, snapshot_date) "
        "VALUES (?, ?, ?, 'success', ?)",
        [(k + 1, f"{d}T02:00:00Z", f"{d}T02:10:00Z", d) for k, d in enumerate(days)])
    # Schema v4: every run has its sources, every image row names its source.
    conn.executemany("INSERT INTO run_sources (run_id, source, status) VALUES (?, ?, 'success')",
                     [(k + 1, SOURCE) for k in range(runs)])
    conn.executemany(
        "INSERT INTO images (source, id, namespace, name, user, description, star_count, "
        "pull_count, collection_id, last_updated, first_seen_at, last_seen_at, first_seen_run, "
        "last_seen_run) VALUES (?, ?, 'library', ?, 'swr', ?, 0, 0, NULL, "
        "'2026-01-01T00:00:00Z', '2026-01-01T02:10:00Z', '2026-01-01T02:10:00Z', 1, ?)",
        ((SOURCE, i, f"image-{i}", f'Image {i}, a "benchmark" image', runs)
         for i in range(1, images + 1)))
    for k, d in enumerate(days):
        conn.executemany(
            "INSERT INTO image_snapshots (run_id, source, image_id, captured_at, snapshot_date, "
            "star_count, pull_count, last_updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, '2026-01-01T00:00:00Z')",
            ((k + 1, SOURCE, i, f"{d}T02:10:00Z", d, i % 50, i * 10 + k * (i % 97))
             for i in range(1, images + 1)))
    conn.execute("COMMIT")
    conn.close()


def measure(label: str, args: list[str], server: Callable[[], float] | None = None) -> None:
    """Median (min-max) of ``REPEAT`` fresh processes; CPU time and peak RSS are each child's
    own (``os.wait4``). CPU time is the figure to compare on a shared machine. ``server``: the
    database server's CPU seconds so far, read around each run (PostgreSQL)."""
    got, served = [], []
    for _ in range(REPEAT):
        before = server() if server else 0.0
        got.append(run_measure([sys.executable, "-m", "etl", "-q", *args]))
        served.append(server() - before if server else 0.0)
    cpu, wall = [s.cpu for s in got], [s.wall for s in got]
    extra = f"  server cpu {statistics.median(served):6.2f} s" if server else ""
    print(f"{label:<24} cpu {statistics.median(cpu):6.2f} s ({min(cpu):.2f}-{max(cpu):.2f})  "
          f"wall {statistics.median(wall):6.2f} s ({min(wall):.2f}-{max(wall):.2f})  "
          f"peak RSS {max(s.rss_mib for s in got):6.0f} MiB{extra}", flush=True)


def main() -> None:
    global REPEAT  # --repeat sets it for measure(); declared before its use as the default
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs of each command")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    parser.add_argument("--s3", action="store_true", help="also export to a loopback bucket")
    parser.add_argument("--postgres", action="store_true",
                        help="also export and report from a loopback PostgreSQL copy")
    parser.add_argument("--db", type=Path, default=None, help="reuse this database (or build it)")
    parser.add_argument("--base", default=None, help="A/B of report: this revision vs checkout")
    parser.add_argument("--export", action="store_true",
                        help="with --base: export --all as well, first")
    ns = parser.parse_args()
    REPEAT = ns.repeat
    if ns.base:
        report_ab(ns.base, ns.db, ns.images, ns.runs, export=ns.export)
        return
    with tempfile.TemporaryDirectory() as scratch:
        work = ns.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        db = work / "bench.db"
        db.unlink(missing_ok=True)
        t0 = time.perf_counter()
        build(db, ns.images, ns.runs)
        print(f"built {ns.images:,} images x {ns.runs} runs in "
              f"{time.perf_counter() - t0:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)")
        commands(db, work)
        measure("export csv (latest)", ["export", "--db", str(db), "--out", str(work / "x"),
                                        "--format", "csv"])
        if ns.runs > 31:  # up to a month this was --all again, already measured first
            measure("export parquet", ["export", "--db", str(db), "--out", str(work / "x"),
                                       "--format", "parquet"])
        if ns.s3:
            measure_bucket(db, ns.runs)
        if ns.postgres:
            measure_postgres(db, work)


def commands(db: Path | str, work: Path, label: str = "",
             server: Callable[[], float] | None = None) -> None:
    """``export --all`` and ``report`` (JSON, HTML) from ``db``, a file or a URL."""
    # Every partition, at any length of history: its memory must stay flat (90 vs 365 runs).
    measure(f"{label}export parquet --all", ["export", "--db", str(db), "--out",
                                             str(work / f"{label}all"), "--format", "parquet",
                                             "--all"], server)
    measure(f"{label}report json", ["report", "--db", str(db), "--out", str(work / "r.json")],
            server)
    measure(f"{label}report html", ["report", "--db", str(db), "--out", str(work / "r.html")],
            server)


def measure_postgres(db: Path, work: Path) -> None:
    """The same commands from a copy of ``db`` in a loopback PostgreSQL cluster."""
    from tests.services.postgres import start_cluster

    cluster = start_cluster()
    try:
        with cluster.database() as url:
            t0 = time.perf_counter()
            copy_to_postgres(db, url)
            print(f"copied into PostgreSQL in {time.perf_counter() - t0:.1f} s", flush=True)
            commands(url, work, "pg ", server_cpu(cluster))
    finally:
        cluster.close()


def copy_to_postgres(db: Path, url: str) -> None:
    """Every row of the SQLite database ``db`` into ``url``'s (COPY), then analysed."""
    import psycopg

    from etl.store.pg_schema import by_dependency, ensure_schema

    with sqlite3.connect(db) as lite, psycopg.connect(url, autocommit=True) as pg:
        ensure_schema(pg, "public")
        for table, _sql in by_dependency(lite):
            names = ", ".join(f'"{c[1]}"' for c in lite.execute(f"PRAGMA table_info({table})"))
            with pg.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in lite.execute(f"SELECT * FROM {table}"):
                    copy.write_row(row)
        pg.execute("VACUUM ANALYZE")  # as autovacuum leaves a loaded database
    lite.close()


def server_cpu(cluster: Any) -> Callable[[], float]:
    """A reader of the cluster's CPU seconds so far: the postmaster's own, its finished
    children's (each session's backend, once reaped) and its live children's."""
    postmaster = cluster.pid
    ticks = os.sysconf("SC_CLK_TCK")

    def used(pid: int, fields: slice) -> int:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile: counted in the postmaster's children from now on
            return 0
        return sum(int(v) for v in stat[fields])

    def read() -> float:
        total = used(postmaster, slice(11, 15))  # utime, stime, cutime, cstime
        total += sum(used(pid, slice(11, 13)) for pid in cluster.processes() if pid != postmaster)
        return total / ticks

    return read


def report_ab(base: str, db: Path | None, images: int, runs: int,
              export: bool = False) -> None:
    """``report`` (JSON, then HTML) of ``etl/`` at ``base`` (A) and of this checkout (B),
    alternating; B/A per round in CPU and in wall time (the report runs SQL on two threads).
    ``export``: ``export --all`` (Parquet, into a new folder each run) first, the same way."""
    from benchmarks.ab import LAUNCHER, a_and_b, summary, tree_env

    with tempfile.TemporaryDirectory(prefix="swr-report-ab-") as scratch:
        work = Path(scratch)
        db = db or work / "bench.db"
        if not db.exists():
            build(db, images, runs)
        a, b = a_and_b(base, work)
        trees = {f"A {base}": a, "B this checkout": b}
        commands = {f"report {kind}": ["report", "--db", str(db), "--out", str(work / f"r.{kind}")]
                    for kind in ("json", "html")}
        if export:
            commands = {"export parquet --all": ["export", "--db", str(db), "--out",
                                                 str(work / "x"), "--format", "parquet",
                                                 "--all"], **commands}
        for name, args in commands.items():
            samples: dict[str, list[Sample]] = {label: [] for label in trees}
            for _ in range(REPEAT):
                for label, tree in trees.items():
                    shutil.rmtree(work / "x", ignore_errors=True)
                    samples[label].append(run_measure(
                        [sys.executable, "-c", LAUNCHER, "-q", *args], env=tree_env(tree)))
            print(f"{name} over {db.name}, {REPEAT} alternating runs:")
            summary(samples)


def measure_bucket(db: Path, runs: int) -> None:
    """The Parquet export again, into a bucket of a loopback moto server."""
    from tests.services.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server

    server = S3Server().start()
    try:
        server.create_bucket("bench")
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
                          AWS_REGION=REGION, AWS_EC2_METADATA_DISABLED="true",
                          SWR_ETL_S3_ENDPOINT=server.endpoint_url)
        measure("export parquet to s3" + (" (--all)" if runs <= 31 else ""),
                ["export", "--db", str(db), "--out", "s3://bench/x", "--format", "parquet",
                 *(["--all"] if runs <= 31 else [])])
    finally:
        server.close()


if __name__ == "__main__":
    main()
