"""Reading one 2xx answer (etl.extract.response): the JSON array, the page's total, the content
signature. Pure functions, so every rule is stated on values."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.extract.contentrange import ContentRange
from etl.extract.response import FAST_PARSE_FROM, decode_rows, page_total, parse_json, signature
from etl.extract.retry import Transient

WHERE = "/v2/manage/dockerhub/repos?offset=0&limit=100"
HYPO = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def test_a_json_array_is_the_rows() -> None:
    assert decode_rows(b'[{"id": 1}, {"id": 2}]', WHERE, 200, None) == [{"id": 1}, {"id": 2}]
    assert decode_rows(b"[]", WHERE, 200, None) == []


@pytest.mark.parametrize("body", [
    b"not json", b"", b"[1,", b"\xff\xfe[]",  # bytes that are no UTF-8 text at all
    b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than the decoder can follow
])
def test_a_body_that_is_not_json_is_a_transient_failure(body: bytes) -> None:
    with pytest.raises(Transient) as caught:
        decode_rows(body, WHERE, 200, "req-1")
    assert caught.value.cause == "unparseable"
    assert caught.value.detail == (f'GET {WHERE}: HTTP 200 "body is not valid JSON" '
                                   "(X-Request-Id req-1)")


def test_an_object_is_no_array_and_its_error_code_is_shown() -> None:
    body = json.dumps({"errorCode": "SVCSTG.SWR.4000001", "errorMessage": "bad"}).encode()
    with pytest.raises(Transient) as caught:
        decode_rows(body, WHERE, 200, None)
    assert caught.value.cause == "unparseable"
    assert caught.value.detail == (f'GET {WHERE}: HTTP 200 SVCSTG.SWR.4000001 "bad" '
                                   "(expected a JSON array)")


@pytest.mark.parametrize("body", [b"17", b'"rows"', b"null", b"true"])
def test_a_scalar_is_no_array(body: bytes) -> None:
    with pytest.raises(Transient) as caught:
        decode_rows(body, WHERE, 200, None)
    assert caught.value.detail == f"GET {WHERE}: HTTP 200 (expected a JSON array)"


def rows(*totals: object) -> list[object]:
    return [{"id": i, "total_range": t} for i, t in enumerate(totals, 1)]


@pytest.mark.parametrize("cr,page,expected", [
    # the header's total is the page's total
    (ContentRange(0, 180, 99), rows(180, 180), 180),
    (ContentRange(None, 0), [], 0),
    # without the header, the rows' total_range, when they agree and it is a count
    (None, rows(180, 180), 180),
    (None, rows(0), 0),  # zero is a count
    (None, rows(180, 181), None),  # rows that disagree give no total
    (None, rows(-1), None), (None, rows(True), None), (None, rows(1.5), None),
    (None, rows("180"), None), (None, rows([180]), None), (None, rows({"n": 1}), None),
    (None, [{"id": 1}, 7, "x"], None),  # no total_range anywhere
    (None, [{"id": 1, "total_range": None}], None),
    (None, [{"id": 1}, {"id": 2, "total_range": 5}], 5),  # rows without one do not disagree
])
def test_page_total(cr: ContentRange | None, page: list[object], expected: int | None) -> None:
    assert page_total(cr, page, WHERE) == expected


def _row_totals(page: list[object]) -> set[object]:
    """What page_total reads of the rows, written the slow way: every object's total_range but
    null, a list or object standing in by its type name."""
    return {t if isinstance(t, (int, float, str)) else f"<{type(t).__name__}>"
            for r in page if isinstance(r, dict) if (t := r.get("total_range")) is not None}


_TOTAL_ROW = st.one_of(
    st.integers(0, 3).map(lambda t: {"id": 1, "total_range": t}),
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=2),
              st.just([1]), st.just({"n": 1})).map(lambda t: {"id": 1, "total_range": t}),
    st.sampled_from([{"id": 1}, "x", 7, None, [1]]),
)


@given(st.lists(_TOTAL_ROW, max_size=8))
def test_page_total_reads_every_page_as_the_rows_say(page: list[object]) -> None:
    # The page-at-a-time reading of total_range gives what the row-by-row one gives.
    totals = _row_totals(page)
    only = next(iter(totals)) if len(totals) == 1 else None
    expected = only if type(only) is int and only >= 0 else None
    assert page_total(None, page, WHERE) == expected


@pytest.mark.parametrize("page,logged", [
    (rows(180), None),  # agreement: nothing to say
    ([{"id": 1}], None),  # no total_range at all: nothing to compare
    (rows(181), "['181']"),
    (rows(180, 181), "['180', '181']"),  # the rows disagree among themselves
    (rows(-180), "['-180']"),
    (rows([1]), "['<list>']"),
])
def test_the_header_wins_and_a_disagreement_is_logged(
        caplog: pytest.LogCaptureFixture, page: list[object], logged: str | None) -> None:
    with caplog.at_level(logging.WARNING, logger="etl.extract"):
        assert page_total(ContentRange(0, 180, 99), page, WHERE) == 180
    messages = [r.getMessage() for r in caplog.records]
    if logged is None:
        assert messages == []
    else:
        assert messages == [f"Content-Range total 180 disagrees with total_range {logged} on "
                            f"{WHERE}; using the header"]


def test_signature_is_the_ids_or_the_whole_row() -> None:
    assert signature([{"id": 1}, {"id": "2"}, {"id": 3.0}]) == (1, 2, 3)
    assert signature([{"id": 0, "b": 1, "a": [2]}, "x", None]) == (
        '{"a": [2], "b": 1, "id": 0}', '"x"', "null")
    # the row text does not depend on key order: the same row, the same signature
    assert signature([{"b": 1, "a": 2}]) == signature([{"a": 2, "b": 1}])
    assert signature([]) == ()


# ---------------------------------------------------------------- parse_json is json.loads, faster

def outcome(parse: Callable[[bytes], Any], body: bytes) -> tuple[str, str]:
    """What a parser makes of ``body``, strictly: repr tells 1, 1.0 and True apart, and -0.0."""
    try:
        return "value", repr(parse(body))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return type(exc).__name__, str(exc)


json_scalars = (st.none() | st.booleans() | st.integers(-(2**200), 2**200)
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=8) | st.sampled_from(["\ud800", "a\udfffb", "\x00", "é中😀"]))
json_trees = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=20)


@st.composite
def json_texts(draw: st.DrawFn) -> bytes:
    """Bodies a server could send: JSON of any value, ASCII-escaped or not, in UTF-8 (lone
    surrogates passed through as the bytes ``json.loads`` still reads), sometimes with a
    byte order mark or in UTF-16, sometimes with a duplicate key."""
    text = json.dumps(draw(json_trees), ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()) and text.endswith("}"):
        text = text[:-1] + (', ' if len(text) > 2 else '') + '"k": 1, "k": 2}'
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16"]))
    return text.encode(encoding, "surrogatepass")


# JSON's number grammar, loosened so that near misses (leading zeros, a bare dot, a plus sign,
# hexadecimal, overflow to infinity, underflow to zero) come too.
numbers = st.from_regex(r"\A-?[0-9]{1,30}(\.[0-9]{0,25})?([eE][-+]?[0-9]{1,4})?\Z|"
                        r"\A[-+]?(0x1F|\.5|1\.|Infinity|NaN|-Infinity)\Z")


@HYPO
@given(json_texts())
def test_any_json_text_parses_exactly_as_the_stdlib_parses_it(body: bytes) -> None:
    assert outcome(parse_json, body) == outcome(json.loads, body)


@HYPO
@given(st.lists(numbers, min_size=1, max_size=5))
def test_every_number_literal_is_the_stdlibs_number(literals: list[str]) -> None:
    body = ("[" + ", ".join(literals) + "]").encode()
    assert outcome(parse_json, body) == outcome(json.loads, body)


@HYPO
@given(st.binary(max_size=64) | json_texts().map(lambda b: b[:-1]))
def test_any_bytes_fail_or_parse_exactly_as_the_stdlib(body: bytes) -> None:
    assert outcome(parse_json, body) == outcome(json.loads, body)


@pytest.mark.parametrize("body", [
    b"[NaN, Infinity, -Infinity]", b"[1e400, -1e400, 1.7976931348623159e308]",
    b"[18446744073709551616, -9223372036854775809, 1" + b"0" * 300 + b"]",
    b"[" + b"9" * 5000 + b"]",  # past Python's integer digit limit: the stdlib's ValueError
    b'[{"a": 1, "b": 2, "a": 3}]', b'["\\ud800", "\\udfff\\ud800"]', b'["\xed\xa0\x80"]',
    b"\xef\xbb\xbf[1]", "[1]".encode("utf-16"), "[1]".encode("utf-32"), b'["\xff"]',
    b"[" * 100_000 + b"]" * 100_000, b"[" * 900 + b"]" * 900, b'["tab\there"]', b"[1,]",
    b"[-0, -0.0, 0.1e-400, 4.9e-324]",
])
def test_hostile_bodies_parse_exactly_as_the_stdlib_parses_them(body: bytes) -> None:
    assert outcome(parse_json, body) == outcome(json.loads, body)


FILLER = {"id": 1, "name": "x" * 100}
FILLERS = FAST_PARSE_FROM // 100


def padded(tail: str) -> bytes:
    """A page body past ``FAST_PARSE_FROM``: ``FILLERS`` rows, then ``tail``."""
    return ("[" + (json.dumps(FILLER) + ", ") * FILLERS + tail + "]").encode()


@pytest.mark.parametrize("tail,last", [
    ('{"id": 18446744073709551617}', {"id": 18446744073709551617}),
    ('{"id": NaN}', {"id": math.nan}), ('{"pull_count": 1e999}', {"pull_count": math.inf}),
    ('{"name": "\\ud800"}', {"name": "\ud800"}), ('{"id": 2, "id": 3}', {"id": 3}),
])
def test_a_large_page_keeps_every_value_the_stdlib_reads(tail: str, last: dict[str, Any]) -> None:
    body = padded(tail)
    assert len(body) >= FAST_PARSE_FROM
    rows = decode_rows(body, WHERE, 200, None)
    assert repr(rows[-1]) == repr(last)
    assert rows[:-1] == [FILLER] * FILLERS


def test_a_large_page_that_is_not_utf8_is_unparseable_as_before() -> None:
    with pytest.raises(Transient) as caught:
        decode_rows(padded('"\xff"').replace(b"\xc3\xbf", b"\xff"), WHERE, 200, None)
    assert caught.value.cause == "unparseable"
