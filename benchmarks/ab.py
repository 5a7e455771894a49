"""A/B of a whole sync: this checkout against a git revision of ``etl``, in CPU time.

Extracts ``etl/`` at ``--base`` (``git archive``) into a scratch folder and runs the same sync
with each tree first on ``PYTHONPATH``, alternating A, B, A, B ... against one simulator in a
process of its own. Every sync is a fresh process into a new database; the figures are the
child's own CPU time (user + sys, ``os.wait4``), wall time and peak RSS, median (min-max). On a
machine shared with other work, CPU time is the figure to compare: wall time is noise there.

With ``--again`` each side first syncs once, untimed, into a database of its own, and every timed
run is a second sync into it: the nightly job's case (``--rows 180``).

Usage: python -m benchmarks.ab --base main [--rows 200000] [--repeat 7] [--concurrency 4] [--again]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks.run import Sample, SimulatorProcess, compile_bytecode, header, measure, sync_cmd

ROOT = Path(__file__).resolve().parent.parent


def extract(revision: str, into: Path) -> None:
    """``etl/`` as it is at ``revision``, written under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "etl"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    compile_bytecode(into)  # as this checkout's: neither side pays for compiling


# Runs ``python -m etl`` from the tree first on PYTHONPATH, put ahead of everything: ``-c`` would
# otherwise look in the current folder (this checkout) first, and an editable install's import
# hook would find this checkout's ``etl`` too.
LAUNCHER = ("import os, runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path "
            "if not getattr(f, '__module__', '').startswith('__editable__')]; "
            "sys.path.insert(0, os.environ['PYTHONPATH'].split(os.pathsep)[0]); "
            "sys.argv[0] = 'etl'; runpy.run_module('etl', run_name='__main__', alter_sys=True)")


def tree_env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def resolved(tree: Path) -> str:
    """Where the launcher's ``etl`` comes from: proof that each side runs its own tree."""
    probe = LAUNCHER.split("sys.argv[0]")[0] + "import etl; print(etl.__file__)"
    return subprocess.run([sys.executable, "-c", probe], env=tree_env(tree), capture_output=True,
                          text=True, check=True).stdout.strip()


def own_tree(label: str, tree: Path) -> str:
    """Where ``tree``'s launcher finds ``etl``; exits if that is not inside ``tree``."""
    got = resolved(tree)
    if not got.startswith(str(tree)):
        raise SystemExit(f"{label} does not run its own tree")
    return got


def a_and_b(base: str, work: Path, rev: str | None = None) -> tuple[Path, Path]:
    """``work/a`` (``etl/`` at ``base``) and ``work/b`` (at ``rev``, default this checkout),
    each checked to run its own tree."""
    a, b = work / "a", work / "b"
    extract(base, a)
    if rev:
        extract(rev, b)
    else:
        shutil.copytree(ROOT / "etl", b / "etl")
        compile_bytecode(b)
    own_tree(f"A {base}", a)
    own_tree(f"B {rev or 'this checkout'}", b)
    return a, b


def tree_sync(url: str, db: Path, concurrency: int) -> list[str]:
    """``sync_cmd`` with the launcher in place of ``-m etl``."""
    cmd = sync_cmd(url, db, 1000, concurrency)
    at = cmd.index("-m")
    return [*cmd[:at], "-c", LAUNCHER, *cmd[at + 2:]]


def line(label: str, samples: list[Sample]) -> str:
    cpu, wall = [s.cpu for s in samples], [s.wall for s in samples]
    return (f"  {label:<22} cpu {statistics.median(cpu):6.2f} s ({min(cpu):.2f}-{max(cpu):.2f})"
            f"   wall {statistics.median(wall):6.2f} s ({min(wall):.2f}-{max(wall):.2f})"
            f"   peak RSS {statistics.median(s.rss_mib for s in samples):5.0f} MiB")


def arguments(module: str, doc: str, argv: list[str] | None, *, again_option: bool = False
              ) -> argparse.Namespace:
    """An A/B tool's options (``--base``, ``--rows``, ``--repeat``, ``--concurrency``, and
    ``--again`` where the tool has it), parsed; the machine and the command printed first."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--base", required=True, help="git revision for A (B is this checkout)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--concurrency", type=int, default=4)
    if again_option:
        ap.add_argument("--again", action="store_true",
                        help="time second syncs into one database per side (the nightly case)")
    args = ap.parse_args(argv)
    header(module, argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments("benchmarks.ab", __doc__, argv, again_option=True)
    with tempfile.TemporaryDirectory(prefix="swr-ab-") as tmp, \
            SimulatorProcess(args.rows) as sim:
        work = Path(tmp)
        a, b = a_and_b(args.base, work)
        trees = {f"A {args.base}": a, "B this checkout": b}
        for label, tree in trees.items():
            print(f"{label}: {resolved(tree)}")
        sim.warm_up()
        samples: dict[str, list[Sample]] = {label: [] for label in trees}
        if args.again:  # each side's database, made once and untimed
            for label, tree in trees.items():
                measure(tree_sync(sim.url, work / f"kept-{label[0]}.db", args.concurrency),
                        env=tree_env(tree))
        for i in range(args.repeat):
            for label, tree in trees.items():
                db = work / (f"kept-{label[0]}.db" if args.again else f"{i}-{label[0]}.db")
                samples[label].append(measure(tree_sync(sim.url, db, args.concurrency),
                                              env=tree_env(tree)))
                if not args.again:
                    for p in work.glob(f"{db.name}*"):
                        p.unlink()
    into = "a database it synced before" if args.again else "a new database"
    print(f"\nsync of {args.rows:,} rows into {into}, {args.repeat} alternating runs:")
    summary(samples)
    return 0


def summary(samples: dict[str, list[Sample]]) -> None:
    """One line per side, then B/A of the CPU time and of the wall time per round (A first in
    ``samples``): a change that adds a thread is for the wall time."""
    for label, got in samples.items():
        print(line(label, got))
    a, b = samples.values()
    for what in ("cpu", "wall"):
        per_round = [getattr(y, what) / getattr(x, what) for x, y in zip(a, b, strict=True)]
        print(f"  B/A {what}, per round: median {statistics.median(per_round):.3f} "
              f"({min(per_round):.3f}-{max(per_round):.3f})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
