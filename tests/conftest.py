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
    """Queue of page sources for runs that cannot be handed ``pages=`` (through the CLI): each
    ``run_sync`` without ``pages`` takes the next one instead of scanning the API (anything
    iterable into ``Page``s, with a ``stats`` attribute like etl.extract.scan's)."""
    import etl.run.pipeline

    queue: list[Any] = []
    monkeypatch.setattr(etl.run.pipeline, "scan_api", lambda settings: queue.pop(0))
    return queue
