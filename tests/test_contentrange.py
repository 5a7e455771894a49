"""Content-Range parsing: the three shapes, garbage, and properties over any input."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.extract.contentrange import ContentRange, parse_content_range


@pytest.mark.parametrize("value,expected", [
    ("0-100/180", ContentRange(offset=0, total=180, middle=100)),      # offset-count
    ("100-80/180", ContentRange(offset=100, total=180, middle=80)),    # offset-count, last page
    ("0-99/180", ContentRange(offset=0, total=180, middle=99)),        # inclusive first-last
    ("100-179/180", ContentRange(offset=100, total=180, middle=179)),
    ("*/180", ContentRange(offset=None, total=180)),
    ("*/0", ContentRange(offset=None, total=0)),
    ("items 0-99/180", ContentRange(offset=0, total=180, middle=99)),
    ("  0 - 99 / 180 ", ContentRange(offset=0, total=180, middle=99)),
    # Absurd totals are read, not ignored: the extractor refuses them (--max-rows).
    ("0-99/1" + "0" * 30, ContentRange(offset=0, total=10**30, middle=99)),
    ("*/" + str(2**63), ContentRange(offset=None, total=2**63)),
])
def test_shapes(value: str, expected: ContentRange) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize("value", [
    None, "", "garbage", "0-99", "0-99/", "/180", "0-99/*", "-1-99/180", "0-99/-5",
    "0-99/18x", "a-b/c", "0-99/180/3", "0--99/180", "1e3-5/100", "0-99/1" + "0" * 64,
])
def test_garbage_gives_none(value: str | None) -> None:
    assert parse_content_range(value) is None


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_roundtrip_both_numeric_shapes(offset: int, middle: int, total: int) -> None:
    parsed = parse_content_range(f"{offset}-{middle}/{total}")
    assert parsed == ContentRange(offset=offset, total=total, middle=middle)


@given(st.integers(0, 10**12))
def test_star_shape(total: int) -> None:
    assert parse_content_range(f"*/{total}") == ContentRange(offset=None, total=total)


@given(st.text(max_size=40))
def test_never_raises_and_total_is_trusted_only_when_well_formed(value: str) -> None:
    parsed = parse_content_range(value)
    if parsed is not None:
        assert parsed.total >= 0
        assert value.strip().endswith(str(parsed.total))
        if parsed.offset is not None:
            assert parsed.offset >= 0


# --- the rules the mutation campaign found unpinned (docs/development/mutation.md) -------------

def test_whitespace_is_any_optional_whitespace_between_the_parts() -> None:
    # HTTP allows tabs as well as spaces in a header value; the parser reads both anywhere
    # between the parts, and none at all.
    assert parse_content_range("\titems\t0\t-\t99\t/\t180\t") == ContentRange(
        offset=0, total=180, middle=99)
    assert parse_content_range("\t*\t/\t7\t") == ContentRange(offset=None, total=7)


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True))
def test_any_unit_token_is_read(unit: str) -> None:
    assert parse_content_range(f"{unit} 5-9/10") == ContentRange(offset=5, total=10, middle=9)


@pytest.mark.parametrize("unit", ["A", "Z", "a", "z", "Zz9", "a_-"])
def test_a_unit_may_start_with_any_letter(unit: str) -> None:
    """The first letters and last letters of both cases, which a random sample may miss."""
    assert parse_content_range(f"{unit} 5-9/10") == ContentRange(offset=5, total=10, middle=9)


@pytest.mark.parametrize("value", [
    "items0-99/180",  # a unit must be separated from the numbers
    "0items 0-99/180", "_x 0-99/180", "-x 0-99/180",  # a unit starts with a letter
    "-99/180", "0-/180",  # both numbers of a range are needed
    "0-99/180 x",  # nothing after the total
])
def test_malformed_units_and_ranges_give_none(value: str) -> None:
    assert parse_content_range(value) is None


def test_numbers_up_to_64_digits_are_read_and_longer_ones_are_garbage() -> None:
    n64, n65 = "9" * 64, "9" * 65
    assert parse_content_range(f"{n64}-{n64}/{n64}") == ContentRange(
        offset=int(n64), total=int(n64), middle=int(n64))
    for value in (f"{n65}-0/1", f"0-{n65}/1", f"0-0/{n65}", f"*/{n65}"):
        assert parse_content_range(value) is None


@pytest.mark.parametrize("value", [180, b"0-99/180", ["0-99/180"], 0.5])
def test_a_value_that_is_not_text_gives_none(value: object) -> None:
    assert parse_content_range(value) is None  # type: ignore[arg-type]


def test_a_parsed_range_cannot_be_altered() -> None:
    parsed = parse_content_range("0-99/180")
    assert parsed is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.total = 5  # type: ignore[misc]
