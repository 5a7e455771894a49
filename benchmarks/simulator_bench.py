"""How fast the simulated endpoint serves a full scan (prints figures; asserts nothing).

    .venv/bin/python benchmarks/simulator_bench.py --rows 1000000 --page-size 1000

Measures dataset build time, then a plain ``requests.Session`` loop that fetches and
``json``-decodes every page (the floor's "fetch + decode" part), cold (rows rendered on first
request) and warm (second scan: every row's JSON already rendered).
"""

from __future__ import annotations

import argparse
import json
import time

import requests

from etl.simulator import Dataset, Simulator

REPOS = "/v2/manage/dockerhub/repos"


def scan(url: str, page_size: int) -> tuple[int, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    rows = 0
    with requests.Session() as s:
        offset = 0
        while True:
            r = s.get(url + REPOS, params={"offset": offset, "limit": page_size}, timeout=60)
            page = json.loads(r.content)
            if not page:
                break
            rows += len(page)
            offset += len(page)
    return rows, time.perf_counter() - t0, time.process_time() - c0


def decode_only(ds: Dataset, page_size: int) -> tuple[float, float]:
    """The client's own floor: json-decode every (already rendered) page, no HTTP."""
    bodies = [ds.page(o, page_size).body for o in range(0, len(ds), page_size)]
    t0, c0 = time.perf_counter(), time.process_time()
    for b in bodies:
        json.loads(b)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--prerender", action="store_true", help="render every row before scan 1")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = Dataset(args.rows, seed=1)
    print(f"build {args.rows:,} rows: {time.perf_counter() - t0:.2f} s")
    if args.prerender:
        t0 = time.perf_counter()
        ds.prerender()
        print(f"prerender: {time.perf_counter() - t0:.2f} s")
    # CPU seconds of this process are the robust figure on a shared, loaded machine: client and
    # simulator threads both count, other processes do not.
    with Simulator(dataset=ds) as sim:
        for label in ("scan 1", "scan 2"):
            before = sim.cpu_seconds
            rows, secs, cpu = scan(sim.url, args.page_size)
            server = sim.cpu_seconds - before
            print(f"{label}: {rows:,} rows in {secs:.2f} s wall ({rows / secs:,.0f} rows/s), "
                  f"{cpu:.2f} s CPU, of which the simulator {server:.2f} s")
    secs, cpu = decode_only(ds, args.page_size)
    print(f"json decode only (no HTTP): {secs:.2f} s wall, {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
