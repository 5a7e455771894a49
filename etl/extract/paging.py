"""Paging by contract, as pure state machines: which offsets to ask for, and when a pass is proven.

``PagePlanner`` plans offsets ahead (for parallel workers) but accepts pages strictly in offset
order and advances by the rows actually received, never by the page size asked for. When the
server caps the page size it adopts the observed size and re-plans whatever was planned with the
old size, so there is never a gap or an overlap. ``PassLedger`` keeps the completeness proof of
one pass: distinct ids (+ rows without a usable id) must equal the total, and the total must not
move. ``PassCheck`` compares a second read of the listing with a finished pass, id for id (and
value for value with ``--verify full``): the count alone cannot see rows deleted and as many
inserted while the scan ran. None of them does I/O; ``etl.extract.scan`` and
``etl.extract.proof`` drive them.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

from etl.extract.idset import IdSet

# The id rule is the transform's (``etl.integers.coerce_id``): a row the transform would reject
# for its id is a row without id here, and ``17``, ``17.0`` and ``"17"`` are the same id.
from etl.integers import usable_ids

# The proof's second read asks for the API's largest page (sibling list calls document a
# maximum limit of 1000: docs/how-it-works/swr-api.md, "The call"), whatever --page-size is:
# up to 1,000 rows come back in one response, a snapshot of one moment.
CHECK_PAGE_SIZE = 1000

# How a run's scan was proven complete (``runs.proof``). A run that is not complete has none.
# The words ``runs.proof`` may hold and what each means, beside the rules that choose them
# (``etl.extract.proof``); the schema, the ledger and ``--verify`` refer here. No code reads
# it at run time.
PROOFS: dict[str, str] = {
    "one-page": "the whole listing came in one response, a snapshot by itself: nothing to re-read",
    "double-read": "a second read of the whole listing, after the pass, listed exactly the ids "
                   "the pass saw",
    "full": "a second read listed exactly the rows the pass saw, value for value",
    "head": "the first 1,000 rows read again hold the ids the pass saw there (listings too "
            "large to read twice by default: a row replaced further down goes unseen)",
}


class PagePlanner:
    """Offsets to request, in order; accepts results in order and re-plans when they disagree.

    Args:
        page_size: the ``limit`` to send; lowered when the server returns fewer rows while more
            remain (a server-side cap: docs/how-it-works/swr-api.md, "The call").
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
    ids: IdSet = field(default_factory=IdSet)  # the distinct ids of the pass
    rows_without_id: int = 0
    rows_seen: int = 0
    duplicates: int = 0
    first_total_change: tuple[int, int] | None = None
    # --verify full: id -> digest of the row's values, for the second read to compare
    digests: dict[int, int] | None = None
    head: list[Any] = field(default_factory=list)  # ids of the first rows (None: no usable id)

    def record(self, rows: Iterable[Any], total: int | None) -> list[int]:
        """Count one page's rows; return the ids already seen earlier in this pass (or earlier
        in this page), in page order."""
        if total is not None:
            if self.total is None:
                self.total = total
            elif total != self.totals[-1] and self.first_total_change is None:
                self.first_total_change = (self.totals[-1], total)
            self.totals.append(total)
        rows = rows if isinstance(rows, list) else list(rows)
        rids = usable_ids(rows)
        self.rows_seen += len(rids)
        if len(self.head) < CHECK_PAGE_SIZE:
            self.head.extend(rids[:CHECK_PAGE_SIZE - len(self.head)])
        with_id, id_rows = _with_id(rids, rows)
        self.rows_without_id += len(rids) - len(with_id)
        if not with_id:
            return []
        # add_ascending takes nearly every page (nothing repeated), without numpy
        repeated = None if self.ids.add_ascending(with_id) else self.ids.add(with_id)
        dup = [] if repeated is None else [with_id[i] for i in repeated.nonzero()[0].tolist()]
        if self.digests is not None:
            digests = self.digests
            if repeated is None:  # every id is new
                digests.update(zip(with_id, map(row_digest, id_rows), strict=True))
            else:
                for rid, row, seen in zip(with_id, id_rows, repeated.tolist(), strict=True):
                    if not seen:
                        digests[rid] = row_digest(row)
        self.duplicates += len(dup)
        return dup

    @property
    def last_total(self) -> int | None:
        return self.totals[-1] if self.totals else None

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


@dataclass
class PassCheck:
    """A second read of the whole listing, compared with a pass its ledger proved complete.

    What it proves: every id the pass saw was listed by the pass and again by the check, and no
    other id was. An id that leaves the listing does not come back within a scan (a deleted image
    is gone; a moved one never leaves), so each of them was listed all the time between the last
    request of the pass and the first request of the check; both answered the same total, so at
    that moment the listing was exactly the pass's ids. When the check is one response, that is
    the listing as the scan ended. With ``values`` every row must also be equal value for value,
    which holds for counts that only grow (pull and star counts).
    """

    ledger: PassLedger
    values: bool = False
    listed: IdSet = field(default_factory=IdSet)  # ids of the pass listed again so far
    rows_without_id: int = 0

    def record(self, rows: Iterable[Any], total: int | None) -> str | None:
        """Compare one page of the check; the reason the pass cannot stand, or None (so far)."""
        expected = self.ledger.last_total
        if total is not None and expected is not None and total != expected:
            return f"the total changed during the scan ({expected} -> {total})"
        rows = rows if isinstance(rows, list) else list(rows)
        rids = usable_ids(rows)
        with_id, id_rows = _with_id(rids, rows)
        self.rows_without_id += len(rids) - len(with_id)
        unseen = twice = changed = 0
        if with_id:
            seen = self.ledger.ids.contains(with_id)
            if not seen.all():
                unseen = len(with_id) - int(seen.sum())
                keep = seen.tolist()
                with_id, id_rows = list(compress(with_id, keep)), list(compress(id_rows, keep))
            repeated = self.listed.add(with_id)
            twice = int(repeated.sum())
            digests = self.ledger.digests
            if self.values and digests is not None:
                firsts = zip(with_id, id_rows, repeated.tolist(), strict=True)
                changed = sum(1 for rid, row, again in firsts
                              if not again and digests.get(rid) != row_digest(row))
        if unseen:
            return (f"the listing changed during the scan: a second read listed {unseen} id(s) "
                    f"the scan did not see")
        if twice:
            return (f"the listing shifted during the second read: {twice} id(s) came back on "
                    f"two pages")
        if changed:
            return (f"values changed during the scan: {changed} row(s) differ on a second read "
                    f"(--verify full)")
        return None

    def finish(self) -> str | None:
        """After the check's last page: None when the listing equals what the pass saw."""
        missing = len(self.ledger.ids) - len(self.listed)
        if missing:
            return (f"the listing changed during the scan: {missing} id(s) the scan saw are no "
                    f"longer listed")
        if self.rows_without_id != self.ledger.rows_without_id:
            return (f"the listing changed during the scan: {self.ledger.rows_without_id} row(s) "
                    f"without id in the scan, {self.rows_without_id} in a second read")
        return None


def head_reason(ledger: PassLedger, rows: list[Any], total: int | None) -> str | None:
    """Compare the first rows of the listing, read again, with what the pass saw there: None
    when they hold the same ids (in any order), else why not."""
    expected = ledger.last_total
    if total is not None and expected is not None and total != expected:
        return f"the total changed during the scan ({expected} -> {total})"
    now = Counter(usable_ids(rows))
    before = Counter(ledger.head[:len(rows)])
    if now != before:
        new, gone = sum((now - before).values()), sum((before - now).values())
        return (f"the listing changed during the scan: the first {len(rows)} rows read again "
                f"hold {new} id(s) the scan did not see there and lack {gone} it saw")
    return None


def _with_id(rids: list[int | None], rows: list[Any]) -> tuple[list[int], list[Any]]:
    """The page's usable ids and their rows, the rows without one left out."""
    if None not in rids:  # the common page, without a Python loop
        return rids, rows  # type: ignore[return-value]
    kept = [(rid, row) for rid, row in zip(rids, rows, strict=True) if rid is not None]
    return [rid for rid, _ in kept], [row for _, row in kept]


def row_digest(row: Any) -> int:
    """A row's values as one number (``total_range`` left out: it is the total, checked apart).

    Types count (``1`` and ``true`` differ). Hashing the items is ~3x cheaper than JSON text,
    which cost seconds per 200,000 rows; nested values (unhashable) fall back to JSON text.
    """
    if isinstance(row, dict):
        try:
            return hash(tuple(sorted((k, v.__class__, v) for k, v in row.items()
                                     if k != "total_range")))
        except TypeError:
            row = {k: v for k, v in row.items() if k != "total_range"}
    return hash(json.dumps(row, sort_keys=True, default=str))
