"""Vectorised normalisation of SWR ``last_updated`` values to UTC ``YYYY-MM-DDTHH:MM:SSZ`` text.

Accepted forms (docs/how-it-works/swr-api.md, "Timestamps"): ``YYYY-MM-DD HH:MM:SS`` as this
endpoint documents it, and ISO-8601 / RFC 3339 as sibling SWR APIs return it: ``T`` or a space
between date and time, 0-9 fractional digits (truncated, never rounded), and an optional zone:
``Z``, ``+08:00``, ``+0800`` or ``+08``. Surrounding whitespace is ignored. A value without a zone
is wall-clock time in the source time zone (default UTC; the endpoint's own example carries no
zone).

Wall-clock times that a DST change makes ambiguous (the repeated hour in autumn) resolve to the
first occurrence, i.e. the earlier instant; times that do not exist (the skipped hour in spring)
move forward to the first instant after the gap (02:30 in a 02:00 -> 03:00 gap becomes 03:00).
Results outside years 0001-9999 are unparseable. Pure: no I/O, no clock. pandas is imported only
for the rare values that need it (an impossible day of a month, wall-clock time in a zone other
than UTC), so a sync of UTC data never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.errors import ConfigError
from etl.transform.values import INVALID_UNICODE, arrow_of, arrow_strings, numpy_of, text_column
from etl.zones import zone_of

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

EMPTY = "empty timestamp"
UNPARSEABLE = "unparseable timestamp"

# date, time, optional fraction (1-9 digits), optional zone; the time zone part is parsed below.
# Field ranges are checked here so that only impossible days of a month (02-30, 04-31, 02-29 of a
# common year) are left for the date parser; a leap second (:60) is unparseable.
_TIMESTAMP_RE = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:"
    r"[0-5][0-9](\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
_FRACTION_RE = r"^\.[0-9]*"
_STAND_IN = "1970-01-01 00:00:00"
# Scalars taken out of arrays built from buffers: ``pa.scalar`` would import pandas (values.py).
_STAND_IN_SCALAR = cast(pa.Array, arrow_strings([_STAND_IN]))[0]
_NULL_BINARY = cast(pa.Array, arrow_strings([None])).cast(pa.binary())[0]
_MIN = np.datetime64("0001-01-01T00:00:00", "s")
_MAX = np.datetime64("9999-12-31T23:59:59", "s")
_FIRST_FULL_DAY = np.datetime64("0001-01-02T00:00:00", "s")
_LAST_DAY = np.datetime64("9999-12-31T00:00:00", "s")


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or None for UTC (``etl.zones.zone_of``: UTC needs neither
    ``zoneinfo`` nor a time zone database); raises ConfigError when the name is unknown."""
    try:
        return zone_of(name)
    except ValueError as exc:
        raise ConfigError(f"unknown time zone {name!r} (expected an IANA name such as "
                          "'UTC' or 'Asia/Shanghai')") from exc


def zone_offset_seconds(suffix: str) -> int | None:
    """Seconds east of UTC for a zone suffix ('' -> None: naive). Raises ValueError if invalid."""
    if suffix == "":
        return None
    if suffix in ("Z", "z"):
        return 0
    sign = -1 if suffix[0] == "-" else 1
    digits = suffix[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(suffix)
    return sign * (hours * 3600 + minutes * 60)


def to_utc_text(values: Sequence[Any], source_timezone: str = "UTC"
                ) -> tuple[list[str | None], dict[int, str]]:
    """Normalise raw values to UTC text.

    Returns the texts (None where absent or bad) and ``{position: problem}`` for every value
    that was present but could not be used. ``None`` (JSON null or a missing field) is simply
    absent: None with no problem.
    """
    tz = zone_named(source_timezone)
    values = values if isinstance(values, list) else list(values)
    # The text rule first (etl.transform.values): a non-string is "not a string"; a lone
    # surrogate has no UTF-8 form, and no time is written with one: unparseable.
    texts, problems = text_column(values)
    for i, problem in problems.items():
        if problem == INVALID_UNICODE:
            problems[i] = UNPARSEABLE
    arr = arrow_strings(texts)
    if arr is None:
        return _in_halves(values, source_timezone)
    return _parse_strings(arr, tz, problems).to_pylist(), problems


def _in_halves(values: list[Any], source_timezone: str
               ) -> tuple[list[str | None], dict[int, str]]:
    """``to_utc_text`` of values whose text is over 2 GiB (one Arrow string array's limit), a
    half at a time. A single such value is no timestamp."""
    if len(values) == 1:
        return [None], {} if values[0] is None else {0: UNPARSEABLE}
    half = len(values) // 2
    first, first_problems = to_utc_text(values[:half], source_timezone)
    second, second_problems = to_utc_text(values[half:], source_timezone)
    first_problems.update((half + i, problem) for i, problem in second_problems.items())
    return first + second, first_problems


def _parse_strings(strings: pa.Array, tz: ZoneInfo | None, problems: dict[int, str]
                   ) -> pa.Array:
    """Parse strings (vectorised, in Arrow); returns UTC text, null where absent or bad, and
    adds to ``problems`` (by position) each value present but unusable."""
    arr = pc.utf8_trim_whitespace(strings)
    # Null (absent) is not valid: the match AND "present", null-free (no fill_null(False):
    # a Python scalar would make pyarrow import pandas, see arrow_strings).
    valid = pc.and_kleene(pc.match_substring_regex(arr, _TIMESTAMP_RE), pc.is_valid(arr))
    invalid_np = None
    if pc.all(valid).as_py() is False:
        # Absent values are common (JSON null): this path reads Arrow through buffers too.
        invalid_np = ~numpy_of(valid, "bool")
        empty_np = numpy_of(pc.binary_length(arr), "int32", null=-1) == 0
        present_np = numpy_of(arr.is_valid(), "bool")
        for i in np.flatnonzero(invalid_np & present_np):
            problems[int(i)] = EMPTY if empty_np[i] else UNPARSEABLE
        # Keep every row in place (no filter, no scatter back): a harmless stand-in for the
        # rejected values flows through and is masked out at the end.
        arr = pc.if_else(valid, arr, _STAND_IN_SCALAR)
    # The regex fixed every position: bytes 0-18 are the date and time (separator at 10),
    # the zone and any fraction follow. Work on bytes: Arrow's binary kernels are the fast ones.
    raw = arr.cast(pa.binary())
    base_bytes = pc.binary_replace_slice(pc.binary_slice(raw, 0, 19), 10, 11, "T")
    base = base_bytes.cast(pa.string())
    try:
        local = numpy_of(pc.cast(base, pa.timestamp("s")), "datetime64[s]",
                         null=np.datetime64("NaT"))
    except pa.ArrowInvalid:
        # An impossible day of the month (02-30): let pandas turn just those into NaT.
        import pandas as pd

        local = pd.to_datetime(pd.Series(base.to_numpy(zero_copy_only=False)),
                               format="%Y-%m-%dT%H:%M:%S", errors="coerce").to_numpy()
    local = local.astype("datetime64[s]")
    utc, bad, shifted = _to_utc(local, pc.binary_slice(raw, 19, 64), tz)
    for i in np.flatnonzero(bad if invalid_np is None else bad & ~invalid_np):
        problems[int(i)] = UNPARSEABLE
    if invalid_np is not None:
        bad |= invalid_np
    if shifted:
        text = pc.cast(arrow_of(utc.astype("datetime64[s]"), pa.timestamp("s"), mask=bad),
                       pa.string())
        # "YYYY-MM-DD HH:MM:SS" -> "YYYY-MM-DDTHH:MM:SS"
        text = pc.binary_replace_slice(text.cast(pa.binary()), 10, 11, "T")
    else:
        # Already UTC wall-clock text (the documented form, naive, in a UTC source): reuse it.
        text = base_bytes
        if bad.any():
            text = pc.if_else(arrow_of(bad, pa.bool_()), _NULL_BINARY, text)
    return pc.binary_replace_slice(text, 19, 19, "Z").cast(pa.string())


def _to_utc(local: np.ndarray, suffixes: pa.Array, tz: ZoneInfo | None
            ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Wall-clock times plus zone suffixes -> (UTC datetime64[s], bad mask, any value moved)."""
    shifted = False
    if len(suffixes) and pc.max(pc.binary_length(suffixes)).as_py() > 0:
        zones = pc.replace_substring_regex(suffixes.cast(pa.string()), _FRACTION_RE, "")
        encoded = pc.dictionary_encode(zones)
        codes = numpy_of(encoded.indices, "int32")  # no nulls: absent values carry the stand-in
        # Few distinct suffixes per chunk: parse each once.
        offsets = np.zeros(len(encoded.dictionary), dtype=np.int64)
        naive_code = np.zeros(len(encoded.dictionary), dtype=bool)
        bad_code = np.zeros(len(encoded.dictionary), dtype=bool)
        for k, suffix in enumerate(encoded.dictionary.to_pylist()):
            try:
                offset = zone_offset_seconds(suffix)
            except ValueError:
                bad_code[k] = True
                continue
            if offset is None:
                naive_code[k] = True
            else:
                offsets[k] = offset
        shifts = offsets[codes]
        shifted = bool(shifts.any())
        utc = local - shifts.astype("timedelta64[s]")
        naive = naive_code[codes]
        bad = bad_code[codes]
    else:
        utc = local.copy()
        naive = np.ones(len(local), dtype=bool)
        bad = np.zeros(len(local), dtype=bool)
    if naive.any() and tz is not None:
        shifted = True
        utc[naive] = _localize(local[naive], tz)
    nat = np.isnat(utc)
    bad |= nat
    bad[~nat] |= (utc[~nat] < _MIN) | (utc[~nat] > _MAX)
    utc[bad] = _MIN
    return utc, bad, shifted


def _localize(wall: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """Wall-clock datetime64[s] in ``tz`` -> UTC datetime64[s] (DST rules: module docstring)."""
    # pandas cannot localize within a day of year 1 or 9999 (its bounds leave Python's datetime
    # range): those few go through zoneinfo one by one (no DST change happens on Jan 1/Dec 31).
    edge = (wall < _FIRST_FULL_DAY) | (wall >= _LAST_DAY)
    utc = np.empty_like(wall)
    if (~edge).any():
        import pandas as pd

        inner_wall = wall[~edge]
        index = pd.DatetimeIndex(inner_wall)
        # ambiguous=True takes the pre-transition (first, earlier) reading of a repeated hour.
        # Times in a gap come back NaT and are moved below: pandas' "shift_forward" lands a
        # whole hour on, 30 min too far where the gap is 30 min (Australia/Lord_Howe).
        aware = index.tz_localize(tz, ambiguous=np.ones(len(index), dtype=bool),
                                  nonexistent="NaT")
        inner = aware.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
        for i in np.flatnonzero(np.isnat(inner) & ~np.isnat(inner_wall)):
            inner[i] = _gap_end(inner_wall[i], tz)
        utc[~edge] = inner
    for i in np.flatnonzero(edge):
        if wall[i] < _MIN:  # year 0000: no Python datetime, no local time; out of range
            utc[i] = np.datetime64("NaT")
            continue
        offset = wall[i].astype(object).replace(tzinfo=tz).utcoffset()
        utc[i] = wall[i] - np.timedelta64(int(offset.total_seconds()), "s")
    return utc


def _gap_end(wall: np.datetime64, tz: ZoneInfo) -> np.datetime64:
    """The first instant after the DST gap that swallowed wall-clock time ``wall`` (UTC).

    Read with the offset before the change the time is at or after the change, read with the
    offset after it, before; the change lies between, found by bisection over whole seconds
    (gaps are minutes to a day, so ~17 steps for a handful of values).
    """
    local = wall.astype(object)
    after = int(local.replace(tzinfo=tz, fold=0).timestamp())  # pre-change offset: past it
    before = int(local.replace(tzinfo=tz, fold=1).timestamp())  # post-change offset: before it
    lo, hi = min(before, after), max(before, after)
    first = _offset_at(hi, tz)
    while hi - lo > 1:  # invariant: lo has the old offset, hi the new one
        mid = (lo + hi) // 2
        if _offset_at(mid, tz) == first:
            hi = mid
        else:
            lo = mid
    return np.datetime64(hi, "s")


def _offset_at(epoch: int, tz: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(epoch, tz).utcoffset()
