"""Real servers for the tests: a throwaway PostgreSQL cluster and an S3-compatible object store.

The fixtures in ``tests/conftest.py`` start them (``pg_cluster``, ``pg_url``,
``pg_private_cluster``, ``s3_server``, ``s3_bucket``); docs/development/test-services.md explains
how. A server that cannot be started on this machine (no binaries, a library not installed) makes
the tests that need it skip, saying how to install it -- unless ``SWR_ETL_REQUIRE_SERVICES=1`` is
set, as CI does, where the same condition is an error naming what is missing. A server that is
installed but does not come up is always an error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import NoReturn, Protocol, TypeVar

import pytest

REQUIRE_ENV = "SWR_ETL_REQUIRE_SERVICES"
_TRUE = frozenset({"1", "true", "yes", "on"})

T = TypeVar("T")


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


class ServiceUnavailable(RuntimeError):
    """The server cannot be started on this machine; the message says how to install it."""


class ServiceFailed(RuntimeError):
    """The server is installed but misbehaved (did not start, did not answer in time)."""


def services_required(environ: Mapping[str, str] = os.environ) -> bool:
    """True when a missing server must fail the tests instead of skipping them (CI)."""
    return environ.get(REQUIRE_ENV, "").strip().lower() in _TRUE


def unavailable(reason: str, environ: Mapping[str, str] = os.environ) -> NoReturn:
    """Skip the requesting test, or fail it when the environment requires the services."""
    if services_required(environ):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is an error, not a skip)",
                    pytrace=False)
    pytest.skip(reason)


def poll(check: Callable[[], T | None], *, timeout: float, interval: float = 0.05,
         what: str) -> T:
    """Call ``check`` until it returns something other than None, for at most ``timeout`` s.

    Raises:
        ServiceFailed: the deadline passed; the message names ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise ServiceFailed(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def started(start: Callable[[], T]) -> T:
    """``start()``, with its failures turned into the skipping policy: a server missing here
    skips (or fails under SWR_ETL_REQUIRE_SERVICES=1), a broken one fails, one clear line."""
    try:
        return start()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    except ServiceFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def running(start: Callable[[], S]) -> Iterator[S]:
    """A fixture's body: the started server, closed afterwards even when the tests failed."""
    service = started(start)
    try:
        yield service
    finally:
        service.close()
