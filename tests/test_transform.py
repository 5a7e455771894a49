"""Tests for etl.transform.frames: JSON fixtures in, whole frames compared."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.errors import ConfigError, InternalError
from etl.transform.frames import (
    IMAGE_DTYPES,
    ISSUE_DTYPES,
    REJECT_DTYPES,
    Transformed,
    transform_rows,
)

FIXTURES = Path(__file__).parent / "fixtures" / "transform"


def frame(rows: list[dict[str, Any]], dtypes: dict[str, str]) -> pd.DataFrame:
    """Expected frame: every column of ``dtypes``, keys missing from a row are NULL."""
    return pd.DataFrame({
        name: pd.array([row.get(name) for row in rows], dtype=dtype)  # type: ignore[call-overload]
        for name, dtype in dtypes.items()
    })


def assert_transformed(result: Transformed, images: list[dict[str, Any]],
                       rejects: list[dict[str, Any]], issues: list[dict[str, Any]]) -> None:
    pd.testing.assert_frame_equal(result.images, frame(images, IMAGE_DTYPES))
    pd.testing.assert_frame_equal(result.rejects, frame(rejects, REJECT_DTYPES))
    pd.testing.assert_frame_equal(result.quality_issues, frame(issues, ISSUE_DTYPES))


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_fixture(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    result = transform_rows(case["rows"], page_offsets=case.get("page_offsets"),
                            source_timezone=case.get("source_timezone", "UTC"))
    assert_transformed(result, case["images"], case["rejects"], case["quality_issues"])


def test_fixture_set_is_complete() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == {
        "counts", "duplicates", "ids", "text", "timestamps_dst", "timestamps_utc",
        "timestamps_zones",
    }


def test_empty_input_gives_typed_empty_frames() -> None:
    result = transform_rows([], page_offsets=[])
    assert_transformed(result, [], [], [])
    assert list(result.images.columns) == list(IMAGE_DTYPES)
    assert {k: str(v) for k, v in result.images.dtypes.items()} == IMAGE_DTYPES


def test_only_rejects_gives_typed_empty_images() -> None:
    result = transform_rows([None, {"id": False}], page_offsets=[300, 300])
    assert_transformed(result, [], [
        {"page_offset": 300, "reason": "not a JSON object", "raw": "null"},
        {"page_offset": 300, "reason": "invalid id: boolean value", "raw": '{"id": false}'},
    ], [])


def test_clean_rows_full_frame_and_total_range_ignored() -> None:
    rows = [
        {"id": 10, "user": "official", "name": "nginx", "namespace": "library",
         "description": "web", "star_count": 5, "pull_count": 2**40, "collection_id": 3,
         "last_updated": "2017-10-16 21:33:44", "total_range": 2},
        {"id": 11, "user": "official", "name": "redis", "namespace": "library",
         "description": "kv", "star_count": 0, "pull_count": 1, "collection_id": 0,
         "last_updated": "2017-10-17 01:02:03", "total_range": 2},
    ]
    result = transform_rows(rows, page_offsets=[0, 0])
    expected = [{k: v for k, v in row.items() if k != "total_range"} | {"page_offset": 0}
                for row in rows]
    expected[0]["last_updated"] = "2017-10-16T21:33:44Z"
    expected[1]["last_updated"] = "2017-10-17T01:02:03Z"
    assert_transformed(result, expected, [], [])


@pytest.mark.parametrize(("values", "kept", "problems"), [
    # all plain ints (the vectorised path), one negative
    ([5, -2, 7], [5, None, 7], {1: ("-2", "negative value")}),
    # all plain ints, one beyond int64 (the overflow fallback)
    ([5, 2**64, 7], [5, None, 7], {1: ("18446744073709551616", "beyond int64 range")}),
    # ints and nulls
    ([None, 3, None], [None, 3, None], {}),
])
def test_count_column_paths(values: list[Any], kept: list[Any],
                            problems: dict[int, tuple[str, str]]) -> None:
    rows = [{"id": i + 1, "pull_count": v} for i, v in enumerate(values)]
    result = transform_rows(rows)
    assert_transformed(
        result,
        [{"id": i + 1, "pull_count": v} for i, v in enumerate(kept)],
        [],
        [{"image_id": i + 1, "field": "pull_count", "raw_value": raw, "problem": problem}
         for i, (raw, problem) in sorted(problems.items())],
    )


@pytest.mark.parametrize(("zone", "values", "expected"), [
    ("UTC", ["2017-10-16 21:33:44", "2017-10-16T21:33:45"],
     ["2017-10-16T21:33:44Z", "2017-10-16T21:33:45Z"]),
    ("Asia/Shanghai", ["2017-09-11T03:00:02.542841141Z", "2017-09-11 03:00:03Z"],
     ["2017-09-11T03:00:02Z", "2017-09-11T03:00:03Z"]),
    ("UTC", ["2017-09-11T03:00:02.5", "2017-09-11T03:00:03.000000+00:00"],
     ["2017-09-11T03:00:02Z", "2017-09-11T03:00:03Z"]),
    ("UTC", ["2017-01-01T07:00:00+08:00", "2017-01-01 07:00:00-0100"],
     ["2016-12-31T23:00:00Z", "2017-01-01T08:00:00Z"]),
    ("Asia/Shanghai", ["2017-01-01 07:00:00", "2017-01-01 08:00:00"],
     ["2016-12-31T23:00:00Z", "2017-01-01T00:00:00Z"]),
])
def test_clean_timestamp_chunks(zone: str, values: list[str], expected: list[str]) -> None:
    """Chunks without a bad value (the fast paths: text reused when already UTC)."""
    result = transform_rows([{"id": i + 1, "last_updated": v} for i, v in enumerate(values)],
                            source_timezone=zone)
    assert_transformed(result, [{"id": i + 1, "last_updated": v} for i, v in enumerate(expected)],
                       [], [])


@pytest.mark.parametrize(("zone", "values", "expected"), [
    # A 30-minute DST gap (02:00 -> 02:30, +10:30 -> +11:00): every time inside it moves to
    # 02:30 local, the first instant after the gap, never to 03:00.
    ("Australia/Lord_Howe",
     ["2026-10-04 01:59:59", "2026-10-04 02:00:00", "2026-10-04 02:10:00",
      "2026-10-04 02:29:59", "2026-10-04 02:30:00"],
     ["2026-10-03T15:29:59Z", "2026-10-03T15:30:00Z", "2026-10-03T15:30:00Z",
      "2026-10-03T15:30:00Z", "2026-10-03T15:30:00Z"]),
    # A 1-hour gap (02:00 -> 03:00, -05:00 -> -04:00): 02:10 moves to 03:00 local.
    ("America/New_York",
     ["2026-03-08 01:59:59", "2026-03-08 02:10:00", "2026-03-08 02:59:59",
      "2026-03-08 03:00:00"],
     ["2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", "2026-03-08T07:00:00Z",
      "2026-03-08T07:00:00Z"]),
    # A whole skipped day (Samoa crossed the date line): 2011-12-30 never happened in Apia.
    ("Pacific/Apia", ["2011-12-29 23:59:59", "2011-12-30 12:00:00", "2011-12-31 00:00:00"],
     ["2011-12-30T09:59:59Z", "2011-12-30T10:00:00Z", "2011-12-30T10:00:00Z"]),
])
def test_times_in_a_dst_gap_move_to_the_first_instant_after_it(
        zone: str, values: list[str], expected: list[str]) -> None:
    result = transform_rows([{"id": i + 1, "last_updated": v} for i, v in enumerate(values)],
                            source_timezone=zone)
    assert_transformed(result, [{"id": i + 1, "last_updated": v} for i, v in enumerate(expected)],
                       [], [])


@pytest.mark.parametrize(("zone", "expected"), [
    # Year 1 and 9999 wall times: local mean time offsets, results outside 0001-9999 rejected.
    ("America/New_York", ["0001-01-01T04:56:02Z", None, "9999-12-31T06:00:00Z"]),
    ("Asia/Shanghai", [None, "9999-12-31T15:59:59Z", "9999-12-30T17:00:00Z"]),
])
def test_timestamps_at_the_ends_of_the_calendar(zone: str, expected: list[str | None]) -> None:
    values = ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "9999-12-31 01:00:00"]
    result = transform_rows([{"id": i + 1, "last_updated": v} for i, v in enumerate(values)],
                            source_timezone=zone)
    assert_transformed(
        result,
        [{"id": i + 1, "last_updated": v} for i, v in enumerate(expected)],
        [],
        [{"image_id": i + 1, "field": "last_updated", "raw_value": values[i],
          "problem": "unparseable timestamp"} for i, v in enumerate(expected) if v is None],
    )


def test_fields_missing_from_some_rows_of_a_large_chunk() -> None:
    """Columns are read in blocks of rows; a field first missing in a later block still works."""
    rows = [{"id": i, "name": f"n{i}", "user": "u", "description": f"d{i}"}
            for i in range(1, 4501)]
    del rows[2300]["description"]  # second block
    del rows[4400]["user"]  # third block
    rows[4401]["user"] = None
    result = transform_rows(rows)
    expected = [{"id": i, "name": f"n{i}", "user": "u", "description": f"d{i}"}
                for i in range(1, 4501)]
    del expected[2300]["description"]
    del expected[4400]["user"]
    del expected[4401]["user"]
    assert_transformed(result, expected, [], [])


def test_without_page_offsets_later_means_later_position() -> None:
    result = transform_rows([{"id": 1, "name": "a"}, {"id": 2}, {"id": 1, "name": "b"}, "x"])
    assert_transformed(
        result,
        [{"id": 2}, {"id": 1, "name": "b"}],
        [{"page_offset": None, "reason": "not a JSON object", "raw": '"x"'}],
        [{"image_id": 1, "field": "id", "raw_value": "1", "problem": "duplicate id in scan"}],
    )


def test_tuple_rows_and_dict_subclasses_are_accepted() -> None:
    class Row(dict):  # type: ignore[type-arg]
        pass

    result = transform_rows((Row(id=1, name="a"),), page_offsets=(0,))
    assert_transformed(result, [{"id": 1, "name": "a", "page_offset": 0}], [], [])


def test_unknown_timezone_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        transform_rows([{"id": 1}], source_timezone="Mars/Olympus")
    assert str(caught.value) == ("unknown time zone 'Mars/Olympus' (expected an IANA name such "
                                 "as 'UTC' or 'Asia/Shanghai')")


def test_page_offsets_length_mismatch_is_internal_error() -> None:
    with pytest.raises(InternalError) as caught:
        transform_rows([{"id": 1}, {"id": 2}], page_offsets=[0])
    assert str(caught.value) == "page_offsets has 1 entries for 2 rows"


# One id rule: what the transform loads as an id is exactly what the extractor's completeness
# proof and duplicate detection count as one (etl.integers.coerce_id, used by both).
ID_CASES = [  # raw id, the id it is, or the reject reason
    (17, 17, None), (17.0, 17, None), ("+17", 17, None), (" 17 ", 17, None), ("17.0", 17, None),
    ("17", 17, None), (2**63 - 1, 2**63 - 1, None),
    (0, None, "invalid id: zero"), ("0", None, "invalid id: zero"), (0.0, None, "invalid id: zero"),
    (-5, None, "invalid id: negative value"), ("-5", None, "invalid id: negative value"),
    (True, None, "invalid id: boolean value"), (2**63, None, "invalid id: beyond int64 range"),
    (17.5, None, "invalid id: fractional value"), ("17.5", None, "invalid id: fractional value"),
    ("x", None, "invalid id: non-numeric value"), ([17], None, "invalid id: non-numeric value"),
    (float("inf"), None, "invalid id: non-finite value"), (None, None, "missing id"),
]


@pytest.mark.parametrize("raw,expected,reason", ID_CASES)
def test_one_id_rule_for_transform_and_extractor(raw: Any, expected: int | None,
                                                 reason: str | None) -> None:
    from etl.extract.paging import PassLedger
    from etl.integers import usable_ids  # what the extractor asks of a page

    row = {"id": raw, "name": "x"}
    alone = transform_rows([row])
    # In a chunk of plain ints (the vectorised path) the verdict must not change.
    mixed = transform_rows([{"id": 1}, row, {"id": 2}])
    for result, others in ((alone, []), (mixed, [1, 2])):
        assert sorted(result.images["id"].tolist()) == sorted(
            others + ([expected] if expected is not None else []))
        assert result.rejects["reason"].tolist() == ([] if reason is None else [reason])
    assert usable_ids([row]) == [expected]
    assert usable_ids([{"id": 1}, row, {"id": 2}]) == [1, expected, 2]
    ledger = PassLedger(0)
    ledger.record([row, {"id": 17}], 2)
    # Two spellings of one id are a repeat; an unusable id is a row without id.
    assert (ledger.duplicates, ledger.rows_without_id) == (
        (1, 0) if expected == 17 else (0, 1) if expected is None else (0, 0))


# --- properties -----------------------------------------------------------------------------

INT64_MAX = 2**63 - 1
UTC_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

text = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800", "a\udfffb", "", " 7 "]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), text)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
ids = st.one_of(st.integers(-3, 40), st.integers(2**63 - 2, 2**63 + 1),
                st.integers(1, 40).map(str), st.integers(1, 40).map(lambda i: f" {i}.0 "),
                st.sampled_from([1.0, 2.5, True, None, "x"]), json_values)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat(sep=" ")),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.sampled_from(["2021-10-31 02:30:00", "2021-03-28T02:30:00.123+0100", "9999-12-31 23:59:59",
                     "0001-01-01 00:00:00", "2021-11-07 01:30:00"]),
    json_values,
)
rows = st.one_of(
    st.fixed_dictionaries({}, optional={
        "id": ids, "namespace": st.sampled_from(["a", "b", None, 3]),
        "name": st.sampled_from(["x", "y", "", None]), "user": json_values,
        "description": json_values, "star_count": json_values, "pull_count": json_values,
        "collection_id": json_values, "last_updated": timestamps,
    }),
    json_values,
)


def usable_id(row: Any) -> int | None:
    """Independent statement of the id rule."""
    if not isinstance(row, dict):
        return None
    value = row.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if math.isfinite(value) and value.is_integer() else None
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([+-]?[0-9]+)(\.0*)?\s*", value, re.ASCII)
        value = int(match.group(1)) if match else None
    if isinstance(value, int) and 0 < value <= INT64_MAX:
        return value
    return None


def utf8_ok(series: pd.Series) -> bool:
    for value in series.dropna():
        value.encode("utf-8")  # raises on a lone surrogate
    return True


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, max_size=25),
       st.sampled_from(["UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York"]))
def test_every_row_lands_in_images_or_rejects(raw_rows: list[Any], zone: str) -> None:
    offsets = [(i // 7) * 100 for i in range(len(raw_rows))]
    result = transform_rows(raw_rows, page_offsets=offsets, source_timezone=zone)

    expected_ids = [usable_id(row) for row in raw_rows]
    kept = {i for i in expected_ids if i is not None}
    assert sorted(result.images["id"].tolist()) == sorted(kept)
    assert len(result.rejects) == expected_ids.count(None)
    duplicates = result.quality_issues[result.quality_issues["field"] == "id"]
    assert len(duplicates) == len(expected_ids) - expected_ids.count(None) - len(kept)

    assert {k: str(v) for k, v in result.images.dtypes.items()} == IMAGE_DTYPES
    assert {k: str(v) for k, v in result.rejects.dtypes.items()} == REJECT_DTYPES
    assert {k: str(v) for k, v in result.quality_issues.dtypes.items()} == ISSUE_DTYPES
    assert all(UTC_TEXT.fullmatch(v) for v in result.images["last_updated"].dropna())
    for column in ("star_count", "pull_count", "collection_id"):
        assert (result.images[column].dropna() >= 0).all()
    for series in (result.rejects["raw"], result.quality_issues["raw_value"],
                   result.images["description"]):
        assert utf8_ok(series)
    for raw in result.rejects["raw"]:
        json.loads(raw)  # reject raw is JSON (ASCII escapes only when UTF-8 cannot hold it)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows, max_size=30), st.sampled_from(["UTC", "America/New_York"]))
def test_a_chunk_equals_its_rows_one_by_one(raw_rows: list[Any], zone: str) -> None:
    """The vectorised paths (whole chunk) agree with single-row transforms, value for value."""
    ids_seen: set[int] = set()
    unique = []
    for row in raw_rows:
        key = usable_id(row)
        if key not in ids_seen:
            unique.append(row)
        if key is not None:
            ids_seen.add(key)
    whole = transform_rows(unique, source_timezone=zone)
    # (the empty transform keeps concat happy when there are no rows at all)
    parts = [transform_rows([row], source_timezone=zone) for row in unique] + [transform_rows([])]
    images = pd.concat([p.images for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(whole.images, images.astype(IMAGE_DTYPES))
    rejects = pd.concat([p.rejects for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(whole.rejects, rejects.astype(REJECT_DTYPES))

    def by_image(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["field"] != "namespace/name"]
        return frame.sort_values(["image_id", "field"], kind="stable").reset_index(drop=True)

    issues = pd.concat([p.quality_issues for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(by_image(whole.quality_issues),
                                  by_image(issues.astype(ISSUE_DTYPES)))


def test_the_package_exports_the_transform_without_importing_pandas() -> None:
    import etl.transform
    from etl.transform.frames import transform_rows as home

    code = ("import sys, etl.transform; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out.strip() == "[]"
    assert etl.transform.__all__ == ["IMAGE_DTYPES", "ISSUE_DTYPES", "REJECT_DTYPES",
                                     "Transformed", "transform_rows"]
    assert etl.transform.transform_rows is home
    assert etl.transform.IMAGE_DTYPES is IMAGE_DTYPES and etl.transform.Transformed is Transformed
