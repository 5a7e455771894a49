"""A compact set of int64 ids, taken a page at a time: the completeness proof's memory.

The pass ledger keeps every distinct id of a pass until the pass is proven. A Python ``set`` of
ints costs ~60 bytes per id at a million ids (its table plus an int object per id); this holds
8, plus 1-2 for a filter. The ids live in a few sorted, duplicate-free numpy arrays ("levels")
that are disjoint from each other; a page's new ids become a level of their own and levels of
like size merge, as the digits of a binary counter carry: each id is merged O(log n) times, and
there are O(log n) levels. A merge briefly holds the merged level beside its two inputs: at most
8 bytes per id more, for the moment of the largest merge.

A lookup is one ``searchsorted`` per level, a binary search that misses the CPU cache once the
levels are large; when the listing's ids come in no particular order (the API documents none)
that made a page cost ~1.5x what the Python set did. So a one-hash bit filter (a Bloom filter
with one hash, at least 8 bits per id) answers "certainly new" for ~88 % of new ids first.

Looked at and not used: pandas' ``Int64HashTable`` is internal API (and ~16 bytes per id with
its spare slots); ``sortedcontainers`` holds Python ints; pyarrow's ``is_in`` builds its hash
table anew per call. numpy is imported on first use, not with the extractor: a nightly run
imports it anyway with the transform (in a thread, while the first page is fetched).
"""

from __future__ import annotations

import operator
from array import array
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    IdArray = npt.NDArray[np.int64]
    Mask = npt.NDArray[np.bool_]
    Bits = npt.NDArray[np.uint8]


# Fibonacci hashing: multiplying by 2**64 / golden ratio spreads ids that follow each other
# (listings hand them out in sequence) over the filter's slots; the top bits are the slot.
_GOLDEN = 0x9E3779B97F4A7C15
FILTER_BITS_PER_ID = 8  # at least: a new id then falls into a set bit with chance < 12 %
_FIRST_FILTER_LOG2 = 16  # 64 Ki bits (8 KiB), enough for 8,192 ids
# Ids taken by ``add_ascending`` wait in a plain array until there are this many (512 KiB), and
# become one level then: numpy's calls let go of the GIL, and a thread that does so at every page
# waits each time to get it back while the HTTP threads hold it (a 200k-row sync: ~3 ms of
# waiting per page for ~0.1 ms of work, measured with benchmarks.profile_sync).
PENDING_IDS = 1 << 16


class IdSet:
    """Distinct int64 ids, added a page at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._levels: list[IdArray] = []  # sorted, unique, disjoint; each > 2x the next
        self._size = 0
        self._low = self._high = 0  # the least and the greatest id held (when any)
        self._bits: Bits | None = None  # the filter: one bit per slot, set for every id held
        self._log2 = _FIRST_FILTER_LOG2
        self._pending = array("q")  # ascending, above every level: the next level, unmade

    def __len__(self) -> int:
        return self._size + len(self._pending)

    def __contains__(self, rid: object) -> bool:
        if type(rid) is not int or not -(2**63) <= rid < 2**63:
            return False
        return bool(self.contains([rid])[0])

    def contains(self, ids: Any) -> Mask:
        """For each id (int64 values, any order, repeats allowed): is it in the set?"""
        import numpy as np

        self._settle()
        values = np.asarray(ids, dtype=np.int64)
        found = np.zeros(values.shape, dtype=np.bool_)
        if self._bits is None:
            return found
        # Only ids whose filter bit is set can be held: most new ids are answered here.
        maybe = np.flatnonzero(self._filter_hits(self._bits, values))
        if maybe.size:
            probe = values[maybe]
            hit = np.zeros(probe.shape, dtype=np.bool_)
            for level in self._levels:
                # An index past the end is clipped to the last id, which then differs.
                hit |= level.take(np.searchsorted(level, probe), mode="clip") == probe
            found[maybe] = hit
        return found

    def add(self, ids: Any) -> Mask:
        """Add a page of ids (int64 values, in page order); for each, True where it was present
        already: added by an earlier call, or earlier in this very page."""
        import numpy as np

        self._settle()
        values = np.asarray(ids, dtype=np.int64)
        if not values.size:
            return np.zeros(0, dtype=np.bool_)
        # The common page repeats nothing: one sort (sorted needles search faster too) and it
        # is a new level as it stands.
        ordered = np.sort(values)
        if not (ordered[1:] == ordered[:-1]).any():
            # A listing in id order hands out pages beyond every id held: nothing to look up.
            beyond = not self._size or ordered[0] > self._high or ordered[-1] < self._low
            if beyond or not self.contains(ordered).any():
                self._push(ordered)
                return np.zeros(values.shape, dtype=np.bool_)
        # np.unique sorts; return_index gives each distinct id's first position in the page.
        distinct, first = np.unique(values, return_index=True)
        repeated = np.ones(values.shape, dtype=np.bool_)
        known = self.contains(distinct)
        repeated[first[~known]] = False
        self._push(distinct[~known])
        return repeated

    def add_ascending(self, ids: list[int]) -> bool:
        """Add a page of ids in strictly ascending order that all lie above every id held (a
        listing in id order: nearly every page), without numpy; True when taken (none of them
        was present). False: nothing was done, and ``add`` is the way for this page."""
        if not ids:
            return True
        top = self._pending[-1] if self._pending else self._high if self._size else None
        if top is not None and ids[0] <= top:
            return False
        if not all(map(operator.lt, ids, islice(ids, 1, None))):
            return False
        try:
            run = array("q", ids)  # the whole page or nothing: not int64, not taken
        except (OverflowError, TypeError):
            return False
        self._pending.extend(run)
        if len(self._pending) >= PENDING_IDS:
            self._settle()
        return True

    def _settle(self) -> None:
        """The waiting ascending ids become a level."""
        if self._pending:
            import numpy as np

            level = np.frombuffer(self._pending, dtype=np.int64).copy()
            self._pending = array("q")
            self._push(level)

    def _push(self, new: IdArray) -> None:
        """Append a sorted level of new ids, then merge while the level before the last is not
        more than twice its size (the binary counter's carry): each level then holds more than
        twice the next, so there are at most ~log2(n) of them whatever the pages' sizes."""
        import numpy as np

        if not new.size:
            return
        self._low = int(new[0]) if not self._size else min(self._low, int(new[0]))
        self._high = int(new[-1]) if not self._size else max(self._high, int(new[-1]))
        self._size += int(new.size)
        if self._bits is None or self._size * FILTER_BITS_PER_ID > 1 << self._log2:
            self._grow_filter(new)
        else:
            self._set_bits(self._bits, new)
        levels = self._levels
        levels.append(new)
        while len(levels) > 1 and levels[-2].size <= 2 * levels[-1].size:
            last, before = levels.pop(), levels.pop()
            if before[-1] < last[0] or last[-1] < before[0]:
                # One run wholly above the other (a listing in id order): no sort needed.
                low, high = (before, last) if before[-1] < last[0] else (last, before)
                levels.append(np.concatenate((low, high)))
            else:
                merged = np.concatenate((before, last))
                # Two sorted runs: a stable sort (timsort for int64) merges them in linear time.
                merged.sort(kind="stable")
                levels.append(merged)

    def _slots(self, values: IdArray) -> Any:
        import numpy as np

        return (values.view(np.uint64) * np.uint64(_GOLDEN)) >> np.uint64(64 - self._log2)

    def _filter_hits(self, bits: Bits, values: IdArray) -> Mask:
        import numpy as np

        slots = self._slots(values)
        return ((bits[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8))
                & np.uint8(1)).astype(np.bool_)

    def _set_bits(self, bits: Bits, values: IdArray) -> None:
        import numpy as np

        slots = self._slots(values)
        # ``bits[i] |= m`` with a repeated ``i`` keeps only one of the updates; ``.at`` keeps all.
        np.bitwise_or.at(bits, slots >> np.uint64(3),
                         np.left_shift(np.uint8(1), (slots & np.uint64(7)).astype(np.uint8)))

    def _grow_filter(self, new: IdArray) -> None:
        """The filter at the next power of two of bits that is ``FILTER_BITS_PER_ID`` per id
        (8-16 bits per id now), rebuilt from every level and ``new``: it at least doubles each
        time, so O(n) work in all."""
        import numpy as np

        while self._size * FILTER_BITS_PER_ID > 1 << self._log2:
            self._log2 += 1
        bits = np.zeros(1 << (self._log2 - 3), dtype=np.uint8)
        for level in (*self._levels, new):
            self._set_bits(bits, level)
        self._bits = bits
