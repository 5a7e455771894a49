"""Parse the ``Content-Range`` header of the SWR list APIs (pure, no I/O).

The header comes in three shapes: ``<offset>-<count>/<total>`` (what sibling SWR APIs document),
``<first>-<last>/<total>`` (HTTP's inclusive range) and ``*/<total>``. The middle number is
ambiguous between the first two, so only the leading offset and the trailing total are trusted;
the page size is taken from the body (docs/how-it-works/swr-api.md, "`Content-Range`").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Optional unit ("items 0-99/180", as some gateways write it), then "a-b/total" or "*/total".
# Numbers of any plausible length are read, so an absurd total (10^30, beyond int64) is seen and
# refused by the extractor (--max-rows) rather than silently ignored; beyond 64 digits the value
# is garbage.
_PATTERN = re.compile(
    r"""^\s*(?:[A-Za-z][A-Za-z0-9_-]*\s+)?       # optional range unit
        (?:(?P<first>\d{1,64})\s*-\s*(?P<middle>\d{1,64})|\*)
        \s*/\s*(?P<total>\d{1,64})\s*$""",
    re.VERBOSE | re.ASCII,
)


@dataclass(frozen=True)
class ContentRange:
    """What can be trusted from a ``Content-Range`` value.

    ``offset`` is None for the ``*/total`` shape. ``middle`` is kept for diagnostics only: it is a
    row count on some servers and an inclusive last index on others, so never compute with it.
    """

    offset: int | None
    total: int
    middle: int | None = None


def parse_content_range(value: str | None) -> ContentRange | None:
    """Parse a ``Content-Range`` header value; anything unusable gives None.

    >>> parse_content_range("0-100/180")
    ContentRange(offset=0, total=180, middle=100)
    >>> parse_content_range("*/180")
    ContentRange(offset=None, total=180, middle=None)
    >>> parse_content_range("bogus") is None
    True
    """
    if not value or not isinstance(value, str):
        return None
    m = _PATTERN.match(value)
    if m is None:
        return None
    total = int(m["total"])
    if m["first"] is None:
        return ContentRange(offset=None, total=total)
    return ContentRange(offset=int(m["first"]), total=total, middle=int(m["middle"]))
