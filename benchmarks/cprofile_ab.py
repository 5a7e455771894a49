"""Deterministic profiles of one sync at two git revisions of ``etl``: cProfile, side by side.

A sampling profiler's shares move with the load of a shared machine; cProfile counts every call
and charges it its thread's own CPU clock (``time.thread_time``), so two
revisions' profiles of the same listing can be compared function by function. Each side syncs
into a new database in a process of its own (``benchmarks.ab``'s launcher puts its tree first),
under cProfile; the table lists the functions whose own time (tottime) or time below them
(cumtime) differs most, over all threads (main, HTTP helpers, compression).

Usage: python -m benchmarks.cprofile_ab --base REV [--rev REV] [--rows 200000] [--top 30]
"""

from __future__ import annotations

import argparse
import json
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.ab import LAUNCHER, a_and_b, tree_env
from benchmarks.run import PY, SimulatorProcess, header

# The child: the same launcher, with the CLI's main (not the console script, whose early exit
# would skip the dump) run under cProfile timed by each thread's own CPU clock; every thread the
# run starts (HTTP helpers, compression, the transform's import) gets a profiler of its own, and
# the profiles are added up.
# Every statement's CPU time (this thread's) is added up by its text too: cProfile sees only
# ``Connection.execute``, whichever statement it runs.
CHILD = LAUNCHER.split("sys.argv[0]")[0] + """
import cProfile, collections, json, sqlite3, time
from etl.cli.app import main
SQL = collections.Counter()
class Timed(sqlite3.Connection):
    def execute(self, sql, *args):
        t = time.thread_time()
        try: return super().execute(sql, *args)
        finally: SQL[" ".join(sql.split())[:90]] += time.thread_time() - t
    def executemany(self, sql, *args):
        t = time.thread_time()
        try: return super().executemany(sql, *args)
        finally: SQL["many: " + " ".join(sql.split())[:84]] += time.thread_time() - t
plain = sqlite3.connect
sqlite3.connect = lambda *a, **k: plain(*a, factory=Timed, **k)
import pstats, threading
THREADS = []
thread_run = threading.Thread.run
def profiled_run(self):
    t = cProfile.Profile(time.thread_time); THREADS.append(t); t.enable()
    try: thread_run(self)
    finally: t.disable()
threading.Thread.run = profiled_run
class Done:
    # Only the calls a thread finished: disabling its profiler from this thread would close
    # its open calls (an idle pool worker's wait) on this thread's clock.
    def __init__(self, prof): self.prof = prof
    def create_stats(self): self.prof.snapshot_stats(); self.stats = self.prof.stats
out = sys.argv.pop(1); p = cProfile.Profile(time.thread_time); p.enable()
try: main(sys.argv[1:])
except SystemExit as e: assert not e.code, e.code
finally:
    p.disable(); p.dump_stats(out)
    merged = pstats.Stats(out)
    for t in THREADS: merged.add(Done(t))
    merged.dump_stats(out)
    with open(out + ".sql", "w") as f: json.dump(SQL, f)
"""

Key = tuple[str, int, str]


def where(key: Key, tree: Path) -> str:
    """``module/file.py(function)`` with the side's tree folder taken off."""
    file, lineno, func = key
    if file.startswith(f"{tree}/"):
        file = file[len(f"{tree}/"):]
    elif "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    # No line number: the same function moves between revisions; the name and file stay.
    # Nor an object's address (``<function f at 0x7f...>``): it differs in every process.
    return f"{file}({func})" if lineno else re.sub(r" at 0x[0-9a-f]+", "", func)


def profile(tree: Path, url: str, db: Path, out: Path,
            sql: dict[str, float]) -> dict[str, tuple[int, float, float]]:
    """{function: (calls, tottime, cumtime)} of one sync run with ``tree``; its statements'
    CPU seconds go into ``sql``."""
    cmd = [PY, "-c", CHILD, str(out), "-q", "sync", "--endpoint", url, "--db", str(db),
           "--no-auth", "--page-size", "1000", "--concurrency", "4"]
    subprocess.run(cmd, env=tree_env(tree), check=True, stdout=subprocess.DEVNULL)
    sql.update(json.loads(Path(f"{out}.sql").read_text()))
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    merged: dict[str, tuple[int, float, float]] = {}
    for key, (_cc, calls, tt, ct, _callers) in stats.items():
        name = where(key, tree)
        n0, t0, c0 = merged.get(name, (0, 0.0, 0.0))
        merged[name] = (n0 + calls, t0 + tt, c0 + ct)
    return merged


def table(a: dict[str, tuple[int, float, float]], b: dict[str, tuple[int, float, float]],
          column: int, top: int) -> None:
    zero = (0, 0.0, 0.0)
    names = sorted(set(a) | set(b),
                   key=lambda n: -abs(b.get(n, zero)[column] - a.get(n, zero)[column]))
    label = "tottime" if column == 1 else "cumtime"
    print(f"\n{label}: A -> B seconds (calls A -> B), largest differences first")
    for name in names[:top]:
        (na, *ta), (nb, *tb) = a.get(name, zero), b.get(name, zero)
        x, y = ta[column - 1], tb[column - 1]
        print(f"  {x:7.3f} -> {y:7.3f}  {y - x:+7.3f}  ({na} -> {nb})  {name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision for A (B is this checkout)")
    ap.add_argument("--rev", help="git revision for B (default: this checkout)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args(argv)
    header("benchmarks.cprofile_ab", argv)
    with tempfile.TemporaryDirectory(prefix="swr-cprofile-") as tmp, \
            SimulatorProcess(args.rows) as sim:
        work = Path(tmp)
        a_and_b(args.base, work, args.rev)
        sim.warm_up()
        sql_a: dict[str, float] = {}
        sql_b: dict[str, float] = {}
        a = profile(work / "a", sim.url, work / "a.db", work / "a.prof", sql_a)
        b = profile(work / "b", sim.url, work / "b.db", work / "b.prof", sql_b)
    total = sum(v[1] for v in a.values()), sum(v[1] for v in b.values())
    print(f"\nCPU under cProfile, all threads: A {args.base} {total[0]:.2f} s, "
          f"B {args.rev or 'this checkout'} {total[1]:.2f} s")
    table(a, b, 1, args.top)
    table(a, b, 2, args.top)
    print("\nSQL statements: A -> B CPU seconds, largest differences first")
    for text in sorted(set(sql_a) | set(sql_b),
                       key=lambda t: -abs(sql_b.get(t, 0) - sql_a.get(t, 0)))[:args.top]:
        x, y = sql_a.get(text, 0.0), sql_b.get(text, 0.0)
        print(f"  {x:7.3f} -> {y:7.3f}  {y - x:+7.3f}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
