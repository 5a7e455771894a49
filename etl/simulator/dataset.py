"""The simulated official-image list: deterministic by seed, any size, with time travel.

Rows live in compact columns (``array`` for the counts) so a 1,000,000-image dataset builds in a
few seconds. Each row's JSON is rendered once and cached (everything but ``total_range``, which
depends on the filter), so serving a page is a join of cached fragments, and whole pages are cached
per (dataset version, filters, offset, limit, timestamp format).
"""

from __future__ import annotations

import json
import random
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np

from etl.errors import ConfigError
from etl.simulator import catalogue

INT32_MAX = 2_147_483_647  # counters stuck here are a real-registry anomaly the demo shows
DAY = 86_400
TIMESTAMP_FORMATS = ("swr", "iso0", "iso3", "iso5", "iso6", "iso9")
_PAGE_CACHE_BYTES = 64 * 1024 * 1024
_STUCK_ROW = 24  # the row whose counter will stick at INT32_MAX a few simulated days in


@dataclass(frozen=True)
class Page:
    """One rendered page: the JSON body, its row count and the filtered total."""

    body: bytes
    count: int
    total: int


@dataclass
class DayReport:
    """What ``Dataset.advance_day`` changed (ids), for demos and tests."""

    today: date
    added: list[int] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    decreased: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    updated: int = 0


_CATALOGUE = catalogue.spliced()


def _int_array(values: np.ndarray) -> array[int]:
    out = array("q")
    out.frombytes(values.astype(np.int64).tobytes())
    return out


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_DESC_JSON = [_ENCODE(t) for t in catalogue.DESCRIPTIONS]
_SYNTH_DESC_JSON = [_ENCODE(t.format(n="this image", N="This image"))
                    for t in catalogue.DESCRIPTIONS]
_USER_JSON = {"library": '"swr_official"'}  # namespace -> JSON of the row's ``user``


def _midnight(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


class Dataset:
    """The listing the simulator serves; every mutation bumps ``version``. Thread-safe."""

    def __init__(self, images: int = 180, seed: int = 42, today: date | None = None) -> None:
        if images < 0:
            raise ConfigError(f"images must be >= 0, got {images}")
        self.seed = seed
        self.version = 0
        self._lock = threading.RLock()
        self._today = today or datetime.now(timezone.utc).date()
        self._shift = 0  # seconds added to every stored last_updated (set_today)
        self._day_no = 0
        self._ids = array("q")
        self._stars = array("q")
        self._pulls = array("q")
        self._coll = array("q")
        self._lu = array("q")
        self._rate = array("d")
        self._names: list[str] = []
        self._ns: list[str] = []
        self._desc_t = array("h")  # description template index
        self._order: list[int] = []  # listing order, as row indexes
        self._n_named = 0  # rows below this index describe themselves by name (catalogue)
        self._frag: list[bytes | None] = []
        self._frag_fmt = "swr"
        self._views: dict[tuple[str | None, str | None], list[int]] = {}
        self._pages: OrderedDict[tuple[object, ...], Page] = OrderedDict()
        self._page_bytes = 0
        self._day_strings: dict[int, str] = {}
        self._drift_rng = random.Random(f"{seed}:drift")
        self._next_id = 100_000
        self._build(images)

    # ------------------------------------------------------------------------------ building

    def _append(self, name: str, ns: str, desc_t: int, pulls: int, stars: int, coll: int,
                lu: int, rate: float) -> int:
        self._next_id += 1 + self._drift_rng.randrange(13)  # unique, increasing, with gaps
        self._ids.append(self._next_id)
        self._names.append(name)
        self._ns.append(ns)
        self._desc_t.append(desc_t)
        self._pulls.append(pulls)
        self._stars.append(stars)
        self._coll.append(coll)
        self._lu.append(lu - self._shift)
        self._rate.append(rate)
        self._frag.append(None)
        return len(self._ids) - 1

    def _fresh_rows(self, rng: random.Random, n: int) -> list[int]:
        """Append ``n`` brand-new (small, recently updated) images; not yet in the listing."""
        now = _midnight(self._today)
        out = []
        for _ in range(n):
            serial = len(self._ids)
            a = catalogue.SYNTH_PARTS_A[rng.randrange(len(catalogue.SYNTH_PARTS_A))]
            b = catalogue.SYNTH_PARTS_B[rng.randrange(len(catalogue.SYNTH_PARTS_B))]
            ns = catalogue.SYNTH_NAMESPACES[rng.randrange(len(catalogue.SYNTH_NAMESPACES))]
            pulls = rng.randrange(1, 5_000)
            out.append(self._append(
                f"new-{a}-{b}-{serial}", ns, rng.randrange(len(catalogue.DESCRIPTIONS)), pulls,
                rng.randrange(3), 0, now - 1 - rng.randrange(DAY), 0.01 + 0.05 * rng.random()))
        return out

    def _build(self, n: int) -> None:
        # numpy draws the columns in bulk so a 1,000,000-image dataset builds in about a second.
        g = np.random.default_rng([self.seed, 20_260_101])
        rank = np.arange(1, n + 1, dtype=np.float64)
        # Long tail: a few images above 2^31 pulls, most in the thousands or less.
        law = np.where(rank <= 20, 1.3e10 / rank ** 2.0, 3.25e7 * (20 / rank) ** 3)
        pulls = (law * g.lognormal(0.0, 0.45, n)).astype(np.int64)
        pulls += g.integers(0, 50, n)
        stars = (pulls ** 0.62 * (0.3 + g.random(n)) / 80).astype(np.int64)
        coll = np.where(g.random(n) < 0.15, g.integers(1, 100_000, n), 0)
        rate = np.where(g.random(n) < 0.04, 0.02 + 0.06 * g.random(n), 0.0005 * 8 ** g.random(n))
        age = np.minimum(g.exponential(40 * DAY, n) * (1 + rank / 200), 6 * 365 * DAY)
        lu = _midnight(self._today) - 1 - age.astype(np.int64)
        ids = 100_000 + np.cumsum(1 + g.integers(0, 13, n))
        desc_t = g.integers(0, len(catalogue.DESCRIPTIONS), n)
        if n:
            s = min(n - 1, _STUCK_ROW)  # will cross INT32_MAX about a week into time travel
            pulls[s] = 2_080_000_000 + int(g.integers(0, 10_000_000))
            rate[s] = 0.004
            self._next_id = int(ids[-1])
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
        self._ids = _int_array(ids)
        self._pulls = _int_array(pulls)
        self._stars = _int_array(stars)
        self._coll = _int_array(coll)
        self._lu = _int_array(lu)
        self._rate = array("d", rate.astype(np.float64).tobytes())
        self._desc_t = array("h", desc_t.astype(np.int16).tobytes())
        self._names = names
        self._ns = spaces
        self._frag = [None] * n
        self._order = list(range(n))
        self._n_named = max(k, 10_000)  # beyond that, shared descriptions keep renders cheap

    # ------------------------------------------------------------------------------- reading

    @property
    def today(self) -> date:
        return self._today

    def __len__(self) -> int:
        return len(self._order)

    def _timestamp(self, i: int, fmt: str) -> str:
        day, rem = divmod(self._lu[i] + self._shift, DAY)
        ds = self._day_strings.get(day)
        if ds is None:
            ds = self._day_strings[day] = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        m, sec = divmod(rem, 60)
        h, m = divmod(m, 60)
        if fmt == "swr":
            return f"{ds} {h:02d}:{m:02d}:{sec:02d}"
        hms = f"{h:02d}:{m:02d}:{sec:02d}"
        digits = int(fmt[3:])
        frac = "." + str((self._ids[i] * 2_654_435_761) % 10**9).zfill(9)[:digits] if digits else ""
        return f"{ds}T{hms}{frac}Z"

    def _user(self, i: int) -> str:
        ns = self._ns[i]
        return "swr_official" if ns == "library" else ns

    def _description(self, i: int) -> str:
        name = self._names[i] if i < self._n_named else "this image"
        return catalogue.DESCRIPTIONS[self._desc_t[i]].format(n=name, N=name.capitalize())

    def _row(self, i: int, fmt: str) -> dict[str, object]:
        return {"id": self._ids[i], "user": self._user(i), "name": self._names[i],
                "namespace": self._ns[i], "description": self._description(i),
                "star_count": self._stars[i], "pull_count": self._pulls[i],
                "collection_id": self._coll[i], "last_updated": self._timestamp(i, fmt)}

    def rows(self, timestamp_format: str = "swr") -> list[dict[str, object]]:
        """The whole listing in order, API field names, without ``total_range``."""
        with self._lock:
            return [self._row(i, timestamp_format) for i in self._order]

    def ids(self) -> list[int]:
        with self._lock:
            return [self._ids[i] for i in self._order]

    def _render(self, rows: list[int], fmt: str) -> None:
        """Render the JSON of every row in ``rows`` not rendered yet (counts and timestamps are
        converted in bulk by numpy; only the string assembly is per row)."""
        if fmt != self._frag_fmt:
            self._frag = [None] * len(self._frag)
            self._frag_fmt = fmt
        frag = self._frag
        todo = [i for i in rows if frag[i] is None]
        if not todo:
            return
        at = np.asarray(todo, dtype=np.int64)
        cols = []
        for column in (self._ids, self._stars, self._pulls, self._coll, self._lu):
            view = np.frombuffer(column, dtype=np.int64)
            cols.append(view[at])  # a copy: the buffer export ends with ``view``
            del view
        ids, stars, pulls, coll, lu = cols
        stamps = np.datetime_as_string((lu + self._shift).astype("datetime64[s]")).tolist()
        if fmt == "swr":
            stamps = [t.replace("T", " ") for t in stamps]
        else:
            digits = int(fmt[3:])
            fracs = ((ids * 2_654_435_761) % 10**9).tolist()
            stamps = [f"{t}.{x:09d}"[: 20 + digits] + "Z" if digits else t + "Z"
                      for t, x in zip(stamps, fracs, strict=True)]
        names, spaces, desc_t = self._names, self._ns, self._desc_t
        users = _USER_JSON
        n_named = self._n_named
        for i, id_, st, pu, co, ts in zip(todo, ids.tolist(), stars.tolist(), pulls.tolist(),
                                         coll.tolist(), stamps, strict=True):
            # Names and namespaces are plain ASCII (catalogue or synthesised): no escaping.
            name, ns = names[i], spaces[i]
            user = users.get(ns) or users.setdefault(ns, _ENCODE(ns))
            if i < n_named:
                desc = _DESC_JSON[desc_t[i]].format(n=name, N=name.capitalize())
            else:  # synthesised rows share pre-rendered texts: cheap at 1,000,000 rows
                desc = _SYNTH_DESC_JSON[desc_t[i]]
            frag[i] = (f'{{"id":{id_},"user":{user},"name":"{name}","namespace":"{ns}",'
                       f'"description":{desc},"star_count":{st},"pull_count":{pu},'
                       f'"collection_id":{co},"last_updated":"{ts}","total_range":').encode()

    def _view(self, namespace: str | None, image_name: str | None) -> list[int]:
        if not namespace and not image_name:
            return self._order
        key = (namespace or None, image_name or None)
        view = self._views.get(key)
        if view is None:
            needle = (image_name or "").lower()
            view = [i for i in self._order
                    if (not namespace or self._ns[i] == namespace)
                    and (not needle or needle in self._names[i].lower())]
            self._views[key] = view
        return view

    def page(self, offset: int, limit: int, namespace: str | None = None,
             image_name: str | None = None, timestamp_format: str = "swr") -> Page:
        """Render rows ``offset .. offset+limit`` of the (filtered) listing as the API would."""
        with self._lock:
            key = (self.version, timestamp_format, namespace, image_name, offset, limit)
            cached = self._pages.get(key)
            if cached is not None:
                self._pages.move_to_end(key)
                return cached
            view = self._view(namespace, image_name)
            total = len(view)
            tail = b"%d}" % total
            rows = view[offset:offset + limit]
            self._render(rows, timestamp_format)
            frag = self._frag
            parts = [frag[i] + tail for i in rows]  # type: ignore[operator]
            page = Page(b"[" + b",".join(parts) + b"]", len(parts), total)
            self._pages[key] = page
            self._page_bytes += len(page.body)
            while self._page_bytes > _PAGE_CACHE_BYTES and len(self._pages) > 1:
                _, old = self._pages.popitem(last=False)
                self._page_bytes -= len(old.body)
            return page

    def prerender(self, timestamp_format: str = "swr") -> None:
        """Render every row's JSON now (benchmarks: keep the first scan off the render path)."""
        with self._lock:
            for start in range(0, len(self._order), 10_000):
                self._render(self._order[start:start + 10_000], timestamp_format)

    # ------------------------------------------------------------------------------ changing

    def _changed(self, rows: list[int] | None = None) -> None:
        """Invalidate caches after a change to ``rows`` (None: every row)."""
        self.version += 1
        self._views.clear()
        self._pages.clear()
        self._page_bytes = 0
        if rows is None:
            self._frag = [None] * len(self._frag)
        else:
            for i in rows:
                self._frag[i] = None

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
            return [self._ids[i] for i in new]

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
            return [self._ids[i] for i in gone]

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
            return [self._ids[i] for i in moved]

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
            return [self._ids[i] for i in moved]

    def bump(self, n: int = 1, by: int | None = None) -> list[int]:
        """Increase pull (and star) counts of ``n`` random images (n <= 0: all); their ids."""
        with self._lock:
            rng = self._drift_rng
            rows = (list(self._order) if n <= 0 or n >= len(self._order)
                    else rng.sample(self._order, n))
            for i in rows:
                self._pulls[i] += by if by is not None else 1 + int(self._pulls[i] * 0.001)
                self._stars[i] += 1
            self._changed(rows)
            return [self._ids[i] for i in rows]

    def set_today(self, today: date) -> None:
        """Move the simulated calendar; ``last_updated`` values keep their age relative to it."""
        with self._lock:
            self._shift += (_midnight(today) - _midnight(self._today))
            self._today = today
            self._changed()

    def advance_day(self) -> DayReport:
        """One simulated day: counts grow, a few images come and go, anomalies appear."""
        with self._lock:
            self._day_no += 1
            rng = random.Random(f"{self.seed}:day:{self._day_no}")
            self._today += timedelta(days=1)
            report = DayReport(self._today)
            yesterday = _midnight(self._today) - DAY - self._shift
            pulls, rate, stars, lu = self._pulls, self._rate, self._stars, self._lu
            order = self._order
            down = order[rng.randrange(len(order))] if order and rng.random() < 0.3 else -1
            stuck = min(len(self._ids) - 1, _STUCK_ROW)
            rnd = rng.random
            for i in order:
                p = pulls[i]
                if i == down:
                    pulls[i] = max(0, p - 1 - int(p * 0.05 * rnd()))
                    report.decreased.append(self._ids[i])
                    continue
                if i == stuck and p >= INT32_MAX:
                    continue  # a real-registry anomaly: the counter no longer moves
                g = int(p * rate[i] * (0.5 + rnd())) + (1 if rnd() < 0.5 else 0)
                p += g
                if i == stuck and p >= INT32_MAX:
                    p = INT32_MAX
                    report.stuck.append(self._ids[i])
                pulls[i] = p
                if g and rnd() < g / (g + 20_000):
                    stars[i] += 1
                if rnd() < 0.03:
                    lu[i] = yesterday + int(rnd() * DAY)
                    report.updated += 1
            if rng.random() < 0.25:
                new = self._fresh_rows(rng, 1)
                order.insert(rng.randrange(len(order) + 1), new[0])
                report.added.append(self._ids[new[0]])
            if len(order) > 20 and rng.random() < 0.15:
                i = order[rng.randrange(len(order))]
                if i != stuck:
                    order.remove(i)
                    report.retired.append(self._ids[i])
            self._changed()
            return report
