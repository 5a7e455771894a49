"""The page planner and the pass ledger: never loops, never skips, never overlaps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.extract.paging import (
    CHECK_PAGE_SIZE,
    PagePlanner,
    PassCheck,
    PassLedger,
    head_reason,
    row_digest,
)
from etl.integers import usable_id

Serve = Callable[[int, int, int], int]  # (request number, offset, limit) -> rows returned


def drive(page_size: int, total: int, window: int, serve: Serve,
          known_total: int | None = None) -> tuple[list[tuple[int, int]], int, PagePlanner]:
    """Run the planner like the extractor does: plan a window, accept in order.

    Returns the accepted (offset, rows) pages, the number of requests sent (every planned
    request counts, also those dropped by a re-plan) and the planner.
    """
    planner = PagePlanner(page_size)
    accepted: list[tuple[int, int]] = []
    sent = 0
    limit_iterations = 10 * (total + 10) * (window + 1)
    for _ in range(limit_iterations):
        width = window if planner.total is not None else 1
        while len(planner.pending) < width:
            if planner.plan() is None:
                break
            sent += 1
        if planner.done() or not planner.pending:
            return accepted, sent, planner
        offset, limit = planner.pending[0]
        rows = serve(sent, offset, limit)
        if rows:
            accepted.append((offset, rows))
        planner.accept(offset, rows, known_total)
    raise AssertionError("planner looped")


def assert_exact_cover(accepted: list[tuple[int, int]], total: int) -> None:
    cursor = 0
    for offset, rows in accepted:
        assert offset == cursor, f"gap or overlap at {offset} (expected {cursor})"
        cursor += rows
    assert cursor == total


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 3000),
    page_size=st.integers(1, 1000),
    cap=st.integers(1, 1000),
    window=st.integers(1, 8),
)
def test_static_cap_covers_exactly(total: int, page_size: int, cap: int, window: int) -> None:
    def serve(_n: int, offset: int, limit: int) -> int:
        return max(0, min(limit, cap, total - offset))

    accepted, sent, planner = drive(page_size, total, window, serve, known_total=total)
    assert_exact_cover(accepted, total)
    size = min(page_size, cap)
    pages = -(-total // size)
    # A static cap is seen on the first page, before anything is planned in parallel.
    assert planner.replans == 0
    assert sent == max(1, pages)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1, 2000),
    page_size=st.integers(1, 500),
    caps=st.lists(st.integers(1, 500), min_size=1, max_size=20),
    window=st.integers(1, 8),
)
def test_any_server_cap_sequence_never_skips_overlaps_or_loops(
    total: int, page_size: int, caps: list[int], window: int
) -> None:
    # The cap changes from request to request: whatever the server does, coverage is exact.
    def serve(n: int, offset: int, limit: int) -> int:
        return max(0, min(limit, caps[n % len(caps)], total - offset))

    accepted, sent, planner = drive(page_size, total, window, serve, known_total=total)
    assert_exact_cover(accepted, total)
    assert sent <= len(accepted) + window * (planner.replans + 1)
    assert planner.replans <= len(accepted)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 2000), page_size=st.integers(1, 500), cap=st.integers(1, 500))
def test_without_total_fetches_until_the_first_empty_page(
    total: int, page_size: int, cap: int
) -> None:
    def serve(_n: int, offset: int, limit: int) -> int:
        return max(0, min(limit, cap, total - offset))

    accepted, sent, planner = drive(page_size, total, 4, serve, known_total=None)
    assert_exact_cover(accepted, total)
    assert planner.ended
    assert sent == len(accepted) + 1  # one empty page ends it; short pages do not


def test_cap_found_mid_scan_replans_parallel_offsets() -> None:
    # First page uncapped (100 rows), then the server caps at 30: offsets 200, 300, ... that were
    # planned with the old size are dropped and re-planned from 130 in steps of 30.
    def serve(n: int, offset: int, limit: int) -> int:
        return max(0, min(limit, 100 if n == 1 else 30, 400 - offset))

    accepted, sent, planner = drive(100, 400, 4, serve, known_total=400)
    assert accepted[:4] == [(0, 100), (100, 30), (130, 30), (160, 30)]
    assert_exact_cover(accepted, 400)
    assert planner.page_size == 30
    assert planner.replans == 1


def test_total_shrinking_mid_pass_stops_without_empty_requests() -> None:
    planner = PagePlanner(10)
    assert planner.plan() == (0, 10)
    assert planner.accept(0, 10, 50) == []
    assert [planner.plan() for _ in range(3)] == [(10, 10), (20, 10), (30, 10)]
    # the page at 10 reports that only 20 rows remain: what was planned beyond is dropped
    assert planner.accept(10, 10, 20) == []
    assert planner.done()
    assert planner.plan() is None


def test_accept_out_of_order_is_a_bug() -> None:
    planner = PagePlanner(10)
    planner.plan()
    with pytest.raises(ValueError, match="out of order"):
        planner.accept(10, 10)


def test_ledger_proves_a_complete_pass() -> None:
    ledger = PassLedger(0)
    assert ledger.record([{"id": 1}, {"id": 2}], 4) == []
    assert ledger.record([{"id": 3}, {"name": "no id"}], 4) == []
    assert ledger.incomplete_reason() is None
    assert (len(ledger.ids), ledger.rows_without_id, ledger.rows_seen) == (3, 1, 4)


def test_ledger_reasons() -> None:
    dup = PassLedger(0)
    dup.record([{"id": 1}, {"id": 2}], 3)
    assert dup.record([{"id": 2}, {"id": 3}], 3) == [2]
    assert dup.moved
    assert dup.incomplete_reason() == (
        "the listing shifted during the scan: 1 id(s) came back on two pages")

    changed = PassLedger(0)
    changed.record([{"id": 1}], 2)
    changed.record([{"id": 2}, {"id": 3}], 3)
    assert changed.incomplete_reason() == "the total changed during the scan (2 -> 3)"

    short = PassLedger(0)
    short.record([{"id": 1}], 3)
    assert not short.moved
    assert short.incomplete_reason() == (
        "short count: 1 distinct ids + 0 rows without id = 1, but the API reported 3")


def rows(*ids: int | None, pulls: int = 1) -> list[dict[str, object]]:
    return [{"id": i, "pull_count": pulls, "total_range": 99} if i is not None
            else {"name": "no id", "total_range": 99} for i in ids]


def finished_pass(*pages: list[dict[str, object]], total: int, values: bool = False
                  ) -> PassLedger:
    ledger = PassLedger(0, digests={} if values else None)
    for page in pages:
        ledger.record(page, total)
    assert ledger.incomplete_reason() is None  # the count alone is satisfied
    return ledger


def test_check_passes_when_a_second_read_lists_the_same_ids_in_any_paging() -> None:
    ledger = finished_pass(rows(1, 2, 3), rows(4, None), total=5)
    check = PassCheck(ledger)
    # read again with other page boundaries and another order: the same listing
    assert check.record(rows(4, 1), 5) is None
    assert check.record(rows(None, 3, 2), 5) is None
    assert check.finish() is None


def test_check_sees_what_the_count_cannot() -> None:
    # The trap: ids 1-3 deleted after they were read, 7-9 inserted at the front before
    # the last page: the pass counted 6 distinct ids of a total of 6 that never moved.
    ledger = finished_pass(rows(1, 2, 3), rows(4, 5, 6), total=6)
    check = PassCheck(ledger)
    assert check.record(rows(7, 8, 9, 4, 5, 6), 6) == (
        "the listing changed during the scan: a second read listed 3 id(s) the scan did not see")


def test_check_reasons() -> None:
    ledger = finished_pass(rows(1, 2), rows(3, 4), total=4)
    assert PassCheck(ledger).record(rows(1, 2), 5) == "the total changed during the scan (4 -> 5)"
    twice = PassCheck(ledger)
    assert twice.record(rows(1, 2), 4) is None
    assert twice.record(rows(2, 3), 4) == (
        "the listing shifted during the second read: 1 id(s) came back on two pages")
    short = PassCheck(ledger)
    assert short.record(rows(1, 2, 3), 4) is None
    assert short.finish() == (
        "the listing changed during the scan: 1 id(s) the scan saw are no longer listed")
    idless = finished_pass(rows(1, None), total=2)
    other = PassCheck(idless)
    assert other.record(rows(1, None, None), 2) is None
    assert other.finish() == ("the listing changed during the scan: 1 row(s) without id in "
                              "the scan, 2 in a second read")


def test_full_check_compares_values_and_ignores_total_range() -> None:
    ledger = finished_pass(rows(1, 2), rows(3), total=3, values=True)
    assert ledger.digests is not None and sorted(ledger.digests) == [1, 2, 3]
    same = PassCheck(ledger, values=True)
    again = [{**r, "total_range": 3} for r in rows(3, 2, 1)]
    assert same.record(again, 3) is None and same.finish() is None
    bumped = PassCheck(ledger, values=True)
    assert bumped.record(rows(1) + rows(2, 3, pulls=2), 3) == (
        "values changed during the scan: 2 row(s) differ on a second read (--verify full)")
    # without values, counts that moved are not a reason
    assert PassCheck(ledger).record(rows(1) + rows(2, 3, pulls=2), 3) is None


def test_row_digest() -> None:
    a = {"id": 1, "name": "n", "pull_count": 5, "total_range": 10}
    assert row_digest(a) == row_digest({"total_range": 11, "pull_count": 5, "name": "n", "id": 1})
    assert row_digest(a) != row_digest({**a, "pull_count": 6})
    assert row_digest({**a, "pull_count": True}) != row_digest({**a, "pull_count": 1})
    nested = {**a, "name": ["n", {"x": 1}]}  # unhashable values: compared as JSON text
    assert row_digest(nested) == row_digest({**nested, "total_range": 1})
    assert row_digest(nested) != row_digest({**nested, "name": ["n", {"x": 2}]})
    assert row_digest(["not", "a", "row"]) == row_digest(["not", "a", "row"])


def test_head_check_compares_the_first_rows_in_any_order() -> None:
    ledger = finished_pass(rows(*range(1, 4)), rows(*range(4, 7)), total=6)
    assert ledger.head == [1, 2, 3, 4, 5, 6]
    assert head_reason(ledger, rows(3, 1, 2, 4), 6) is None
    assert head_reason(ledger, rows(9, 1, 2, 3), 6) == (
        "the listing changed during the scan: the first 4 rows read again hold 1 id(s) the "
        "scan did not see there and lack 1 it saw")
    assert head_reason(ledger, rows(1, 2), 7) == "the total changed during the scan (6 -> 7)"


def test_ledger_keeps_the_head_only() -> None:
    ledger = PassLedger(0)
    # ids from 1: id 0 is no id (the transform rejects it)
    ledger.record(rows(*range(1, CHECK_PAGE_SIZE + 6)), CHECK_PAGE_SIZE + 5)
    assert ledger.head == list(range(1, CHECK_PAGE_SIZE + 1))


@pytest.mark.parametrize("row,expected", [
    ({"id": 7}, 7), ({"id": "42"}, 42), ({"id": True}, None), ({"id": None}, None),
    ({"id": "x"}, None), ({}, None), ("not a dict", None), ({"id": 1.5}, None),
])
def test_usable_id(row: object, expected: int | None) -> None:
    assert usable_id(row) == expected


def test_a_short_last_page_is_not_a_cap() -> None:
    # 250 rows in pages of 100: the last page holds 50 because the listing ends, not because the
    # server caps the page size (the proof reads the planner's page size to tell the two apart).
    accepted, sent, planner = drive(100, 250, 3, lambda n, offset, limit: min(limit, 250 - offset),
                                    known_total=250)
    assert accepted == [(0, 100), (100, 100), (200, 50)]
    assert (sent, planner.page_size, planner.replans) == (3, 100, 0)


def test_a_page_with_more_rows_than_asked_replans_from_where_it_ended() -> None:
    # The server returned 120 rows for a limit of 100: the pages planned at 100 and 200 would
    # overlap what arrived, so they are dropped and planning resumes at 120.
    planner = PagePlanner(100, total=300)
    assert [planner.plan() for _ in range(3)] == [(0, 100), (100, 100), (200, 100)]
    assert planner.accept(0, 120) == [(100, 100), (200, 100)]
    assert (planner.cursor, planner.page_size, planner.replans) == (120, 100, 1)
    assert planner.plan() == (120, 100)


def test_a_page_size_below_one_is_a_bug() -> None:
    for size in (0, -1):
        with pytest.raises(ValueError, match=f"page size must be >= 1, got {size}"):
            PagePlanner(size)
    assert PagePlanner(1).plan() == (0, 1)


@pytest.mark.parametrize("total,done,first", [(0, True, None), (1, False, (0, 100)),
                                              (None, False, (0, 100))])
def test_a_new_planner_starts_at_offset_zero(total: int | None, done: bool,
                                             first: tuple[int, int] | None) -> None:
    planner = PagePlanner(100, total=total)
    assert (planner.done(), planner.plan()) == (done, first)


def test_an_out_of_order_page_names_the_cursor() -> None:
    planner = PagePlanner(10)
    planner.plan()
    with pytest.raises(ValueError, match=r"^page at offset 10 accepted out of order \(cursor 0\)$"):
        planner.accept(10, 10)


def test_the_last_total_is_the_latest_one_reported() -> None:
    ledger = PassLedger(0)
    ledger.record(rows(1), 10)
    ledger.record(rows(2), 12)
    ledger.record(rows(3), 11)
    assert (ledger.total, ledger.last_total, ledger.first_total_change) == (10, 11, (10, 12))
    # a check reporting the latest total is not a change; one reporting the first total is
    assert PassCheck(ledger).record([], 11) is None
    assert PassCheck(ledger).record([], 10) == "the total changed during the scan (11 -> 10)"


def test_nested_rows_digest_alike_in_any_key_order() -> None:
    a = {"id": 1, "tags": ["x"], "name": "n", "total_range": 5}
    b = {"name": "n", "total_range": 6, "tags": ["x"], "id": 1}
    assert row_digest(a) == row_digest(b)
    assert row_digest([{"a": 1, "b": [2]}]) == row_digest([{"b": [2], "a": 1}])


def test_the_head_and_the_check_page_are_a_thousand_rows() -> None:
    # The API's largest page (sibling list calls document limit <= 1000), written out.
    assert CHECK_PAGE_SIZE == 1000
    ledger = PassLedger(0)
    ledger.record(rows(*range(1, 1200)), 1199)
    assert ledger.head == list(range(1, 1001))


# --- the ledger page at a time, against the rule row by row ------------------------------------

# Rows as the API may send them: mostly plain int ids (the fast path), with ids spelled as text or
# floats, unusable ids (zero, negative, booleans, too big), rows without id and non-objects.
raw_ids = (st.integers(1, 30) | st.integers(1, 30).map(str) | st.integers(1, 30).map(float)
           | st.sampled_from([0, -3, True, None, "x", 2**63, 2**63 - 1, 1.5]))
raw_rows = (st.builds(lambda i, p: {"id": i, "pull_count": p}, raw_ids, st.integers(0, 2))
            | st.builds(lambda p: {"pull_count": p}, st.integers(0, 2))
            | st.sampled_from(["not a row", [1, 2], None]))
raw_pages = st.lists(st.lists(raw_rows, max_size=25), max_size=8)


def model_pass(pages: list[list[Any]], values: bool) -> tuple[list[Any], dict[str, Any]]:
    """The ledger's figures computed row by row with a Python set: the rule it must keep."""
    ids: set[int] = set()
    head: list[int | None] = []
    digests: dict[int, int] = {}
    seen = without = 0
    dups = []
    for page in pages:
        dup = []
        for row in page:
            seen += 1
            rid = usable_id(row)
            if len(head) < CHECK_PAGE_SIZE:
                head.append(rid)
            if rid is None:
                without += 1
            elif rid in ids:
                dup.append(rid)
            else:
                ids.add(rid)
                digests[rid] = row_digest(row)
        dups.append(dup)
    figures = {"distinct": len(ids), "rows_seen": seen, "rows_without_id": without,
               "duplicates": sum(map(len, dups)), "head": head,
               "digests": digests if values else None}
    return dups, figures


@given(raw_pages, st.booleans())
def test_the_ledger_counts_a_page_at_a_time_as_row_by_row(pages: list[list[Any]],
                                                          values: bool) -> None:
    ledger = PassLedger(0, digests={} if values else None)
    got = [ledger.record(page, 99) for page in pages]
    expected, figures = model_pass(pages, values)
    assert got == expected
    assert {"distinct": len(ledger.ids), "rows_seen": ledger.rows_seen,
            "rows_without_id": ledger.rows_without_id, "duplicates": ledger.duplicates,
            "head": ledger.head, "digests": ledger.digests} == figures


def model_check(ledger_ids: set[int], ledger_digests: dict[int, int] | None, values: bool,
                pages: list[list[Any]]) -> list[tuple[int, int, int, int, int]]:
    """PassCheck's counts row by row: per page (unseen, twice, changed, listed, without id)."""
    listed: set[int] = set()
    without = 0
    out = []
    for page in pages:
        unseen = twice = changed = 0
        for row in page:
            rid = usable_id(row)
            if rid is None:
                without += 1
            elif rid not in ledger_ids:
                unseen += 1
            elif rid in listed:
                twice += 1
            else:
                listed.add(rid)
                if values and ledger_digests is not None \
                        and ledger_digests.get(rid) != row_digest(row):
                    changed += 1
        out.append((unseen, twice, changed, len(listed), without))
    return out


@given(raw_pages, st.booleans(), st.data())
def test_the_check_counts_a_page_at_a_time_as_row_by_row(scan: list[list[Any]], values: bool,
                                                         data: st.DataObject) -> None:
    # the second read mostly lists the scan's rows again (repeats, other order), now and then
    # another row: every reason is reachable
    scanned = [row for page in scan for row in page]
    again_rows = st.sampled_from(scanned) | raw_rows if scanned else raw_rows
    again = data.draw(st.lists(st.lists(again_rows, max_size=25), max_size=8))
    ledger = PassLedger(0, digests={} if values else None)
    for page in scan:
        ledger.record(page, None)
    model_ids = {rid for page in scan for row in page if (rid := usable_id(row)) is not None}
    check = PassCheck(ledger, values=values)
    for page, (unseen, twice, changed, listed, without) in zip(
            again, model_check(model_ids, ledger.digests, values, again), strict=True):
        reason = check.record(page, None)
        assert (len(check.listed), check.rows_without_id) == (listed, without)
        if unseen:
            assert reason is not None and f"listed {unseen} id(s) the scan" in reason
        elif twice:
            assert reason is not None and f": {twice} id(s) came back" in reason
        elif changed:
            assert reason is not None and f": {changed} row(s) differ" in reason
        else:
            assert reason is None
