"""What hostile servers cost a whole ``swr-etl sync`` process: wall time and peak RSS.

Each case starts a loopback stub (the ones ``tests/test_hostile_http.py`` uses) and runs
``swr-etl sync`` against it as a child process (interpreter start included, like cron), timed
with ``time.perf_counter`` and with the child's own peak RSS from ``os.wait4``. Also prints how
long a default run keeps retrying a permanent outage (the retry policy on a fake clock over many
seeds; ``--real-outage`` also runs a real default sync against a port that refuses connections,
which takes about two minutes). Prints figures only; nothing is asserted.

Usage: python -m benchmarks.hostile_bench [--real-outage]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from etl.config.settings import Settings
from etl.extract.retry import Transient, make_policy
from etl.extract.throttle import Limiter
from tests.test_hostile_http import (
    ISSUED,
    Behaviour,
    Stub,
    bomb,
    drip,
    endless,
    huge,
    listing,
)

SWR_ETL = [sys.executable, "-m", "etl"]


def run(args: list[str], env: dict[str, str]) -> tuple[int, float, float, str]:
    """Exit code, wall seconds, peak RSS MiB and the last stderr line of one sync process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*SWR_ETL, "sync", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    lines = err.strip().splitlines()
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024, (
        lines[-1] if lines else "")


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SWR_", "HUAWEICLOUD_")) and "proxy" not in k.lower()}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return env


def case(name: str, behaviour: Behaviour, extra: list[str], work: Path,
         creds: dict[str, str] | None = None, iam: Behaviour | None = None,
         pings: Behaviour | None = None) -> None:
    swr = Stub(behaviour)
    iam_stub = Stub(iam) if iam else None
    ping_stub = Stub(pings) if pings else None
    env = base_env(work)
    args = ["--endpoint", swr.url, "--db", str(work / f"{name}.db"), *extra]
    if creds:
        env.update(creds)
    else:
        args.append("--no-auth")
    if iam_stub:
        env["HUAWEICLOUD_IAM_ENDPOINT"] = iam_stub.url
    if ping_stub:
        args += ["--healthcheck-url", f"{ping_stub.url}/ping/x"]
    try:
        code, wall, rss, line = run(args, env)
    finally:
        for stub in (swr, iam_stub, ping_stub):
            if stub is not None:
                stub.close()
    print(f"{name:<34} exit {code}  wall {wall:6.2f} s  peak RSS {rss:6.1f} MiB  "
          f"{line[:110]}")


class _FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _fail(attempt: int) -> None:
    raise Transient("connection", "down")


def fake_clock_outage(seeds: int) -> list[float]:
    """Seconds a default policy retries a permanent outage of instant failures, per seed."""
    logging.getLogger("etl").setLevel(logging.ERROR)  # one outage warning per seed is noise here
    spent = []
    for seed in range(seeds):
        clock = _FakeClock()
        policy = make_policy(Settings(), Limiter(sleep=clock.sleep, clock=clock), clock.sleep,
                             random.Random(seed), clock=clock)
        try:
            policy.call(_fail)
        except Exception:
            spent.append(clock.now)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-outage", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="swr-hostile-"))
    iam_creds = {"HUAWEICLOUD_USERNAME": "u", "HUAWEICLOUD_PASSWORD": "p-secret-1",
                 "HUAWEICLOUD_DOMAIN_NAME": "d"}
    cases: list[tuple[str, Behaviour, list[str], dict[str, object]]] = [
        ("baseline (2-row listing)", listing(), [], {}),
        ("endless chunked body", endless, [], {}),
        ("2 GiB declared body", huge, [], {}),
        ("gzip bomb (2 GiB inflated)", bomb, [], {}),
        ("SWR body drip 1 B/s", drip(True), ["--timeout", "2", "--max-attempts", "2"], {}),
        ("SWR header drip 1 B/s", drip(False), ["--timeout", "2", "--max-attempts", "2"], {}),
        ("IAM drip 1 B/s", listing(), ["--timeout", "2", "--max-attempts", "2"],
         {"creds": iam_creds, "iam": drip(True)}),
        ("healthcheck drip 1 B/s (run ok)", listing(), [], {"pings": drip(False)}),
    ]
    print(f"swr-etl sync under hostile servers ({len(cases)} cases; IAM token {ISSUED[:6]}…)")
    try:
        for name, behaviour, extra, kw in cases:
            case(name, behaviour, extra, work, **kw)  # type: ignore[arg-type]
        spent = fake_clock_outage(1000)
        print(f"permanent outage, default settings, fake clock, 1000 seeds: gives up after "
              f"{min(spent):.1f}-{max(spent):.1f} s (median {statistics.median(spent):.1f} s)")
        if args.real_outage:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            code, wall, rss, line = run(["--no-auth", "--endpoint", f"http://127.0.0.1:{port}",
                                         "--db", str(work / "outage.db")], base_env(work))
            print(f"permanent outage, real default sync: exit {code} after {wall:.1f} s "
                  f"(peak RSS {rss:.1f} MiB): {line[:110]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
