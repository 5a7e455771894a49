"""How the simulated images look on the wire: each row's JSON, whole pages, and the row dicts.

Each row's JSON is rendered once and cached (everything but ``total_range``, which depends on the
filter), so serving a page is a join of cached fragments; whole pages are cached too, by the key
the dataset gives (its version, filters, offset, limit, timestamp format), up to a byte budget.
Timestamp formats: ``swr`` (``2017-10-16 21:33:44``, as this endpoint documents it) or ``isoN``
(ISO-8601 with ``N`` fraction digits and ``Z``, as sibling SWR APIs answer).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from etl.simulator import catalogue
from etl.simulator.table import DAY, ImageTable

_PAGE_CACHE_BYTES = 64 * 1024 * 1024
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode
_DESC_JSON = [_ENCODE(t) for t in catalogue.DESCRIPTIONS]
_SYNTH_DESC_JSON = [_ENCODE(t.format(n="this image", N="This image"))
                    for t in catalogue.DESCRIPTIONS]
_USER_JSON = {"library": '"swr_official"'}  # namespace -> JSON of the row's ``user``


@dataclass(frozen=True)
class RenderedPage:
    """One page as the simulator serves it: the JSON body, its row count, the filtered total."""

    body: bytes
    count: int
    total: int


class Renderer:
    """Renders rows of one ``ImageTable``; the caller holds the dataset's lock."""

    def __init__(self, table: ImageTable) -> None:
        self.table = table
        self._frag: list[bytes | None] = [None] * len(table)  # row -> JSON up to total_range
        self._frag_fmt = "swr"
        self._pages: OrderedDict[tuple[object, ...], RenderedPage] = OrderedDict()
        self._page_bytes = 0
        self._day_strings: dict[int, str] = {}

    def forget(self, rows: list[int] | None = None) -> None:
        """Rows changed (None: every row): drop their JSON and every cached page."""
        self._pages.clear()
        self._page_bytes = 0
        self._grow()
        if rows is None:
            self._frag = [None] * len(self._frag)
        else:
            for i in rows:
                self._frag[i] = None

    def _grow(self) -> None:
        if len(self._frag) < len(self.table):  # images were added since
            self._frag.extend([None] * (len(self.table) - len(self._frag)))

    def cached(self, key: tuple[object, ...]) -> RenderedPage | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def page(self, key: tuple[object, ...], rows: list[int], total: int, fmt: str,
             shift: int) -> RenderedPage:
        """Render ``rows`` as one page (every row carrying ``total``) and cache it as ``key``."""
        tail = b"%d}" % total
        self.render(rows, fmt, shift)
        frag = self._frag
        parts = [frag[i] + tail for i in rows]  # type: ignore[operator]
        page = RenderedPage(b"[" + b",".join(parts) + b"]", len(parts), total)
        self._pages[key] = page
        self._page_bytes += len(page.body)
        while self._page_bytes > _PAGE_CACHE_BYTES and len(self._pages) > 1:
            _, old = self._pages.popitem(last=False)
            self._page_bytes -= len(old.body)
        return page

    def render(self, rows: list[int], fmt: str, shift: int) -> None:
        """Render the JSON of every row in ``rows`` not rendered yet (counts and timestamps are
        converted in bulk by numpy; only the string assembly is per row)."""
        self._grow()
        if fmt != self._frag_fmt:
            self._frag = [None] * len(self._frag)
            self._frag_fmt = fmt
        frag = self._frag
        todo = [i for i in rows if frag[i] is None]
        if not todo:
            return
        t = self.table
        at = np.asarray(todo, dtype=np.int64)
        cols = []
        for column in (t.ids, t.stars, t.pulls, t.collection_ids, t.last_updated):
            view = np.frombuffer(column, dtype=np.int64)
            cols.append(view[at])  # a copy: the buffer export ends with ``view``
            del view
        ids, stars, pulls, coll, lu = cols
        stamps = np.datetime_as_string((lu + shift).astype("datetime64[s]")).tolist()
        if fmt == "swr":
            stamps = [s.replace("T", " ") for s in stamps]
        else:
            digits = int(fmt[3:])
            fracs = ((ids * 2_654_435_761) % 10**9).tolist()
            stamps = [f"{s}.{x:09d}"[: 20 + digits] + "Z" if digits else s + "Z"
                      for s, x in zip(stamps, fracs, strict=True)]
        names, spaces, desc_t = t.names, t.namespaces, t.description
        users = _USER_JSON
        named = t.named
        for i, id_, st, pu, co, ts in zip(todo, ids.tolist(), stars.tolist(), pulls.tolist(),
                                         coll.tolist(), stamps, strict=True):
            # Names and namespaces are plain ASCII (catalogue or synthesised): no escaping.
            name, ns = names[i], spaces[i]
            user = users.get(ns) or users.setdefault(ns, _ENCODE(ns))
            if i < named:
                desc = _DESC_JSON[desc_t[i]].format(n=name, N=name.capitalize())
            else:  # synthesised rows share pre-rendered texts: cheap at 1,000,000 rows
                desc = _SYNTH_DESC_JSON[desc_t[i]]
            frag[i] = (f'{{"id":{id_},"user":{user},"name":"{name}","namespace":"{ns}",'
                       f'"description":{desc},"star_count":{st},"pull_count":{pu},'
                       f'"collection_id":{co},"last_updated":"{ts}","total_range":').encode()

    def row(self, i: int, fmt: str, shift: int) -> dict[str, Any]:
        """Row ``i`` as the API's JSON object, without ``total_range``."""
        t = self.table
        ns = t.namespaces[i]
        name = t.names[i] if i < t.named else "this image"
        return {"id": t.ids[i], "user": "swr_official" if ns == "library" else ns,
                "name": t.names[i], "namespace": ns,
                "description": catalogue.DESCRIPTIONS[t.description[i]].format(
                    n=name, N=name.capitalize()),
                "star_count": t.stars[i], "pull_count": t.pulls[i],
                "collection_id": t.collection_ids[i],
                "last_updated": self._timestamp(i, fmt, shift)}

    def _timestamp(self, i: int, fmt: str, shift: int) -> str:
        day, rem = divmod(self.table.last_updated[i] + shift, DAY)
        ds = self._day_strings.get(day)
        if ds is None:
            ds = self._day_strings[day] = time.strftime("%Y-%m-%d", time.gmtime(day * DAY))
        m, sec = divmod(rem, 60)
        h, m = divmod(m, 60)
        hms = f"{h:02d}:{m:02d}:{sec:02d}"
        if fmt == "swr":
            return f"{ds} {hms}"
        digits = int(fmt[3:])
        frac = ("." + str((self.table.ids[i] * 2_654_435_761) % 10**9).zfill(9)[:digits]
                if digits else "")
        return f"{ds}T{hms}{frac}Z"
