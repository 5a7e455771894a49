"""Per-value column rules (etl.transform.values): every path of the integer and text columns
gives the answer the one-value-at-a-time rule gives, and raw values are shown as stored."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.integers import BOOLEAN, FRACTIONAL, INT64_MAX, NEGATIVE, TOO_BIG, ZERO, coerce_id
from etl.transform.values import (
    INVALID_UNICODE,
    NOT_A_STRING,
    arrow_of,
    arrow_strings,
    clean_text,
    field_values,
    int_column,
    numpy_of,
    raw_json,
    raw_text,
    text_column,
)
from tests.helpers import fresh_python


def column(values: list[object], **kw: object) -> tuple[list[int | None], dict[int, str]]:
    numbers, valid, problems = int_column(values, **kw)  # type: ignore[arg-type]
    assert numbers.dtype == np.int64 and valid.dtype == bool and len(numbers) == len(values)
    return [int(n) if ok else None for n, ok in zip(numbers, valid, strict=True)], problems


@pytest.mark.parametrize("values,expected", [
    # plain ints only (the numpy path): negatives are judged by the rule
    ([0, 5, INT64_MAX], ([0, 5, INT64_MAX], {})),
    ([5, -1, 0], ([5, None, 0], {1: NEGATIVE})),
    # mixed types (the mask path): bool is never a number, None is absent without a problem
    ([5, True, None, "7", 7.0, 7.5, -1], ([5, None, None, 7, 7, None, None],
                                          {1: BOOLEAN, 5: FRACTIONAL, 6: NEGATIVE})),
    ([None, None], ([None, None], {})),
    # an int beyond int64 (the one-by-one path), whatever else is in the chunk
    ([INT64_MAX + 1, 3, -2], ([None, 3, None], {0: TOO_BIG, 2: NEGATIVE})),
    ([INT64_MAX + 1, "3", None], ([None, 3, None], {0: TOO_BIG})),
    ([], ([], {})),
])
def test_int_column_paths(values: list[object],
                          expected: tuple[list[int | None], dict[int, str]]) -> None:
    assert column(values) == expected


@pytest.mark.parametrize("values,expected", [
    ([1, 0, 2], ([1, None, 2], {1: ZERO})),  # smallest=1: zero goes to the rule, which refuses
    ([0.0, "0", 3], ([None, None, 3], {0: ZERO, 1: ZERO})),
    ([INT64_MAX + 1, 0], ([None, None], {0: TOO_BIG, 1: ZERO})),
])
def test_int_column_with_the_id_rule(values: list[object],
                                     expected: tuple[list[int | None], dict[int, str]]) -> None:
    assert column(values, rule=coerce_id, smallest=1) == expected


any_value = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                      st.floats(allow_nan=True), st.text(max_size=5))


@given(st.lists(any_value, max_size=12))
def test_int_column_agrees_with_the_rule_one_value_at_a_time(values: list[object]) -> None:
    numbers, problems = column(values)
    from etl.integers import coerce_int

    expected = [coerce_int(v) for v in values]
    assert numbers == [n for n, _ in expected]
    assert problems == {i: p for i, (_, p) in enumerate(expected) if p is not None}


def texts(values: list[object]) -> tuple[list[str | None], dict[int, str]]:
    kept, problems = text_column(values)
    assert all(v is None or type(v) is str for v in kept)
    return kept, problems


@pytest.mark.parametrize("values,expected", [
    (["a", None, "", " b "], (["a", None, "", " b "], {})),  # kept exactly
    (["a", 5, ["x"], None, True], (["a", None, None, None, None],
                                   {1: NOT_A_STRING, 2: NOT_A_STRING, 4: NOT_A_STRING})),
    (["a", "\ud800", None], (["a", None, None], {1: INVALID_UNICODE})),
    ([5, "x\udfffy", "ok"], ([None, None, "ok"], {0: NOT_A_STRING, 1: INVALID_UNICODE})),
    ([], ([], {})),
])
def test_text_column(values: list[object],
                     expected: tuple[list[str | None], dict[int, str]]) -> None:
    assert texts(values) == expected


@pytest.mark.parametrize("value,expected", [
    ({"id": 1, "name": "café"}, '{"id": 1, "name": "café"}'),  # UTF-8 kept
    ({"name": "\ud800"}, '{"name": "\\ud800"}'),  # a lone surrogate as an ASCII escape
    ({1: "non-string key is fine in JSON"}, '{"1": "non-string key is fine in JSON"}'),
    ({(1, 2): "x"}, '"{(1, 2): \'x\'}"'),  # not JSON-shaped: its repr as text
    ([1, None, True], "[1, null, true]"),
])
def test_raw_json(value: object, expected: str) -> None:
    assert raw_json(value) == expected


def test_raw_json_of_a_value_json_cannot_encode_is_its_text() -> None:
    assert raw_json({"when": {1, 2}}) == '{"when": "{1, 2}"}'  # default=str


@pytest.mark.parametrize("value,expected", [
    ("17x", "17x"), ("café", "café"), ("\ud800", '"\\ud800"'), (17, "17"), (None, "null"),
    (["a"], '["a"]'), (1.5, "1.5"), (True, "true"),
])
def test_raw_text(value: object, expected: str) -> None:
    assert raw_text(value) == expected


def test_field_values_reads_every_block_and_missing_fields_are_none() -> None:
    rows = [{"a": i, "b": i * 10} for i in range(7)]
    del rows[4]["b"], rows[1]["a"]
    assert field_values(rows, ("a", "b"), block=3) == {
        "a": [0, None, 2, 3, 4, 5, 6], "b": [0, 10, 20, 30, None, 50, 60]}
    assert field_values(rows, ("c",), block=2) == {"c": [None] * 7}
    assert field_values([], ("a",)) == {"a": []}


def test_raw_json_of_a_value_that_contains_itself_is_its_repr() -> None:
    # json refuses a circular structure (ValueError); the row is still shown, as its repr.
    loop: list[object] = [1]
    loop.append(loop)
    assert raw_json(loop) == '"[1, [...]]"'


def test_bytes_that_are_not_utf8_are_not_a_string() -> None:
    assert texts([b"\xff", "a", None]) == ([None, "a", None], {0: NOT_A_STRING})


@pytest.mark.parametrize("values,clean", [
    ([], True), ([None], True), (["a", None, ""], True), (["café", "漢字", None], True),
    (["a", "\ud800"], False), (["a", 1], False), ([True], False), ([b"a"], False),
    (["\ud83d", "\ude00"], False),  # two halves in two values are no pair
])
def test_clean_text(values: list[object], clean: bool) -> None:
    assert clean_text(values) is clean


@settings(deadline=None)  # the first example pays for building pyarrow's kernels
@given(st.lists(st.one_of(st.none(), st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)), max_size=30))
def test_arrow_strings_is_what_pyarrow_builds(values: list[str | None]) -> None:
    built = arrow_strings(values)
    assert built.equals(pa.array(values, type=pa.string()))
    built.validate(full=True)
    assert built.null_count == values.count(None)


@pytest.mark.parametrize("offset", [0, 1, 3, 9])
def test_numpy_of_reads_values_and_nulls_at_any_offset(offset: int) -> None:
    seconds = [0, None, 86_400, None, -1, 1_700_000_000, None, 5, 6, 7, 8, None]
    array = pa.array(seconds, type=pa.timestamp("s")).slice(offset)
    got = numpy_of(array, "datetime64[s]", null=np.datetime64("NaT"))
    assert got.dtype == np.dtype("datetime64[s]")
    assert [None if np.isnat(v) else int(v.astype(np.int64)) for v in got] == seconds[offset:]
    codes = pa.array([3, 1, 4, 1, 5, 9, 2, 6], type=pa.int32()).slice(offset % 8)
    assert numpy_of(codes, "int32").tolist() == codes.to_pylist()
    flags = pa.array([True, False, True, True, False, False, True, False, True]).slice(offset % 9)
    assert numpy_of(flags, "bool").tolist() == flags.to_pylist()
    with pytest.raises(ValueError, match="nulls"):
        numpy_of(pa.array([1, None], type=pa.int32()), "int32")


@pytest.mark.parametrize("mask", [None, [False] * 5, [True, False, False, True, False]])
def test_arrow_of_is_what_pyarrow_builds(mask: list[bool] | None) -> None:
    values = np.array([0, -1, 86_400, 1_700_000_000, 5], dtype="datetime64[s]")
    got = arrow_of(values, pa.timestamp("s"), None if mask is None else np.array(mask))
    want = pa.array(values, type=pa.timestamp("s"), mask=None if mask is None else np.array(mask))
    got.validate(full=True)
    assert got.equals(want)
    flags = np.array([True, False, False, True, True])
    got_flags = arrow_of(flags, pa.bool_(), None if mask is None else np.array(mask))
    assert got_flags.equals(pa.array(flags, mask=None if mask is None else np.array(mask)))


def test_the_common_path_leaves_pandas_unimported() -> None:
    """pyarrow imports pandas on its first ``pa.array`` of Python data, first ``to_numpy`` and
    first Python scalar: text and timestamps in a UTC source, absent, empty, bad and
    non-string ones included, must make none of those calls (a sync would pay ~0.15 s for
    pandas otherwise)."""
    script = (
        "import sys\n"
        "from etl.transform.values import text_column, arrow_strings\n"
        "from etl.transform.timestamps import to_utc_text\n"
        "texts = ['library', None, 'caf\u00e9', ''] * 50\n"
        "assert text_column(texts) == (texts, {})\n"
        "assert text_column(['a', 5, '\\ud800'])[1] == {1: 'not a string', "
        "2: 'invalid Unicode'}\n"
        "assert len(arrow_strings(texts)) == 200\n"
        "stamps = ['2026-09-30 07:07:45', None, '2026-09-30T07:07:45Z', "
        "'2026-09-30T15:07:45.5+08:00', '', 'soon', '0000-01-01 00:00:00', 7, "
        "'\\ud800'] * 50\n"
        "texts, problems = to_utc_text(stamps)\n"
        "assert texts[:9] == ['2026-09-30T07:07:45Z', None, '2026-09-30T07:07:45Z', "
        "'2026-09-30T07:07:45Z', None, None, None, None, None], texts[:9]\n"
        "assert [problems[i] for i in (4, 5, 6, 7, 8)] == ['empty timestamp', "
        "'unparseable timestamp', 'unparseable timestamp', 'not a string', "
        "'unparseable timestamp'], problems\n"
        "print('pandas' in sys.modules)\n")
    out = fresh_python(script)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
