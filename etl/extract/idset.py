"""A compact set of int64 ids, taken a page at a time: the completeness proof's memory.

The pass ledger keeps every distinct id of a pass until the pass is proven. A Python ``set`` of
ints costs ~60 bytes per id at a million ids (its table plus an int object per id); this holds
8. The ids live in a few sorted, duplicate-free numpy arrays ("levels") that are disjoint from
each other; a page's new ids become a level of their own and levels of like size merge, as the
digits of a binary counter carry: each id is merged O(log n) times, and a lookup is one
``searchsorted`` per level, of which there are O(log n). A merge briefly holds the merged level
beside its two inputs: at most 8 bytes per id more, for the moment of the largest merge.

Looked at and not used: pandas' ``Int64HashTable`` is internal API (and ~16 bytes per id with
its spare slots); ``sortedcontainers`` and pyarrow's ``is_in`` hold or rebuild Python-level or
per-call structures. numpy is imported on first use, not with the extractor: a nightly run
imports it anyway with the transform (in a thread, while the first page is fetched).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    IdArray = npt.NDArray[np.int64]
    Mask = npt.NDArray[np.bool_]


class IdSet:
    """Distinct int64 ids, added a page at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._levels: list[IdArray] = []  # sorted, unique, disjoint; each > 2x the next
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, rid: object) -> bool:
        if type(rid) is not int or not -(2**63) <= rid < 2**63:
            return False
        return bool(self.contains([rid])[0])

    def contains(self, ids: Any) -> Mask:
        """For each id (int64 values, any order, repeats allowed): is it in the set?"""
        import numpy as np

        values = np.asarray(ids, dtype=np.int64)
        found = np.zeros(values.shape, dtype=np.bool_)
        for level in self._levels:
            at = np.searchsorted(level, values)
            inside = at < level.size
            found[inside] |= level[at[inside]] == values[inside]
        return found

    def add(self, ids: Any) -> Mask:
        """Add a page of ids (int64 values, in page order); for each, True where it was present
        already: added by an earlier call, or earlier in this very page."""
        import numpy as np

        values = np.asarray(ids, dtype=np.int64)
        # np.unique sorts; return_index gives each distinct id's first position in the page.
        distinct, first = np.unique(values, return_index=True)
        repeated = np.ones(values.shape, dtype=np.bool_)
        known = self.contains(distinct)
        repeated[first[~known]] = False
        self._push(distinct[~known])
        return repeated

    def _push(self, new: IdArray) -> None:
        """Append a sorted level of new ids, then merge while the level before the last is not
        more than twice its size (the binary counter's carry): each level then holds more than
        twice the next, so there are at most ~log2(n) of them whatever the pages' sizes."""
        import numpy as np

        if not new.size:
            return
        self._size += int(new.size)
        levels = self._levels
        levels.append(new)
        while len(levels) > 1 and levels[-2].size <= 2 * levels[-1].size:
            last = levels.pop()
            merged = np.concatenate((levels.pop(), last))
            # Two sorted runs: a stable sort (timsort for int64) merges them in linear time.
            merged.sort(kind="stable")
            levels.append(merged)
