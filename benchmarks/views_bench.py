"""The analysts' questions: how long each view and Datasette canned query takes over a long history.

Builds (or reuses, ``--db``) the database of ``benchmarks.export_report_bench`` (N images x R
nightly runs, one source), brings its schema to this checkout's (``ensure_schema``: the views
recreated from the code, pending migrations run; ``--as-is`` leaves it as it is, to time a
database an earlier swr-etl left), then asks each question on a fresh read-only connection,
question after question, round by round, and prints the median (min-max) wall time and this
process's CPU time (SQLite runs in it), with the rows each returned. One image is asked for by
name: the one in the middle of the listing. Prints figures only; nothing is asserted.

Questions over every image's whole history (``daily_pulls`` unfiltered, or by date) take ~20 s
each over a year of 10,000 images: ``--whole`` adds them.

``--postgres`` copies the database into a throwaway PostgreSQL cluster on 127.0.0.1 (the tests'
own, tests/services/postgres.py; ``export_report_bench``'s copy, analysed) and asks the views'
questions there too, on a fresh connection each (Datasette's canned queries are SQLite's only).

Usage: python -m benchmarks.views_bench [--db FILE] [--images 10000] [--runs 365] [--repeat 3]
                                        [--whole] [--as-is] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.export_report_bench import build, copy_to_postgres
from benchmarks.run import header
from etl.store.database import connect
from etl.store.schema import ensure_schema

METADATA = Path(__file__).resolve().parent.parent / "datasette" / "metadata.json"
ONE = "source = :source AND namespace = :ns AND name = :name"
QUESTIONS: list[tuple[str, str]] = [
    ("daily_pulls, one image by source, namespace, name",
     f"SELECT * FROM daily_pulls WHERE {ONE} ORDER BY snapshot_date"),
    ("daily_pulls, one image by namespace, name",
     "SELECT * FROM daily_pulls WHERE namespace = :ns AND name = :name"),
    ("daily_pulls, one image by name alone", "SELECT * FROM daily_pulls WHERE name = :name"),
    ("daily_pulls, one image by source, image_id",
     "SELECT * FROM daily_pulls WHERE source = :source AND image_id = :id"),
    ("latest_images, top 10 by pulls",
     "SELECT * FROM latest_images ORDER BY pull_count DESC LIMIT 10"),
    ("top_movers_7d, top 10", "SELECT * FROM top_movers_7d WHERE rank <= 10 ORDER BY rank"),
    ("top_movers_30d, top 10", "SELECT * FROM top_movers_30d WHERE rank <= 10 ORDER BY rank"),
    ("top_movers_7d, one image", f"SELECT * FROM top_movers_7d WHERE {ONE}"),
    ("top_movers_total_7d, top 10",
     "SELECT * FROM top_movers_total_7d WHERE rank <= 10 ORDER BY rank"),
]
WHOLE: list[tuple[str, str]] = [
    ("daily_pulls, every image, gain per date",
     "SELECT snapshot_date, SUM(pull_delta) FROM daily_pulls GROUP BY snapshot_date"),
    ("daily_pulls, every image, the last 7 dates",
     "SELECT * FROM daily_pulls WHERE snapshot_date >= (SELECT date(MAX(snapshot_date), "
     "'-6 days') FROM runs)"),
]
CANNED = {  # Datasette's canned queries, with the parameters asked
    "image_history": {"namespace": ":ns", "name": ":name"},
    "image_history (namespace/name)": {"namespace": "", "name": ":ns/:name"},
    "top_movers_this_week": {},
    "top_movers_this_month": {},
}


def canned() -> list[tuple[str, str, dict[str, str]]]:
    """(label, SQL, parameters with :ns and :name to fill) of the canned queries timed."""
    queries = json.loads(METADATA.read_text(encoding="utf-8"))["databases"]["swr"]["queries"]
    return [(f"Datasette {label}", queries[label.split(" ")[0]]["sql"], params)
            for label, params in CANNED.items()]


def ask(db: Path, sql: str, params: dict[str, Any]) -> tuple[float, float, int]:
    """Wall and CPU seconds of one question on a fresh read-only connection, and its rows."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        rows = len(conn.execute(sql, params).fetchall())
        return time.perf_counter() - wall, time.process_time() - cpu, rows
    finally:
        conn.close()


def ask_postgres(url: str, sql: str, params: dict[str, Any]) -> tuple[float, float, int]:
    """Wall seconds of one question on a fresh PostgreSQL connection (the server does the work:
    no client CPU is worth printing), and its rows."""
    import psycopg

    from etl.store.pg import pg_query

    query, bound = pg_query(sql, params)
    with psycopg.connect(url) as conn:
        wall = time.perf_counter()
        rows = len(conn.execute(query, bound).fetchall())
        return time.perf_counter() - wall, 0.0, rows


def report(title: str, times: dict[str, list[tuple[float, float, int]]], cpu: bool) -> None:
    print(f"\n{title}")
    for label, got in times.items():
        walls, cpus = [g[0] for g in got], [g[1] for g in got]
        tail = f"  cpu {statistics.median(cpus):7.3f} s" if cpu else ""
        print(f"  {label:52s} wall {statistics.median(walls):7.3f} s "
              f"({min(walls):.3f}-{max(walls):.3f}){tail}  rows {got[0][2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="reuse (or build there) this database")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--whole", action="store_true", help="add whole-history questions")
    parser.add_argument("--as-is", action="store_true",
                        help="leave the database's schema and views as they are")
    parser.add_argument("--postgres", action="store_true",
                        help="ask the views' questions of a PostgreSQL copy too")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="swr-views-")) / "swr.db"
    if not db.exists():
        print(f"building {args.images} images x {args.runs} runs in {db} ...", flush=True)
        build(db, args.images, args.runs)
    if not args.as_is:
        conn = connect(db)
        try:
            ensure_schema(conn)
        finally:
            conn.close()
    probe = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        version = probe.execute("PRAGMA user_version").fetchone()[0]
        source, ns, name, image_id = probe.execute(
            "SELECT source, namespace, name, id FROM images ORDER BY id LIMIT 1 OFFSET "
            "(SELECT COUNT(*) / 2 FROM images)").fetchone()
    finally:
        probe.close()
    values = {"source": source, "ns": ns, "name": name, "id": image_id}
    questions = [(label, sql, values) for label, sql in QUESTIONS + (WHOLE if args.whole else [])]
    questions += [(label, sql, {k: v.replace(":ns", ns).replace(":name", name)
                                for k, v in params.items()}) for label, sql, params in canned()]
    header("benchmarks.views_bench", None)
    print(f"database: {db} (schema {version}{', as it is' if args.as_is else ''}, SQLite "
          f"{sqlite3.sqlite_version}); "
          f"one image: {source} {ns}/{name} (id {image_id})")
    times: dict[str, list[tuple[float, float, int]]] = {label: [] for label, _s, _p in questions}
    for _ in range(args.repeat):
        for label, sql, params in questions:
            times[label].append(ask(db, sql, params))
    report(f"median (min-max) of {args.repeat} rounds, each on a fresh read-only connection:",
           times, cpu=True)
    if args.postgres:
        postgres(db, [(label, sql) for label, sql in QUESTIONS], values, args.repeat)


def postgres(db: Path, questions: list[tuple[str, str]], values: dict[str, Any],
             repeat: int) -> None:
    """The views' questions of a copy of ``db`` in a loopback PostgreSQL cluster."""
    from tests.services.postgres import start_cluster

    cluster = start_cluster()
    try:
        with cluster.database() as url:
            started = time.perf_counter()
            copy_to_postgres(db, url)
            print(f"\ncopied into PostgreSQL in {time.perf_counter() - started:.1f} s",
                  flush=True)
            times: dict[str, list[tuple[float, float, int]]] = {q: [] for q, _s in questions}
            for _ in range(repeat):
                for label, sql in questions:
                    times[label].append(ask_postgres(url, sql, values))
            report(f"PostgreSQL, median (min-max) of {repeat} rounds, each on a fresh "
                   "connection:", times, cpu=False)
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
