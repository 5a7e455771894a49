"""The one rule for integers from the API: counts and image ids (pure, no heavy imports).

Every stage that has to decide whether a raw JSON value is a usable integer asks here: the
transform (``etl.transform.values``/``etl.transform.frames``: what is loaded, what is rejected
and why), and the extractor (``etl.extract.paging``: which rows count as ids in the completeness
proof, which ids repeat across pages). One answer for ``17.0``, ``"+17"``, ``0``, ``-5``,
``True``, ``" 17 "``, ``"17.0"`` and 2**63, wherever it is asked. The words for what is wrong
with a value are here too, so every stage that records a problem writes it the same way.

Only the standard library is imported: the extractor runs this before pandas has loaded.
"""

from __future__ import annotations

import math
import re
from operator import itemgetter
from typing import Any

INT64_MAX = 2**63 - 1
# A pull counter stuck here is an int32 overflow upstream, not growth (docs/how-it-works/swr-api.md,
# "The response"): the simulator makes one stick, the trend rules flag it.
INT32_MAX = 2**31 - 1

# Problems (the words analysts filter on in quality_issues and rejects).
BOOLEAN = "boolean value"
FRACTIONAL = "fractional value"
NEGATIVE = "negative value"
TOO_BIG = "beyond int64 range"
NOT_NUMERIC = "non-numeric value"
NOT_FINITE = "non-finite value"
ZERO = "zero"
# An id seen twice in one scan (one word for the transform and the load, which both record it).
DUPLICATE_ID = "duplicate id in scan"

_INTEGRAL_TEXT = re.compile(r"\s*([+-]?[0-9]+)(?:\.([0-9]*))?\s*", re.ASCII)


def coerce_int(value: Any) -> tuple[int | None, str | None]:
    """One raw value -> (int64 value >= 0 or None, problem or None). None in -> (None, None).

    Integral floats and integral text (``17.0``, ``"+17"``, ``" 17 "``, ``"17.0"``) are the
    integer they spell; booleans, fractions, negatives, non-finite floats, other text and
    anything beyond int64 are problems.
    """
    if type(value) is int:  # the common case first; bool never matches ``is int``
        number = value
    elif value is None:
        return None, None
    elif isinstance(value, bool):
        return None, BOOLEAN
    elif isinstance(value, int):
        number = int(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None, NOT_FINITE
        if not value.is_integer():
            return None, FRACTIONAL
        number = int(value)
    elif isinstance(value, str):
        match = _INTEGRAL_TEXT.fullmatch(value)
        if match is None:
            return None, NOT_NUMERIC
        if match.group(2) and match.group(2).strip("0"):
            return None, FRACTIONAL
        number = int(match.group(1))
    else:
        return None, NOT_NUMERIC
    if number < 0:
        return None, NEGATIVE
    if number > INT64_MAX:
        return None, TOO_BIG
    return number, None


def coerce_id(value: Any) -> tuple[int | None, str | None]:
    """A raw ``id`` -> (id or None, problem or None): the integer rule, and zero is no id.

    (None, None) means the id is absent (JSON ``null`` or a missing key).
    """
    number, problem = coerce_int(value)
    if number == 0:
        return None, ZERO
    return number, problem


def usable_id(row: Any) -> int | None:
    """The row's id under ``coerce_id``, or None (not an object, absent, or unusable)."""
    # The scan asks this of every row several times (page signature, pass ledger, chunking):
    # a plain positive int64 id, nearly every row, is answered without the general rule.
    if type(row) is dict and type(rid := row.get("id")) is int and 0 < rid <= INT64_MAX:
        return rid
    if not isinstance(row, dict):
        return None
    return coerce_id(row.get("id"))[0]


_ID = itemgetter("id")


def usable_ids(rows: list[Any]) -> list[int | None]:
    """``usable_id`` of every row of a page, in order.

    A page of objects whose ids are all plain positive int64 integers (nearly every page) is
    answered in a few passes of C code instead of a Python call per row (a 1,000-row page:
    ~0.2 ms -> ~0.05 ms); any other page row by row, by ``usable_id``.
    """
    try:
        ids = list(map(_ID, rows))  # KeyError: no id; TypeError: a row that is no object
    except (KeyError, TypeError):
        return [usable_id(r) for r in rows]
    if ids and set(map(type, ids)) == {int} and min(ids) > 0 and max(ids) <= INT64_MAX:
        return ids
    return [usable_id(r) for r in rows]
