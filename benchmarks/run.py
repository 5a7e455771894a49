"""Benchmarks: swr-etl against the floor, at nightly size and at scale (issue 8).

Usage:
    python -m benchmarks.run                         # all scenarios: 180, 200k, 1M, latency
    python -m benchmarks.run --rows 200000 --repeat 3
    python -m benchmarks.run --latency-only

Every measurement is a fresh subprocess (interpreter start included), timed with
``time.perf_counter`` and with its own peak RSS from ``os.wait4``. The simulated endpoint runs in a
separate process (``swr-etl simulate``) on 127.0.0.1, page size 1000. Prints median and min-max of
each, the ratio sync/floor, rows/s, and peak RSS. Absolute figures drift +-20 % on shared machines:
compare the ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

PY = sys.executable


@dataclass
class Sample:
    wall: float
    rss_mib: float
    # user + sys CPU seconds of the child alone: steadier than wall time on a shared machine.
    cpu: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd``; return its wall time, CPU time and peak RSS (that child's own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}\n{err[-2000:]}")
    return Sample(wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


class SimulatorProcess:
    """``swr-etl simulate`` in its own process, so it does not share a GIL with what is measured."""

    def __init__(self, images: int, scenario: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [PY, "-m", "etl", "-q", "simulate", "--port", str(self.port), "--images",
               str(images)]
        if scenario:
            cmd += ["--scenario", str(scenario)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("simulator exited early")
            try:
                r = requests.get(self.url + "/v2/manage/dockerhub/repos",
                                 params={"offset": 0, "limit": 1}, timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit("simulator did not start")

    def warm_up(self, page_size: int = 1000) -> None:
        """One untimed full scan, so the floor (measured first) does not pay the simulator's
        first rendering of every page and sync gets no head start from a cache the floor warmed."""
        with requests.Session() as s:
            offset = 0
            while True:
                page = s.get(self.url + "/v2/manage/dockerhub/repos",
                             params={"offset": offset, "limit": page_size}, timeout=60).json()
                if not page:
                    return
                offset += len(page)
                if offset >= page[0]["total_range"]:
                    return

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def spread(values: list[float], unit: str = "s") -> str:
    """``median unit (min-max)``, the way the benchmarks print a set of timings."""
    return (f"{statistics.median(values):6.3f} {unit} "
            f"({min(values):.3f}-{max(values):.3f})")


def summarise(samples: list[Sample]) -> tuple[float, float, float, float]:
    walls = [s.wall for s in samples]
    return statistics.median(walls), min(walls), max(walls), max(s.rss_mib for s in samples)


def sync_cmd(url: str, db: Path, page_size: int, concurrency: int) -> list[str]:
    return [PY, "-m", "etl", "-q", "sync", "--endpoint", url, "--db", str(db), "--no-auth",
            "--page-size", str(page_size), "--concurrency", str(concurrency)]


def scale_scenario(rows: int, repeat: int, workdir: Path, concurrency: int) -> dict[str, object]:
    """Floor vs sync (fresh database, then a second run into it) at ``rows`` rows."""
    out: dict[str, object] = {"rows": rows}
    with SimulatorProcess(rows) as sim:
        sim.warm_up()
        floor, fresh, rerun = [], [], []
        for i in range(repeat):
            fdb = workdir / f"floor-{rows}-{i}.db"
            floor.append(measure([PY, "-m", "benchmarks.floor", sim.url, str(fdb)]))
            sdb = workdir / f"sync-{rows}-{i}.db"
            fresh.append(measure(sync_cmd(sim.url, sdb, 1000, concurrency)))
            rerun.append(measure(sync_cmd(sim.url, sdb, 1000, concurrency)))
            for p in workdir.glob(f"*-{rows}-{i}.db*"):
                p.unlink()
        out["floor"], out["fresh"], out["rerun"] = (summarise(floor), summarise(fresh),
                                                     summarise(rerun))
        # CPU time (user + sys of each child): the ratio to read on a shared machine.
        out["cpu"] = {key: statistics.median(s.cpu for s in got)
                      for key, got in (("floor", floor), ("fresh", fresh), ("rerun", rerun))}
    return out


def ledger_seconds(db: Path) -> float:
    """The run's own duration as the ledger recorded it (no interpreter start or imports)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        (seconds,) = conn.execute(
            "SELECT duration_s FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    return float(seconds)


def latency_scenario(rows: int, latency_ms: int, page_size: int, repeat: int,
                     workdir: Path) -> dict[str, object]:
    """Whole sync with simulated latency per request: --concurrency 1 vs 4."""
    scenario = workdir / "latency.json"
    scenario.write_text(f'{{"latency_ms": {latency_ms}}}')
    res: dict[str, object] = {"rows": rows, "latency_ms": latency_ms, "page_size": page_size}
    with SimulatorProcess(rows, scenario) as sim:
        for conc in (1, 4):
            samples, inner = [], []
            for i in range(repeat):
                db = workdir / f"lat-{conc}-{i}.db"
                samples.append(measure(sync_cmd(sim.url, db, page_size, conc)))
                inner.append(ledger_seconds(db))
            res[f"c{conc}"] = summarise(samples)
            res[f"run{conc}"] = statistics.median(inner)
    return res


def fmt(s: tuple[float, float, float, float]) -> str:
    med, lo, hi, rss = s
    return f"{med:7.2f} s ({lo:.2f}-{hi:.2f})  {rss:6.0f} MiB"


def compile_bytecode(tree: Path | None = None) -> None:
    """Compile ``tree``'s ``etl`` (default: the one imported here) to bytecode before measuring.

    An installed wheel has its bytecode, and a normal editable install writes it on the first
    run; with ``PYTHONDONTWRITEBYTECODE`` set (some CI images and sandboxes set it), every
    measured process would compile every module it imports instead: ~50 ms of a 0.1 s command
    and ~0.15 s of a sync, none of it the program's own cost. ``compileall`` writes the files
    whatever that variable says.
    """
    import compileall

    root = tree if tree is not None else Path(__file__).resolve().parent.parent
    package = root / "etl"
    if not compileall.compile_dir(str(package), quiet=1):
        raise SystemExit(f"could not compile {package} to bytecode")


def header(module: str, argv: list[str] | None) -> None:
    """Print the machine and the command line (``python -m module ...``) a report's figures
    come from: every benchmark's first two lines."""
    print(f"machine: {machine()}")
    print(f"command: python -m {module} {' '.join(argv or sys.argv[1:])}".rstrip())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
            f"Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="swr-etl benchmarks against the floor")
    ap.add_argument("--rows", type=int, action="append",
                    help="scale scenario row counts (default: 180, 200000, 1000000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4, help="sync --concurrency at scale")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--latency-rows", type=int, default=20000)
    ap.add_argument("--latency-ms", type=int, default=50)
    ap.add_argument("--latency-page-size", type=int, default=100)
    args = ap.parse_args(argv)
    header("benchmarks.run", argv)
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="swr-bench-") as tmp:
        work = Path(tmp)
        if not args.latency_only:
            print(f"\n{'rows':>9}  {'what':<12} {'wall median (min-max)':>26}  {'peak RSS':>8}"
                  f"  {'x floor':>7}  {'rows/s':>10}")
            for rows in args.rows or [180, 200_000, 1_000_000]:
                r = scale_scenario(rows, args.repeat, work, args.concurrency)
                floor_med = r["floor"][0]  # type: ignore[index]
                for key in ("floor", "fresh", "rerun"):
                    s = r[key]
                    label = {"floor": "floor", "fresh": "sync (new)", "rerun": "sync (again)"}[key]
                    print(f"{rows:>9,}  {label:<12} {fmt(s):>38}  {s[0] / floor_med:7.2f}"
                          f"  {rows / s[0]:>10,.0f}", flush=True)
                cpu: dict[str, float] = r["cpu"]  # type: ignore[assignment]
                print(f"{'':>9}  cpu, median: floor {cpu['floor']:.2f} s, sync (new) "
                      f"{cpu['fresh']:.2f} s ({cpu['fresh'] / cpu['floor']:.2f}x), sync (again) "
                      f"{cpu['rerun']:.2f} s ({cpu['rerun'] / cpu['floor']:.2f}x)", flush=True)
        if not args.no_latency:
            r = latency_scenario(args.latency_rows, args.latency_ms, args.latency_page_size,
                                 args.repeat, work)
            c1, c4 = r["c1"], r["c4"]
            print(f"\nlatency {args.latency_ms} ms/request, {args.latency_rows:,} rows, page size "
                  f"{args.latency_page_size}:")
            print(f"  --concurrency 1: {fmt(c1)}")  # type: ignore[arg-type]
            print(f"  --concurrency 4: {fmt(c4)}")  # type: ignore[arg-type]
            print(f"  speed-up, whole process: {c1[0] / c4[0]:.2f}x")  # type: ignore[index]
            run1, run4 = r["run1"], r["run4"]
            print(f"  speed-up, the run itself (ledger duration_s, median {run1:.2f} s vs "
                  f"{run4:.2f} s): {run1 / run4:.2f}x")  # type: ignore[operator]
    return 0


if __name__ == "__main__":
    sys.exit(main())
