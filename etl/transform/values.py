"""Raw values of one field -> typed arrays, plus the problems found (pure).

The per-value rules of ``etl.transform.frames`` (see its docstring): integers by ``etl.integers``
(int64, integral strings and floats accepted), text kept exactly, and the text of a bad value as
it will be shown in ``raw_value`` / ``raw``. ``field_values`` takes the fields out of the rows
first. The common case (every value already the right type) runs in numpy or Arrow; only values
that are not go through Python one by one. No pandas here: a sync binds these columns as they
are and never imports it (``etl.transform.frames``).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any, cast

import numpy as np
import pyarrow as pa

# The integer rule and its problem words live in etl.integers (the extractor uses it too).
from etl.integers import coerce_int

NOT_A_STRING = "not a string"
INVALID_UNICODE = "invalid Unicode"

# Encoders built once (json.dumps with options builds a new encoder on every call).
_JSON_UTF8 = json.JSONEncoder(ensure_ascii=False, default=str)
_JSON_ASCII = json.JSONEncoder(default=str)
_NONE = type(None)
_TEXT_TYPES = {str, _NONE}


def raw_json(value: Any) -> str:
    """A row as JSON text for ``rejects.raw`` (UTF-8 kept; ASCII escapes only for surrogates)."""
    try:
        text = _JSON_UTF8.encode(value)
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _JSON_ASCII.encode(value)
    except (TypeError, ValueError):  # not JSON-shaped at all (e.g. non-string keys)
        text = json.dumps(repr(value))
    return text


def raw_text(value: Any) -> str:
    """A value as text for ``raw_value``: strings as they are, anything else as JSON."""
    if not isinstance(value, str):
        return raw_json(value)
    text = value
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot be stored as UTF-8: keep them visible as JSON escapes.
        text = _JSON_ASCII.encode(value)
    return text


IntRule = Callable[[Any], tuple[int | None, str | None]]


def int_column(values: list[Any], rule: IntRule = coerce_int, *, smallest: int = 0
               ) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Raw values -> (int64 array, valid mask, {position: problem}) under ``rule``.

    ``rule`` (``etl.integers.coerce_int`` or ``coerce_id``) judges every value, except that
    plain ints from ``smallest`` to int64's maximum, which ``rule`` returns unchanged, are taken
    as they are in numpy (the common case: no Python call per value).
    """
    n = len(values)
    problems: dict[int, str] = {}
    try:
        if set(map(type, values)) <= {int}:
            numbers = np.array(values, dtype=np.int64).reshape(n)
            judge = np.flatnonzero(numbers < smallest)
        else:
            # Exact type check: bool is a subclass of int but never a number here.
            is_int = np.fromiter(map(operator.is_, map(type, values), repeat(int)), bool, n)
            plain = [v if ok else 0 for v, ok in zip(values, is_int.tolist(), strict=True)]
            numbers = np.array(plain, dtype=np.int64).reshape(n)
            judge = np.flatnonzero(~is_int | (numbers < smallest))
    except OverflowError:  # a plain int beyond int64: judge them all one by one
        numbers = np.zeros(n, dtype=np.int64)
        judge = np.arange(n)
    valid = np.ones(n, dtype=bool)
    for i in map(int, judge):
        number, problem = rule(values[i])
        if number is None:
            valid[i] = False
            if problem is not None:
                problems[i] = problem
        else:
            numbers[i] = number
    return numbers, valid, problems


def clean_text(values: list[Any]) -> bool:
    """Whether every value is a string with a UTF-8 form, or None: the common case, checked
    in C. The strings are joined and the join encoded, unless it is ASCII (known at once)."""
    if not set(map(type, values)) <= _TEXT_TYPES:
        return False
    joined = "".join(filter(None, values))
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")  # a lone surrogate (JSON "\ud800") has no UTF-8 form
    except UnicodeEncodeError:
        return False
    return True


def text_column(values: list[Any]) -> tuple[list[str | None], dict[int, str]]:
    """Raw values -> (the same values with None for each bad one, {position: problem}); text is
    kept exactly. Clean input comes back as the very list given (no copy)."""
    if clean_text(values):
        return values, {}
    problems: dict[int, str] = {}
    is_text = np.fromiter(map(isinstance, values, repeat((str, _NONE))), bool, len(values))
    values = list(values)
    for i in np.flatnonzero(~is_text).tolist():
        problems[i] = NOT_A_STRING
        values[i] = None
    if clean_text(values):  # the usual dirty chunk: a few non-strings, no lone surrogate
        return values, problems
    for i, value in enumerate(values):  # a lone surrogate: found one value at a time
        if value is None:
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problems[i] = INVALID_UNICODE
            values[i] = None
    return values, problems


def arrow_strings(values: list[str | None]) -> pa.Array | None:
    """``clean_text`` values as an Arrow ``string`` array, built from its buffers; None when
    their UTF-8 text does not fit the array's 32-bit offsets (2 GiB: split the values).

    Not ``pa.array``: pyarrow imports pandas on the first conversion of Python or numpy data
    (its pandas shim asks whether the input is a pandas object), ~0.15-0.2 s of a sync's GIL
    time that a sync has no other use for. Also ``to_numpy`` on an Arrow array does so; see
    ``numpy_of`` and ``arrow_of``.
    """
    n = len(values)
    nulls = values.count(None)
    texts: list[str] = cast("list[str]", values) if nulls == 0 else [v or "" for v in values]
    joined = "".join(texts)
    if joined.isascii():
        data = joined.encode("ascii")
        lengths = np.fromiter(map(len, texts), np.int64, n)
    else:
        encoded = [t.encode("utf-8") for t in texts]
        data = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), np.int64, n)
    if int(lengths.sum()) > np.iinfo(np.int32).max:
        return None
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    validity = None
    if nulls:
        present = np.fromiter(map(operator.is_not, values, repeat(None)), bool, n)
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets),
                                                  pa.py_buffer(data)], null_count=nulls)


def numpy_of(array: pa.Array, dtype: str, null: Any = None) -> np.ndarray:
    """A fixed-width Arrow array (booleans, integers, timestamps) as a numpy array of ``dtype``,
    ``null`` where the array has nulls, read from its buffers (``to_numpy`` imports pandas, as
    ``arrow_strings`` says). An array with nulls and no ``null`` given raises ValueError."""
    n, start = len(array), array.offset
    validity, data = array.buffers()[:2]
    if pa.types.is_boolean(array.type):  # one bit per value
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        out = bits[start:start + n].astype(dtype)
    else:
        out = np.frombuffer(data, dtype=dtype, count=start + n)[start:].copy()
    if array.null_count:
        if null is None:
            raise ValueError(f"{array.null_count} nulls in an array read without a null value")
        bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        out[bits[start:start + n] == 0] = null
    return out


def arrow_of(values: np.ndarray, type_: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """A numpy array of fixed-width values as an Arrow array of ``type_`` (null where ``mask``
    is True), built from buffers: ``pa.array`` would import pandas (``arrow_strings``)."""
    n = len(values)
    validity, nulls = None, 0
    if mask is not None and mask.any():
        nulls = int(mask.sum())
        validity = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    if pa.types.is_boolean(type_):  # one bit per value
        data = pa.py_buffer(np.packbits(values.astype(bool), bitorder="little"))
    else:
        data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(type_, n, [validity, data], null_count=nulls)


def field_values(rows: list[dict[str, Any]], fields: Sequence[str], *, block: int = 2000
                 ) -> dict[str, list[Any]]:
    """Several fields of every row, as lists (None where absent).

    map(itemgetter) runs in C, about 30 % faster than a ``.get()`` comprehension; going through
    the rows a block at a time keeps each block's dicts in cache for all fields (~15 % more,
    measured). Only a block where a field is missing from some row takes the ``.get()`` way.
    """
    out: dict[str, list[Any]] = {field: [] for field in fields}
    getters = [(out[field], field, operator.itemgetter(field)) for field in fields]
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        for values, field, getter in getters:
            done = len(values)
            try:
                values.extend(map(getter, part))
            except KeyError:
                del values[done:]
                values.extend(map(dict.get, part, repeat(field)))
    return out
