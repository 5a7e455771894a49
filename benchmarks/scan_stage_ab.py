"""The page hot path's two speed-ups, A/B in one process: CPU time of the scan alone.

A whole sync's CPU time drifts by +-15 % per run on a shared machine, more than these changes
save; the scan alone, in one process, alternating modes round by round, resolves them. Modes:
page bodies parsed by ``json.loads`` only (``FAST_PARSE_FROM`` out of reach) or msgspec first;
``usable_id`` as it was (the general rule for every row) or with its fast path. The simulator
runs in this process too (its pages are pre-rendered; it costs all modes the same).

Usage: python -m benchmarks.scan_stage_ab [--rows 100000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)
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
