"""``export`` from PostgreSQL writes what it writes from SQLite: the same history copied into both
engines gives the same partitions, bytes, columns, dtypes and manifest; a database it cannot use
is one line and exit 2, never its password."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl.errors import ConfigError
from etl.publish.export import export_snapshots
from etl.store.pg_schema import ensure_schema
from etl.store.snapshot_read import open_snapshots, schema_version
from tests.fixtures.report_db import add_image, add_run, build_golden_db
from tests.helpers import cli, copy_to_postgres
from tests.test_export import db  # noqa: F401  (the export tests' history: NULLs, CJK, 2**33)

psycopg = pytest.importorskip("psycopg")

OTHER = "eu-west-101"


def golden_two_sources(path: Path) -> Path:
    """The golden history, plus a second source with runs of its own on three of its dates
    (its image 2, past 2**40 pulls, falls on the last)."""
    build_golden_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    for image_id, name in ((1, "nginx"), (2, "redis")):
        add_image(conn, image_id, name, source=OTHER, last_run=23)
    for run_id, date, pulls, big in ((21, "2026-03-26", 10, 30), (22, "2026-03-30", 20, 40),
                                     (23, "2026-03-31", 35, 5)):
        add_run(conn, run_id, date, counts={1: pulls, 2: 2**40 + big}, source=OTHER)
    add_run(conn, 24, "2026-03-31", hour=5, status="partial", counts={1: 1}, source=OTHER)
    conn.close()
    return path


def in_postgres(sqlite_db: Path, url: str) -> str:
    """``url``'s database holding every row of ``sqlite_db``; returns ``url``."""
    with sqlite3.connect(sqlite_db) as conn, psycopg.connect(url, autocommit=True) as pg:
        ensure_schema(pg, "public")
        copy_to_postgres(conn, pg)
    conn.close()
    return url


def assert_same_export(a: Path, b: Path, written: tuple[list[Any], list[Any]]) -> None:
    """Two export folders hold the same files: frames equal column for column and dtype for
    dtype, CSV text equal byte for byte, manifests equal but for when they were written."""
    names = [[Path(p).relative_to(root) for p in files]
             for root, files in zip((a, b), written, strict=True)]
    assert names[0] == names[1] and names[0], names
    for name in names[0]:
        if name.suffix == ".parquet":
            pd.testing.assert_frame_equal(pd.read_parquet(b / name), pd.read_parquet(a / name))
            assert pq.read_schema(b / name) == pq.read_schema(a / name)
        assert (b / name).read_bytes() == (a / name).read_bytes(), name

    def manifest(root: Path) -> dict[str, Any]:
        data = json.loads((root / "_manifest.json").read_text())
        for entry in data["partitions"].values():
            del entry["exported_at"]
        return dict(data)

    assert manifest(b) == manifest(a)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("which", [{}, {"all_dates": True}, {"date": "2026-03-30"},
                                   {"date": "2026-03-31", "include_partial": True}])
def test_the_golden_history_of_two_sources_exports_alike(tmp_path: Path, pg_url: str,
                                                         fmt: str, which: dict[str, Any]) -> None:
    golden = golden_two_sources(tmp_path / "golden.db")
    url = in_postgres(golden, pg_url)
    a, b = tmp_path / "from_sqlite", tmp_path / "from_pg"
    written = (export_snapshots(golden, a, fmt=fmt, **which),
               export_snapshots(url, b, fmt=fmt, **which))
    assert_same_export(a, b, written)
    sources = {Path(p).relative_to(b).parts[0] for p in written[1]}
    assert sources == {"source=cn-north-4", f"source={OTHER}"}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_nulls_unicode_and_big_counts_survive_both_engines(
        db: Path, tmp_path: Path, pg_url: str, fmt: str) -> None:  # noqa: F811
    url = in_postgres(db, pg_url)
    a, b = tmp_path / "a", tmp_path / "b"
    written = (export_snapshots(db, a, fmt=fmt, all_dates=True),
               export_snapshots(url, b, fmt=fmt, all_dates=True))
    assert_same_export(a, b, written)
    if fmt == "parquet":  # the values themselves, not only their agreement
        frame = pd.read_parquet(b, dtype_backend="numpy_nullable")
        row = frame[(frame["id"] == 2) & (frame["run_id"] == 4)].iloc[0]
        assert (row["namespace"], row["star_count"]) == ("官方", 2**33)
        assert pd.isna(row["user"])


def test_both_engines_answer_the_schema_version(tmp_path: Path, pg_url: str) -> None:
    golden = build_golden_db(tmp_path / "golden.db")
    url = in_postgres(golden, pg_url)
    with open_snapshots(golden) as lite, open_snapshots(url) as pg:
        assert schema_version(pg) == schema_version(lite) == 5


def test_one_export_sees_one_committed_state(tmp_path: Path, pg_url: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A run committed by another session while the export reads is in none of it."""
    import etl.publish.export as export

    golden = build_golden_db(tmp_path / "golden.db")
    url = in_postgres(golden, pg_url)
    real = export.export_partition
    committed: list[int] = []

    def partition_then_commit(conn: Any, store: Any, day: Any, fmt: str, **kw: Any) -> Any:
        entry = real(conn, store, day, fmt, **kw)
        if not committed:  # between the first partition and the next: a load commits
            with psycopg.connect(url, autocommit=True) as other:
                other.execute("DELETE FROM image_snapshots WHERE run_id = 12")
                other.execute("UPDATE images SET name = 'renamed'")
            committed.append(day.run_id)
        return entry

    monkeypatch.setattr(export, "export_partition", partition_then_commit)
    out = tmp_path / "pg"
    export_snapshots(url, out, all_dates=True)
    monkeypatch.setattr(export, "export_partition", real)
    export_snapshots(golden, tmp_path / "lite", all_dates=True)
    last = Path("source=cn-north-4/snapshot_date=2026-03-31/images.parquet")
    frame = pd.read_parquet(out / last)
    assert committed == [1] and len(frame) == 10  # run 12 as it was when the export began
    assert "renamed" not in set(frame["name"])
    pd.testing.assert_frame_equal(frame, pd.read_parquet(tmp_path / "lite" / last))


def test_an_empty_schema_and_another_schema_are_one_line_exit_2(
        pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shown = pg_url.split("?")[0]
    with psycopg.connect(pg_url, autocommit=True) as pg:
        ensure_schema(pg, "public")
    empty = cli(["export", "--db", pg_url, "--out", str(tmp_path / "o")], capsys)
    assert (empty.code, empty.err) == (
        2, f"swr-etl: error: no successful run in {shown}: nothing to export\n")
    other = cli(["export", "--db", pg_url + "?schema=elsewhere", "--out", str(tmp_path / "o")],
                capsys)
    assert (other.code, other.err) == (
        2, f"swr-etl: error: {shown} is not an swr-etl database (no image_snapshots, images, "
           "runs table); run 'swr-etl sync' first\n")
    assert not (tmp_path / "o").exists()


def test_an_unreachable_server_never_shows_the_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PGPASSWORD", "pg-s3cret-pw")
    url = f"postgresql://etl@127.0.0.1:{port}/swr"
    result = cli(["export", "--db", url, "--out", str(tmp_path / "o")], capsys)
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"swr-etl: error: cannot open database {url}: ")
    assert "pg-s3cret-pw" not in result.err + result.out
    with pytest.raises(ConfigError) as caught:  # the library alike, given one in the URL
        export_snapshots(f"postgresql://etl:pg-s3cret-pw@127.0.0.1:{port}/swr", tmp_path / "o")
    assert "pg-s3cret-pw" not in str(caught.value) and caught.value.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_the_cli_exports_a_url_from_the_flag_and_the_environment(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    golden = golden_two_sources(tmp_path / "golden.db")
    url = in_postgres(golden, pg_url)
    flag = cli(["export", "--db", url, "--out", str(tmp_path / "a"), "--all"], capsys)
    monkeypatch.setenv("SWR_ETL_DB", url)
    env = cli(["export", "--out", str(tmp_path / "b"), "--all"], capsys)
    assert flag.code == env.code == 0
    assert len(flag.out.splitlines()) == len(env.out.splitlines()) == 9 + 3  # 03-27: filtered
    assert flag.out.replace(str(tmp_path / "a"), "") == env.out.replace(str(tmp_path / "b"), "")


def test_a_bucket_export_from_postgres_holds_the_folder_export_from_sqlite(
        tmp_path: Path, pg_url: str, s3_server: Any, s3_bucket: Any) -> None:
    from tests.test_storage import objects, s3

    golden = golden_two_sources(tmp_path / "golden.db")
    url = in_postgres(golden, pg_url)
    local = tmp_path / "local"
    names = [Path(p).relative_to(local).as_posix()
             for p in export_snapshots(golden, local, all_dates=True)]
    written = export_snapshots(url, s3_bucket.uri("team"), all_dates=True,
                               s3=s3(s3_bucket.endpoint_url))
    assert written == [s3_bucket.uri(f"team/{n}") for n in names] and len(names) == 12
    found = objects(s3_server, s3_bucket)
    for name in names:  # byte for byte
        assert found[f"team/{name}"] == (local / name).read_bytes(), name
    assert set(json.loads(found["team/_manifest.json"])["partitions"]) == set(json.loads(
        (local / "_manifest.json").read_text())["partitions"])


def test_a_server_lost_mid_export_keeps_what_was_written(
        tmp_path: Path, pg_private_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server dies after the first partition: one line, exit 2; the partition written and
    the manifest naming it stay valid, and no half file is left."""
    import etl.publish.export as export

    golden = build_golden_db(tmp_path / "golden.db")
    url = in_postgres(golden, pg_private_cluster.url(pg_private_cluster.create_database()))
    real = export.export_partition

    def partition_then_die(*args: Any, **kw: Any) -> Any:
        entry = real(*args, **kw)
        pg_private_cluster.kill()
        return entry

    monkeypatch.setattr(export, "export_partition", partition_then_die)
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as caught:
        export_snapshots(url, out, all_dates=True)
    message = str(caught.value)
    assert caught.value.exit_code == 2 and "\n" not in message
    assert message.startswith(f"cannot read database {url}: "), message
    manifest = json.loads((out / "_manifest.json").read_text())
    first = "source=cn-north-4/snapshot_date=2026-02-28"
    assert list(manifest["partitions"]) == [first]
    assert len(pd.read_parquet(out / first / "images.parquet")) == 10
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "_manifest.json", f"{first}/images.parquet"]
