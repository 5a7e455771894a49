"""Shared fixtures: simulated SWR endpoints, loopback stub servers, a clean environment, a
self-signed certificate, logging put back after every test, and the real test servers.

Plain helpers (FakeClock, q, cli, rows, FakeScan, Stub, ...) are in tests/helpers.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from etl.simulator import Simulator
from tests.helpers import Behaviour, Stub, logging_restored

# Variables through which the caller's machine could reach a test: credentials, settings,
# proxies, CA bundles, ~/.netrc.
MACHINE_ENV = ("SWR_", "HUAWEICLOUD_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
               "SSL_CERT_DIR", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NETRC")


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Every test leaves logging as it found it (``main()`` points it at the captured stderr)."""
    with logging_restored():
        yield


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No credentials, settings, proxies or CA bundles from the machine, loopback never proxied,
    and a private HOME (no real ~/.netrc). Returns the monkeypatch, to set what a test needs."""
    for var in list(os.environ):
        if var.upper().startswith(MACHINE_ENV):
            monkeypatch.delenv(var)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    return monkeypatch


@pytest.fixture
def stubs() -> Iterator[Callable[..., Stub]]:
    """Factory: ``stub = stubs(behaviour)`` is a started loopback ``Stub`` (tests/helpers.py),
    closed at teardown."""
    made: list[Stub] = []

    def make(behaviour: Behaviour, **kw: Any) -> Stub:
        stub = Stub(behaviour, **kw)
        made.append(stub)
        return stub

    yield make
    for stub in made:
        stub.close()


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with openssl: (certificate, key) files."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(crt), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60)
    return crt, key


@pytest.fixture
def simulator() -> Iterator[Callable[..., Simulator]]:
    """Factory: ``sim = simulator(images=50, scenario={...})`` returns a started Simulator."""
    started: list[Simulator] = []

    def make(**kw: Any) -> Simulator:
        sim = Simulator(**kw).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.close()


@pytest.fixture
def scan_queue(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Queue of page sources for runs that cannot be handed ``pages=`` (through the CLI): each
    ``run_sync`` without ``pages`` takes the next one instead of scanning the API (anything
    iterable into ``Page``s, with a ``stats`` attribute like etl.extract.scan's)."""
    import etl.run.pipeline

    queue: list[Any] = []
    monkeypatch.setattr(etl.run.pipeline, "scan_api", lambda settings: queue.pop(0))
    return queue


# --- Real servers: a throwaway PostgreSQL cluster and moto's S3 API (see tests/services) -------
# Each skips where its server cannot be started here, saying how to install it; with
# SWR_ETL_REQUIRE_SERVICES=1 (CI) that is an error instead.


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """The session's PostgreSQL cluster (tests.services.postgres.PostgresCluster)."""
    from tests.services import running
    from tests.services.postgres import start_cluster

    yield from running(start_cluster)


@pytest.fixture
def pg_url(pg_cluster: Any) -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/test_<n>``: a fresh empty database, dropped after
    the test (connections left open are ended)."""
    with pg_cluster.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A database to write, on each engine in turn: a SQLite file (not created yet) or a fresh
    ``pg_url`` database's URL. A guarantee test takes it, so both engines must keep it."""
    if request.param == "sqlite":
        return tmp_path / "swr.db"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def pg_private_cluster() -> Iterator[Any]:
    """A cluster of the test's own (PostgresCluster), for tests that kill or restart the server
    or hold locks: nothing they do can disturb other tests. Costs an initdb (~1-2 s)."""
    from tests.services import running
    from tests.services.postgres import start_cluster

    yield from running(start_cluster)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """The session's S3-compatible server (tests.services.s3.S3Server; ``.endpoint_url``)."""
    from tests.services import running
    from tests.services.s3 import start_server

    yield from running(start_server)


@pytest.fixture
def s3_bucket(s3_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    """A fresh bucket (tests.services.s3.S3Bucket: ``.endpoint_url``, ``.name``, ``.uri(key)``,
    ``.filesystem()``), emptied and deleted after the test; fake AWS credentials and region in
    the environment for the test's duration, the developer's own AWS settings hidden."""
    from tests.services.s3 import bucket_for_test

    yield from bucket_for_test(s3_server, monkeypatch, tmp_path)
