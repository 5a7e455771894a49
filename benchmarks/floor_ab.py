"""A/B of a whole sync with the floor in every round: ratios to the floor under the same load.

Like ``benchmarks.ab`` (``etl/`` at ``--base`` against this checkout, each a fresh process into a
new database, alternating), but every round measures, one after another, the floor, A into a new
database, B into a new database, then A and B again into the database each just wrote (a
second sync of the same listing). A burst of load from other work then hits a round's floor and
both sides alike, so the per-round ratios (side / floor, B / A), in wall and in CPU time, say
more on a shared machine than medians taken minutes apart.

Usage: python -m benchmarks.floor_ab --base main [--rows 200000] [--repeat 7]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.ab import a_and_b, arguments, tree_env, tree_sync
from benchmarks.run import PY, Sample, SimulatorProcess, measure

KINDS = ("A new", "B new", "A again", "B again")


def one_round(url: str, work: Path, trees: dict[str, Path], i: int,
              concurrency: int) -> dict[str, Sample]:
    got = {"floor": measure([PY, "-m", "benchmarks.floor", url, str(work / f"floor-{i}.db")])}
    for kind in KINDS:
        side, _what = kind.split()
        got[kind] = measure(tree_sync(url, work / f"{side}-{i}.db", concurrency),
                            env=tree_env(trees[side]))
    for p in work.glob(f"*-{i}.db*"):
        p.unlink()
    return got


def report(rounds: list[dict[str, Sample]]) -> None:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"

    print(f"{'':10} {'wall s':>17} {'cpu s':>17} {'wall/floor':>17} {'cpu/floor':>17}  RSS MiB")
    for kind in ("floor", *KINDS):
        s = [r[kind] for r in rounds]
        print(f"{kind:<10} {med([x.wall for x in s]):>17} {med([x.cpu for x in s]):>17} "
              f"{med([r[kind].wall / r['floor'].wall for r in rounds]):>17} "
              f"{med([r[kind].cpu / r['floor'].cpu for r in rounds]):>17}  "
              f"{statistics.median(x.rss_mib for x in s):5.0f}")
    for what in ("new", "again"):
        a, b = f"A {what}", f"B {what}"
        print(f"B/A {what:<6} wall {med([r[b].wall / r[a].wall for r in rounds])}   "
              f"cpu {med([r[b].cpu / r[a].cpu for r in rounds])}")


def rounds_of(base: str, rows: int, repeat: int, concurrency: int) -> list[dict[str, Sample]]:
    with tempfile.TemporaryDirectory(prefix="swr-floor-ab-") as tmp:
        work = Path(tmp)
        trees = dict(zip("AB", a_and_b(base, work), strict=True))
        with SimulatorProcess(rows) as sim:
            sim.warm_up()
            return [one_round(sim.url, work, trees, i, concurrency) for i in range(repeat)]


def main(argv: list[str] | None = None) -> int:
    args = arguments("benchmarks.floor_ab", __doc__, argv)
    rounds = rounds_of(args.base, args.rows, args.repeat, args.concurrency)
    print(f"\n{args.rows:,} rows, {args.repeat} rounds (median, min-max; ratios per round):")
    report(rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
