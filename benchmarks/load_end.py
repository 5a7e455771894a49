"""Where a load ends: each statement of ``LoadRun.finish`` timed, new database and second sync.

A sync's last steps run after its last page, on the main thread, with nothing to overlap them:
building the name index that a load into an empty table left out, the duplicate-name check,
marking removed images, the ledger rows, and the COMMIT, whose WAL checkpoint copies every page
the run wrote into the database file. The syncs run in this process (``etl.cli.app.main``)
against ``swr-etl simulate`` in a process of its own. A statement's time is read from SQLite's
trace callback (``Connection.set_trace_callback``, called as each statement starts): the time to
the next statement's start, the last one's to ``finish`` returning. Also prints when the first
page was requested, counted from the start of the sync. A first, untimed sync pays the
process's imports, so a new database's figures hold only what a new database costs. Prints
figures, asserts nothing.

Usage: python -m benchmarks.load_end [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.run import SimulatorProcess, header, spread
from etl.cli.app import main as etl_main
from etl.extract.fetch import PageFetcher
from etl.store.load import LoadRun

Marks = list[tuple[float, str]]


def label(sql: str) -> str:
    """A statement's first words: the same for every run (the trace shows bound values)."""
    return " ".join(sql.split()[:4])


def traced(on_finish: Callable[[Marks, float, float], None],
           on_first_fetch: Callable[[float], None]) -> Callable[[], None]:
    """Trace each ``finish``'s statements and note each page request; return the undo."""
    finish, fetch = LoadRun.finish, PageFetcher.fetch

    def traced_finish(self: LoadRun, **kw: Any) -> Any:
        marks: Marks = []
        conn = self.loader.conn
        conn.set_trace_callback(lambda sql: marks.append((time.perf_counter(), label(sql))))
        start = time.perf_counter()
        try:
            return finish(self, **kw)
        finally:
            conn.set_trace_callback(None)
            on_finish(marks, start, time.perf_counter())

    def noted_fetch(self: PageFetcher, *args: Any, **kw: Any) -> Any:
        on_first_fetch(time.perf_counter())
        return fetch(self, *args, **kw)

    LoadRun.finish = traced_finish  # type: ignore[method-assign]
    PageFetcher.fetch = noted_fetch  # type: ignore[method-assign]

    def undo() -> None:
        LoadRun.finish = finish  # type: ignore[method-assign]
        PageFetcher.fetch = fetch  # type: ignore[method-assign]

    return undo


def one_sync(url: str, db: Path) -> dict[str, float]:
    """One sync; its first request, its ``finish`` in all, and each statement of it, in s."""
    got: dict[str, float] = {}
    fetches: list[float] = []

    def on_finish(marks: Marks, start: float, end: float) -> None:
        got["finish, in all"] = end - start
        for (at, what), (after, _) in zip(marks, [*marks[1:], (end, "")], strict=True):
            got[what] = got.get(what, 0.0) + after - at

    undo = traced(on_finish, fetches.append)
    t0 = time.perf_counter()
    try:
        etl_main(["-q", "sync", "--endpoint", url, "--db", str(db), "--no-auth",
                  "--page-size", "1000"])
    except SystemExit as exc:
        if exc.code:
            raise SystemExit(f"sync failed with exit code {exc.code}") from None
    finally:
        undo()
    got["first page requested"] = min(fetches) - t0
    got["sync, in all"] = time.perf_counter() - t0
    return got


def report(title: str, runs: list[dict[str, float]]) -> None:
    print(f"\n{title} (median, min-max of {len(runs)}):")
    keys: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        for key, seconds in run.items():
            keys[key].append(seconds)
    for key, values in sorted(keys.items(), key=lambda kv: -statistics.median(kv[1])):
        print(f"  {key:<44} {spread(values)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    header("benchmarks.load_end", argv)
    new: list[dict[str, float]] = []
    again: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="swr-load-end-") as tmp, \
            SimulatorProcess(args.rows) as sim:
        sim.warm_up()
        one_sync(sim.url, Path(tmp) / "imports.db")  # untimed: the process's imports, once
        for i in range(args.repeat):
            db = Path(tmp) / f"run-{i}.db"
            new.append(one_sync(sim.url, db))
            again.append(one_sync(sim.url, db))
    report(f"{args.rows:,} rows into a new database", new)
    report(f"{args.rows:,} rows, a second sync", again)
    return 0


if __name__ == "__main__":
    sys.exit(main())
