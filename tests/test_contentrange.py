"""Content-Range parsing: the three shapes, garbage, and properties over any input."""

from __future__ import annotations

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
