"""Shared fixtures: ``simulator`` starts simulated SWR endpoints and closes them at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from etl.simulator import Simulator


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
    """Queue of scans the next ``run_sync`` calls get instead of HTTP: each call pops the next
    object (anything iterable into ``Page``s with a ``stats`` attribute, like
    etl.extract.scan's)."""
    import etl.extract.auth
    import etl.extract.scan

    queue: list[Any] = []
    monkeypatch.setattr(etl.extract.scan, "make_session", lambda settings: object())
    monkeypatch.setattr(etl.extract.auth, "build_auth", lambda settings, session: None)
    monkeypatch.setattr(etl.extract.scan, "scan_official_images",
                        lambda session, settings, auth=None: queue.pop(0))
    return queue
