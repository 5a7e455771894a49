"""The timestamp rule (etl.transform.timestamps.to_utc_text), stated against Python's own
calendar: every field value the format allows, every zone form and its bounds, the chunk-wide
fast paths, and the values that are no timestamp."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.errors import ConfigError
from etl.transform.timestamps import EMPTY, UNPARSEABLE, to_utc_text, zone_offset_seconds
from etl.transform.values import NOT_A_STRING
from tests.helpers import fresh_python

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc(values: list[object], zone: str = "UTC") -> tuple[list[str | None], dict[int, str]]:
    texts, problems = to_utc_text(values, zone)
    assert len(texts) == len(values) and all(t is None or type(t) is str for t in texts)
    return texts, problems


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


def earliest_instant_at_or_after(wall: datetime, zone: str) -> str:
    """The rule for naive values: the first whole second whose wall-clock reading in ``zone`` is
    ``wall`` or later. A time that exists is read as it is (a repeated one as its first
    occurrence); a skipped one becomes the end of its gap, found here by brute force: readings
    only grow inside a gap, so scan hours, minutes, then seconds, from before it."""
    tz = zoneinfo.ZoneInfo(zone)

    def reading(t: datetime) -> datetime:
        return t.astimezone(tz).replace(tzinfo=None)

    instants = [wall.replace(tzinfo=tz, fold=fold).astimezone(timezone.utc) for fold in (0, 1)]
    real = [t for t in instants if reading(t) == wall]
    t = min(real or instants)
    if not real:
        for step in (timedelta(hours=1), timedelta(minutes=1), timedelta(seconds=1)):
            while reading(t + step) < wall:
                t += step
        t += timedelta(seconds=1)
    return t.strftime(UTC_FORMAT)


# (zone, the last wall-clock second before a DST gap opens): Lord_Howe skips 30 minutes, Berlin
# an hour (a 23-hour day), Apia a whole day (Samoa crossed the date line).
GAPS = [("Australia/Lord_Howe", datetime(2021, 10, 3, 1, 59, 59)),
        ("Europe/Berlin", datetime(2021, 3, 28, 1, 59, 59)),
        ("Pacific/Apia", datetime(2011, 12, 29, 23, 59, 59))]


@pytest.mark.parametrize("zone,before_gap", GAPS)
@given(seconds=st.integers(-600, 2 * 86400))
def test_naive_times_around_a_dst_gap_against_a_brute_force_reference(
        zone: str, before_gap: datetime, seconds: int) -> None:
    wall = before_gap + timedelta(seconds=seconds)
    assert utc([wall.strftime("%Y-%m-%d %H:%M:%S")], zone) == (
        [earliest_instant_at_or_after(wall, zone)], {})


@pytest.mark.parametrize("zone,before_gap", GAPS)
def test_seconds_across_a_short_gap_and_its_edges(zone: str, before_gap: datetime) -> None:
    walls = [before_gap + timedelta(seconds=s) for s in range(0, 3601, 11)] + [
        before_gap, before_gap + timedelta(seconds=1), before_gap + timedelta(seconds=2)]
    assert utc([w.strftime("%Y-%m-%d %H:%M:%S") for w in walls], zone) == (
        [earliest_instant_at_or_after(w, zone) for w in walls], {})


def test_lord_howe_half_hour_gap_and_fold() -> None:
    # Spring: 02:00 -> 02:30 (+10:30 -> +11:00); every skipped time is 02:30 local, not 03:00.
    assert utc(["2021-10-03 01:59:59", "2021-10-03 02:00:00", "2021-10-03 02:00:01",
                "2021-10-03 02:15:00", "2021-10-03 02:29:59", "2021-10-03 02:30:00"],
               "Australia/Lord_Howe")[0] == [
        "2021-10-02T15:29:59Z", "2021-10-02T15:30:00Z", "2021-10-02T15:30:00Z",
        "2021-10-02T15:30:00Z", "2021-10-02T15:30:00Z", "2021-10-02T15:30:00Z"]
    # Autumn: 02:00 -> 01:30 (+11:00 -> +10:30); 01:30-01:59 happen twice, the first is meant.
    assert utc(["2021-04-04 01:29:59", "2021-04-04 01:30:00", "2021-04-04 01:45:00",
                "2021-04-04 01:59:59", "2021-04-04 02:00:00"], "Australia/Lord_Howe")[0] == [
        "2021-04-03T14:29:59Z", "2021-04-03T14:30:00Z", "2021-04-03T14:45:00Z",
        "2021-04-03T14:59:59Z", "2021-04-03T15:30:00Z"]


def test_a_23_hour_day() -> None:
    # Berlin, 2021-03-28: 02:00 does not exist (it is 03:00 CEST), so 02:00 and 03:00 are one
    # instant and the day's 24 hourly readings span 23 hours of UTC.
    hours = [f"2021-03-28 {h:02d}:00:00" for h in range(24)]
    expected = ["2021-03-27T23:00:00Z", "2021-03-28T00:00:00Z", "2021-03-28T01:00:00Z"] + [
        f"2021-03-28T{h:02d}:00:00Z" for h in range(1, 22)]
    assert utc(hours, "Europe/Berlin") == (expected, {})


@pytest.mark.parametrize("zone,values,expected", [
    # Fixed offsets: +08:00 and -08:00 with no history (no local mean time).
    ("Etc/GMT-8", ["0001-01-01 08:00:00", "0001-01-01 07:59:59", "0001-01-01 23:59:59",
                   "0001-01-02 00:00:00", "9999-12-31 00:00:00", "9999-12-31 23:59:59"],
     ["0001-01-01T00:00:00Z", None, "0001-01-01T15:59:59Z", "0001-01-01T16:00:00Z",
      "9999-12-30T16:00:00Z", "9999-12-31T15:59:59Z"]),
    ("Etc/GMT+8", ["0001-01-01 00:00:00", "9999-12-31 15:59:59", "9999-12-31 16:00:00",
                   "9999-12-30 23:59:59"],
     ["0001-01-01T08:00:00Z", "9999-12-31T23:59:59Z", None, "9999-12-31T07:59:59Z"]),
    # A zone with DST rules: its last representable wall time is 18:59:59 EST.
    ("America/New_York", ["9999-12-31 18:59:59", "9999-12-31 19:00:00", "9999-12-31 23:59:59"],
     ["9999-12-31T23:59:59Z", None, None]),
])
def test_the_first_and_last_representable_days_in_a_source_zone(
        zone: str, values: list[str], expected: list[str | None]) -> None:
    assert utc(values, zone) == (expected, {i: UNPARSEABLE for i, v in enumerate(expected)
                                            if v is None})


def test_values_around_a_non_string_keep_their_places() -> None:
    # The first text value sits at index 0 of the parsed strings: it must not be lost, and a
    # non-string must not borrow a neighbour's value.
    assert utc(["2026-01-10 00:00:00", 7, "2026-01-10 01:00:00", None, 8.5]) == (
        ["2026-01-10T00:00:00Z", None, "2026-01-10T01:00:00Z", None, None],
        {1: NOT_A_STRING, 4: NOT_A_STRING})


def test_bytes_that_are_not_utf8_are_not_a_string() -> None:
    assert utc([b"\xff", "2026-01-10 00:00:00"]) == (
        [None, "2026-01-10T00:00:00Z"], {0: NOT_A_STRING})


def test_an_absent_value_among_good_ones_is_no_problem() -> None:
    assert utc([None, "2026-01-10 00:00:00", None], "Asia/Shanghai") == (
        [None, "2026-01-09T16:00:00Z", None], {})


def test_calendar_and_format_problems_in_one_chunk_are_all_reported() -> None:
    # "x" fails the format, 02-30 the calendar, +24:00 the offset bound: each one is reported.
    assert utc(["x", "2026-02-30 00:00:00", "2026-01-10 00:00:00+24:00", "",
                "2026-01-10 00:00:00"]) == (
        [None, None, None, None, "2026-01-10T00:00:00Z"],
        {0: UNPARSEABLE, 1: UNPARSEABLE, 2: UNPARSEABLE, 3: EMPTY})


def test_a_bad_offset_does_not_spoil_the_other_zones_of_its_chunk() -> None:
    assert utc(["2026-06-15T12:00:00+24:00", "2026-06-15T12:00:00+09:00",
                "2026-06-15 12:00:00", "2026-06-15T12:00:00-0130"], "Asia/Shanghai") == (
        [None, "2026-06-15T03:00:00Z", "2026-06-15T04:00:00Z", "2026-06-15T13:30:00Z"],
        {0: UNPARSEABLE})


@pytest.mark.parametrize("prefix", ["x", " x", "0", "12", "+", "a" * 18 + "é", "é" * 10,
                                    "2026-01-10 00:00:00"])
def test_text_before_a_timestamp_makes_the_value_unparseable(prefix: str) -> None:
    # Whatever comes first, even a character split at the byte where the zone would start.
    assert utc([prefix + "2026-01-10 00:00:00", "2026-01-10 00:00:00"]) == (
        [None, "2026-01-10T00:00:00Z"], {0: UNPARSEABLE})


@pytest.mark.parametrize("name", ["", "/etc/localtime", "../UTC", "UTC/", "Asia/../UTC"])
def test_a_zone_name_that_is_no_key_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown time zone"):
        to_utc_text(["2026-01-10 00:00:00"], name)


@pytest.mark.parametrize("name", [8, None, b"UTC"])
def test_a_zone_name_that_is_not_text_is_a_config_error(name: object) -> None:
    with pytest.raises(ConfigError, match="unknown time zone"):
        to_utc_text(["2026-01-10 00:00:00"], name)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/New_York"])
def test_year_zero_is_unparseable_in_any_source_zone(zone: str) -> None:
    # Year 0000 has no Python datetime: in a zone other than UTC its local time once raised
    # AttributeError (a crash on row content) instead of being an unparseable value.
    values = ["0000-01-01 00:00:00", "0000-12-31 23:00:00", "0001-01-02 12:00:00"]
    texts, problems = utc(values, zone)
    assert texts[:2] == [None, None] and problems[0] == problems[1] == UNPARSEABLE
    assert texts[2] is not None and 2 not in problems


def test_text_too_large_for_one_arrow_array_is_read_in_halves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Over 2 GiB of text does not fit one Arrow string array; stand in a small limit (more than
    # three values "do not fit") and the halves must give what one array gives.
    import etl.transform.timestamps as timestamps

    values = ["2026-01-10 00:00:00", None, "soon", "", "2026-01-10T08:00:00+08:00",
              "2026-02-30 00:00:00", "2026-01-10 00:00:00Z"] * 3
    whole = to_utc_text(values, "Asia/Shanghai")
    real = timestamps.arrow_strings
    monkeypatch.setattr(timestamps, "arrow_strings",
                        lambda v: None if len(v) > 3 else real(v))
    assert to_utc_text(values, "Asia/Shanghai") == whole
    assert to_utc_text(["2026-01-10 00:00:00"] * 4, "UTC")[0] == ["2026-01-10T00:00:00Z"] * 4
    monkeypatch.setattr(timestamps, "arrow_strings", lambda v: None)  # one value over 2 GiB
    assert to_utc_text(["2026-01-10 00:00:00", None], "UTC") == ([None, None], {0: UNPARSEABLE})


def test_utc_needs_no_zone_database() -> None:
    """A UTC source zone is read without zoneinfo (its import and a time zone database): in a
    fresh interpreter, UTC values convert and ``zoneinfo`` stays unloaded; a named zone loads
    it and shifts naive values by its offset."""
    script = (
        "import sys\n"
        "from etl.transform.timestamps import to_utc_text, zone_named\n"
        "print(zone_named('UTC'), to_utc_text(['2024-01-01 08:00:00'], 'UTC')[0],\n"
        "      'zoneinfo' in sys.modules)\n"
        "print(to_utc_text(['2024-01-01 08:00:00'], 'Asia/Shanghai')[0],\n"
        "      'zoneinfo' in sys.modules)\n")
    out = fresh_python(script)
    assert out.stdout.splitlines() == ["None ['2024-01-01T08:00:00Z'] False",
                                       "['2024-01-01T00:00:00Z'] True"], out.stderr


@pytest.mark.parametrize("name", ["UTC", "Asia/Shanghai", "Etc/UTC", "Mars/Olympus", "",
                                  "../etc/passwd", "utc"])
def test_the_settings_accept_exactly_the_zones_the_transform_reads(name: str) -> None:
    """One rule (``etl.zones``): a ``--source-timezone`` the settings accept is one the
    transform can read, and one they refuse it refuses too."""
    from etl.config.settings import known_zone
    from etl.transform.timestamps import zone_named

    def accepted(check: Callable[[], object]) -> bool:
        try:
            check()
        except ConfigError:
            return False
        return True

    settings_ok = accepted(lambda: known_zone("source_timezone", name))
    assert settings_ok == accepted(lambda: zone_named(name))
    assert settings_ok == (name in ("UTC", "Asia/Shanghai", "Etc/UTC"))
