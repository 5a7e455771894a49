"""The simulated images as compact columns, and how a dataset of any size is drawn from a seed.

One row per image ever created (listed or not: the listing order lives in ``Dataset``). Counts are
``array`` columns, so a 1,000,000-image dataset builds in about a second and stays small.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import numpy as np

from etl.simulator import catalogue

DAY = 86_400
FIRST_ID = 100_000  # ids count up from here, unique and increasing, with gaps
STUCK_ROW = 24  # the row whose counter will stick at INT32_MAX a few simulated days in
_CATALOGUE = catalogue.spliced()


def midnight(d: date) -> int:
    """Epoch seconds of ``d`` at 00:00 UTC."""
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


def _int_array(values: np.ndarray) -> array[int]:
    out = array("q")
    out.frombytes(values.astype(np.int64).tobytes())
    return out


@dataclass
class ImageTable:
    """Columns of the simulated images, indexed by row."""

    ids: array[int] = field(default_factory=lambda: array("q"))
    names: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    description: array[int] = field(default_factory=lambda: array("h"))  # catalogue template
    pulls: array[int] = field(default_factory=lambda: array("q"))
    stars: array[int] = field(default_factory=lambda: array("q"))
    collection_ids: array[int] = field(default_factory=lambda: array("q"))
    # epoch seconds, before the dataset's calendar shift (``Dataset.set_today``)
    last_updated: array[int] = field(default_factory=lambda: array("q"))
    growth: array[float] = field(default_factory=lambda: array("d"))  # daily pull growth rate
    # rows below this index describe themselves by name (catalogue); beyond, shared texts keep
    # renders cheap at 1,000,000 rows
    named: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, image_id: int, name: str, namespace: str, description: int, pulls: int,
               stars: int, collection_id: int, last_updated: int, growth: float) -> int:
        """Add one image; its row index."""
        self.ids.append(image_id)
        self.names.append(name)
        self.namespaces.append(namespace)
        self.description.append(description)
        self.pulls.append(pulls)
        self.stars.append(stars)
        self.collection_ids.append(collection_id)
        self.last_updated.append(last_updated)
        self.growth.append(growth)
        return len(self.ids) - 1


def generate(n: int, seed: int, today: date) -> ImageTable:
    """``n`` images drawn from ``seed``: catalogue names first, long-tailed counts, ages."""
    # numpy draws the columns in bulk so a 1,000,000-image dataset builds in about a second.
    g = np.random.default_rng([seed, 20_260_101])
    rank = np.arange(1, n + 1, dtype=np.float64)
    # Long tail: a few images above 2^31 pulls, most in the thousands or less.
    law = np.where(rank <= 20, 1.3e10 / rank ** 2.0, 3.25e7 * (20 / rank) ** 3)
    pulls = (law * g.lognormal(0.0, 0.45, n)).astype(np.int64)
    pulls += g.integers(0, 50, n)
    stars = (pulls ** 0.62 * (0.3 + g.random(n)) / 80).astype(np.int64)
    coll = np.where(g.random(n) < 0.15, g.integers(1, 100_000, n), 0)
    rate = np.where(g.random(n) < 0.04, 0.02 + 0.06 * g.random(n), 0.0005 * 8 ** g.random(n))
    age = np.minimum(g.exponential(40 * DAY, n) * (1 + rank / 200), 6 * 365 * DAY)
    lu = midnight(today) - 1 - age.astype(np.int64)
    ids = FIRST_ID + np.cumsum(1 + g.integers(0, 13, n))
    desc_t = g.integers(0, len(catalogue.DESCRIPTIONS), n)
    if n:
        s = min(n - 1, STUCK_ROW)  # will cross INT32_MAX about a week into time travel
        pulls[s] = 2_080_000_000 + int(g.integers(0, 10_000_000))
        rate[s] = 0.004
    k = min(n, len(_CATALOGUE))
    names = [c[0] for c in _CATALOGUE[:k]]
    spaces = [c[1] for c in _CATALOGUE[:k]]
    if n > k:
        pa, pb = catalogue.SYNTH_PARTS_A, catalogue.SYNTH_PARTS_B
        pn = catalogue.SYNTH_NAMESPACES
        ia = g.integers(0, len(pa), n - k).tolist()
        ib = g.integers(0, len(pb), n - k).tolist()
        names += [f"{pa[a]}-{pb[b]}-{i}" for i, a, b in zip(range(k, n), ia, ib, strict=True)]
        spaces += [pn[j] for j in g.integers(0, len(pn), n - k).tolist()]
    return ImageTable(
        ids=_int_array(ids), names=names, namespaces=spaces,
        description=array("h", desc_t.astype(np.int16).tobytes()),
        pulls=_int_array(pulls), stars=_int_array(stars), collection_ids=_int_array(coll),
        last_updated=_int_array(lu), growth=array("d", rate.astype(np.float64).tobytes()),
        named=max(k, 10_000),
    )
