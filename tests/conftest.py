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
