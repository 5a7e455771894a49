"""Snapshot exports: partitions, both formats read back two ways, manifest, replace, backfill."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import etl.publish.export
from etl.cli.app import main
from etl.errors import ConfigError
from etl.publish.export import COLUMNS, export_snapshots
from etl.publish.manifest import ManifestText
from tests.fixtures.report_db import add_image, add_run, new_db

# Every run of this database read the default region: one source= level above the dates.
SRC = "source=cn-north-4"
BIG = 2**31 + 5  # beyond int32: must survive as int64
NGINX_DESC = 'Official build of Nginx, the "fast" web server\nsecond line, with commas'
CJK_DESC = "多语言描述，含逗号, emoji 😀 and \"quotes\""


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    """Runs: 1 (11-01 ok), 2 (11-02 failed), 3 and 4 (11-02 ok, 4 later: wins), 5 (11-03
    partial), 6 (11-04 ok, runs.snapshot_date NULL as older loaders left it), 7 (11-05 failed)."""
    path = tmp_path / "swr.db"
    conn = new_db(path)
    add_image(conn, 1, "nginx", description=NGINX_DESC, collection_id=10, last_run=6)
    add_image(conn, 2, "中文镜像", namespace="官方", description=CJK_DESC, user=None, last_run=4)
    add_image(conn, 3, "big", namespace="acme", description=None, last_run=6)
    add_image(conn, 4, "empty", namespace="acme", description="", collection_id=0, last_run=4)
    add_run(conn, 1, "2026-11-01", counts={1: 100, 2: BIG, 3: (None, None), 4: 0})
    add_run(conn, 2, "2026-11-02", status="failed", counts={1: 111})
    add_run(conn, 3, "2026-11-02", hour=1, counts={1: 150, 2: BIG + 1})
    add_run(conn, 4, "2026-11-02", hour=3, counts={1: 160, 2: (BIG + 20, 2**33), 4: 5})
    add_run(conn, 5, "2026-11-03", status="partial", counts={1: 170})
    add_run(conn, 6, "2026-11-04", counts={1: 180, 3: (7, 2)}, set_snapshot_date=False)
    add_run(conn, 7, "2026-11-05", status="failed", counts={1: 999})
    conn.close()
    return path


def db_rows(path: Path, run_id: int, date: str) -> list[tuple[Any, ...]]:
    """The partition as the database has it, by a query independent of etl.publish.export."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT i.id, i.namespace, i.name, i.user, i.description, s.star_count, s.pull_count, "
        "i.collection_id, s.last_updated, s.run_id, ?, s.captured_at, s.source "
        "FROM image_snapshots s JOIN images i ON i.source = s.source AND i.id = s.image_id "
        "WHERE s.run_id = ? ORDER BY i.id", (date, run_id),
    ).fetchall()
    conn.close()
    return rows


def frame_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    frame = frame[list(COLUMNS)].astype(object)
    frame = frame.where(frame.notna(), None)
    return sorted((tuple(r) for r in frame.itertuples(index=False, name=None)),
                  key=lambda r: r[0])


def test_default_exports_latest_successful_run_as_parquet(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = export_snapshots(db, out, fmt="parquet")
    part = out / SRC / "snapshot_date=2026-11-04" / "images.parquet"
    assert written == [part]
    assert sorted(p.name for p in part.parent.iterdir()) == ["images.parquet"]
    got = frame_rows(pd.read_parquet(part, dtype_backend="numpy_nullable"))
    assert got == [
        (1, "library", "nginx", "swr", NGINX_DESC, 1, 180, 10, "2026-11-04T00:00:00Z", 6,
         "2026-11-04", "2026-11-04T02:05:00Z", "cn-north-4"),
        (3, "acme", "big", "swr", None, 2, 7, None, "2026-11-04T00:00:00Z", 6,
         "2026-11-04", "2026-11-04T02:05:00Z", "cn-north-4"),
    ]
    pf = pq.ParquetFile(part)
    assert pf.schema_arrow.field("pull_count").type == pa.int64()
    assert pf.schema_arrow.field("star_count").type == pa.int64()
    assert pf.schema_arrow.metadata[b"schema_version"] == b"3"
    assert pf.schema_arrow.metadata[b"run_id"] == b"6"
    assert pf.schema_arrow.metadata[b"source"] == b"cn-north-4"
    assert {pf.metadata.row_group(0).column(i).compression
            for i in range(pf.metadata.num_columns)} == {"ZSTD"}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_all_dates_round_trip_through_pandas_and_pyarrow_dataset(db: Path, tmp_path: Path,
                                                                  fmt: str) -> None:
    out = tmp_path / "out"
    written = export_snapshots(db, out, fmt=fmt, all_dates=True)
    # 11-02: run 4 (the later success) beats 3; failed 2 and 7 and partial 5 never count.
    expected = {"2026-11-01": 1, "2026-11-02": 4, "2026-11-04": 6}
    assert written == [out / SRC / f"snapshot_date={d}" / f"images.{fmt}" for d in expected]

    for (date, run_id), path in zip(expected.items(), written, strict=True):
        want = db_rows(db, run_id, date)
        if fmt == "parquet":
            frame = pd.read_parquet(path, dtype_backend="numpy_nullable")
            assert frame_rows(frame) == want
        else:
            ints = [c for c, t in COLUMNS.items() if t == "int64"]
            frame = pd.read_csv(path, dtype={c: "Int64" for c in ints} | {
                c: str for c, t in COLUMNS.items() if t != "int64"},
                keep_default_na=False, na_values={c: [""] for c in ints})
            # pandas cannot tell NULL from "" in CSV; pyarrow can (checked below).
            assert frame_rows(frame) == [
                tuple("" if v is None and COLUMNS[c] == "string" else v
                      for c, v in zip(COLUMNS, row, strict=True)) for row in want
            ]

    if fmt == "parquet":
        fileformat: Any = "parquet"
    else:
        fileformat = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(
            column_types={c: pa.int64() if t == "int64" else pa.string()
                          for c, t in COLUMNS.items()},
            strings_can_be_null=True, quoted_strings_can_be_null=False))
    # The files carry snapshot_date, so pyarrow needs no partitioning to read the folder (for
    # Parquet, its "hive" shorthand would clash: see the test of every reader below).
    table = ds.dataset(out, format=fileformat,
                       partitioning="hive" if fmt == "csv" else None).to_table()
    got = sorted((tuple(str(r[c]) if c in ("snapshot_date", "source") else r[c] for c in COLUMNS)
                  for r in table.to_pylist()), key=lambda r: (r[10], r[0]))
    want_all = sorted((r for d, run in expected.items() for r in db_rows(db, run, d)),
                      key=lambda r: (r[10], r[0]))
    assert got == want_all
    assert len(got) == 4 + 3 + 2
    assert (2, "官方", "中文镜像", None, CJK_DESC, 2**33, BIG + 20) == got[5][:7]

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["schema_version"] == 3
    assert sorted(manifest["partitions"]) == [f"{SRC}/snapshot_date={d}" for d in expected]
    for date, path in zip(expected, written, strict=True):
        entry = manifest["partitions"][f"{SRC}/snapshot_date={date}"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (entry["rows"], entry["run_id"], entry["format"], entry["schema_version"]) == (
            len(db_rows(db, expected[date], date)), expected[date], fmt, 3)
        assert entry["path"] == f"{SRC}/snapshot_date={date}/images.{fmt}"
        assert entry["source"] == "cn-north-4"
        assert entry["columns"] == list(COLUMNS)


def test_csv_bytes_are_utf8_rfc4180_with_lf(db: Path, tmp_path: Path) -> None:
    [path] = export_snapshots(db, tmp_path / "out", fmt="csv", date="2026-11-01")
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == ",".join(f'"{c}"' for c in COLUMNS)
    assert "\r" not in text
    # nginx: embedded quotes doubled, comma and newline inside one quoted field.
    assert lines[1] == ('1,"library","nginx","swr","Official build of Nginx, the ""fast"" '
                        'web server')
    assert lines[2] == ('second line, with commas",1,100,10,"2026-11-01T00:00:00Z",1,'
                        '"2026-11-01","2026-11-01T02:05:00Z","cn-north-4"')
    # NULL user is an empty unquoted field; an empty description is "".
    assert lines[3].startswith('2,"官方","中文镜像",,"多语言描述，含逗号, emoji 😀 and ""quotes"""')
    assert lines[4] == ('3,"acme","big","swr",,,,,"2026-11-01T00:00:00Z",1,"2026-11-01",'
                        '"2026-11-01T02:05:00Z","cn-north-4"')
    assert lines[5].startswith('4,"acme","empty","swr","",1,0,0,')
    assert lines[6] == "" and len(lines) == 7


def test_reexport_replaces_partition_whole(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_snapshots(db, out, fmt="csv", date="2026-11-02")
    folder = out / SRC / "snapshot_date=2026-11-02"
    (folder / ".images.parquet.crashed.tmp").write_bytes(b"left by a killed export")
    conn = sqlite3.connect(db)
    add_run(conn, 8, "2026-11-02", hour=5, counts={1: 165})
    conn.commit()
    conn.close()

    [path] = export_snapshots(db, out, fmt="parquet", date="2026-11-02")
    assert sorted(p.name for p in folder.iterdir()) == ["images.parquet"]
    assert frame_rows(pd.read_parquet(path, dtype_backend="numpy_nullable")) == db_rows(
        db, 8, "2026-11-02")
    entry = json.loads((out / "_manifest.json").read_text())["partitions"][
        f"{SRC}/snapshot_date=2026-11-02"]
    assert (entry["run_id"], entry["rows"], entry["format"]) == (8, 1, "parquet")
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_backfill_merges_with_existing_manifest(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_snapshots(db, out, fmt="parquet", date="2026-11-01")
    first = json.loads((out / "_manifest.json").read_text())["partitions"]
    assert list(first) == [f"{SRC}/snapshot_date=2026-11-01"]
    export_snapshots(db, out, fmt="parquet")  # latest only: 11-04 is added, 11-01 kept
    merged = json.loads((out / "_manifest.json").read_text())["partitions"]
    assert list(merged) == [f"{SRC}/snapshot_date={d}" for d in ("2026-11-01", "2026-11-04")]
    assert merged[f"{SRC}/snapshot_date=2026-11-01"] == first[f"{SRC}/snapshot_date=2026-11-01"]
    export_snapshots(db, out, fmt="parquet", all_dates=True)
    assert list(json.loads((out / "_manifest.json").read_text())["partitions"]) == [
        f"{SRC}/snapshot_date={d}" for d in ("2026-11-01", "2026-11-02", "2026-11-04")]
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", SRC]
    assert sorted(p.name for p in (out / SRC).iterdir()) == [
        "snapshot_date=2026-11-01", "snapshot_date=2026-11-02", "snapshot_date=2026-11-04"]


def test_partial_runs_count_only_when_asked(db: Path, tmp_path: Path) -> None:
    [path] = export_snapshots(db, tmp_path / "o", fmt="parquet", date="2026-11-03",
                              include_partial=True)
    assert frame_rows(pd.read_parquet(path, dtype_backend="numpy_nullable"))[0][6] == 170


@pytest.mark.parametrize("kwargs,message", [
    ({"date": "2026-11-03"},
     "no successful run on 2026-11-03 in {db} (runs from 2026-11-01 to 2026-11-04)"),
    ({"date": "2026-13-01"}, "--date must be YYYY-MM-DD, got '2026-13-01'"),
    ({"date": "2026-11-01", "all_dates": True}, "--date and --all cannot be used together"),
    ({"fmt": "xlsx"}, "unknown export format 'xlsx': use csv or parquet"),
])
def test_bad_requests_are_config_errors(db: Path, tmp_path: Path, kwargs: dict[str, Any],
                                        message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        export_snapshots(db, tmp_path / "out", **kwargs)
    assert str(exc.value) == message.format(db=db)
    assert exc.value.exit_code == 2


def test_missing_empty_and_foreign_databases(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ConfigError) as exc:
        export_snapshots(missing, tmp_path / "out")
    assert str(exc.value) == f"database not found: {missing} (run 'swr-etl sync' first)"
    assert not missing.exists()

    empty = tmp_path / "empty.db"
    new_db(empty).close()
    with pytest.raises(ConfigError) as exc:
        export_snapshots(empty, tmp_path / "out")
    assert str(exc.value) == f"no successful run in {empty}: nothing to export"

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigError) as exc:
        export_snapshots(other, tmp_path / "out")
    assert str(exc.value) == (f"{other} is not an swr-etl database (no image_snapshots, images, "
                              "runs table); run 'swr-etl sync' first")

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError) as exc:
        export_snapshots(junk, tmp_path / "out")
    assert str(exc.value) == f"{junk} is not a SQLite database (left untouched)"
    assert not (tmp_path / "out").exists()


def test_cli_prints_partitions_and_exits_2_on_error(db: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["export", "--db", str(db), "--out", str(out), "--format", "csv", "--all"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.splitlines() == [
        str(out / SRC / f"snapshot_date={d}" / "images.csv")
        for d in ("2026-11-01", "2026-11-02", "2026-11-04")]
    with pytest.raises(SystemExit) as exc:
        main(["export", "--db", str(tmp_path / "x.db"), "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"swr-etl: error: database not found: {tmp_path / 'x.db'} "
                   "(run 'swr-etl sync' first)"]


def test_unwritable_destination_is_a_config_error(db: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the export folder should be")
    with pytest.raises(ConfigError, match=r"^cannot create export folder .*out: "):
        export_snapshots(db, blocker)

    def disk_full(*_args: Any, **_kwargs: Any) -> int:
        raise OSError(28, "No space left on device")

    out = tmp_path / "full"
    monkeypatch.setattr(etl.publish.export, "_write_file", disk_full)
    with pytest.raises(ConfigError) as exc:
        export_snapshots(db, out)
    assert str(exc.value) == f"cannot write export to {out}: [Errno 28] No space left on device"
    # Nothing half-written is left where a reader would look.
    assert [p.name for p in out.rglob("*")] == [SRC, "snapshot_date=2026-11-04"]


def table_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    """A reader's table as rows in COLUMNS order, dates as text, sorted by (date, id); the
    reader must give each column once (no ``snapshot_date`` twice, none missing)."""
    assert sorted(table.column_names) == sorted(COLUMNS), table.column_names
    return sorted((tuple(str(r[c]) if c in ("snapshot_date", "source") else r[c] for c in COLUMNS)
                   for r in table.to_pylist()), key=lambda r: (r[10], r[0]))


def test_the_parquet_folder_reads_with_no_arguments_in_every_reader(db: Path,
                                                                    tmp_path: Path) -> None:
    import duckdb
    import polars as pl

    out = tmp_path / "out"
    export_snapshots(db, out, fmt="parquet", all_dates=True)
    expected = {"2026-11-01": 1, "2026-11-02": 4, "2026-11-04": 6}
    want = sorted((r for d, run in expected.items() for r in db_rows(db, run, d)),
                  key=lambda r: (r[10], r[0]))
    glob = f"{out}/**/*.parquet"
    readers = {
        # What an analyst types first: the folder, nothing else. pandas and
        # pyarrow.parquet infer the snapshot_date= level as a dictionary column.
        "pandas": lambda: pa.Table.from_pandas(
            pd.read_parquet(out, dtype_backend="numpy_nullable"), preserve_index=False),
        "pyarrow.parquet": lambda: pq.read_table(out),
        # pyarrow.dataset without a partitioning reads the column from the files.
        "pyarrow.dataset": lambda: ds.dataset(out).to_table(),
        "pyarrow.dataset, hive as pandas infers it": lambda: ds.dataset(
            out, partitioning=ds.HivePartitioning.discover(infer_dictionary=True)).to_table(),
        # DuckDB and polars read the hive level as a DATE; their glob skips _manifest.json.
        "duckdb": lambda: pa.table(duckdb.sql(
            f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)").arrow()),
        "polars": lambda: pl.scan_parquet(glob, hive_partitioning=True).collect().to_arrow(),
    }
    for name, read in readers.items():
        assert table_rows(read()) == want, name
    # pyarrow.dataset's own "hive" shorthand infers a plain string for the folder level, which
    # no in-file type can match together with the dictionary pandas infers: docs/analysts/exports.md
    # says to leave partitioning out. Should pyarrow ever agree with itself, this fails: drop the
    # caveat from that page then.
    with pytest.raises(pa.ArrowTypeError, match="has incompatible types"):
        ds.dataset(out, partitioning="hive")
    # One file on its own (copied away from its folder) still says which date it holds.
    alone = tmp_path / "alone.parquet"
    alone.write_bytes((out / SRC / "snapshot_date=2026-11-02" / "images.parquet").read_bytes())
    assert pd.read_parquet(alone)["snapshot_date"].astype(str).tolist() == ["2026-11-02"] * 3
    assert pq.read_schema(alone).metadata[b"snapshot_date"] == b"2026-11-02"


def test_a_csv_partition_in_pandas_and_the_csv_folder_in_duckdb(db: Path, tmp_path: Path) -> None:
    import duckdb

    out = tmp_path / "out"
    export_snapshots(db, out, fmt="csv", all_dates=True)
    one = pd.read_csv(out / SRC / "snapshot_date=2026-11-02" / "images.csv",
                      dtype_backend="numpy_nullable")
    assert list(one.columns) == list(COLUMNS)
    assert one["snapshot_date"].tolist() == ["2026-11-02"] * 3
    assert (one["id"].tolist(), one["pull_count"].tolist()) == ([1, 2, 4], [160, BIG + 20, 5])
    # DuckDB: the files' text column and the folder level are both read as DATE.
    got = duckdb.sql(
        f"SELECT snapshot_date::VARCHAR, count(*), typeof(snapshot_date) "
        f"FROM read_csv('{out}/**/*.csv', hive_partitioning = true) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert got == [("2026-11-01", 4, "DATE"), ("2026-11-02", 3, "DATE"),
                   ("2026-11-04", 2, "DATE")]
    # pyarrow.dataset infers date32 from the files' text: one column, no hive level needed.
    table = ds.dataset(out, format="csv").to_table()
    assert table.schema.field("snapshot_date").type == pa.date32()
    assert sorted(set(map(str, table.column("snapshot_date").to_pylist()))) == list(
        ["2026-11-01", "2026-11-02", "2026-11-04"])


def test_the_old_manifest_json_is_merged_into_the_new_name_then_removed(
        db: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    export_snapshots(db, out, fmt="parquet", date="2026-11-02")
    new = json.loads((out / "_manifest.json").read_text())
    key = f"{SRC}/snapshot_date=2026-11-02"
    # What an earlier swr-etl left: its manifest under the old name, keyed by date, its
    # partitions one folder per date (export schemas 1 and 2: before the source= level).
    entry = {**new["partitions"][key], "source": None}
    old = {"schema_version": 1, "partitions": {
        "2026-10-30": {**entry, "format": "csv", "schema_version": 1,
                       "path": "snapshot_date=2026-10-30/images.csv"},
        "2026-11-01": {**entry, "schema_version": 2,
                       "path": "snapshot_date=2026-11-01/images.parquet"}}}
    (out / "manifest.json").write_text(json.dumps(old))

    with caplog.at_level("INFO", logger="etl.export"):
        export_snapshots(db, out, fmt="parquet", date="2026-11-04")
    assert not (out / "manifest.json").exists()
    merged = json.loads((out / "_manifest.json").read_text())["partitions"]
    assert list(merged) == ["2026-10-30", "2026-11-01", key, f"{SRC}/snapshot_date=2026-11-04"]
    assert merged["2026-11-01"] == old["partitions"]["2026-11-01"]  # only the old name knew it
    assert merged[key] == new["partitions"][key]
    assert merged[f"{SRC}/snapshot_date=2026-11-04"]["schema_version"] == 3
    assert [(r.levelname, r.getMessage()) for r in caplog.records
            if not r.getMessage().startswith("exported ")] == [
        ("INFO", f"{out / 'manifest.json'} merged into {out / '_manifest.json'} and removed"),
        ("WARNING", "2 partitions of this export were written by an older swr-etl (2026-10-30 "
                    "to 2026-11-01); readers that open the whole folder need export schema 3 "
                    "everywhere: move those snapshot_date= folders away and re-export, e.g. "
                    "'swr-etl export --all'"),
    ]


def test_an_unreadable_old_manifest_stops_the_export_and_stays(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"manifest\.json is not valid JSON .*fix or delete it$"):
        export_snapshots(db, out, fmt="parquet")
    assert (out / "manifest.json").read_text() == "{not json"
    assert not (out / "_manifest.json").exists()


# -- the manifest's text, joined from entries encoded once ------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)
_KEYS = st.text(max_size=20)


def _dumped(header: dict[str, Any], partitions: dict[str, Any]) -> bytes:
    return (json.dumps({**header, "partitions": partitions}, indent=2, sort_keys=True,
                       ensure_ascii=False) + "\n").encode()


@hypothesis_settings(max_examples=300, deadline=None)
@given(header=st.dictionaries(_KEYS.filter(lambda k: k != "partitions"), _JSON, max_size=4),
       before=st.dictionaries(_KEYS, _JSON, max_size=4),
       after=st.lists(st.tuples(_KEYS, _JSON), max_size=5))
def test_the_manifest_text_is_what_json_dumps_writes(header: dict[str, Any],
                                                     before: dict[str, Any],
                                                     after: list[tuple[str, Any]]) -> None:
    text = ManifestText(header, before)
    partitions = dict(before)
    assert text.text() == _dumped(header, partitions)
    for key, entry in after:  # new keys, and keys recorded before (replaced)
        text.record(key, entry)
        partitions[key] = entry
        assert text.text() == _dumped(header, partitions)
        assert text.partitions == partitions


def test_the_manifest_text_of_an_export_and_what_looks_like_its_markers() -> None:
    header = {"schema_version": 3, "tool_version": "0.1.0",
              "partitioning": 'hive: "partitions": {} source=<name>/snapshot_date=YYYY-MM-DD'}
    entry = {"path": "source=镜像/snapshot_date=2026-11-30/images.parquet", "rows": 2,
             "columns": ["id", "name"], "note": 'line\nbreak "partitions": {}', "empty": {}}
    text = ManifestText(header, {})
    assert text.text() == _dumped(header, {})
    text.record("source=镜像/snapshot_date=2026-11-30", entry)
    text.record("source=a/snapshot_date=2026-11-29", ["a legacy entry"])
    assert text.text() == _dumped(header, {"source=镜像/snapshot_date=2026-11-30": entry,
                                           "source=a/snapshot_date=2026-11-29": ["a legacy entry"]})
    with pytest.raises(ValueError, match="partitions"):
        ManifestText({"partitions": {}}, {})
