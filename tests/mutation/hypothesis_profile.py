"""pytest plugin for mutation runs (``-p tests.mutation.hypothesis_profile``): property tests
derandomized (the same examples for every mutant, so a score is reproducible), with no example
database (a failure found under one mutant must not be replayed under the next) and no deadline
(a machine busy with other work must not kill a mutant by timing)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import settings

settings.register_profile("mutation", derandomize=True, database=None, deadline=None)
settings.load_profile("mutation")


def pytest_configure(config: object) -> None:
    """Refuse to run unless ``etl`` is the copy beside these tests: a campaign that tested the
    working tree instead of its mutants would report every mutant as a survivor."""
    import etl

    here = Path(__file__).resolve().parents[2]
    if not Path(etl.__file__).resolve().is_relative_to(here):
        raise RuntimeError(f"etl imported from {etl.__file__}, not from {here}")
