"""What the completeness proof's set of ids holds per row, measured with tracemalloc.

A sync's peak RSS grows with the listing while the load's memory follows the chunk; the pass
ledger (``etl.extract.paging.PassLedger``) keeps every distinct id of a pass until the pass is
proven. This feeds it pages of 1,000 rows as the scan does, each page parsed from JSON text (so
every id is an int object of its own, as in a sync, kept alive by the set alone once the page is
gone), and prints the bytes traced per id, and the set's own table per id.

Usage: python -m benchmarks.ledger_memory [--rows 200000 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc

from etl.extract.paging import PassLedger

PAGE = 1000
FIRST_ID = 10_000_000  # ids far above the small ints Python keeps cached


def held_bytes(rows: int) -> tuple[int, int]:
    """(bytes traced while the ledger holds ``rows`` ids, bytes of the set object itself)."""
    tracemalloc.start()
    try:
        ledger = PassLedger(pass_no=1)
        before = tracemalloc.get_traced_memory()[0]
        for lo in range(0, rows, PAGE):
            body = json.dumps([{"id": FIRST_ID + 7 * i, "name": f"n{i}"}
                               for i in range(lo, min(lo + PAGE, rows))])
            ledger.record(json.loads(body), rows)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held, sys.getsizeof(ledger.ids)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    args = ap.parse_args(argv)
    for rows in args.rows:
        held, table = held_bytes(rows)
        print(f"{rows:>10,} ids: ledger holds {held / 2**20:6.1f} MiB, {held / rows:5.1f} bytes "
              f"per id (the set's table {table / rows:5.1f}, the int objects the rest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
