"""Reading one 2xx answer (etl.extract.response): the JSON array, the page's total, the content
signature. Pure functions, so every rule is stated on values."""

from __future__ import annotations

import json
import logging

import pytest

from etl.extract.contentrange import ContentRange
from etl.extract.response import decode_rows, page_total, signature
from etl.extract.retry import Transient

WHERE = "/v2/manage/dockerhub/repos?offset=0&limit=100"


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
