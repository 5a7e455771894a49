"""The test servers themselves (tests/services): a throwaway PostgreSQL cluster and moto's S3 API.

They skip where the server cannot be started here and fail instead under
``SWR_ETL_REQUIRE_SERVICES=1`` (CI), like every test that uses the fixtures.
"""

from __future__ import annotations

import io
import os
import pwd
import re
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from tests.services import (
    REQUIRE_ENV,
    ServiceFailed,
    ServiceUnavailable,
    poll,
    services_required,
    started,
    unavailable,
)
from tests.services import postgres as pgsvc
from tests.services import s3 as s3svc
from tests.services.postgres import PostgresCluster

# --- the policy: skip here, fail in CI -------------------------------------------------------


@pytest.mark.parametrize(("value", "required"), [
    ("1", True), ("true", True), ("YES", True), ("", False), ("0", False), ("no", False),
])
def test_which_values_require_the_services(value: str, required: bool) -> None:
    assert services_required({REQUIRE_ENV: value}) is required


def test_a_missing_server_skips_with_the_install_hint() -> None:
    with pytest.raises(pytest.skip.Exception) as info:
        unavailable("no initdb: apt-get install postgresql", environ={})
    assert str(info.value) == "no initdb: apt-get install postgresql"


def test_a_missing_server_fails_when_the_services_are_required() -> None:
    with pytest.raises(pytest.fail.Exception) as info:
        unavailable("no initdb: apt-get install postgresql", environ={REQUIRE_ENV: "1"})
    assert str(info.value) == ("no initdb: apt-get install postgresql "
                               "(SWR_ETL_REQUIRE_SERVICES is set, so this is an error, not a skip)")


def test_a_broken_server_fails_even_where_skipping_is_allowed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)

    def broken() -> None:
        raise ServiceFailed("PostgreSQL did not start")

    with pytest.raises(pytest.fail.Exception, match="^PostgreSQL did not start$"):
        started(broken)


def test_poll_returns_the_first_answer_and_gives_up_naming_what_it_awaited() -> None:
    answers = iter([None, None, 7])
    assert poll(lambda: next(answers), timeout=30, interval=0, what="x") == 7
    with pytest.raises(ServiceFailed, match="^gave up after 0.05 s waiting for the answer$"):
        poll(lambda: None, timeout=0.05, interval=0.01, what="the answer")


# --- finding PostgreSQL -----------------------------------------------------------------------


def fake_bin(root: Path, version: str, programs: tuple[str, ...] = ("initdb", "pg_ctl")) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for name in programs:
        (bin_dir / name).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_the_newest_debian_version_with_both_programs_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "10"):
        fake_bin(tmp_path, version)
    fake_bin(tmp_path, "17", programs=("initdb",))  # no pg_ctl: not a usable server
    fake_bin(tmp_path, "devel")
    assert pgsvc.find_pg_bin({"PATH": ""}, tmp_path) == tmp_path / "16" / "bin"


def test_pg_bin_overrides_the_debian_directories(tmp_path: Path) -> None:
    fake_bin(tmp_path / "debian", "16")
    own = fake_bin(tmp_path / "own", "12")
    assert pgsvc.find_pg_bin({"PG_BIN": str(own), "PATH": ""}, tmp_path / "debian") == own


def test_a_pg_bin_without_the_programs_is_an_error_naming_them(tmp_path: Path) -> None:
    half = fake_bin(tmp_path, "15", programs=("initdb",))
    with pytest.raises(ServiceFailed) as info:
        pgsvc.find_pg_bin({"PG_BIN": str(half)}, tmp_path)
    assert str(info.value) == f"PG_BIN={half} has no executable pg_ctl"


def test_initdb_on_path_is_the_last_resort(tmp_path: Path) -> None:
    on_path = fake_bin(tmp_path / "usr", "local")
    assert pgsvc.find_pg_bin({"PATH": str(on_path)}, tmp_path / "nothing") == on_path


def test_no_binaries_anywhere_says_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable) as info:
        pgsvc.find_pg_bin({"PATH": str(tmp_path)}, tmp_path)
    assert "apt-get install postgresql" in str(info.value)
    assert "PG_BIN" in str(info.value)


def test_root_without_a_postgres_user_cannot_run_a_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(pgsvc.os, "geteuid", lambda: 0)
    monkeypatch.setattr(pgsvc.pwd, "getpwnam", no_such_user)
    with pytest.raises(ServiceUnavailable, match="initdb refuses root.*no 'postgres' user"):
        pgsvc.service_account()


def test_a_temp_folder_the_cluster_user_cannot_enter_is_found(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid())
    stranger = pwd.struct_passwd(("stranger", "x", me.pw_uid + 4242, me.pw_gid + 4242, "",
                                  "/", "/bin/false"))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert pgsvc._blocking_folder(private, stranger) == private
    assert pgsvc._blocking_folder(private, me) is None


def test_without_psycopg_the_cluster_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(ServiceUnavailable, match=r"pip install -e '\.\[test\]'"):
        pgsvc.start_cluster()


# --- the cluster --------------------------------------------------------------------------------

try:  # the cluster fixtures skip (or fail) before any test body runs without it
    import psycopg
except ImportError:  # pragma: no cover
    psycopg = None


def test_pg_url_is_a_fresh_loopback_database_psycopg_reaches(
        pg_url: str, pg_cluster: PostgresCluster) -> None:
    parts = urlsplit(pg_url)
    assert (parts.scheme, parts.hostname, parts.port) == ("postgresql", "127.0.0.1",
                                                          pg_cluster.port)
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT current_database(), current_user, host(inet_server_addr()), "
                           "inet_server_port()").fetchone()
    assert row == (parts.path.lstrip("/"), "postgres", "127.0.0.1", pg_cluster.port)
    assert re.fullmatch(r"test_\d+", row[0])


def test_the_server_listens_on_loopback_only_and_trusts_only_local_clients(
        pg_url: str, pg_cluster: PostgresCluster) -> None:
    with psycopg.connect(pg_url) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                 for name in ("listen_addresses", "unix_socket_directories", "fsync")}
        rules = conn.execute("SELECT type, address, auth_method, error FROM pg_hba_file_rules "
                             "ORDER BY line_number").fetchall()
    assert shown == {"listen_addresses": "127.0.0.1",
                     "unix_socket_directories": str(pg_cluster.socket_dir), "fsync": "off"}
    assert pg_cluster.socket_dir.parent == pg_cluster.base
    assert rules == [("local", None, "trust", None), ("host", "127.0.0.1", "trust", None)]


def uid_of(pid: int) -> int:
    """The real uid of a running process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_the_server_does_not_run_as_root(pg_url: str, pg_cluster: PostgresCluster) -> None:
    with psycopg.connect(pg_url) as conn:  # the backend exits with its connection: read it now
        backend_uid = uid_of(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert pg_cluster.pid is not None
    assert (uid_of(pg_cluster.pid), backend_uid) == (expected, expected)
    assert expected != 0
    assert pg_cluster.data_dir.stat().st_uid == expected
    assert stat.S_IMODE(pg_cluster.data_dir.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("turn", [1, 2])
def test_each_test_gets_an_empty_database_of_its_own(pg_url: str, turn: int) -> None:
    # Whichever turn runs second would find the first one's table if databases were shared.
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT table_name FROM information_schema.tables "
                              "WHERE table_schema = 'public'").fetchall()
        conn.execute("CREATE TABLE left_behind (turn int)")
        conn.execute("INSERT INTO left_behind VALUES (%s)", (turn,))
    assert tables == []


def test_databases_are_distinct_and_dropped_even_with_a_connection_left_open(
        pg_cluster: PostgresCluster) -> None:
    with pg_cluster.database() as first, pg_cluster.database() as second:
        names = {urlsplit(u).path.lstrip("/") for u in (first, second)}
        assert len(names) == 2 and names <= pg_cluster.databases()
        with psycopg.connect(first, autocommit=True) as conn:
            conn.execute("CREATE TABLE only_here (x int)")
        with psycopg.connect(second) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
        forgotten = psycopg.connect(first)  # a test that never closes its connection
    assert pg_cluster.databases().isdisjoint(names)
    with pytest.raises(psycopg.OperationalError):
        forgotten.execute("SELECT 1")
    forgotten.close()


def test_a_database_is_dropped_when_the_test_fails(pg_cluster: PostgresCluster) -> None:
    with pytest.raises(RuntimeError), pg_cluster.database() as url:
        raise RuntimeError(url)
    assert urlsplit(url).path.lstrip("/") not in pg_cluster.databases()


def test_copy_in_and_out(pg_url: str) -> None:
    rows = [(1, "library", "nginx", "tab\there, newline\nthere, ünïcode"), (2, "x", None, "")]
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE images (id bigint PRIMARY KEY, namespace text, name text, "
                     "description text)")
        with conn.cursor() as cur:
            with cur.copy("COPY images (id, namespace, name, description) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            assert cur.execute("SELECT * FROM images ORDER BY id").fetchall() == rows
            out = io.BytesIO()
            with cur.copy("COPY images TO STDOUT (FORMAT csv) ") as copy:
                for chunk in copy:
                    out.write(chunk)
    back = pd.read_csv(io.BytesIO(out.getvalue()), header=None, keep_default_na=False)
    assert back.values.tolist() == [[1, "library", "nginx", rows[0][3]], [2, "x", "", ""]]


def test_a_killed_server_restarts_with_its_committed_rows_then_closes_for_good(
        pg_private_cluster: PostgresCluster) -> None:
    cluster = pg_private_cluster
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE kept AS SELECT generate_series(1, 1000) AS n")
    pid = cluster.pid
    assert pid is not None
    cluster.kill()
    assert not pgsvc._alive(pid)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url(), connect_timeout=2)
    cluster.start()  # crash recovery on the same data and port
    assert cluster.pid not in (None, pid)
    with psycopg.connect(cluster.url()) as conn:
        assert conn.execute("SELECT count(*), sum(n) FROM kept").fetchone() == (1000, 500500)
    restarted = cluster.pid
    assert restarted is not None
    cluster.close()
    assert not pgsvc._alive(restarted)
    assert not cluster.base.exists()
    cluster.close()  # idempotent: the fixture closes it again


def test_a_cluster_that_does_not_start_quotes_its_log() -> None:
    bin_dir, account = started(lambda: (pgsvc.find_pg_bin(), pgsvc.service_account()))
    cluster = PostgresCluster(bin_dir, run_as=account, settings={"shared_buffers": "'plenty'"})
    try:
        with pytest.raises(ServiceFailed) as info:
            cluster.start()
        message = str(info.value)
        assert message.startswith("PostgreSQL did not start (pg_ctl exit 1")
        assert f"last lines of {cluster.log_file}:" in message
        assert 'invalid value for parameter "shared_buffers": "plenty"' in message
    finally:
        cluster.close()
    assert not cluster.base.exists()


# --- the S3 server ------------------------------------------------------------------------------


def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": pd.array([1, 2, 3], dtype="int64"),
                         "name": ["nginx", "redis", "ünïcode"],
                         "pull_count": pd.array([10, 20, 30], dtype="int64")})


def test_the_server_is_on_loopback(s3_bucket: s3svc.S3Bucket) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s3_bucket.endpoint_url)


def test_pyarrow_writes_parquet_into_the_bucket_and_reads_it_back_as_a_dataset(
        s3_server: s3svc.S3Server, s3_bucket: s3svc.S3Bucket) -> None:
    fs = s3_bucket.filesystem()  # credentials from the environment the fixture set
    key = "exports/snapshot_date=2026-11-30/images.parquet"
    pq.write_table(pa.Table.from_pandas(frame(), preserve_index=False),
                   f"{s3_bucket.name}/{key}", filesystem=fs, compression="zstd")
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    assert [obj["Key"] for obj in listed] == [key]  # on the server, not in some local folder
    table = pads.dataset(f"{s3_bucket.name}/exports", filesystem=fs, format="parquet",
                         partitioning="hive").to_table()
    assert table.to_pydict() == {**frame().to_dict(orient="list"),
                                 "snapshot_date": ["2026-11-30"] * 3}


def test_pandas_reads_an_s3_uri_through_pyarrow_without_s3fs(
        s3_bucket: s3svc.S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    frame().to_parquet(f"{s3_bucket.name}/one/images.parquet", index=False,
                       filesystem=s3_bucket.filesystem())
    # pyarrow's S3 client takes the endpoint from AWS_ENDPOINT_URL like the AWS SDKs do, so a
    # plain s3:// URI works without fsspec/s3fs.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_bucket.endpoint_url)
    back = pd.read_parquet(s3_bucket.uri("one/images.parquet"))
    pd.testing.assert_frame_equal(back, frame(), check_dtype=False)
    assert back["pull_count"].dtype == "int64"


def test_pandas_reads_it_through_s3fs_storage_options(s3_bucket: s3svc.S3Bucket) -> None:
    pytest.importorskip("s3fs", reason="s3fs is optional (pyarrow's S3 filesystem is enough); "
                                       "pip install s3fs to run this check")
    frame().to_parquet(f"{s3_bucket.name}/one/images.parquet", index=False,
                       filesystem=s3_bucket.filesystem())
    back = pd.read_parquet(s3_bucket.uri("one/images.parquet"),
                           storage_options=s3_bucket.storage_options)
    pd.testing.assert_frame_equal(back, frame(), check_dtype=False)


def test_duckdb_reads_it_when_installed(s3_bucket: s3svc.S3Bucket) -> None:
    duckdb = pytest.importorskip("duckdb", reason="DuckDB is optional: pip install duckdb "
                                                  "to run this check")
    frame().to_parquet(f"{s3_bucket.name}/one/images.parquet", index=False,
                       filesystem=s3_bucket.filesystem())
    # Never let DuckDB fetch an extension from the network in a test.
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error as exc:  # the extension is downloaded on first use: no network here
        pytest.skip(f"DuckDB's httpfs extension is not installed here ({exc})")
    con.execute(f"SET s3_endpoint = '{s3_bucket.endpoint_host}'; SET s3_use_ssl = false; "
                f"SET s3_url_style = 'path'; SET s3_region = '{s3_bucket.region}'; "
                f"SET s3_access_key_id = '{s3_bucket.access_key_id}'; "
                f"SET s3_secret_access_key = '{s3_bucket.secret_access_key}'")
    rows = con.execute(f"SELECT id, name, pull_count FROM "
                       f"read_parquet('{s3_bucket.uri('one/images.parquet')}') ORDER BY id"
                       ).fetchall()
    assert rows == list(frame().itertuples(index=False, name=None))


@pytest.fixture
def developer_aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A developer's own AWS setup, present before the bucket fixture runs."""
    mine = {"AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "real-session-token",
            "AWS_ACCESS_KEY_ID": "AKIAREALKEY", "AWS_SECRET_ACCESS_KEY": "real-secret",
            "AWS_ENDPOINT_URL": "https://s3.example.com"}
    for name, value in mine.items():
        monkeypatch.setenv(name, value)
    return mine


def test_the_bucket_fixture_hides_the_developers_aws_settings(
        developer_aws_env: dict[str, str], s3_bucket: s3svc.S3Bucket) -> None:
    env = {name: os.environ.get(name) for name in developer_aws_env}
    assert env == {"AWS_PROFILE": None, "AWS_SESSION_TOKEN": None,
                   "AWS_ACCESS_KEY_ID": s3_bucket.access_key_id,
                   "AWS_SECRET_ACCESS_KEY": s3_bucket.secret_access_key,
                   "AWS_ENDPOINT_URL": None}
    assert os.environ["AWS_DEFAULT_REGION"] == s3_bucket.region
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert not Path(os.environ["AWS_CONFIG_FILE"]).exists()
    assert not Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"]).exists()


def test_buckets_are_distinct_and_removed_with_their_objects(
        s3_server: s3svc.S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    made: list[Iterator[s3svc.S3Bucket]] = [
        s3svc.bucket_for_test(s3_server, monkeypatch, tmp_path) for _ in range(2)]
    first, second = (next(gen) for gen in made)
    assert first.name != second.name
    assert {first.name, second.name} <= s3_server.buckets()
    first.filesystem().open_output_stream(f"{first.name}/a.txt").close()
    assert second.filesystem().get_file_info(f"{second.name}/a.txt").type.name == "NotFound"
    for gen in made:
        with pytest.raises(StopIteration):
            next(gen)
    assert s3_server.buckets().isdisjoint({first.name, second.name})


def test_without_moto_the_s3_server_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)
    with pytest.raises(ServiceUnavailable, match=r"pip install -e '\.\[test\]'"):
        s3svc.S3Server().start()
