"""The one integer rule (etl.integers): every kind of raw JSON value, the bounds of int64, and
the id rule on top of it, as a table of value -> (number, problem)."""

from __future__ import annotations

import enum
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.integers import (
    BOOLEAN,
    FRACTIONAL,
    INT32_MAX,
    INT64_MAX,
    NEGATIVE,
    NOT_FINITE,
    NOT_NUMERIC,
    TOO_BIG,
    ZERO,
    coerce_id,
    coerce_int,
    usable_id,
    usable_ids,
)


class Flag(enum.IntEnum):
    SEVEN = 7


@pytest.mark.parametrize("value,expected", [
    (None, (None, None)),
    (0, (0, None)), (17, (17, None)), (INT64_MAX, (INT64_MAX, None)),
    (-1, (None, NEGATIVE)), (-(2**70), (None, NEGATIVE)),
    (INT64_MAX + 1, (None, TOO_BIG)),
    (Flag.SEVEN, (7, None)),  # an int subclass is its number
    (True, (None, BOOLEAN)), (False, (None, BOOLEAN)),
    (17.0, (17, None)), (-0.0, (0, None)), (-1.0, (None, NEGATIVE)),
    (17.5, (None, FRACTIONAL)), (2.0**63, (None, TOO_BIG)),
    (math.nan, (None, NOT_FINITE)), (math.inf, (None, NOT_FINITE)),
    (-math.inf, (None, NOT_FINITE)),
    ("17", (17, None)), ("+17", (17, None)), (" 17 ", (17, None)), ("\t17\n", (17, None)),
    ("90", (90, None)), ("0", (0, None)), ("17.", (17, None)), ("17.000", (17, None)),
    ("17.0", (17, None)), ("-17", (None, NEGATIVE)), ("-0", (0, None)),
    ("17.5", (None, FRACTIONAL)), ("17.05", (None, FRACTIONAL)), ("17.90", (None, FRACTIONAL)),
    (str(INT64_MAX), (INT64_MAX, None)), (str(INT64_MAX + 1), (None, TOO_BIG)),
    ("", (None, NOT_NUMERIC)), (" ", (None, NOT_NUMERIC)), ("+", (None, NOT_NUMERIC)),
    (".5", (None, NOT_NUMERIC)), ("1e3", (None, NOT_NUMERIC)), ("0x1f", (None, NOT_NUMERIC)),
    ("17.0.0", (None, NOT_NUMERIC)), ("+-1", (None, NOT_NUMERIC)), ("1 7", (None, NOT_NUMERIC)),
    ("١٧", (None, NOT_NUMERIC)),  # digits of other scripts are not ASCII digits
    ("seventeen", (None, NOT_NUMERIC)),
    ([17], (None, NOT_NUMERIC)), ({"n": 17}, (None, NOT_NUMERIC)), (b"17", (None, NOT_NUMERIC)),
])
def test_coerce_int(value: object, expected: tuple[int | None, str | None]) -> None:
    assert coerce_int(value) == expected
    assert type(coerce_int(value)[0]) in (int, type(None))  # never a float, bool or enum


@given(st.integers(0, INT64_MAX), st.sampled_from(["", " ", "\t"]),
       st.sampled_from(["", "+"]), st.sampled_from(["", ".", ".0", ".000"]))
def test_integral_text_is_the_integer_it_spells(n: int, pad: str, sign: str,
                                                 point: str) -> None:
    assert coerce_int(f"{pad}{sign}{n}{point}{pad}") == (n, None)


@given(st.integers(1, INT64_MAX))
def test_negative_numbers_are_a_problem_in_every_form(n: int) -> None:
    assert coerce_int(-n) == coerce_int(str(-n)) == (None, NEGATIVE)


@pytest.mark.parametrize("value,expected", [
    (None, (None, None)), (5, (5, None)), ("5", (5, None)), (5.0, (5, None)),
    (0, (None, ZERO)), ("0", (None, ZERO)), (0.0, (None, ZERO)), ("0.0", (None, ZERO)),
    (-5, (None, NEGATIVE)), (True, (None, BOOLEAN)), ("x", (None, NOT_NUMERIC)),
])
def test_coerce_id(value: object, expected: tuple[int | None, str | None]) -> None:
    assert coerce_id(value) == expected


@pytest.mark.parametrize("row,expected", [
    ({"id": 5}, 5), ({"id": "5"}, 5), ({"id": 0}, None), ({"id": None}, None), ({}, None),
    ({"id": -5}, None), ([("id", 5)], None), ("id", None), (None, None),
])
def test_usable_id(row: object, expected: int | None) -> None:
    assert usable_id(row) == expected


class MyDict(dict):  # type: ignore[type-arg]
    """A dict subclass: an object still, though not the plain dict the fast path takes."""


@given(st.one_of(st.integers(-3, 3), st.integers(INT64_MAX - 2, INT64_MAX + 2),
                 st.booleans(), st.floats(), st.none(), st.text(max_size=4),
                 st.sampled_from([" 7 ", "7.0", 7.0, enum.IntEnum("E", "A").A])),
       st.sampled_from([dict, MyDict]))
def test_usable_id_is_the_id_rule_for_every_row(value: object, kind: type) -> None:
    assert usable_id(kind(id=value)) == coerce_id(value)[0]


_ROW = st.one_of(
    # mostly rows the page-at-a-time path takes, so that every page mixes them with the others
    st.integers(1, INT64_MAX).map(lambda i: {"id": i}),
    st.integers(1, 50).map(lambda i: {"id": i, "name": "x"}),
    st.one_of(st.integers(-3, 3), st.integers(INT64_MAX - 2, INT64_MAX + 2), st.booleans(),
              st.floats(), st.none(), st.text(max_size=3), st.just([1])).map(lambda v: {"id": v}),
    st.sampled_from([{}, {"name": "no id"}, MyDict(id=5), [("id", 5)], "id", 7, None, []]),
)


@given(st.lists(_ROW, max_size=12))
def test_usable_ids_is_usable_id_of_every_row(page: list[object]) -> None:
    assert usable_ids(page) == [usable_id(r) for r in page]


@pytest.mark.parametrize("page,expected", [
    ([{"id": 1}, {"id": 2}], [1, 2]), ([{"id": 1}, {"id": True}], [1, None]),
    ([{"id": 1}, {"id": 0}], [1, None]), ([{"id": INT64_MAX + 1}, {"id": 2}], [None, 2]),
    ([{"id": 1}, {}], [1, None]), ([{"id": 1}, "id"], [1, None]), ([], []),
])
def test_usable_ids_on_pages_the_fast_path_refuses(page: list[object],
                                                   expected: list[int | None]) -> None:
    assert usable_ids(page) == expected


@pytest.mark.parametrize("value,expected", [
    # The bounds written out, not computed from the constants they check: int64's largest is
    # the largest count there is, one more is too big.
    (9_223_372_036_854_775_807, (9_223_372_036_854_775_807, None)),
    ("9223372036854775807", (9_223_372_036_854_775_807, None)),
    (9_223_372_036_854_775_806, (9_223_372_036_854_775_806, None)),
    (9_223_372_036_854_775_808, (None, TOO_BIG)),
    ("9223372036854775808", (None, TOO_BIG)),
])
def test_the_int64_bound_written_out(value: object, expected: tuple[int | None, str | None]
                                     ) -> None:
    assert coerce_int(value) == expected


def test_the_bounds_are_the_machine_integers() -> None:
    # INT32_MAX is where an int32 counter upstream sticks; INT64_MAX what the database holds.
    assert (INT32_MAX, INT64_MAX) == (2_147_483_647, 9_223_372_036_854_775_807)
    assert (INT32_MAX, INT64_MAX) == (np.iinfo(np.int32).max, np.iinfo(np.int64).max)
