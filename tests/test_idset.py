"""The compact id set of the pass ledger, against a plain Python set."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from etl.extract.idset import IdSet
from etl.integers import INT64_MAX


def test_a_page_reports_repeats_from_earlier_pages_and_from_itself() -> None:
    ids = IdSet()
    assert ids.add([5, 3, 5, 9]).tolist() == [False, False, True, False]
    assert len(ids) == 3
    assert ids.add([9, 1, 1, 3, 7]).tolist() == [True, False, True, True, False]
    assert len(ids) == 5
    assert ids.contains([1, 2, 3, 4, 5, 6, 7, 8, 9]).tolist() == [
        True, False, True, False, True, False, True, False, True]
    assert ids.add([]).tolist() == [] and len(ids) == 5


def test_membership_of_single_values() -> None:
    ids = IdSet()
    ids.add([1, INT64_MAX])
    assert 1 in ids and INT64_MAX in ids
    assert 2 not in ids and 0 not in ids
    # not an int64 id at all: never a member, never an error
    assert 2**64 not in ids and "1" not in ids and None not in ids and 1.0 not in ids


def test_levels_stay_few_whatever_the_page_sizes() -> None:
    ids = IdSet()
    start = 1
    # shrinking pages: a rule that merged only equal sizes would keep one level per page
    for size in range(300, 0, -1):
        ids.add(list(range(start, start + size)))
        start += size
    assert len(ids) == start - 1 == 45_150
    levels = ids._levels
    assert len(levels) <= 17  # log2(45,150) + 1
    assert all(a.size > 2 * b.size for a, b in pairwise(levels))
    assert all((level[1:] > level[:-1]).all() for level in levels)  # each sorted, no repeats
    merged = sorted(v for level in levels for v in level.tolist())
    assert merged == list(range(1, start))


def test_pages_in_descending_order_merge_sorted() -> None:
    ids = IdSet()
    for hi in range(100_000, 0, -1000):
        assert not ids.add(list(range(hi, hi - 1000, -1))).any()
    assert all((level[1:] > level[:-1]).all() for level in ids._levels)
    assert ids.contains([0, 1, 50_000, 100_000, 100_001]).tolist() == [
        False, True, True, True, False]


def test_it_holds_eight_bytes_per_id() -> None:
    ids = IdSet()
    for lo in range(1, 100_001, 1000):
        ids.add(list(range(lo, lo + 1000)))
    assert sum(level.nbytes for level in ids._levels) == 8 * len(ids) == 800_000


def model_add(model: set[int], page: list[int]) -> list[bool]:
    """What IdSet.add answers, from a plain set: for each id, present already (earlier pages or
    earlier in this page); the page is added."""
    present = []
    for rid in page:
        present.append(rid in model)
        model.add(rid)
    return present


pages = st.lists(st.lists(st.integers(1, INT64_MAX) | st.integers(1, 40), max_size=30),
                 max_size=12)


@given(pages, st.lists(st.integers(1, INT64_MAX) | st.integers(1, 40), max_size=20))
def test_same_answers_as_a_python_set(pages: list[list[int]], probes: list[int]) -> None:
    ids, model = IdSet(), set[int]()
    for page in pages:
        assert ids.add(page).tolist() == model_add(model, page)
        assert len(ids) == len(model)
    assert ids.contains(probes).tolist() == [p in model for p in probes]
    assert [p in ids for p in probes] == [p in model for p in probes]


def test_the_filter_never_decides_membership_alone() -> None:
    # 50,000 even ids: about one odd probe in eight falls on a set filter bit and must still be
    # answered "absent" by the levels
    ids = IdSet()
    for lo in range(2, 100_001, 2000):
        ids.add(list(range(lo, lo + 2000, 2)))
    assert len(ids) == 50_000
    probes = list(range(1, 100_001))
    assert ids.contains(probes).tolist() == [p % 2 == 0 for p in probes]
    # the filter: at least 8 bits per id and, grown by doubling, at most 16 (2 bytes)
    assert ids._bits is not None and 50_000 <= ids._bits.nbytes <= 100_000


@given(st.lists(st.tuples(st.booleans(), st.lists(st.integers(1, 60) | st.integers(1, INT64_MAX),
                                                    max_size=8)), max_size=16),
       st.lists(st.integers(1, 60), max_size=20), st.sampled_from([1, 3, 1 << 16]))
def test_ascending_pages_the_same_as_a_python_set(
        pages: list[tuple[bool, list[int]]], probes: list[int], pending: int) -> None:
    # Pages taken without numpy (add_ascending) and through add, in any mix, with the waiting
    # ids made a level after 1, 3 or 65,536 of them: the same answers as a plain set.
    import etl.extract.idset as idset

    saved, idset.PENDING_IDS = idset.PENDING_IDS, pending
    try:
        ids, model = IdSet(), set[int]()
        for ascending, page in pages:
            if ascending:
                page = sorted(set(page))
                fits = not model or (bool(page) and page[0] > max(model))
                assert ids.add_ascending(page) == (fits or not page)
                if fits:
                    model.update(page)
            else:
                assert ids.add(page).tolist() == model_add(model, page)
            assert len(ids) == len(model)
        assert ids.contains(probes).tolist() == [p in model for p in probes]
    finally:
        idset.PENDING_IDS = saved


def test_an_ascending_page_is_taken_whole_or_not_at_all() -> None:
    ids = IdSet()
    assert ids.add_ascending([1, 2, 5])
    assert not ids.add_ascending([5, 6])  # not above every id held
    assert not ids.add_ascending([7, 9, 8])  # not ascending
    assert not ids.add_ascending([7, 7])  # a repeat
    assert not ids.add_ascending([7, 2**63])  # not int64
    assert len(ids) == 3 and not ids._levels  # waiting, not yet a level
    assert ids.add([2, 6]).tolist() == [True, False]  # add makes them a level first
    assert len(ids._levels) >= 1 and len(ids) == 4 and not ids._pending
