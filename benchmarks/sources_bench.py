"""Many sources in one run: 10 simulated regions take about as long as one, memory stays flat.

The issue's target: syncing 10 simulated regions of 200 images each, with 20 ms simulated
latency per request, takes no more than ~1.5x one region on the same machine; peak RSS does not
grow with the number of sources. The regions are served from a separate process (one simulator
per region, ``etl.simulator.regions``), and each sync is a fresh ``swr-etl sync`` subprocess
reading a config file of ``[[sources]]``, timed with ``time.perf_counter`` and with its own peak
RSS (``os.wait4``).

With ``--base REV``, ``etl/`` at that git revision (A) and this checkout (B) each sync one region
and ten, alternating A1, A10, B1, B10 round by round against the same simulated regions; B/A is
printed per round for each count and for the ratio (``benchmarks.ab``'s trees and launcher).

Usage: python -m benchmarks.sources_bench [--images 200] [--latency-ms 20] [--regions 1,5,10]
                                          [--repeat 3] [--base REV]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.ab import LAUNCHER, a_and_b, summary, tree_env
from benchmarks.run import PY, Sample, measure

# The serving process: the regions, their sources as JSON on one line, then serve until stdin
# closes.
SERVE = """
import json, sys
from etl.simulator.regions import Regions
from etl.config.regions import KNOWN_REGIONS
names = KNOWN_REGIONS[:int(sys.argv[1])]
with Regions(names, images=int(sys.argv[2]),
             scenarios={n: {"latency_ms": float(sys.argv[3])} for n in names}) as regions:
    print(json.dumps([[s.name, s.endpoint] for s in regions.sources()]), flush=True)
    sys.stdin.read()
"""


def config_for(sources: list[list[str]], path: Path) -> Path:
    path.write_text("".join(f'[[sources]]\nname = "{name}"\nendpoint = "{url}"\n'
                            for name, url in sources))
    return path


def sync_sample(sources: list[list[str]], work: Path, n: int, tree: Path | None = None
                ) -> Sample:
    """One fresh sync of ``sources`` into a new database (with ``tree``: that tree's ``etl``)."""
    db = work / f"swr-{n}.db"
    for old in work.glob(f"{db.name}*"):
        old.unlink()
    cfg = config_for(sources, work / f"sources-{n}.toml")
    args = ["sync", "--no-auth", "-q", "--config", str(cfg), "--db", str(db)]
    if tree is None:
        return measure([PY, "-m", "etl", *args])
    return measure([PY, "-c", LAUNCHER, *args], env=tree_env(tree))


def ab(every: list[list[str]], counts: list[int], repeat: int, base: str) -> None:
    """A (``base``) against B (this checkout): one and ``counts[-1]`` regions, alternating."""
    one, most = counts[0], counts[-1]
    with tempfile.TemporaryDirectory(prefix="swr-etl-sources-ab-") as tmp:
        a, b = a_and_b(base, Path(tmp))
        got: dict[tuple[str, int], list[Sample]] = {}
        for _ in range(repeat):
            for side, tree in (("A", a), ("B", b)):
                for n in (one, most):
                    got.setdefault((side, n), []).append(
                        sync_sample(every[:n], Path(tmp), n, tree))
    for n in (one, most):
        print(f"{n} region(s), {repeat} alternating rounds:")
        summary({f"A {base}": got["A", n], "B this checkout": got["B", n]})
    for side in "AB":
        per = [m.wall / o.wall for o, m in zip(got[side, one], got[side, most], strict=True)]
        print(f"  {side} ratio {most}/{one} per round: median {statistics.median(per):.2f}x "
              f"({min(per):.2f}-{max(per):.2f})  target <= 1.5x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--regions", default="1,5,10")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", help="git revision to A/B this checkout against")
    args = ap.parse_args(argv)
    counts = [int(n) for n in args.regions.split(",")]
    server = subprocess.Popen([PY, "-c", SERVE, str(max(counts)), str(args.images),
                               str(args.latency_ms)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        every = json.loads(server.stdout.readline())
        if args.base:
            ab(every, counts, args.repeat, args.base)
            return 0
        results: dict[int, list[Sample]] = {}
        with tempfile.TemporaryDirectory(prefix="swr-etl-sources-bench-") as tmp:
            for _ in range(args.repeat):
                for n in counts:  # interleaved, so drift on a shared machine hits all alike
                    results.setdefault(n, []).append(sync_sample(every[:n], Path(tmp), n))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=30)
    print(f"sources: {args.images} images per region, {args.latency_ms:g} ms latency per "
          f"request, {args.repeat} runs each (python {sys.version.split()[0]})")
    print(f"{'regions':>8} {'median s':>9} {'min-max s':>13} {'peak RSS MiB':>13}")
    for n in counts:
        walls = [s.wall for s in results[n]]
        rss = max(s.rss_mib for s in results[n])
        print(f"{n:>8} {statistics.median(walls):>9.2f} "
              f"{min(walls):>6.2f}-{max(walls):<6.2f} {rss:>13.1f}")
    one, most = (statistics.median(s.wall for s in results[n]) for n in (counts[0], counts[-1]))
    print(f"ratio {counts[-1]} regions / {counts[0]}: {most / one:.2f}x (target <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
