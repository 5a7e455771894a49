"""Bisect a CPU regression: a whole sync at several git revisions of ``etl``, round-robin.

``benchmarks.ab`` compares two trees; a bisect over merges needs several, and pairwise runs at
different hours see different load. Here every revision (and this checkout, last) syncs the same
simulated listing into a new database in turn, round after round, so a burst of load from other
work hits every side alike. Figures are the child's own CPU time (user + sys, ``os.wait4``),
median (min-max), and each side's median of its per-round ratio to the first revision.

Usage: python -m benchmarks.bisect_ab REV [REV ...] [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.ab import ROOT, extract, line, own_tree, tree_env, tree_sync
from benchmarks.run import Sample, SimulatorProcess, header, measure


def trees_for(revisions: list[str], work: Path) -> dict[str, Path]:
    """Each revision's ``etl/`` (and this checkout's) in a folder of its own, checked to run."""
    trees: dict[str, Path] = {}
    for i, rev in enumerate(revisions):
        extract(rev, work / f"t{i}")
        trees[rev] = work / f"t{i}"
    shutil.copytree(ROOT / "etl", work / "here" / "etl")
    trees["checkout"] = work / "here"
    for label, tree in trees.items():
        own_tree(label, tree)
    return trees


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revisions", nargs="+", help="git revisions, oldest first")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args(argv)
    header("benchmarks.bisect_ab", argv)
    with tempfile.TemporaryDirectory(prefix="swr-bisect-") as tmp, \
            SimulatorProcess(args.rows) as sim:
        work = Path(tmp)
        trees = trees_for(args.revisions, work)
        sim.warm_up()
        samples: dict[str, list[Sample]] = {label: [] for label in trees}
        for i in range(args.repeat):
            for n, (label, tree) in enumerate(trees.items()):
                db = work / f"{i}-{n}.db"
                samples[label].append(measure(tree_sync(sim.url, db, args.concurrency),
                                              env=tree_env(tree)))
                for p in work.glob(f"{db.name}*"):
                    p.unlink()
                print(f"  round {i + 1} {label}: cpu {samples[label][-1].cpu:.2f} s", flush=True)
    print(f"\nsync of {args.rows:,} rows into a new database, {args.repeat} rounds:")
    first = samples[args.revisions[0]]
    for label, got in samples.items():
        ratio = statistics.median(b.cpu / a.cpu for a, b in zip(first, got, strict=True))
        print(f"{line(label, got)}   /first {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
