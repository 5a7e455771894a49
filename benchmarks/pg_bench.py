"""A whole sync into SQLite and into PostgreSQL, alternating: CPU time, server CPU and wall time.

Usage:
    python -m benchmarks.pg_bench                       # 200,000 rows, 3 rounds
    python -m benchmarks.pg_bench --rows 50000 --repeat 5

Each round syncs the simulated listing (``swr-etl simulate`` in its own process, page size 1000,
warmed up) into a new SQLite file and into a new PostgreSQL database, then once more into each
(the nightly case: everything known, counts moved), taking turns so a burst of load from other
work hits both engines alike. The PostgreSQL server is a throwaway cluster started the way the
tests start theirs (``tests.services.postgres``: 127.0.0.1, a free port, fsync off).

Per sync it records the ``swr-etl`` process's own CPU time (user + sys, ``os.wait4``), its wall
time, and for PostgreSQL the server's CPU time over the same interval: the clock ticks of the
postmaster and its live children (``/proc/<pid>/stat`` utime + stime) plus what the postmaster
collected from children that exited (cutime + cstime: the backend that served the sync exits
with its session). Prints medians and min-max; the ratio to read is CPU, client + server.

``--without-foreign-keys`` drops the generated schema's foreign keys before the first sync (a
measurement of what checking them costs PostgreSQL; SQLite never enforces them), nothing else.

``--base REV`` also syncs into PostgreSQL with ``etl/`` as it is at the git revision ``REV``
(``benchmarks.ab``'s trees), in the same rounds, each into a database of its own: before and
after a change, side by side under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.ab import extract, own_tree, tree_env, tree_sync
from benchmarks.run import SimulatorProcess, header, measure, sync_cmd
from tests.services.postgres import PostgresCluster, start_cluster

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    wall: float
    cpu: float  # the swr-etl process: user + sys
    server: float = 0.0  # the PostgreSQL server's processes over the same interval

    @property
    def total(self) -> float:
        return self.cpu + self.server


def server_cpu(cluster: PostgresCluster) -> float:
    """CPU seconds the cluster's processes used so far: the live ones' own, and the exited
    children's the postmaster collected."""
    ticks = 0
    for pid in cluster.processes():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited between the listing and the read
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == cluster.pid:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICK


def one_sync(url: str, db: Path | str, cluster: PostgresCluster | None,
             tree: Path | None = None) -> Run:
    """One sync into ``db`` (with ``tree``'s ``etl`` when given, else this checkout's)."""
    before = server_cpu(cluster) if cluster else 0.0
    if tree is None:
        sample = measure(sync_cmd(url, db, 1000, 4))  # type: ignore[arg-type]  (str: a URL)
    else:
        sample = measure(tree_sync(url, db, 4), env=tree_env(tree))  # type: ignore[arg-type]
    if cluster:
        time.sleep(0.2)  # the backend ends after the client: let the postmaster reap it
    after = server_cpu(cluster) if cluster else 0.0
    return Run(sample.wall, sample.cpu, after - before)


def drop_foreign_keys(url: str) -> None:
    """Create the schema, then drop its foreign keys (what they cost, measured alone)."""
    from etl.store.pg import connect
    from etl.store.pg_schema import ensure_schema

    conn, schema = connect(url)
    with conn:
        ensure_schema(conn, schema)
        for table, name in conn.execute(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"):
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')


def show(label: str, runs: list[Run]) -> None:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):6.2f} s ({min(values):.2f}-{max(values):.2f})"

    print(f"{label:<32} cpu {med([r.cpu for r in runs])}  server {med([r.server for r in runs])}"
          f"  cpu+server {med([r.total for r in runs])}  wall {med([r.wall for r in runs])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="sync into SQLite vs PostgreSQL")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--without-foreign-keys", action="store_true")
    ap.add_argument("--base", help="git revision whose etl/ also syncs into PostgreSQL")
    args = ap.parse_args(argv)
    header("benchmarks.pg_bench", argv)
    engines = ["sqlite", "postgres"] + ([f"postgres at {args.base}"] if args.base else [])
    results: dict[str, list[Run]] = {f"{e}, {case}": [] for case in ("new database", "again")
                                     for e in engines}
    cluster = start_cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(args.rows) as sim:
            trees: dict[str, Path | None] = {"postgres": None}
            if args.base:
                extract(args.base, Path(tmp) / "base")
                own_tree(args.base, Path(tmp) / "base")
                trees[f"postgres at {args.base}"] = Path(tmp) / "base"
            sim.warm_up()
            for i in range(args.repeat):
                file = Path(tmp) / f"swr-{i}.db"
                urls = {e: cluster.url(cluster.create_database()) for e in trees}
                if args.without_foreign_keys:
                    for url in urls.values():
                        drop_foreign_keys(url)
                for case in ("new database", "again"):  # every engine's new, then every again
                    results[f"sqlite, {case}"].append(one_sync(sim.url, file, None))
                    for e, tree in trees.items():
                        results[f"{e}, {case}"].append(one_sync(sim.url, urls[e], cluster, tree))
                for p in Path(tmp).glob(f"swr-{i}.db*"):
                    p.unlink()
                for url in urls.values():
                    cluster.drop_database(url.rsplit("/", 1)[1])
    finally:
        cluster.close()
    print(f"{args.rows:,} rows, {args.repeat} rounds, medians (min-max):")
    for label, runs in results.items():
        show(label, runs)
    for case in ("new database", "again"):
        lite = results[f"sqlite, {case}"]
        cpu, wall = (statistics.median(r.cpu for r in lite),
                     statistics.median(r.wall for r in lite))
        for e in trees:
            pg = results[f"{e}, {case}"]
            print(f"{e} / sqlite ({case}): CPU client + server "
                  f"{statistics.median(r.total for r in pg) / cpu:.2f}, "
                  f"wall {statistics.median(r.wall for r in pg) / wall:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
