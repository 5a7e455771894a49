"""What the tests' own servers cost (tests/services): PostgreSQL cluster start and stop, a
database per test, moto's S3 server start and a bucket per test.

Usage:
    python -m benchmarks.services_bench [--repeat 5] [--databases 20]

Prints the median and min-max of each step, in milliseconds. Needs what the fixtures need
(PostgreSQL server binaries, psycopg, moto[server]); see docs/development/test-services.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from tests.services import postgres, s3


def timed(step: Callable[..., Any], *args: Any) -> float:
    """Milliseconds one call of ``step(*args)`` takes."""
    start = time.perf_counter()
    step(*args)
    return (time.perf_counter() - start) * 1000


def show(label: str, samples: list[float]) -> None:
    print(f"{label:<38} median {statistics.median(samples):8.1f} ms   "
          f"min {min(samples):8.1f}   max {max(samples):8.1f}   (n={len(samples)})")


def bench_postgres(repeat: int, databases: int) -> None:
    bin_dir, account = postgres.find_pg_bin(), postgres.service_account()
    print(f"PostgreSQL binaries: {bin_dir}; running as: "
          f"{account.pw_name if account else 'this user'}")
    initdb, start, stop, create, drop = [], [], [], [], []
    for _ in range(repeat):
        cluster = postgres.PostgresCluster(bin_dir, run_as=account)
        try:
            initdb.append(timed(cluster._initdb))
            start.append(timed(cluster.start))  # initialised already: start + first login
            for n in range(1, databases + 1):
                # the cluster names its databases test_1, test_2, ...
                create.append(timed(cluster.create_database))
                drop.append(timed(cluster.drop_database, f"test_{n}"))
            stop.append(timed(cluster.close))  # pg_ctl stop -m immediate + folder removed
        finally:
            cluster.close()
    show("cluster initdb", initdb)
    show("cluster start (until a login works)", start)
    show("cluster initdb + start (session cost)",
         [a + b for a, b in zip(initdb, start, strict=True)])
    show("cluster stop + folder removal", stop)
    show("CREATE DATABASE test_<n> (template0)", create)
    show("DROP DATABASE ... WITH (FORCE)", drop)


def bench_s3(repeat: int) -> None:
    start, stop, make, remove = [], [], [], []
    for _ in range(repeat):
        server = s3.S3Server()
        start.append(timed(server.start))
        for n in range(10):
            make.append(timed(server.create_bucket, f"bench-{n}"))
            remove.append(timed(server.delete_bucket, f"bench-{n}"))
        stop.append(timed(server.close))
    show("moto S3 server start (first: imports)", start[:1])
    if len(start) > 1:
        show("moto S3 server start (again)", start[1:])
    show("moto S3 server stop", stop)
    show("bucket create", make)
    show("bucket empty + delete", remove)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--databases", type=int, default=20,
                        help="databases created and dropped per cluster")
    args = parser.parse_args()
    bench_postgres(args.repeat, args.databases)
    bench_s3(args.repeat)


if __name__ == "__main__":
    main()
