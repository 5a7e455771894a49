"""Paging by contract, as pure state machines: which offsets to ask for, and when a pass is proven.

``PagePlanner`` plans offsets ahead (for parallel workers) but accepts pages strictly in offset
order and advances by the rows actually received, never by the page size asked for. When the
server caps the page size it adopts the observed size and re-plans whatever was planned with the
old size, so there is never a gap or an overlap. ``PassLedger`` keeps the completeness proof of
one pass: distinct ids (+ rows without a usable id) must equal the total, and the total must not
move. Neither does I/O; ``etl.extract`` drives both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from etl import integers


class PagePlanner:
    """Offsets to request, in order; accepts results in order and re-plans when they disagree.

    Args:
        page_size: the ``limit`` to send; lowered when the server returns fewer rows while more
            remain (a server-side cap, API-NOTES).
        total: rows the listing holds, if known (None: fetch until the first empty page).
    """

    def __init__(self, page_size: int, total: int | None = None) -> None:
        if page_size < 1:
            raise ValueError(f"page size must be >= 1, got {page_size}")
        self.page_size = page_size
        self.total = total
        self.cursor = 0  # the next offset that must be accepted
        self.pending: deque[tuple[int, int]] = deque()  # planned (offset, limit), in order
        self._next = 0
        self.ended = False  # an empty page arrived
        self.replans = 0

    def done(self) -> bool:
        """True once the listing is covered (cursor reached the total) or a page came back empty."""
        if self.ended:
            return True
        return self.total is not None and self.cursor >= self.total

    def plan(self) -> tuple[int, int] | None:
        """Plan the next request ``(offset, limit)``, or None when nothing more is needed yet.

        Without a known total only one request is planned at a time (the next offset depends
        on how many rows the previous page held).
        """
        if self.done():
            return None
        if self.total is None:
            if self.pending:
                return None
        elif self._next >= self.total:
            return None
        item = (self._next, self.page_size)
        self.pending.append(item)
        self._next += self.page_size
        return item

    def accept(self, offset: int, rows: int, total: int | None = None) -> list[tuple[int, int]]:
        """Record that the page planned at ``offset`` returned ``rows`` rows.

        ``total`` is the total that page reported (None: keep the current one). Returns the
        planned requests that no longer fit (their results must be discarded).
        """
        if not self.pending or self.pending[0][0] != offset:
            raise ValueError(f"page at offset {offset} accepted out of order "
                             f"(cursor {self.cursor})")
        _, limit = self.pending.popleft()
        if total is not None:
            self.total = total
        if rows == 0:
            self.ended = True
            rest = list(self.pending)
            self.pending.clear()
            return rest
        self.cursor = offset + rows
        if rows < limit and not self.done():
            # Fewer rows than asked while more remain: the server caps the page size.
            self.page_size = min(self.page_size, rows)
        dropped: list[tuple[int, int]] = []
        misplanned = any(lim != self.page_size for _, lim in self.pending)
        if self.pending and (self.pending[0][0] != self.cursor or misplanned):
            dropped = list(self.pending)
            self.pending.clear()
        if not self.pending:
            if dropped:
                self.replans += 1
            self._next = self.cursor
        return dropped


@dataclass
class PassLedger:
    """The completeness proof of one pass over the listing."""

    pass_no: int
    total: int | None = None
    totals: list[int] = field(default_factory=list)
    ids: set[Any] = field(default_factory=set)
    rows_without_id: int = 0
    rows_seen: int = 0
    duplicates: int = 0
    first_total_change: tuple[int, int] | None = None

    def record(self, rows: Iterable[Any], total: int | None) -> list[Any]:
        """Count one page's rows; return the ids already seen earlier in this pass."""
        if total is not None:
            if self.total is None:
                self.total = total
            elif total != self.totals[-1] and self.first_total_change is None:
                self.first_total_change = (self.totals[-1], total)
            self.totals.append(total)
        dup: list[Any] = []
        for row in rows:
            self.rows_seen += 1
            rid = usable_id(row)
            if rid is None:
                self.rows_without_id += 1
            elif rid in self.ids:
                dup.append(rid)
            else:
                self.ids.add(rid)
        self.duplicates += len(dup)
        return dup

    @property
    def moved(self) -> bool:
        """The listing visibly moved during this pass (a rescan is due)."""
        return self.duplicates > 0 or self.first_total_change is not None

    def incomplete_reason(self) -> str | None:
        """None when the pass is proven complete, else why not (for the user)."""
        if self.duplicates:
            return (f"the listing shifted during the scan: {self.duplicates} id(s) came back "
                    f"on two pages")
        if self.first_total_change is not None:
            old, new = self.first_total_change
            return f"the total changed during the scan ({old} -> {new})"
        counted = len(self.ids) + self.rows_without_id
        if self.total is not None and counted != self.total:
            return (f"short count: {len(self.ids)} distinct ids + {self.rows_without_id} rows "
                    f"without id = {counted}, but the API reported {self.total}")
        return None


def usable_id(row: Any) -> int | None:
    """The row's id if it is usable, else None (counted separately as a row without id).

    The rule is the transform's, ``etl.integers.coerce_id``: a row the transform would reject
    for its id is a row without id here, and ``17``, ``17.0`` and ``"17"`` are the same id.
    """
    return integers.usable_id(row)
