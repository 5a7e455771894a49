"""Micro-benchmark of the transform (``transform_columns``, what a sync runs, and
``transform_rows``, the same as pandas frames): rows/s over 20,000-row chunks.

    .venv/bin/python benchmarks/transform_bench.py [--rows 1000000] [--chunk 20000]
        [--repeat 3] [--compare]

Prints rows/s for clean synthetic rows (1 in 10 descriptions non-ASCII; naive timestamps read
as UTC or as Asia/Shanghai), clean rows whose every description is non-ASCII, and rows with 1 %
dirty values (bad timestamps, numeric strings, negative/boolean counts, string ids, missing ids,
non-objects, duplicates).
``--compare`` also times ways of building columns from a list of dicts (the first step of any
transform). Figures only; nothing asserts on speed.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from itertools import repeat
from operator import itemgetter
from typing import Any

import pandas as pd

from etl.transform.frames import IMAGE_DTYPES, transform_columns, transform_rows
from etl.transform.values import field_values

FIELDS = [f for f in IMAGE_DTYPES if f != "page_offset"]


def clean_rows(count: int, seed: int = 1, non_ascii_every: int = 10) -> list[dict[str, Any]]:
    """Rows shaped like the API's; every ``non_ascii_every``-th description has Chinese text
    (UTF-8 encoding non-ASCII text is the costly part of turning strings into Arrow)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(count):
        extra = "，中文说明" if i % non_ascii_every == 0 else ""
        rows.append({
            "id": i + 1,
            "user": "official",
            "name": f"image-{i}",
            "namespace": f"library{i % 50}",
            "description": f"Official image {i}, with \"quotes\" and commas{extra}",
            "star_count": rnd.randrange(0, 5000),
            "pull_count": rnd.randrange(0, 2**40),
            "collection_id": rnd.randrange(0, 10**6),
            "last_updated": f"20{rnd.randrange(10, 26)}-{rnd.randrange(1, 13):02d}-"
                            f"{rnd.randrange(1, 29):02d} {rnd.randrange(24):02d}:"
                            f"{rnd.randrange(60):02d}:{rnd.randrange(60):02d}",
            "total_range": count,
        })
    return rows


DIRT: list[Callable[[dict[str, Any]], Any]] = [
    lambda r: r.update(last_updated="yesterday"),
    lambda r: r.update(last_updated="2017-09-11T03:00:02.542841141Z"),
    lambda r: r.update(last_updated="2017-10-16T21:33:44+08:00"),
    lambda r: r.update(pull_count=str(r["pull_count"])),
    lambda r: r.update(star_count=-1),
    lambda r: r.update(star_count=True),
    lambda r: r.update(collection_id=1.5),
    lambda r: r.update(id=str(r["id"])),
    lambda r: r.pop("id"),
    lambda r: r.update(description=None, user=7),
    lambda r: r.update(id=1),  # duplicate of the first row
]


def dirty_rows(count: int, share: float = 0.01, seed: int = 2) -> list[Any]:
    rnd = random.Random(seed)
    rows: list[Any] = clean_rows(count, seed)
    for i in rnd.sample(range(count), int(count * share)):
        if rnd.random() < 0.05:
            rows[i] = ["not", "an", "object"]
        else:
            rnd.choice(DIRT)(rows[i])
    return rows


def bench(rows: list[Any], chunk: int, repeat_: int,
          transform: Callable[..., Any] = transform_columns, **kwargs: Any) -> tuple[float, float]:
    """Best-of-``repeat_`` rows/s over all chunks: (wall clock, CPU time of this process).

    On a shared machine the CPU-time figure is the steadier one.
    """
    best_wall = best_cpu = float("inf")
    chunks: list[tuple[list[Any], list[int]]] = []
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        # Pages of 1,000 rows, as the extractor delivers them.
        chunks.append((part, [start + (k // 1000) * 1000 for k in range(len(part))]))
    # The pipeline holds one chunk at a time; keep the other 980,000 pre-built rows out of the
    # garbage collector's sight so its full passes cost what they would in a real run.
    gc.collect()
    gc.freeze()
    for _ in range(repeat_):
        wall, cpu = time.perf_counter(), time.process_time()
        for part, offsets in chunks:
            transform(part, page_offsets=offsets, **kwargs)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    gc.unfreeze()
    return len(rows) / best_wall, len(rows) / best_cpu


def compare(rows: list[dict[str, Any]], repeat_: int) -> None:
    """Time ways of turning a list of dicts into columns."""
    options: dict[str, Callable[[], Any]] = {
        "pd.DataFrame.from_records": lambda: pd.DataFrame.from_records(rows),
        "pd.DataFrame(list of dicts)": lambda: pd.DataFrame(rows),
        "pd.json_normalize": lambda: pd.json_normalize(rows),
        "list comprehension per key": lambda: {
            f: [r.get(f) for r in rows] for f in FIELDS},
        "map(dict.get) per key": lambda: {
            f: list(map(dict.get, rows, repeat(f))) for f in FIELDS},
        "map(itemgetter) per key": lambda: {
            f: list(map(itemgetter(f), rows)) for f in FIELDS},
        "etl.transform.values.field_values (blocks)": lambda: field_values(rows, FIELDS),
    }
    print(f"building columns from {len(rows):,} dicts (best of {repeat_}):")
    for label, build in options.items():
        times = []
        for _ in range(repeat_):
            started = time.perf_counter()
            build()
            times.append(time.perf_counter() - started)
        best = min(times)
        print(f"  {label:30s} {best * 1000:8.1f} ms  ({len(rows) / best:>12,.0f} rows/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()

    clean = clean_rows(args.rows)
    if args.compare:
        compare(clean[:args.chunk], args.repeat * 3)
    results = {
        "clean, UTC": bench(clean, args.chunk, args.repeat),
        "clean, UTC, as frames": bench(clean, args.chunk, args.repeat, transform=transform_rows),
        "clean, Asia/Shanghai": bench(clean, args.chunk, args.repeat,
                                      source_timezone="Asia/Shanghai"),
    }
    del clean
    chinese = clean_rows(args.rows, non_ascii_every=1)
    results["clean, all non-ASCII"] = bench(chinese, args.chunk, args.repeat)
    del chinese
    dirty = dirty_rows(args.rows)
    results["1% dirty, UTC"] = bench(dirty, args.chunk, args.repeat)
    print(f"transform_columns, {args.rows:,} rows in chunks of {args.chunk:,} "
          f"(best of {args.repeat}):")
    for label, (wall, cpu) in results.items():
        print(f"  {label:22s} {wall:>10,.0f} rows/s wall ({args.rows / wall:.2f} s)"
              f"  {cpu:>10,.0f} rows/s CPU ({args.rows / cpu:.2f} s)")


if __name__ == "__main__":
    main()
