"""Several simulated regions at once: one simulator per region, each on its own loopback port,
with its own dataset (the shared catalogue, that region's counts) and its own scenario (faults,
drift, auth), so a test or the demo can fail, throttle or move one region alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from types import TracebackType
from typing import Any

from etl.config.sources import Source
from etl.simulator.dataset import Dataset
from etl.simulator.scenario import Scenario
from etl.simulator.server import Simulator


class Regions:
    """Simulators by region name; ``sources()`` names each by its region at its own URL."""

    def __init__(self, names: Sequence[str], *, images: int = 180, seed: int = 42,
                 today: date | None = None,
                 scenarios: Mapping[str, Scenario | Mapping[str, Any]] | None = None) -> None:
        scenarios = scenarios or {}
        self.sims: dict[str, Simulator] = {
            name: Simulator(dataset=Dataset(images, seed, today=today, region=name),
                            scenario=scenarios.get(name))
            for name in names}

    def __getitem__(self, name: str) -> Simulator:
        return self.sims[name]

    def __iter__(self) -> Iterator[Simulator]:
        return iter(self.sims.values())

    def start(self) -> Regions:
        for sim in self:
            sim.start()
        return self

    def close(self) -> None:
        for sim in self:
            sim.close()

    def __enter__(self) -> Regions:
        return self.start()

    def __exit__(self, _type: type[BaseException] | None, _exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close()

    def advance_day(self) -> None:
        for sim in self:
            sim.dataset.advance_day()

    def sources(self) -> tuple[Source, ...]:
        """Each region as a source named by its region, at its simulator's URL."""
        return tuple(Source(name, sim.url, name) for name, sim in self.sims.items())
