"""Exports to S3-compatible object storage (etl.publish.storage), against moto's S3 API on
127.0.0.1: the same layout and manifest as a folder, readable by pyarrow, pandas and DuckDB, and
a failed upload part-way leaves the previous partitions and manifest valid."""

from __future__ import annotations

import hashlib
import io
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from etl.config.regions import source_name
from etl.errors import ConfigError
from etl.publish.export import COLUMNS, export_snapshots
from etl.publish.storage import TEMP_FOLDER, S3Options
from tests.fixtures.report_db import SOURCE, add_image, add_run, new_db
from tests.helpers import cli, q
from tests.services.s3 import FaultyFront, S3Bucket, S3Server
from tests.test_export import db_rows, table_rows

DATES = {"2026-11-01": 1, "2026-11-02": 2, "2026-11-04": 3}  # date -> the run exported
SRC = f"source={SOURCE}"  # the one source of the fixture database
KEYS = [f"{SRC}/snapshot_date={d}" for d in DATES]  # the manifest's keys


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "swr.db"
    conn = new_db(path)
    add_image(conn, 1, "nginx", description='a "quoted", multi\nline text', last_run=3)
    add_image(conn, 2, "中文镜像", namespace="官方", description=None, last_run=3)
    add_run(conn, 1, "2026-11-01", counts={1: 100, 2: 2**31 + 5})
    add_run(conn, 2, "2026-11-02", counts={1: 150, 2: (None, None)})
    add_run(conn, 3, "2026-11-04", counts={1: 180})
    conn.close()
    return path


@pytest.fixture()
def front(s3_server: S3Server) -> Iterator[FaultyFront]:
    """A loopback front for the S3 server that fails when told to."""
    proxy = FaultyFront(s3_server.endpoint_url)
    yield proxy
    proxy.close()


def s3(endpoint: str) -> S3Options:
    return S3Options(endpoint=endpoint, timeout=5, attempts=2)


def objects(server: S3Server, bucket: S3Bucket) -> dict[str, bytes]:
    """Every object in the bucket, by key, with its bytes. The only empty "folder" object
    allowed is the temp folder's, which pyarrow leaves when it deletes the last temp upload
    there, and which readers skip (a leading ``_``)."""
    client = server.client()
    listed = client.list_objects_v2(Bucket=bucket.name).get("Contents", [])
    found = {o["Key"]: client.get_object(Bucket=bucket.name, Key=o["Key"])["Body"].read()
             for o in listed}
    for key in [k for k in found if k.endswith("/")]:
        assert key.endswith(f"/{TEMP_FOLDER}/") and found.pop(key) == b"", key
    assert not [k for k in found if f"{TEMP_FOLDER}/" in k], "a temp upload was left behind"
    return found


def manifest_is_valid(found: dict[str, bytes], prefix: str) -> dict[str, Any]:
    """The manifest under ``prefix``, after checking that every entry names an object with the
    recorded size and SHA-256 (what a reader following the manifest relies on)."""
    manifest = json.loads(found[f"{prefix}/_manifest.json"])
    for date, entry in manifest["partitions"].items():
        data = found[f"{prefix}/{entry['path']}"]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (
            entry["bytes"], entry["sha256"]), date
    return manifest  # type: ignore[no-any-return]


def all_rows(path: Path) -> list[tuple[Any, ...]]:
    return sorted((r for d, run in DATES.items() for r in db_rows(path, run, d)),
                  key=lambda r: (r[10], r[0]))


# ------------------------------------------------------------------ the same export, in a bucket


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_bucket_export_holds_what_a_folder_export_holds(
        db: Path, tmp_path: Path, s3_server: S3Server, s3_bucket: S3Bucket, fmt: str) -> None:
    local = tmp_path / "local"
    export_snapshots(db, local, fmt=fmt, all_dates=True)
    written = export_snapshots(db, s3_bucket.uri("team/swr"), fmt=fmt, all_dates=True,
                               s3=s3(s3_bucket.endpoint_url))
    names = [f"{SRC}/snapshot_date={d}/images.{fmt}" for d in DATES]
    assert written == [s3_bucket.uri(f"team/swr/{n}") for n in names]
    found = objects(s3_server, s3_bucket)
    # Nothing else: no temp object left, nothing outside the prefix.
    assert sorted(found) == sorted([f"team/swr/{n}" for n in names] + ["team/swr/_manifest.json"])
    for name in names:  # byte for byte what the folder export wrote
        assert found[f"team/swr/{name}"] == (local / name).read_bytes(), name
    ours = manifest_is_valid(found, "team/swr")
    theirs = json.loads((local / "_manifest.json").read_text())
    for manifest in (ours, theirs):
        for entry in manifest["partitions"].values():
            entry.pop("exported_at")
    assert ours == theirs


def test_readers_open_the_bucket_export(db: Path, s3_bucket: S3Bucket,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    export_snapshots(db, s3_bucket.uri("exports"), all_dates=True, s3=s3(s3_bucket.endpoint_url))
    want = all_rows(db)
    fs = s3_bucket.filesystem()
    where = f"{s3_bucket.name}/exports"
    hive = ds.HivePartitioning.discover(infer_dictionary=True)
    dataset = ds.dataset(where, filesystem=fs, format="parquet", partitioning=hive)
    assert table_rows(dataset.to_table()) == want
    # DuckDB's own S3 reader (httpfs) is an extension downloaded at first use, which these tests
    # never allow: DuckDB reads the bucket through the pyarrow dataset instead.
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.register("images", ds.dataset(where, filesystem=fs, format="parquet"))
    got = con.execute("SELECT snapshot_date::VARCHAR, count(*), sum(pull_count) FROM images "
                      "GROUP BY ALL ORDER BY 1").fetchall()
    assert got == [("2026-11-01", 2, 100 + 2**31 + 5), ("2026-11-02", 2, 150),
                   ("2026-11-04", 1, 180)]
    # pandas with s3fs and storage_options pointing at the loopback endpoint ...
    uri = s3_bucket.uri("exports")
    frame = pd.read_parquet(uri, storage_options=s3_bucket.storage_options)
    assert table_rows(pa.Table.from_pandas(frame, preserve_index=False)) == want
    # ... and a plain s3:// URL through pyarrow, with the standard endpoint variable.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint_url)
    part = pd.read_parquet(f"{uri}/{SRC}/snapshot_date=2026-11-02/images.parquet",
                           dtype_backend="pyarrow")
    assert table_rows(pa.Table.from_pandas(part, preserve_index=False)) == [
        r for r in want if r[10] == "2026-11-02"]


def test_reexporting_replaces_a_partition_but_never_switches_its_format(
        db: Path, s3_server: S3Server, s3_bucket: S3Bucket) -> None:
    where, options = s3_bucket.uri("x"), s3(s3_bucket.endpoint_url)
    export_snapshots(db, where, fmt="csv", date="2026-11-02", s3=options)
    first = objects(s3_server, s3_bucket)
    export_snapshots(db, where, fmt="csv", all_dates=True, s3=options)
    again = objects(s3_server, s3_bucket)
    assert again[f"x/{SRC}/snapshot_date=2026-11-02/images.csv"] == (
        first[f"x/{SRC}/snapshot_date=2026-11-02/images.csv"])
    assert list(manifest_is_valid(again, "x")["partitions"]) == KEYS
    with pytest.raises(ConfigError) as exc:
        export_snapshots(db, where, fmt="parquet", all_dates=True, s3=options)
    assert str(exc.value) == (
        f"{where}/{SRC}/snapshot_date=2026-11-01 holds images.csv: a partition in a bucket keeps "
        "its format (deleting the old file would leave an empty folder object that pandas reading "
        "through s3fs trips over); export to another prefix, or delete the partition first "
        "(nothing was written)")
    assert objects(s3_server, s3_bucket) == again


# ----------------------------------------------------------------------------- failing stores


@pytest.mark.parametrize("allowed", [0, 1], ids=["the upload fails", "the final copy fails"])
def test_a_failed_upload_leaves_the_previous_export_valid(
        db: Path, s3_server: S3Server, s3_bucket: S3Bucket, front: FaultyFront,
        allowed: int) -> None:
    where = s3_bucket.uri("exports")
    export_snapshots(db, where, all_dates=True, s3=s3(s3_bucket.endpoint_url))
    before = objects(s3_server, s3_bucket)
    # The second partition's PUTs fail (its part upload, or the copy over the final name).
    front.fail_puts_after(allowed, path_part="snapshot_date=2026-11-02")
    with pytest.raises(ConfigError) as exc:
        export_snapshots(db, where, all_dates=True, s3=s3(front.endpoint_url))
    assert str(exc.value).startswith(f"cannot write export to {where} at {front.endpoint_url}: ")
    assert "AWS Error INTERNAL_FAILURE during " in str(exc.value)
    # Each failing request was tried as often as allowed (attempts=2), no more.
    assert [status for _method, status in front.requests if status] == [500, 500]
    after = objects(s3_server, s3_bucket)
    assert sorted(after) == sorted(before)  # no temp object left behind
    key = f"exports/{SRC}/snapshot_date=2026-11-02/images.parquet"
    assert after[key] == before[key]
    manifest = manifest_is_valid(after, "exports")
    assert list(manifest["partitions"]) == KEYS
    # The first partition was exported again and recorded; the later ones kept their entries.
    old = json.loads(before["exports/_manifest.json"])["partitions"]
    assert manifest["partitions"][KEYS[2]] == old[KEYS[2]]
    assert manifest["partitions"][KEYS[1]] == old[KEYS[1]]


def test_refused_credentials_are_one_line_exit_2(
        db: Path, s3_server: S3Server, s3_bucket: S3Bucket, front: FaultyFront,
        capsys: pytest.CaptureFixture[str]) -> None:
    front.refuse_everything(403)
    where = s3_bucket.uri("exports")
    run = cli(["export", "--db", str(db), "--out", where, "--s3-endpoint", front.endpoint_url],
              capsys)
    assert run.code == 2
    assert run.err.splitlines() == [
        f"swr-etl: error: cannot write export to {where} at {front.endpoint_url}: access "
        "denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile) and the "
        f"bucket's policy (When getting information for bucket '{s3_bucket.name}': AWS Error "
        "ACCESS_DENIED during HeadBucket operation: No response body.)"]
    assert objects(s3_server, s3_bucket) == {}


def test_a_missing_bucket_is_one_line_exit_2(db: Path, s3_bucket: S3Bucket,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = cli(["export", "--db", str(db), "--out", "s3://no-such-bucket/x",
               "--s3-endpoint", s3_bucket.endpoint_url], capsys)
    assert (run.code, run.err.splitlines()) == (2, [
        f"swr-etl: error: cannot write export to s3://no-such-bucket/x at "
        f"{s3_bucket.endpoint_url}: bucket 'no-such-bucket' does not exist"])


def test_an_unreachable_or_silent_endpoint_is_one_line_exit_2(
        db: Path, s3_bucket: S3Bucket, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stalled = f"http://127.0.0.1:{silent.getsockname()[1]}"
        for endpoint, said in ((refused, "Could not connect to server"),
                               (stalled, "Timeout was reached")):
            run = cli(["export", "--db", str(db), "--out", s3_bucket.uri("x"),
                       "--s3-endpoint", endpoint, "--timeout", "1", "--max-attempts", "2"],
                      capsys)
            [line] = run.err.splitlines()
            assert run.code == 2, line
            assert line.startswith(f"swr-etl: error: cannot write export to {s3_bucket.uri('x')} "
                                   f"at {endpoint}: the object store could not be reached ("), line
            assert said in line


def test_the_timeout_and_attempts_reach_the_filesystem() -> None:
    from pyarrow import fs

    options = S3Options(endpoint="https://obs.ap-southeast-3.myhuaweicloud.com", timeout=7,
                        attempts=4)
    filesystem = options.filesystem()
    assert isinstance(filesystem, fs.S3FileSystem)
    assert filesystem.region == "ap-southeast-3"  # taken from an OBS endpoint's host name
    assert S3Options(endpoint="http://127.0.0.1:9", region="eu-west-1").filesystem().region == (
        "eu-west-1")
    # pyarrow keeps the options it was given in the filesystem's pickled form
    (kw,) = filesystem.__reduce__()[1]
    assert {k: kw[k] for k in ("scheme", "endpoint_override", "connect_timeout",
                               "request_timeout")} == {
        "scheme": "https", "endpoint_override": "obs.ap-southeast-3.myhuaweicloud.com",
        "connect_timeout": 7.0, "request_timeout": 7.0}


# ------------------------------------------------------------------ sync --export-dir s3://...


def test_a_sync_whose_upload_fails_keeps_its_load_and_says_so(
        simulator: Callable[..., Any], tmp_path: Path, s3_server: S3Server, s3_bucket: S3Bucket,
        front: FaultyFront, capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulator(images=30, seed=3)
    db, where = tmp_path / "swr.db", s3_bucket.uri("nightly")
    front.fail_puts_after(0)  # every upload fails
    run = cli(["sync", "-q", "--no-auth", "--endpoint", sim.url, "--db", str(db),
               "--export-dir", where, "--s3-endpoint", front.endpoint_url,
               "--max-attempts", "1"], capsys)
    [line] = run.err.splitlines()
    assert run.code == 2, line
    assert line.startswith(f"swr-etl: error: cannot write export to {where} at "
                           f"{front.endpoint_url}: ")
    # The load is committed and recorded as a success; nothing reached the bucket.
    assert q(db, "SELECT run_id, status, rows_loaded FROM runs") == [(1, "success", 30)]
    assert objects(s3_server, s3_bucket) == {}
    # `swr-etl export` redoes it once the store is back.
    front.fail_puts_after(10**6)
    again = cli(["export", "-q", "--db", str(db), "--out", where,
                 "--s3-endpoint", front.endpoint_url], capsys)
    assert again.code == 0, again.err
    date = q(db, "SELECT snapshot_date FROM runs")[0][0]
    key = f"source={source_name(sim.url)}/snapshot_date={date}"
    assert manifest_is_valid(objects(s3_server, s3_bucket), "nightly")["partitions"][key][
        "rows"] == 30


def test_a_sync_exports_to_the_bucket_of_aws_endpoint_url(
        simulator: Callable[..., Any], tmp_path: Path, s3_server: S3Server, s3_bucket: S3Bucket,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulator(images=12, seed=4)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint_url)  # the standard variable
    db = tmp_path / "swr.db"
    run = cli(["sync", "-q", "--no-auth", "--endpoint", sim.url, "--db", str(db),
               "--export-dir", s3_bucket.uri("a/b"), "--format", "csv"], capsys)
    assert (run.code, run.err) == (0, "")
    date = q(db, "SELECT snapshot_date FROM runs")[0][0]
    found = objects(s3_server, s3_bucket)
    name = f"a/b/source={source_name(sim.url)}/snapshot_date={date}/images.csv"
    assert sorted(found) == ["a/b/_manifest.json", name]
    exported = pd.read_csv(io.BytesIO(found[name]))
    assert list(exported.columns) == list(COLUMNS)
    assert sorted(zip(exported["id"], exported["pull_count"], strict=True)) == sorted(
        (r["id"], r["pull_count"]) for r in sim.listing())


# --------------------------------------------------------------------------------- the settings


@pytest.mark.parametrize(("url", "message"), [
    ("s3://AKIAEXAMPLE:wJalr/XUtnFEMI@bucket/x",
     "out must not contain credentials (an '@' in an s3:// URL; the URL is not repeated): give "
     "them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile)"),
    ("s3://Team_Exports/x",
     "out names no valid bucket (3-63 lower-case letters, digits, dots and hyphens, starting "
     "and ending with a letter or digit, no '..', '.-' or '-.', not an IP address): "
     "'Team_Exports' in 's3://Team_Exports/x'"),
    ("s3://ab", "out names no valid bucket (3-63 lower-case letters, digits, dots and hyphens, "
     "starting and ending with a letter or digit, no '..', '.-' or '-.', not an IP address): "
     "'ab' in 's3://ab'"),
    ("s3://10.1.2.3/x", "out names no valid bucket (3-63 lower-case letters, digits, dots and "
     "hyphens, starting and ending with a letter or digit, no '..', '.-' or '-.', not an IP "
     "address): '10.1.2.3' in 's3://10.1.2.3/x'"),
    ("s3://bucket/x?versionId=3",
     "out must be s3://BUCKET/PREFIX without a query or fragment, got "
     "'s3://bucket/x?versionId=3'"),
    ("s3://bucket/a//b", "out has an empty, '.' or '..' folder in its prefix: 's3://bucket/a//b'"),
    ("s3://bucket/a/../b",
     "out has an empty, '.' or '..' folder in its prefix: 's3://bucket/a/../b'"),
    ("s3:/bucket/x", "out must be a folder or s3://BUCKET/PREFIX, got 's3:/bucket/x'"),
])
def test_s3_urls_are_checked_before_anything_is_opened(
        tmp_path: Path, url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "absent.db"  # refused first: the URL is checked before the database
    run = cli(["export", "--db", str(db), "--out", url], capsys)
    assert (run.code, run.err.splitlines()) == (2, [f"swr-etl: error: {message}"])
    assert "wJalr" not in run.err
    sync = cli(["sync", "--no-auth", "--db", str(db), "--export-dir", url], capsys)
    assert (sync.code, sync.err.splitlines()) == (
        2, [f"swr-etl: error: export-dir{message[len('out'):]}"])
    assert not db.exists()


@pytest.mark.parametrize(("env", "endpoint", "region"), [
    ({}, None, None),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000/", "AWS_DEFAULT_REGION": "eu-west-1"},
     "http://127.0.0.1:9000", "eu-west-1"),
    ({"AWS_ENDPOINT_URL": "https://a.example", "AWS_ENDPOINT_URL_S3": "https://s3.example",
      "AWS_REGION": "ap-southeast-1", "AWS_DEFAULT_REGION": "eu-west-1"},
     "https://s3.example", "ap-southeast-1"),
    ({"AWS_ENDPOINT_URL_S3": "https://s3.example",
      "SWR_ETL_S3_ENDPOINT": "https://obs.cn-north-4.myhuaweicloud.com"},
     "https://obs.cn-north-4.myhuaweicloud.com", None),
])
def test_endpoint_and_region_come_from_the_standard_variables(
        env: dict[str, str], endpoint: str | None, region: str | None) -> None:
    from etl.config.settings import build_settings

    settings = build_settings({}, env)
    assert (settings.s3_endpoint, settings.s3_region) == (endpoint, region)
    # a flag beats every variable
    flagged = build_settings({"s3_endpoint": "https://minio.example:9000"}, env)
    assert flagged.s3_endpoint == "https://minio.example:9000"


def test_an_endpoint_with_a_path_is_refused(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    run = cli(["export", "--db", str(tmp_path / "x.db"), "--out", "s3://bucket/x",
               "--s3-endpoint", "https://obs.example.com/bucket"], capsys)
    assert (run.code, run.err.splitlines()) == (2, [
        "swr-etl: error: s3-endpoint must be a base URL without a path (the bucket goes in the "
        "s3:// URL), got 'https://obs.example.com/bucket'"])


@pytest.mark.parametrize(("endpoint", "out", "warned"), [
    ("http://minio.internal:9000", "s3://bucket/x", True),
    ("http://127.0.0.1:9000", "s3://bucket/x", False),
    ("https://minio.internal:9000", "s3://bucket/x", False),
    ("http://minio.internal:9000", "exports", False),  # nothing goes to the store
])
def test_a_plain_http_endpoint_on_another_host_is_warned_about(
        endpoint: str, out: str, warned: bool) -> None:
    from etl.config.settings import Settings
    from etl.config.urls import object_store_warnings

    settings = Settings(export_dir=out if out.startswith("s3:") else Path(out),
                        s3_endpoint=endpoint)
    assert object_store_warnings(settings) == ([
        "S3 requests signed with AWS_ACCESS_KEY_ID (replayable, the key id visible) and the "
        "export would go over plain http to minio.internal: anyone on the network path can "
        "read them; use https"] if warned else [])
