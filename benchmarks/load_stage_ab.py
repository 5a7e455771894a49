"""The load's SQL alone, A/B: ``etl/`` at a git revision against this checkout, in CPU time.

Each side runs in a process of its own (``benchmarks.ab``'s launcher puts its tree first), builds
a new database with its own schema and loads ``--rows`` synthetic images twice (a new database,
then the nightly case: every image again) in chunks of 20,000 through its own ``load_sql``
statements, as ``LoadRun.write_chunk`` and ``finish`` run them. The sides alternate; each
statement's CPU time (``time.thread_time``) is printed as median (min-max) per side. A whole
sync's ±15 % drift hides a change to a few of these statements; here they stand alone.

Usage: python -m benchmarks.load_stage_ab --base REV [--rows 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

CHUNK = 20_000
# The child: runs in the side's tree, prints {"<run>:<statement>": seconds} as JSON.
CHILD = r'''
import json, sqlite3, sys, time
from collections import Counter
from etl.store import load_sql, schema
rows, path, step = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(path, isolation_level=None)
schema.ensure_schema(conn)
for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -16384",
               "temp_store = MEMORY"):
    conn.execute("PRAGMA " + pragma)
conn.execute(load_sql.LOAD_CHUNK_TABLE_SQL)
chunk_steps = {"new_changed": load_sql.NEW_CHANGED_SQL, "upsert": load_sql.UPSERT_SQL,
               "snapshots": load_sql.SNAPSHOTS_SQL}
end_steps = {"name_two_ids": load_sql.NAME_TWO_IDS_SQL, "mark_removed": load_sql.MARK_REMOVED_SQL}
out = Counter()
for run in (1, 2):
    conn.execute("INSERT INTO runs (run_id, started_at, status) VALUES (?, 'x', 'running')",
                 (run,))
    params = {"run": run, "source": "cn-north-4", "at": f"2026-01-0{run}T02:00:00Z",
              "date": f"2026-01-0{run}"}
    conn.execute("BEGIN")
    for lo in range(1, rows + 1, step):
        batch = [(i, f"ns{i % 50}", f"name{i}", "u", f"description {i}", i % 9, i * 10 + run,
                  None, "2026-01-01T00:00:00Z") for i in range(lo, min(lo + step, rows + 1))]
        t = time.thread_time()
        conn.executemany(load_sql.FILL_CHUNK_SQL, batch)
        out[f"{run}:fill"] += time.thread_time() - t
        for name, sql in chunk_steps.items():
            t = time.thread_time()
            conn.execute(sql, params).fetchall()
            out[f"{run}:{name}"] += time.thread_time() - t
        conn.execute("DELETE FROM temp.load_chunk")
    for name, sql in end_steps.items():
        t = time.thread_time()
        conn.execute(sql, params)
        out[f"{run}:{name}"] += time.thread_time() - t
    t = time.thread_time()
    conn.execute("COMMIT")
    out[f"{run}:commit"] += time.thread_time() - t
print(json.dumps(out))
'''


def main(argv: list[str] | None = None) -> int:
    from benchmarks.ab import LAUNCHER, a_and_b, tree_env
    from benchmarks.run import header

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision for A (B is this checkout)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    header("benchmarks.load_stage_ab", argv)
    launcher = LAUNCHER.split("sys.argv[0]")[0] + "exec(sys.argv.pop(1))"
    got: dict[str, list[Counter[str]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="swr-load-ab-") as tmp:
        work = Path(tmp)
        a_and_b(args.base, work)
        for i in range(args.repeat):
            for side in got:
                db = work / f"{i}-{side}.db"
                t0 = time.perf_counter()
                done = subprocess.run([sys.executable, "-c", launcher, CHILD, str(args.rows),
                                       str(db), str(CHUNK)], env=tree_env(work / side.lower()),
                                      capture_output=True, text=True, check=True)
                got[side].append(Counter(json.loads(done.stdout)))
                print(f"  round {i + 1} {side}: {time.perf_counter() - t0:.1f} s wall",
                      flush=True)
                for p in work.glob(f"{db.name}*"):
                    p.unlink()
    print(f"\nthe load's statements, {args.rows:,} rows, run 1 = new database, run 2 = again; "
          f"CPU s, median (min-max) of {args.repeat}; B/A of the medians")
    for key in sorted(set().union(*got["A"], *got["B"])) + ["1:all", "2:all"]:
        def values(side: str, key: str = key) -> list[float]:
            run = key.split(":")[0]
            return [sum(v for k, v in c.items() if k.startswith(run + ":")) if key.endswith(
                ":all") else c[key] for c in got[side]]
        a, b = values("A"), values("B")
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"  {key:<16} A {ma:6.3f} ({min(a):.3f}-{max(a):.3f})   "
              f"B {mb:6.3f} ({min(b):.3f}-{max(b):.3f})   B/A {mb / ma if ma else 0:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
