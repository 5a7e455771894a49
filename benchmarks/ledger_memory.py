"""What the completeness proof's set of ids holds per row, measured with tracemalloc.

A sync's peak RSS grows with the listing while the load's memory follows the chunk; the pass
ledger (``etl.extract.paging.PassLedger``) keeps every distinct id of a pass until the pass is
proven. This feeds it pages of 1,000 rows as the scan does, each page parsed from JSON text (so
every id is an int object of its own, as in a sync), and prints the bytes still traced per id
once the pages are gone, and the highest figure traced on the way (a page in flight, a merge of
the id set's levels). numpy's arrays are traced too. ``--shuffle`` hands the ids out in no
particular order (the API documents none) instead of ascending; it also prints the CPU time of
``record`` over all pages.

Usage: python -m benchmarks.ledger_memory [--rows 200000 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc

from etl.extract.paging import PassLedger

PAGE = 1000
FIRST_ID = 10_000_000  # ids far above the small ints Python keeps cached


def held_bytes(rows: int, shuffle: bool) -> tuple[int, int, float]:
    """(bytes traced while the ledger holds ``rows`` ids, the peak traced on the way, CPU
    seconds in ``record``, measured in a second pass without tracing)."""
    ids = [FIRST_ID + 7 * i for i in range(rows)]
    if shuffle:
        random.Random(42).shuffle(ids)
    bodies = [json.dumps([{"id": i, "name": "n"} for i in ids[lo:lo + PAGE]]).encode()
              for lo in range(0, rows, PAGE)]
    del ids
    PassLedger(pass_no=0).record([{"id": 1}], None)  # numpy imported before tracing starts
    tracemalloc.start()
    try:
        ledger = PassLedger(pass_no=1)
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for body in bodies:
            ledger.record(json.loads(body), rows)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del ledger
    ledger = PassLedger(pass_no=1)
    pages = [json.loads(body) for body in bodies]
    started = time.process_time()
    for page in pages:
        ledger.record(page, rows)
    return held - before, peak - before, time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--shuffle", action="store_true", help="ids in no particular order")
    args = ap.parse_args(argv)
    order = "shuffled" if args.shuffle else "ascending"
    for rows in args.rows:
        held, peak, cpu = held_bytes(rows, args.shuffle)
        print(f"{rows:>10,} ids ({order}): ledger holds {held / 2**20:6.1f} MiB, "
              f"{held / rows:5.1f} bytes per id; peak {peak / rows:5.1f} bytes per id; "
              f"record {cpu * 1e3 / (rows / PAGE):.3f} ms CPU per page of {PAGE:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
