"""Vectorised normalisation of SWR ``last_updated`` values to UTC ``YYYY-MM-DDTHH:MM:SSZ`` text.

Accepted forms (API-NOTES "Timestamps"): ``YYYY-MM-DD HH:MM:SS`` as this endpoint documents it,
and ISO-8601 / RFC 3339 as sibling SWR APIs return it: ``T`` or a space between date and time,
0-9 fractional digits (truncated, never rounded), and an optional zone: ``Z``, ``+08:00``,
``+0800`` or ``+08``. Surrounding whitespace is ignored. A value without a zone is wall-clock time
in the source time zone (default UTC; the endpoint's own example carries no zone).

Wall-clock times that a DST change makes ambiguous (the repeated hour in autumn) resolve to the
first occurrence, i.e. the earlier instant; times that do not exist (the skipped hour in spring)
move forward to the first instant after the gap (02:30 in a 02:00 -> 03:00 gap becomes 03:00).
Results outside years 0001-9999 are unparseable. Pure: no I/O, no clock.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl.errors import ConfigError

EMPTY = "empty timestamp"
UNPARSEABLE = "unparseable timestamp"
NOT_A_STRING = "not a string"

# date, time, optional fraction (1-9 digits), optional zone; the time zone part is parsed below.
_TIMESTAMP_RE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
_FRACTION_RE = r"^\.[0-9]*"
_MIN = np.datetime64("0001-01-01T00:00:00", "s")
_MAX = np.datetime64("9999-12-31T23:59:59", "s")


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; raises ConfigError when the name is unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
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
                ) -> tuple[pd.api.extensions.ExtensionArray, dict[int, str]]:
    """Normalise raw values to a ``string`` array of UTC text.

    Returns the array (``<NA>`` where absent or bad) and ``{position: problem}`` for every value
    that was present but could not be used. ``None`` (JSON null or a missing field) is simply
    absent: ``<NA>`` with no problem.
    """
    tz = zone(source_timezone)
    n = len(values)
    problems: dict[int, str] = {}
    out = np.full(n, None, dtype=object)
    types = set(map(type, values))
    if types <= {str}:
        positions = np.arange(n)
    elif types <= {str, type(None)}:
        positions = np.flatnonzero(np.fromiter(map(str.__instancecheck__, values), bool, n))
    else:
        is_str = np.fromiter(map(str.__instancecheck__, values), bool, n)
        is_none = np.fromiter((v is None for v in values), bool, n)
        for i in np.flatnonzero(~is_str & ~is_none):
            problems[int(i)] = NOT_A_STRING
        positions = np.flatnonzero(is_str)
    if len(positions) == len(values):
        texts: list[str] = list(values)
    else:
        texts = [values[int(i)] for i in positions]
    if texts:
        formatted = _parse_strings(texts, tz, positions, problems)
        out[positions] = formatted
    return pd.array(out, dtype="string"), problems


def _arrow_strings(texts: list[str], positions: np.ndarray, problems: dict[int, str]
                   ) -> pa.Array:
    try:
        return pa.array(texts, type=pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        # Lone surrogates (JSON "\ud800") cannot become UTF-8: such a value is unparseable.
        cleaned: list[str | None] = []
        for pos, text in zip(positions, texts, strict=True):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                problems[int(pos)] = UNPARSEABLE
                cleaned.append(None)
            else:
                cleaned.append(text)
        return pa.array(cleaned, type=pa.string())


def _parse_strings(texts: list[str], tz: zoneinfo.ZoneInfo, positions: np.ndarray,
                   problems: dict[int, str]) -> np.ndarray:
    """Parse the string values (vectorised); returns an object array of text or None."""
    arr = pc.utf8_trim_whitespace(_arrow_strings(texts, positions, problems))
    result = np.full(len(texts), None, dtype=object)
    valid = pc.fill_null(pc.match_substring_regex(arr, _TIMESTAMP_RE), False)
    valid_np = valid.to_numpy(zero_copy_only=False)
    empty_np = pc.fill_null(pc.equal(arr, ""), False).to_numpy(zero_copy_only=False)
    present_np = arr.is_valid().to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~valid_np & present_np):
        problems[int(positions[i])] = EMPTY if empty_np[i] else UNPARSEABLE
    good = np.flatnonzero(valid_np)
    if len(good) == 0:
        return result
    sub = arr.take(pa.array(good))
    # Regex-checked fixed positions: date at 0-9, time at 11-18 (the separator may be T, t or ' ').
    base = pc.binary_join_element_wise(pc.utf8_slice_codeunits(sub, 0, 10),
                                       pc.utf8_slice_codeunits(sub, 11, 19), "T")
    # pandas (not arrow's strptime, which rolls 02-30 over to 03-02) rejects impossible dates.
    local = pd.to_datetime(pd.Series(base.to_numpy(zero_copy_only=False)),
                           format="%Y-%m-%dT%H:%M:%S", errors="coerce").to_numpy()
    local = local.astype("datetime64[s]")
    suffix = pc.replace_substring_regex(pc.utf8_slice_codeunits(sub, 19, 64), _FRACTION_RE, "")
    encoded = pc.dictionary_encode(suffix)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(encoded.dictionary), dtype=np.int64)
    naive_code = np.zeros(len(encoded.dictionary), dtype=bool)
    bad_code = np.zeros(len(encoded.dictionary), dtype=bool)
    for k, text in enumerate(encoded.dictionary.to_pylist()):
        try:
            off = zone_offset_seconds(text)
        except ValueError:
            bad_code[k] = True
            continue
        if off is None:
            naive_code[k] = True
        else:
            offsets[k] = off
    utc = local - offsets[codes].astype("timedelta64[s]")
    naive = naive_code[codes]
    if naive.any() and tz.key != "UTC":
        utc[naive] = _localize(local[naive], tz)
    nat = np.isnat(utc)
    bad = bad_code[codes] | nat
    bad[~nat] |= (utc[~nat] < _MIN) | (utc[~nat] > _MAX)
    for i in np.flatnonzero(bad):
        problems[int(positions[good[i]])] = UNPARSEABLE
    ok = ~bad
    text_out = np.datetime_as_string(utc[ok], unit="s", timezone="UTC")
    result[good[ok]] = text_out
    return result


def _localize(wall: np.ndarray, tz: zoneinfo.ZoneInfo) -> np.ndarray:
    """Wall-clock datetime64[s] in ``tz`` -> UTC datetime64[s] (DST rules: module docstring)."""
    index = pd.DatetimeIndex(wall)
    # ambiguous=True takes the pre-transition (first, earlier) reading of a repeated hour.
    aware = index.tz_localize(tz, ambiguous=np.ones(len(index), dtype=bool),
                              nonexistent="shift_forward")
    return aware.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
