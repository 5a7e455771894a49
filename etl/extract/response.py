"""Reading one 2xx answer of the official image list (pure): rows, total, content signature.

The body must be a JSON array; anything else is an unusable answer worth another attempt. The
page's total comes from ``Content-Range`` and is cross-checked against the rows' ``total_range``
(docs/how-it-works/swr-api.md, "`Content-Range`": disagreement is logged and the header wins;
without the header, ``total_range``).
"""

from __future__ import annotations

import json
import logging
from operator import itemgetter
from typing import Any

from etl.extract.contentrange import ContentRange
from etl.extract.retry import ApiErrorBody, Transient, describe, parse_error_body
from etl.integers import usable_ids

log = logging.getLogger("etl.extract")

# Bodies this big or bigger are parsed by msgspec first: ~2.4x less CPU than ``json.loads`` on a
# page of 1,000 rows. A smaller body (a nightly listing is one page of ~50 KiB) saves less than
# importing msgspec costs (~20 ms), so it goes straight to the stdlib.
FAST_PARSE_FROM = 64 * 1024


def parse_json(body: bytes) -> Any:
    """``json.loads(body)`` exactly (the same value, or the same error), in less CPU time.

    msgspec accepts a strict subset of what ``json.loads`` does and gives the same value for it
    (integers of any size, correctly rounded floats, the last of duplicate keys). Whatever it
    refuses goes to ``json.loads``, whose answer, value or exception, is then the answer: NaN and
    Infinity literals, numbers beyond float range, integers past Python's digit limit, lone
    surrogates, a byte order mark, UTF-16/32, invalid UTF-8, deep nesting.
    """
    import msgspec.json  # lazily: only large bodies come here

    try:
        return msgspec.json.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        return json.loads(body)


def decode_rows(body: bytes, where: str, status: int, request_id: str | None) -> list[Any]:
    """The JSON array of a 2xx body; anything else raises ``Transient("unparseable")``."""
    try:
        data = parse_json(body) if len(body) >= FAST_PARSE_FROM else json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: deep nesting
        detail = describe("GET", where, status, ApiErrorBody("", "body is not valid JSON"),
                          request_id)
        raise Transient("unparseable", detail) from exc
    if not isinstance(data, list):
        detail = describe("GET", where, status, parse_error_body(body) if isinstance(data, dict)
                          else ApiErrorBody(), request_id)
        raise Transient("unparseable", f"{detail} (expected a JSON array)")
    return data


_TOTAL_RANGE = itemgetter("total_range")


def page_total(cr: ContentRange | None, rows: list[Any], where: str) -> int | None:
    """The page's total: the header's, cross-checked with the rows' ``total_range``."""
    try:  # every row an object with a scalar total_range (nearly every page), in C
        body_totals = set(map(_TOTAL_RANGE, rows))
        body_totals.discard(None)
    except (KeyError, TypeError):
        # A list or object where a number belongs is not hashable: stand in its type name.
        body_totals = {t if isinstance(t, (int, float, str)) else f"<{type(t).__name__}>"
                       for r in rows if isinstance(r, dict)
                       if (t := r.get("total_range")) is not None}
    body_total = next(iter(body_totals)) if len(body_totals) == 1 else None
    if not isinstance(body_total, int) or isinstance(body_total, bool) or body_total < 0:
        body_total = None
    if cr is not None:
        if body_totals and (body_total is None or body_total != cr.total):
            log.warning("Content-Range total %d disagrees with total_range %s on %s; "
                        "using the header", cr.total, sorted(map(str, body_totals)), where)
        return cr.total
    return body_total


def signature(rows: list[Any]) -> tuple[Any, ...]:
    """What identifies a page's content: the ids, or the whole row where there is no id."""
    ids = usable_ids(rows)
    if None not in ids:
        return tuple(ids)
    return tuple(rid if rid is not None else json.dumps(r, sort_keys=True, default=str)
                 for rid, r in zip(ids, rows, strict=True))
