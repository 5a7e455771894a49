"""Start-up cost: the nightly 180-row sync against the import cost of its own dependencies.

A nightly run of ~180 rows is dominated by interpreter start and imports, so its yardstick is
the cost of importing what a sync imports from its dependencies. The set is not hand-written but
read from ``python -X importtime -m etl sync`` against the same endpoint: every module of an
installed third-party package, in the order the sync imported it (a failed optional import is
tried too, as the sync tried it). Importing only the top-level packages understates it: a sync
needs ``pyarrow.compute``, whose function table ``import pyarrow`` does not build (~25 ms). When
a sync still imported pandas, ``import pandas`` built that table, so the top-level yardstick
held it; both yardsticks are printed, and a third: ``import pandas, pyarrow, requests,
tenacity``, what a sync imported when the target was set (its ratio shows what the sync has
shed since, and is not a target). The yardsticks run with ``OPENBLAS_NUM_THREADS=1``, as
``swr-etl`` sets it for itself (``etl.cli.app.one_blas_thread``): otherwise numpy's spinning
BLAS workers would add CPU time to the yardstick that the sync no longer spends. Also times
``--help``, ``runs`` and ``status``, which import none of it, with what each takes beyond
``python -c pass`` (the interpreter's own start, which differs most between machines).

Every measurement is a fresh process; the commands alternate round by round, so a burst of load
from other work on the machine hits them alike. Prints, per command, the child's CPU time
(user + sys, from ``os.wait4``), its wall time and its peak RSS: median (min-max). CPU time is the
figure to compare on a shared machine; wall-time targets need a quiet one.

Usage: python -m benchmarks.startup [--repeat 7] [--images 180]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.run import (
    PY,
    Sample,
    SimulatorProcess,
    compile_bytecode,
    header,
    measure,
    spread,
)
from etl.cli.app import BLAS_THREADS

# One line of -X importtime: "import time: <self us> | <cumulative us> | <indented name>".
IMPORT_LINE = re.compile(r"import time:\s*\d+\s*\|\s*\d+\s*\|\s*([\w.]+)")
NOT_DEPENDENCIES = {"etl", "sitecustomize", "usercustomize", "benchmarks"}
# What a nightly sync imported when its start-up target was set (30 November 2026, 0.32 s on
# that machine): printed as a third yardstick, since a sync without pandas now imports less.
WHEN_SET = ("pandas", "pyarrow", "requests", "tenacity")


def imported_modules(cmd: list[str]) -> list[str]:
    """Modules of installed third-party packages that ``cmd`` imports, in import order."""
    done = subprocess.run([PY, "-X", "importtime", *cmd], capture_output=True, text=True,
                          check=True)
    names = [m.group(1) for m in map(IMPORT_LINE.match, done.stderr.splitlines()) if m]
    tops = {name.split(".")[0] for name in names}
    installed = {top for top in tops
                 if top not in sys.stdlib_module_names and top not in NOT_DEPENDENCIES
                 and not top.startswith("_") and importlib.util.find_spec(top) is not None}
    return list(dict.fromkeys(name for name in names if name.split(".")[0] in installed))


def import_command(modules: list[str]) -> list[str]:
    """A fresh process importing ``modules`` in order; a module that fails to import (an
    optional one the sync tried and went without) is tried the same way and passed over."""
    code = ("import importlib\n"
            f"for name in {modules!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError:\n"
            "        pass\n")
    return [PY, "-c", code]


def report(label: str, samples: list[Sample]) -> None:
    print(f"  {label:<24} cpu {spread([s.cpu for s in samples])}   "
          f"wall {spread([s.wall for s in samples])}   "
          f"peak RSS {statistics.median(s.rss_mib for s in samples):5.0f} MiB", flush=True)


def ratio_line(label: str, num: list[Sample], den: list[Sample], target: str) -> None:
    """Median of the per-round ratios, so each ratio compares runs made side by side."""
    cpu = [a.cpu / b.cpu for a, b in zip(num, den, strict=True)]
    wall = [a.wall / b.wall for a, b in zip(num, den, strict=True)]
    print(f"  {label}: cpu {statistics.median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f}), "
          f"wall {statistics.median(wall):.2f}x ({min(wall):.2f}-{max(wall):.2f})  "
          f"target {target}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--images", type=int, default=180)
    args = ap.parse_args(argv)
    header("benchmarks.startup", argv)
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="swr-startup-") as tmp, \
            SimulatorProcess(args.images) as sim:
        db = Path(tmp) / "nightly.db"
        sync = ["-m", "etl", "-q", "sync", "--endpoint", sim.url, "--db", str(db), "--no-auth"]
        # The first run creates the database; the nightly job runs against an existing one.
        measure([PY, *sync])
        modules = imported_modules(sync)
        packages = sorted({name.split(".")[0] for name in modules})
        print(f"a sync imports {len(modules)} modules of: {', '.join(packages)}")
        # The yardsticks import in the environment the console script gives itself before
        # numpy loads (unless already set); the swr-etl commands set it for themselves.
        as_swr_etl = {**BLAS_THREADS, **os.environ}
        when_set = "import pandas, pyarrow, ..."
        commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "python -c pass": ([PY, "-c", "pass"], None),
            "import its dependencies": (import_command(modules), as_swr_etl),
            "import their packages": ([PY, "-c", f"import {', '.join(packages)}"], as_swr_etl),
            when_set: ([PY, "-c", f"import {', '.join(WHEN_SET)}"], as_swr_etl),
            f"sync, {args.images} rows": ([PY, *sync], None),
            "swr-etl --help": ([PY, "-m", "etl", "--help"], None),
            "swr-etl runs": ([PY, "-m", "etl", "runs", "--db", str(db)], None),
            "swr-etl status": ([PY, "-m", "etl", "status", "--db", str(db)], None),
        }
        samples: dict[str, list[Sample]] = {label: [] for label in commands}
        for _ in range(args.repeat):
            for label, (cmd, env) in commands.items():
                samples[label].append(measure(cmd, env=env))
    print(f"\nmedian (min-max) of {args.repeat} alternating rounds, each a fresh process:")
    for label, got in samples.items():
        report(label, got)
    print()
    ratio_line("sync / import of its dependencies", samples[f"sync, {args.images} rows"],
               samples["import its dependencies"], "<= 1.1x")
    ratio_line("sync / import of their top-level packages only",
               samples[f"sync, {args.images} rows"], samples["import their packages"], "-")
    ratio_line(f"sync / import {', '.join(WHEN_SET)} (the set of 30 Nov 2026)",
               samples[f"sync, {args.images} rows"], samples[when_set], "-")
    start = samples["python -c pass"]
    for label in ("swr-etl --help", "swr-etl runs", "swr-etl status"):
        wall = statistics.median(s.wall for s in samples[label])
        beyond = statistics.median(s.wall - p.wall
                                   for s, p in zip(samples[label], start, strict=True))
        print(f"  {label}: wall {wall:.3f} s, {beyond * 1e3:.0f} ms beyond python -c pass"
              "  target < 0.1 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
