"""The timestamp rule (etl.transform.timestamps.to_utc_text), stated against Python's own
calendar: every field value the format allows, every zone form and its bounds, the chunk-wide
fast paths, and the values that are no timestamp."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.errors import ConfigError
from etl.transform.timestamps import EMPTY, UNPARSEABLE, to_utc_text, zone_offset_seconds
from etl.transform.values import NOT_A_STRING

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc(values: list[object], zone: str = "UTC") -> tuple[list[str | None], dict[int, str]]:
    array, problems = to_utc_text(values, zone)
    return [None if v is None else str(v) for v in array.to_numpy(na_value=None)], problems


def every_field_value() -> list[datetime]:
    """Every day of a leap year, with hours 00-23, minutes and seconds 00-59 all occurring."""
    start = datetime(2024, 1, 1)
    return [(start + timedelta(days=i)).replace(hour=i % 24, minute=i % 60, second=i * 7 % 60)
            for i in range(366)]


@pytest.mark.parametrize("form", ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                                  "%Y-%m-%dt%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%Sz",
                                  "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S+00:00"])
def test_every_month_day_hour_minute_and_second_is_read(form: str) -> None:
    times = every_field_value()
    assert utc([t.strftime(form) for t in times]) == ([t.strftime(UTC_FORMAT) for t in times], {})


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/Sao_Paulo", "Asia/Kathmandu"])
def test_naive_values_are_wall_clock_time_in_the_source_zone(zone: str) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    times = every_field_value()
    expected = [t.replace(tzinfo=tz).astimezone(timezone.utc).strftime(UTC_FORMAT)
                for t in times]
    assert utc([t.strftime("%Y-%m-%d %H:%M:%S") for t in times], zone) == (expected, {})


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/New_York"])
def test_values_with_a_zone_ignore_the_source_zone(zone: str) -> None:
    # A chunk where every value carries Z: nothing is naive, so the source zone plays no part
    # (read as local time it would be 8 h off in Asia/Shanghai).
    values = ["2026-03-01T10:00:00Z", "2026-03-01 11:00:00Z", "2026-03-01T12:00:00.5z"]
    assert utc(values, zone) == (
        ["2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z", "2026-03-01T12:00:00Z"], {})
    # mixed with one naive value, only that one is local time
    assert utc(values[:1] + ["2026-03-01 10:00:00"], zone)[0] == [
        "2026-03-01T10:00:00Z",
        datetime(2026, 3, 1, 10, tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(timezone.utc)
        .strftime(UTC_FORMAT)]


@pytest.mark.parametrize("suffix,seconds", [
    ("Z", 0), ("z", 0), ("+00:00", 0), ("-00:00", 0), ("+09:00", 9 * 3600), ("+0900", 9 * 3600),
    ("+09", 9 * 3600), ("-09:30", -(9 * 3600 + 30 * 60)), ("+05:45", 5 * 3600 + 45 * 60),
    ("+10:00", 10 * 3600), ("-10", -10 * 3600), ("+19:00", 19 * 3600), ("+20:00", 20 * 3600),
    ("+23:59", 23 * 3600 + 59 * 60), ("-23:59", -(23 * 3600 + 59 * 60)), ("+01:01", 3660),
])
def test_zone_suffixes(suffix: str, seconds: int) -> None:
    expected = datetime(2026, 6, 15, 12, 0, 0) - timedelta(seconds=seconds)
    assert utc([f"2026-06-15T12:00:00{suffix}"], "Asia/Shanghai") == (
        [expected.strftime(UTC_FORMAT)], {})
    assert zone_offset_seconds(suffix) == seconds


@pytest.mark.parametrize("suffix", ["+24:00", "-24:00", "+99", "+05:60", "+0560", "+12:99"])
def test_zone_offsets_out_of_range_are_unparseable(suffix: str) -> None:
    assert utc([f"2026-06-15T12:00:00{suffix}", "2026-06-15T12:00:00Z"]) == (
        [None, "2026-06-15T12:00:00Z"], {0: UNPARSEABLE})
    with pytest.raises(ValueError):
        zone_offset_seconds(suffix)


def test_a_naive_value_has_no_offset() -> None:
    assert zone_offset_seconds("") is None


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
       st.integers(-(23 * 60 + 59), 23 * 60 + 59), st.integers(0, 999_999))
def test_any_time_with_any_offset(when: datetime, minutes: int, micro: int) -> None:
    when = when.replace(microsecond=micro)
    zone = timezone(timedelta(minutes=minutes))
    text = when.replace(tzinfo=zone).isoformat()
    expected = when.replace(tzinfo=zone).astimezone(timezone.utc)
    # isoformat, not strftime: it writes years before 1000 with four digits
    assert utc([text]) == ([expected.replace(tzinfo=None).isoformat("T", "seconds") + "Z"], {})


@pytest.mark.parametrize("value", [
    "2026-00-10 00:00:00", "2026-13-10 00:00:00", "2026-01-00 00:00:00", "2026-01-32 00:00:00",
    "2026-02-29 00:00:00", "2026-04-31 00:00:00",  # days a month does not have
    "2026-01-10 24:00:00", "2026-01-10 00:60:00", "2026-01-10 00:00:60",
    "2026-01-10 00:00", "2026-01-10", "26-01-10 00:00:00", "2026-1-10 00:00:00",
    "2026-01-10X00:00:00", "2026-01-10 00:00:00.", "2026-01-10 00:00:00.1234567890",
    "2026-01-10 00:00:00 UTC", "2026-01-10 00:00:00+1", "2026-01-10 00:00:00+010",
    "x2026-01-10 00:00:00", "2026-01-10 00:00:00x",
])
def test_values_that_are_no_timestamp(value: str) -> None:
    assert utc([value, "2026-01-10 00:00:00"]) == ([None, "2026-01-10T00:00:00Z"],
                                                   {0: UNPARSEABLE})


def test_fractions_of_one_to_nine_digits_are_truncated() -> None:
    values = [f"2026-01-10 00:00:00.{'9' * n}" for n in range(1, 10)]
    assert utc(values) == (["2026-01-10T00:00:00Z"] * 9, {})
    assert utc([v + "+01:00" for v in values]) == (["2026-01-09T23:00:00Z"] * 9, {})


def test_empty_absent_and_non_text_values() -> None:
    values: list[object] = ["", "   ", None, 1508189624, ["2026-01-10 00:00:00"], True,
                            " 2026-01-10 00:00:00\t", "\ud800", "2026-01-10 00:00:00\ud800"]
    assert utc(values) == (
        [None, None, None, None, None, None, "2026-01-10T00:00:00Z", None, None],
        {0: EMPTY, 1: EMPTY, 3: NOT_A_STRING, 4: NOT_A_STRING, 5: NOT_A_STRING,
         7: UNPARSEABLE, 8: UNPARSEABLE})


def test_lone_surrogates_among_text_only() -> None:
    # Strings only, one of them not encodable: the careful path without any non-string.
    assert utc(["2026-01-10 00:00:00", "\udfff", "2026-01-10 01:00:00"], "Asia/Shanghai") == (
        ["2026-01-09T16:00:00Z", None, "2026-01-09T17:00:00Z"], {1: UNPARSEABLE})


def test_results_outside_years_1_to_9999_are_unparseable() -> None:
    values = ["0001-01-01T00:00:00+00:01", "0001-01-01T00:00:00-00:01",
              "9999-12-31T23:59:59+00:01", "9999-12-31T23:59:59-00:01",
              "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
    assert utc(values) == ([None, "0001-01-01T00:01:00Z", "9999-12-31T23:58:59Z", None,
                            "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
                           {0: UNPARSEABLE, 3: UNPARSEABLE})


def test_dst_ambiguity_takes_the_earlier_instant() -> None:
    # 02:30 happens twice in Berlin on 2021-10-31 (+02:00, then +01:00): the first is meant.
    assert utc(["2021-10-31 02:30:00", "2021-10-31 01:30:00", "2021-10-31 03:30:00"],
               "Europe/Berlin") == (
        ["2021-10-31T00:30:00Z", "2021-10-30T23:30:00Z", "2021-10-31T02:30:00Z"], {})


def test_an_empty_chunk_and_an_unknown_zone() -> None:
    assert utc([]) == ([], {})
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        to_utc_text(["2026-01-10 00:00:00"], "Mars/Olympus")
