"""The page hot path's two speed-ups, A/B in one process: CPU time of the scan alone.

A whole sync's CPU time drifts by +-15 % per run on a shared machine, more than these changes
save; the scan alone, in one process, alternating modes round by round, resolves them. Modes:
page bodies parsed by ``json.loads`` only (``FAST_PARSE_FROM`` out of reach) or msgspec first;
``usable_id`` as it was (the general rule for every row) or with its fast path. The simulator
runs in this process too (its pages are pre-rendered; it costs all modes the same).

With ``--base REV`` it A/Bs trees instead: ``etl/`` at a git revision (A) against this checkout
(B), each scan in a fresh process of the side's tree (``benchmarks.ab``'s launcher), alternating
A, B, A, B ... against one simulator in a process of its own. Each child prints the CPU time of
its scan alone (the imports left out) and its peak RSS: the pass ledger's ids are most of what
a scan keeps, so the RSS shows their memory.

Usage: python -m benchmarks.scan_stage_ab [--rows 100000] [--repeat 10] [--base REV]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import etl.extract.paging as paging
import etl.extract.response as response
from etl.config.settings import Settings
from etl.extract.scan import make_session, scan_official_images
from etl.integers import coerce_id, usable_id
from etl.simulator import Simulator

FAST_PARSE_FROM = response.FAST_PARSE_FROM


def general_usable_id(row: Any) -> int | None:
    """``usable_id`` before its fast path: the general rule for every row."""
    return coerce_id(row.get("id"))[0] if isinstance(row, dict) else None


MODES = {  # label -> (msgspec for large bodies, usable_id's fast path)
    "before (json, general rule)": (False, False),
    "msgspec only": (True, False),
    "usable_id fast path only": (False, True),
    "both (this checkout)": (True, True),
}


def scan_cpu(settings: Settings, rows: int, fast_json: bool, fast_id: bool) -> float:
    response.FAST_PARSE_FROM = FAST_PARSE_FROM if fast_json else sys.maxsize
    response.usable_id = paging.usable_id = usable_id if fast_id else general_usable_id
    session = make_session(settings)
    try:
        started = time.process_time()
        seen = sum(len(page.rows) for page in scan_official_images(session, settings))
        cpu = time.process_time() - started
    finally:
        session.close()
    if seen != rows:
        raise RuntimeError(f"scan saw {seen} of {rows} rows")
    return cpu


# The child of --base: runs in the side's tree, prints its scan's CPU time and peak RSS as JSON.
CHILD = r'''
import json, resource, sys, time
import numpy, pandas  # imported by either side's sync anyway: not the scan's work
from etl.config.settings import Settings
from etl.extract.scan import make_session, scan_official_images
url, rows = sys.argv[1], int(sys.argv[2])
settings = Settings(endpoint=url, page_size=1000, concurrency=1, allow_anonymous=True)
session = make_session(settings)
started = time.process_time()
seen = sum(len(page.rows) for page in scan_official_images(session, settings))
cpu = time.process_time() - started
if seen != rows:
    sys.exit(f"scan saw {seen} of {rows} rows")
print(json.dumps({"cpu": cpu, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def trees(args: argparse.Namespace) -> int:
    """--base: this checkout's scan against ``args.base``'s, a fresh process per scan."""
    from benchmarks.ab import LAUNCHER, a_and_b, tree_env
    from benchmarks.run import SimulatorProcess

    launcher = LAUNCHER.split("sys.argv[0]")[0] + "exec(sys.argv.pop(1))"
    got: dict[str, list[dict[str, float]]] = {f"A {args.base}": [], "B this checkout": []}
    with tempfile.TemporaryDirectory(prefix="swr-scan-ab-") as tmp, \
            SimulatorProcess(args.rows) as sim:
        sides = dict(zip(got, a_and_b(args.base, Path(tmp)), strict=True))
        sim.warm_up()
        for _ in range(args.repeat):
            for label, tree in sides.items():
                done = subprocess.run([sys.executable, "-c", launcher, CHILD, sim.url,
                                       str(args.rows)], env=tree_env(tree), capture_output=True,
                                      text=True, check=True)
                got[label].append(json.loads(done.stdout))
    print(f"scan of {args.rows:,} rows, page size 1000, a fresh process per scan, median "
          f"(min-max) of {args.repeat} alternating rounds:")
    for label, samples in got.items():
        cpu, rss = [s["cpu"] for s in samples], [s["rss"] for s in samples]
        print(f"  {label:<20} cpu {statistics.median(cpu):6.3f} s ({min(cpu):.3f}-{max(cpu):.3f})"
              f"   peak RSS {statistics.median(rss):5.0f} MiB ({min(rss):.0f}-{max(rss):.0f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--base", help="git revision to A/B this checkout's scan against")
    args = ap.parse_args(argv)
    if args.base:
        return trees(args)
    got: dict[str, list[float]] = {label: [] for label in MODES}
    with Simulator(images=args.rows, seed=42) as sim:
        settings = Settings(endpoint=sim.url, page_size=1000, concurrency=1,
                            allow_anonymous=True)
        for _ in range(args.repeat):
            for label, (fast_json, fast_id) in MODES.items():
                got[label].append(scan_cpu(settings, args.rows, fast_json, fast_id))
    print(f"scan of {args.rows:,} rows, page size 1000, CPU time of this process, median "
          f"(min-max) of {args.repeat} alternating rounds:")
    for label, cpu in got.items():
        print(f"  {label:<28} {statistics.median(cpu):6.3f} s ({min(cpu):.3f}-{max(cpu):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
