"""The simulated official-image list: deterministic by seed, any size, with time travel.

A ``Dataset`` is the listing the simulator serves: which images exist (``etl.simulator.table``),
in which order, on which simulated day, and every way it changes (the drift a scenario asks for,
a simulated day's growth). How rows look on the wire is ``etl.simulator.render``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from etl.errors import ConfigError
from etl.integers import INT32_MAX
from etl.simulator import catalogue
from etl.simulator.render import RenderedPage, Renderer
from etl.simulator.table import DAY, FIRST_ID, STUCK_ROW, ImageTable, generate, midnight


@dataclass
class DayReport:
    """What ``Dataset.advance_day`` changed (ids), for demos and tests."""

    today: date
    added: list[int] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    decreased: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)


def _regional(t: ImageTable, rng: random.Random) -> None:
    """One region's counts of the shared catalogue: a region-wide scale (regions differ in
    size) and a growth rate per image (each region has its own risers)."""
    scale = 0.2 + 2.8 * rng.random()
    for i in range(len(t)):
        if t.pulls[i] < 2_000_000_000:  # the near-int32 rows keep their anomaly
            t.pulls[i] = int(t.pulls[i] * scale)
        t.growth[i] *= 0.2 + 2.3 * rng.random()


class Dataset:
    """The listing the simulator serves; every mutation bumps ``version``. Thread-safe."""

    def __init__(self, images: int = 180, seed: int = 42, today: date | None = None,
                 region: str | None = None) -> None:
        """``region``: the same catalogue (ids, names) as every region of this seed, with that
        region's own pull counts and growth (pulls are counted per region)."""
        if images < 0:
            raise ConfigError(f"images must be >= 0, got {images}")
        self.seed = seed
        self._salt = f":{region}" if region else ""
        self.version = 0
        self._lock = threading.RLock()
        self._today = today or datetime.now(timezone.utc).date()
        self._shift = 0  # seconds added to every stored last_updated (set_today)
        self._day_no = 0
        self._table = generate(images, seed, self._today)
        if region:
            _regional(self._table, random.Random(f"{seed}:region:{region}"))
        self._order: list[int] = list(range(images))  # listing order, as row indexes
        self._renderer = Renderer(self._table)
        self._views: dict[tuple[str | None, str | None], list[int]] = {}
        self._drift_rng = random.Random(f"{seed}:drift")
        self._next_id = self._table.ids[-1] if images else FIRST_ID

    # ------------------------------------------------------------------------------- reading

    @property
    def today(self) -> date:
        return self._today

    def __len__(self) -> int:
        return len(self._order)

    def rows(self, timestamp_format: str = "swr") -> list[dict[str, object]]:
        """The whole listing in order, API field names, without ``total_range``."""
        with self._lock:
            row = self._renderer.row
            return [row(i, timestamp_format, self._shift) for i in self._order]

    def ids(self) -> list[int]:
        with self._lock:
            return [self._table.ids[i] for i in self._order]

    def _view(self, namespace: str | None, image_name: str | None) -> list[int]:
        if not namespace and not image_name:
            return self._order
        key = (namespace or None, image_name or None)
        view = self._views.get(key)
        if view is None:
            needle = (image_name or "").lower()
            names, spaces = self._table.names, self._table.namespaces
            view = [i for i in self._order
                    if (not namespace or spaces[i] == namespace)
                    and (not needle or needle in names[i].lower())]
            self._views[key] = view
        return view

    def page(self, offset: int, limit: int, namespace: str | None = None,
             image_name: str | None = None, timestamp_format: str = "swr") -> RenderedPage:
        """Render rows ``offset .. offset+limit`` of the (filtered) listing as the API would."""
        with self._lock:
            key = (self.version, timestamp_format, namespace, image_name, offset, limit)
            cached = self._renderer.cached(key)
            if cached is not None:
                return cached
            view = self._view(namespace, image_name)
            return self._renderer.page(key, view[offset:offset + limit], len(view),
                                       timestamp_format, self._shift)

    def prerender(self, timestamp_format: str = "swr") -> None:
        """Render every row's JSON now (benchmarks: keep the first scan off the render path)."""
        with self._lock:
            for start in range(0, len(self._order), 10_000):
                self._renderer.render(self._order[start:start + 10_000], timestamp_format,
                                      self._shift)

    # ------------------------------------------------------------------------------ changing

    def _fresh_rows(self, rng: random.Random, n: int) -> list[int]:
        """Append ``n`` brand-new (small, recently updated) images; not yet in the listing."""
        now = midnight(self._today)
        out = []
        for _ in range(n):
            serial = len(self._table)
            a = catalogue.SYNTH_PARTS_A[rng.randrange(len(catalogue.SYNTH_PARTS_A))]
            b = catalogue.SYNTH_PARTS_B[rng.randrange(len(catalogue.SYNTH_PARTS_B))]
            ns = catalogue.SYNTH_NAMESPACES[rng.randrange(len(catalogue.SYNTH_NAMESPACES))]
            pulls = rng.randrange(1, 5_000)
            description, stars = rng.randrange(len(catalogue.DESCRIPTIONS)), rng.randrange(3)
            updated, growth = now - 1 - rng.randrange(DAY), 0.01 + 0.05 * rng.random()
            # Drawn after the row's values (``rng`` may be the drift generator itself): the same
            # seed keeps giving the same images.
            self._next_id += 1 + self._drift_rng.randrange(13)  # unique, increasing, with gaps
            out.append(self._table.append(self._next_id, f"new-{a}-{b}-{serial}", ns, description,
                                          pulls, stars, 0, updated - self._shift, growth))
        return out

    def _changed(self, rows: list[int] | None = None) -> None:
        """Invalidate caches after a change to ``rows`` (None: every row)."""
        self.version += 1
        self._views.clear()
        self._renderer.forget(rows)

    def insert_front(self, n: int = 1) -> list[int]:
        """Add ``n`` new images at the start of the listing; returns their ids."""
        return self.insert_at(n, 0)

    def insert_at(self, n: int = 1, position: int = 0) -> list[int]:
        """Add ``n`` new images at index ``position`` (clipped to the end); returns their ids."""
        with self._lock:
            new = self._fresh_rows(self._drift_rng, n)
            at = min(max(position, 0), len(self._order))
            self._order[at:at] = new
            self._changed(new)
            return [self._table.ids[i] for i in new]

    def delete(self, n: int = 1, where: str = "random", position: int | None = None) -> list[int]:
        """Remove ``n`` images from the listing (``where``: random | front | end, or the ``n``
        from index ``position`` on); their ids."""
        with self._lock:
            n = min(n, len(self._order))
            if position is not None:
                start = min(max(position, 0), len(self._order) - n)
                gone = self._order[start:start + n]
            elif where == "front":
                gone = self._order[:n]
            elif where == "end":
                gone = self._order[len(self._order) - n:]
            elif where == "random":
                gone = self._drift_rng.sample(self._order, n)
            else:
                raise ConfigError(f"delete: where must be random, front or end, not {where!r}")
            drop = set(gone)
            self._order = [i for i in self._order if i not in drop]
            self._changed([])
            return [self._table.ids[i] for i in gone]

    def replace(self, n: int = 1, where: str = "random", position: int | None = None,
                to: int = 0) -> tuple[list[int], list[int]]:
        """Delete ``n`` images (as ``delete``) and add as many new ones at index ``to``: the
        total stays the same. Returns (deleted ids, new ids)."""
        with self._lock:
            gone = self.delete(n, where, position)
            return gone, self.insert_at(len(gone), to)

    def move(self, n: int = 1, position: int | None = None, to: int | None = None) -> list[int]:
        """Move the ``n`` images from index ``position`` (random if None) to index ``to`` of the
        listing without them (random if None), e.g. from one page to another; their ids."""
        with self._lock:
            rng = self._drift_rng
            n = min(n, len(self._order))
            if position is None:
                position = rng.randrange(len(self._order) - n + 1)
            start = min(max(position, 0), len(self._order) - n)
            moved = self._order[start:start + n]
            del self._order[start:start + n]
            at = rng.randrange(len(self._order) + 1) if to is None else to
            at = min(max(at, 0), len(self._order))
            self._order[at:at] = moved
            self._changed([])
            return [self._table.ids[i] for i in moved]

    def reorder(self, n: int = 1) -> list[int]:
        """Move ``n`` random images to other random positions (n <= 0: shuffle all); their ids."""
        with self._lock:
            rng = self._drift_rng
            if n <= 0 or n >= len(self._order):
                moved = list(self._order)
                rng.shuffle(self._order)
            else:
                moved = []
                for _ in range(n):
                    i = self._order.pop(rng.randrange(len(self._order)))
                    self._order.insert(rng.randrange(len(self._order) + 1), i)
                    moved.append(i)
            self._changed([])
            return [self._table.ids[i] for i in moved]

    def bump(self, n: int = 1, by: int | None = None) -> list[int]:
        """Increase pull (and star) counts of ``n`` random images (n <= 0: all); their ids."""
        with self._lock:
            rng = self._drift_rng
            rows = (list(self._order) if n <= 0 or n >= len(self._order)
                    else rng.sample(self._order, n))
            pulls, stars = self._table.pulls, self._table.stars
            for i in rows:
                pulls[i] += by if by is not None else 1 + int(pulls[i] * 0.001)
                stars[i] += 1
            self._changed(rows)
            return [self._table.ids[i] for i in rows]

    def set_today(self, today: date) -> None:
        """Move the simulated calendar; ``last_updated`` values keep their age relative to it."""
        with self._lock:
            self._shift += (midnight(today) - midnight(self._today))
            self._today = today
            self._changed()

    def advance_day(self) -> DayReport:
        """One simulated day: counts grow, a few images come and go, anomalies appear."""
        with self._lock:
            self._day_no += 1
            rng = random.Random(f"{self.seed}{self._salt}:day:{self._day_no}")
            self._today += timedelta(days=1)
            report = DayReport(self._today)
            yesterday = midnight(self._today) - DAY - self._shift
            t = self._table
            pulls, rate, stars, lu = t.pulls, t.growth, t.stars, t.last_updated
            order = self._order
            down = order[rng.randrange(len(order))] if order and rng.random() < 0.3 else -1
            stuck = min(len(t) - 1, STUCK_ROW)
            rnd = rng.random
            for i in order:
                p = pulls[i]
                if i == down:
                    pulls[i] = max(0, p - 1 - int(p * 0.05 * rnd()))
                    report.decreased.append(t.ids[i])
                    continue
                if i == stuck and p >= INT32_MAX:
                    continue  # a real-registry anomaly: the counter no longer moves
                g = int(p * rate[i] * (0.5 + rnd())) + (1 if rnd() < 0.5 else 0)
                p += g
                if i == stuck and p >= INT32_MAX:
                    p = INT32_MAX
                    report.stuck.append(t.ids[i])
                pulls[i] = p
                if g and rnd() < g / (g + 20_000):
                    stars[i] += 1
                if rnd() < 0.03:
                    lu[i] = yesterday + int(rnd() * DAY)
            if rng.random() < 0.25:
                new = self._fresh_rows(rng, 1)
                order.insert(rng.randrange(len(order) + 1), new[0])
                report.added.append(t.ids[new[0]])
            if len(order) > 20 and rng.random() < 0.15:
                i = order[rng.randrange(len(order))]
                if i != stuck:
                    order.remove(i)
                    report.retired.append(t.ids[i])
            self._changed()
            return report
