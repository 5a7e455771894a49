"""The loader: lock first, database file checks, one transaction, idempotent writes."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.errors import ConfigError, LockedError, UpstreamError
from etl.store import load_sql, run_record
from etl.store.bind import batched
from etl.store.database import lock_path_for
from etl.store.load import INTERRUPTED, Loader, LoadRun
from etl.store.run_record import RunStart
from etl.transform.frames import transform_rows
from tests.helpers import cli, q, rows

T0 = "2026-11-20T03:00:00Z"
T1 = "2026-11-21T03:00:00Z"


def load(db: Path, data: list[dict[str, Any]], at: str, *, mark_removed: bool = True,
         dup_ids: tuple[int, ...] = ()) -> tuple[int, Any]:
    """One whole run through the loader API, as the pipeline drives it."""
    with Loader(db) as loader, loader.run(start(at, endpoint="http://x")) as run:
        run.write_chunk(transform_rows(data, page_offsets=[0] * len(data)),
                        duplicate_ids=dup_ids)
        counts = run.finish(status="success", mark_removed=mark_removed,
                            stats={"requests": 1}, finished_at=at)
    assert run.run_id is not None
    return run.run_id, counts


def start(at: str, **kw: Any) -> RunStart:
    return RunStart(started_at=at, snapshot_date=at[:10], **kw)


def test_first_load_writes_whole_rows(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "dir" / "swr.db"  # missing folders are created
    run_id, counts = load(db, rows(range(1, 3)), T0)
    assert (counts.new, counts.changed, counts.removed) == (2, 0, 0)
    assert q(db, "SELECT * FROM images ORDER BY id") == [
        (1, "library", "img1", "u", "d1", 2, 101, 0, "2026-11-01T10:00:00Z", T0, T0, 1, 1, None,
         "x:80"),
        (2, "library", "img2", "u", "d2", 2, 102, 0, "2026-11-01T10:00:00Z", T0, T0, 1, 1, None,
         "x:80"),
    ]
    assert q(db, "SELECT * FROM image_snapshots ORDER BY image_id") == [
        (1, 1, "x:80", T0, "2026-11-20", 2, 101, "2026-11-01T10:00:00Z"),
        (1, 2, "x:80", T0, "2026-11-20", 2, 102, "2026-11-01T10:00:00Z"),
    ]
    assert q(db, "SELECT run_id, status, rows_loaded, rows_new, exit_code, requests, error "
                     "FROM runs") == [(1, "success", 2, 2, 0, 1, None)]
    # the run's one source, in the same transaction: the same figures
    assert q(db, "SELECT run_id, source, status, rows_loaded, rows_new, exit_code, requests, "
                 "error FROM run_sources") == [(1, "x:80", "success", 2, 2, 0, 1, None)]
    assert q(db, "PRAGMA journal_mode") == [("wal",)]
    assert q(db, "PRAGMA page_size") == [(16384,)]  # a new file: etl.store.database.PAGE_SIZE
    assert lock_path_for(db).exists()


def test_a_chunk_of_many_statements_writes_every_row(tmp_path: Path) -> None:
    # 2 statements of FILL_ROWS rows and 50 rows one by one: every row whole, in its place.
    n = 2 * load_sql.FILL_ROWS + 50
    db = tmp_path / "swr.db"
    _run_id, counts = load(db, rows(range(1, n + 1)), T0)
    assert counts.new == n
    assert q(db, "SELECT * FROM images ORDER BY id") == [
        (i, "library", f"img{i}", "u", f"d{i}", 2, 100 + i, 0, "2026-11-01T10:00:00Z", T0, T0,
         1, 1, None, "x:80") for i in range(1, n + 1)]


def test_a_chunk_statement_binds_no_more_values_than_any_engine_allows() -> None:
    from etl.store.dialect import MAX_BOUND_VALUES

    # A column more in images would take FILL_ROWS rows past SQLite's 999 before 3.32.
    assert load_sql.FILL_CHUNK_MANY_SQL.count("?") <= MAX_BOUND_VALUES


@given(st.lists(st.tuples(st.integers(), st.text(max_size=2), st.none() | st.booleans()),
                min_size=1, max_size=30), st.integers(1, 7))
def test_batched_keeps_every_value_in_order(rows_: list[tuple[Any, ...]], size: int) -> None:
    many, rest = batched([list(c) for c in zip(*rows_, strict=True)], size)
    assert all(len(b) == 3 * size for b in many) and len(rest) < size
    assert [v for b in many for v in b] + [v for r in rest for v in r] == [
        v for r in rows_ for v in r]
    assert rest == rows_[len(rows_) - len(rest):]
    assert batched([], size) == ([], [])


def test_second_identical_run_changes_nothing_but_last_seen(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 4)), T0)
    images_1 = q(db, "SELECT * FROM images ORDER BY id")
    snaps_1 = q(db, "SELECT * FROM image_snapshots ORDER BY image_id")
    run_id, counts = load(db, rows(range(1, 4)), T0)
    assert run_id == 2
    assert (counts.new, counts.changed, counts.removed) == (0, 0, 0)
    assert q(db, "SELECT * FROM images ORDER BY id") == [
        (*r[:12], 2, None, r[14]) for r in images_1]
    assert q(db, "SELECT * FROM image_snapshots WHERE run_id = 2 ORDER BY image_id") == [
        (2, *r[1:]) for r in snaps_1]


def test_same_chunk_twice_in_one_run_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    data = rows(range(1, 4))
    with Loader(db) as loader, loader.run(start(T0)) as run:
        run.write_chunk(transform_rows(data, page_offsets=[0] * 3))
        first = q(db, "SELECT count(*) FROM images")  # uncommitted: invisible to readers
        run.write_chunk(transform_rows(data, page_offsets=[0] * 3))
        run.finish(status="success", mark_removed=True, stats={}, finished_at=T0)
    assert first == [(0,)]
    assert q(db, "SELECT count(*), sum(pull_count) FROM image_snapshots") == [(3, 306)]
    assert q(db, "SELECT rows_loaded, rows_new FROM runs") == [(3, 3)]


def test_removed_at_set_then_cleared_when_the_image_returns(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 4)), T0)
    _, counts = load(db, rows(range(1, 3), pulls=200), T1)
    assert counts.removed == 1
    assert counts.changed == 2
    assert q(db, "SELECT id, removed_at, last_seen_run FROM images ORDER BY id") == [
        (1, None, 2), (2, None, 2), (3, T1, 1)]
    _, counts = load(db, rows(range(1, 4), pulls=300), "2026-11-22T03:00:00Z")
    assert (counts.new, counts.changed, counts.removed) == (1, 2, 0)  # a return counts as new
    assert q(db, "SELECT id, removed_at, first_seen_run, last_seen_run FROM images "
                     "ORDER BY id") == [(1, None, 1, 3), (2, None, 1, 3), (3, None, 1, 3)]


def test_without_mark_removed_nothing_is_removed(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 4)), T0)
    _, counts = load(db, rows(range(1, 2)), T1, mark_removed=False)
    assert counts.removed == 0
    assert q(db, "SELECT count(*) FROM images WHERE removed_at IS NOT NULL") == [(0,)]


def test_identity_issues_and_cross_chunk_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 3)), T0)
    renamed = rows(range(1, 3))
    renamed[0]["name"] = "renamed"          # id 1 changed its (namespace, name)
    renamed.append({**rows(range(9, 10))[0], "name": "img2"})  # img2 now also under id 9
    load(db, renamed, T1, dup_ids=(2,))
    assert q(db, "SELECT run_id, image_id, field, raw_value, problem FROM quality_issues "
                     "ORDER BY image_id, problem") == [
        (2, 1, "namespace/name", "library/renamed", "identity changed, was library/img1"),
        (2, 2, "id", "2", "duplicate id in scan"),
        (2, 2, "namespace/name", "library/img2", "namespace/name shared by ids 2, 9"),
        (2, 9, "namespace/name", "library/img2", "namespace/name shared by ids 2, 9"),
    ]
    assert q(db, "SELECT quality_issues FROM runs WHERE run_id = 2") == [(4,)]
    assert q(db, "SELECT id, namespace, name, last_seen_run FROM images ORDER BY id") == [
        (1, "library", "renamed", 2), (2, "library", "img2", 2), (9, "library", "img2", 2)]
    # id 9 alone (filtered run): id 2 is still listed in the database under the same name
    load(db, [{**rows(range(9, 10))[0], "name": "img2"}], "2026-11-22T03:00:00Z",
         mark_removed=False)
    assert q(db, "SELECT image_id, field, raw_value, problem FROM quality_issues "
                     "WHERE run_id = 3 ORDER BY image_id") == [
        (2, "namespace/name", "library/img2", "namespace/name shared by ids 2, 9"),
        (9, "namespace/name", "library/img2", "namespace/name shared by ids 2, 9"),
    ]


def test_duplicate_name_check_reads_the_name_index_alone(tmp_path: Path) -> None:
    # Once per source of every run: it must read the (name, namespace, source) index in its own
    # order, not every row of the source through its key with a sort for the GROUP BY (the plan
    # SQLite picks for the source's equality unless told otherwise).
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 30)), T0)
    conn = sqlite3.connect(db)
    try:
        plan = [row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + load_sql.NAME_TWO_IDS_SQL,
            {"run": 1, "source": "x", "at": T0})]
    finally:
        conn.close()
    dup = plan[plan.index("MATERIALIZE dup") + 1:][:2]
    assert dup[0].split(" (")[0] in {"SEARCH images USING COVERING INDEX images_name",
                                      "SCAN images USING COVERING INDEX images_name"}, plan
    assert "GROUP BY" not in dup[1], plan


def name_index(conn: sqlite3.Connection) -> list[Any]:
    return conn.execute("SELECT sql FROM sqlite_master WHERE name = 'images_name'").fetchall()


def test_a_first_load_builds_the_name_index_at_its_end(tmp_path: Path) -> None:
    # Into an empty images table the load leaves the name index out and builds it before the
    # duplicate-name check; into a filled one it keeps it. Other connections never see it gone,
    # nor does a failed load leave it gone.
    db = tmp_path / "swr.db"
    with Loader(db) as loader:
        declared = name_index(loader.conn)
    assert declared and "(name, namespace, source)" in declared[0][0]
    with pytest.raises(UpstreamError), Loader(db) as loader, loader.run(start(T0)) as run:
        run.write_chunk(transform_rows(rows(range(1, 4)), page_offsets=[0] * 3))
        assert name_index(loader.conn) == []  # left out inside the load
        raise UpstreamError("boom")
    assert name_index(sqlite3.connect(db)) == declared  # the rollback kept it

    with Loader(db) as loader, loader.run(start(T0)) as run:
        run.write_chunk(transform_rows([*rows(range(1, 4)), {**rows(range(9, 10))[0],
                                                            "name": "img2"}],
                                       page_offsets=[0] * 4))
        assert name_index(loader.conn) == []
        assert name_index(sqlite3.connect(db)) == declared  # another connection: still there
        run.finish(status="success", mark_removed=True, stats={}, finished_at=T0)
        assert name_index(loader.conn) == declared  # the same definition, built again
    # the check that reads it ran after it was back
    assert q(db, "SELECT image_id FROM quality_issues WHERE field = 'namespace/name' "
                 "ORDER BY image_id") == [(2,), (9,)]
    assert q(db, "PRAGMA integrity_check") == [("ok",)]

    with Loader(db) as loader, loader.run(start(T1)) as run:
        run.write_chunk(transform_rows(rows(range(1, 4)), page_offsets=[0] * 3))
        assert name_index(loader.conn) == declared  # a filled table keeps it throughout
        run.finish(status="success", mark_removed=True, stats={}, finished_at=T1)


def test_restart_pass_discards_the_earlier_pass(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    with Loader(db) as loader, loader.run(start(T0)) as run:
        run.write_raw_pages([(0, T0, "0-2/2", b"[1]")])
        run.write_chunk(transform_rows(rows(range(1, 6)), page_offsets=[0] * 5))
        run.restart_pass()
        run.write_raw_pages([(0, T0, "0-1/1", b"[2]")])
        run.write_chunk(transform_rows(rows(range(7, 8)), page_offsets=[0]))
        counts = run.finish(status="success", mark_removed=True, stats={}, finished_at=T0)
    assert counts.new == 1
    assert q(db, "SELECT id FROM images") == [(7,)]
    assert q(db, "SELECT image_id FROM image_snapshots") == [(7,)]
    assert q(db, "SELECT page_offset, content_range FROM raw_pages") == [(0, "0-1/1")]
    with Loader(db) as loader:
        assert [(p.offset, p.body) for p in loader.raw_pages(1)] == [(0, b"[2]")]


def test_failure_rolls_back_and_records_the_run(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 3)), T0)
    with pytest.raises(UpstreamError), Loader(db) as loader, loader.run(
            start(T1), finished_at=lambda: T1, figures=lambda: {"requests": 7}) as run:
        run.write_chunk(transform_rows(rows(range(1, 9), pulls=5), page_offsets=[0] * 8))
        raise UpstreamError("boom: the API went away")
    assert q(db, "SELECT run_id, status, error, exit_code, rows_loaded, requests, "
                     "finished_at FROM runs") == [
        (1, "success", None, 0, 2, 1, T0), (2, "failed", "boom: the API went away", 4, 0, 7, T1)]
    assert q(db, "SELECT count(*), sum(pull_count) FROM images") == [(2, 203)]
    assert q(db, "SELECT count(*) FROM image_snapshots WHERE run_id = 2") == [(0,)]


def test_stale_running_row_is_marked_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    with Loader(db) as loader:
        # the process "dies" right after the running row: it stays, the lock goes with the
        # process (a run's block that ends without finish() is recorded failed instead)
        run_record.insert_running(loader.conn, start(T0))
    with Loader(db):
        pass
    assert q(db, "SELECT run_id, status, error FROM runs") == [(1, "failed", INTERRUPTED)]


def test_raw_pages_are_compressed_and_pruned(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    body = b'[{"id": 1, "name": "' + b"x" * 5000 + b'"}]'
    for _ in range(4):
        with Loader(db, keep_raw_runs=2) as loader, loader.run(start(T0)) as run:
            run.write_raw_pages([(0, T0, None, body), (100, T0, None, body)])
            run.finish(status="success", mark_removed=False, stats={}, finished_at=T0)
    stored = q(db, "SELECT run_id, page_offset, encoding, length(body) FROM raw_pages "
                       "ORDER BY run_id, page_offset")
    assert [(r[0], r[1], r[2]) for r in stored] == [
        (3, 0, "zlib"), (3, 100, "zlib"), (4, 0, "zlib"), (4, 100, "zlib")]
    assert all(r[3] < 200 for r in stored)
    with Loader(db) as loader:
        assert [(p.offset, p.body) for p in loader.raw_pages(4)] == [(0, body), (100, body)]


# ------------------------------------------------------------------------ lock and file checks


def hold_lock(db: Path) -> int:
    db.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path_for(db), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


def test_lock_held_is_locked_error(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    fd = hold_lock(db)
    try:
        with pytest.raises(LockedError) as err, Loader(db):
            pass
        assert str(err.value) == f"another run holds the lock for {db} (pid 4242)"
        assert not db.exists()  # the lock comes first: the database was not even created
    finally:
        os.close(fd)
    with Loader(db):  # released: the next run gets it
        pass


def test_second_concurrent_sync_exits_5(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    fd = hold_lock(db)
    try:
        code, _, err = cli(["sync", "-q", "--db", str(db), "--endpoint", "http://127.0.0.1:9",
                         "--no-auth"], capsys)
    finally:
        os.close(fd)
    assert code == 5
    assert err.strip() == f"swr-etl: error: another run holds the lock for {db} (pid 4242)"


def test_garbage_database_file_is_left_untouched(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "notes.db"
    garbage = b"these are my notes, not a database\n" * 100
    db.write_bytes(garbage)
    code, _, err = cli(["sync", "-q", "--db", str(db), "--endpoint", "http://127.0.0.1:9",
                     "--no-auth"], capsys)
    assert code == 2
    assert err.strip() == f"swr-etl: error: {db} is not a SQLite database (left untouched)"
    assert db.read_bytes() == garbage
    # checked before the lock: nothing is created beside it either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_read_only_location_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    db = Path("/sys/swr-etl-test.db")  # sysfs refuses new files, even to root
    code, _, err = cli(["sync", "-q", "--db", str(db), "--endpoint", "http://127.0.0.1:9",
                     "--no-auth"], capsys)
    assert code == 2
    assert err.strip().startswith(f"swr-etl: error: cannot write beside database {db} "
                          "(read-only location?): ")
    assert not db.exists()


def test_read_only_file_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write a read-only file")
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 2)), T0)
    db.chmod(0o444)
    with pytest.raises(ConfigError, match="is read-only"), Loader(db):
        pass


def test_directory_as_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err, Loader(tmp_path):
        pass
    assert str(err.value) == f"database path {tmp_path} is a folder, not a SQLite file"


def test_reader_is_not_blocked_and_keeps_its_view(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 4)), T0)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*), max(last_seen_run) FROM images").fetchone() == (3, 1)
    _, counts = load(db, rows(range(1, 6), pulls=500), T1)  # not blocked by the reader
    assert counts.new == 2
    # the open read transaction still sees the state it started with
    assert reader.execute("SELECT count(*), max(last_seen_run) FROM images").fetchone() == (3, 1)
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*), max(last_seen_run) FROM images").fetchone() == (5, 2)
    reader.close()


def test_disk_full_is_a_clear_error_and_loads_nothing(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    load(db, rows(range(1, 3)), T0)
    with pytest.raises(ConfigError) as err, Loader(db) as loader:
        pages = loader.conn.execute("PRAGMA page_count").fetchone()[0]
        loader.conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # a full disk, simulated
        with loader.run(start(T1)) as run:
            run.write_chunk(transform_rows(rows(range(1, 5001)), page_offsets=[0] * 5000))
    assert str(err.value) == (f"cannot write database {db}: database or disk is full; nothing of "
                              "this run was loaded")
    assert q(db, "SELECT count(*) FROM images") == [(2,)]
    assert q(db, "SELECT run_id, status, exit_code FROM runs") == [
        (1, "success", 0), (2, "failed", 2)]


def test_a_run_left_without_finish_is_recorded_failed(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    with Loader(db) as loader, loader.run(start(T0), finished_at=lambda: T1) as run:
        run.write_chunk(transform_rows(rows(range(1, 3)), page_offsets=[0, 0]))
    assert q(db, "SELECT status, exit_code, finished_at, error FROM runs") == [
        ("failed", 1, T1, "internal error: RuntimeError: the run's block ended without "
                          "finish()")]
    assert q(db, "SELECT count(*) FROM images") == [(0,)]


def test_failure_figures_sqlite_cannot_hold_are_left_out(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    figures = {"requests": 3, "total_reported": 2**70, "retry_causes": {"http_503": 2},
               "proof": "double-read"}
    with pytest.raises(UpstreamError), Loader(db) as loader, loader.run(
            start(T0), figures=lambda: figures):
        raise UpstreamError("gone")
    assert q(db, "SELECT status, exit_code, requests, total_reported, retry_causes, proof "
                     "FROM runs") == [("failed", 4, 3, None, '{"http_503": 2}', None)]


# ------------------------------------------------------------- another application's database


def their_db(path: Path, *, user_version: int = 0, table_name: str = "notes") -> bytes:
    """A small SQLite database of another application (rollback journal, one table)."""
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {table_name} (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute(f"INSERT INTO {table_name} (body) VALUES ('keep me')")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_someone_elses_database_is_refused_and_left_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "their.db"
    before = their_db(db)
    code, _, err = cli(["sync", "-q", "--db", str(db), "--endpoint", "http://127.0.0.1:9",
                     "--no-auth", "--metrics-file", str(tmp_path / "swr.prom")], capsys)
    assert (code, err.strip()) == (2, f"swr-etl: error: {db} is not an swr-etl database (it holds "
                              "notes), left untouched: `swr-etl sync --adopt` adds swr-etl's "
                              "tables to it and switches it to WAL mode")
    assert db.read_bytes() == before
    # no lock, no WAL files, no metrics file: refused before the run's hooks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["their.db"]
    assert q(db, "PRAGMA journal_mode") == [("delete",)]


def test_adopt_adds_our_tables_beside_theirs(tmp_path: Path, simulator: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    sim = simulator(images=5)
    db = tmp_path / "their.db"
    their_db(db)
    code, _, err = cli(["sync", "-q", "--db", str(db), "--endpoint", sim.url, "--no-auth",
                     "--adopt"], capsys)
    assert (code, err.strip()) == (0, "")
    assert q(db, "SELECT body FROM notes") == [("keep me",)]
    assert q(db, "SELECT count(*) FROM images") == [(5,)]
    assert q(db, "PRAGMA journal_mode") == [("wal",)]
    assert q(db, "PRAGMA page_size") == [(4096,)]  # theirs, as it was: never rewritten
    # adopted once, it is ours: the next run needs no --adopt
    code, _, err = cli(["sync", "-q", "--db", str(db), "--endpoint", sim.url, "--no-auth"], capsys)
    assert (code, err.strip()) == (0, "")
    assert q(db, "SELECT count(*), max(status) FROM runs") == [(2, "success")]


@pytest.mark.parametrize("kind,why", [
    ("version", "its PRAGMA user_version is 7, where swr-etl keeps its schema version"),
    ("clash", "it already has runs, which swr-etl would create"),
])
def test_what_cannot_be_adopted_is_refused(tmp_path: Path, kind: str, why: str) -> None:
    db = tmp_path / "their.db"
    before = (their_db(db, user_version=7) if kind == "version"
              else their_db(db, table_name="runs"))
    with pytest.raises(ConfigError) as err, Loader(db, adopt=True):
        pass
    assert str(err.value) == f"cannot adopt {db}: {why} (left untouched)"
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["their.db"]


def test_empty_sqlite_files_need_no_adopt(tmp_path: Path) -> None:
    zero = tmp_path / "zero.db"
    zero.touch()
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).execute("VACUUM").connection.close()  # a header, no tables
    assert blank.stat().st_size > 0
    for db, page_size in ((zero, 16384), (blank, 4096)):  # a header already says its size
        load(db, rows(range(1, 3)), T0)
        assert q(db, "SELECT count(*) FROM images") == [(2,)]
        assert q(db, "PRAGMA page_size") == [(page_size,)]


def test_replay_of_someone_elses_database_points_at_sync_adopt(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "their.db"
    before = their_db(db)
    code, _, err = cli(["replay", "1", "--db", str(db)], capsys)
    assert code == 2 and err.strip().endswith(
        "`swr-etl sync --adopt` adds swr-etl's tables to it and switches it to WAL mode")
    assert db.read_bytes() == before


def test_a_sync_merges_without_the_name_index_only_into_a_new_database(
        simulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Through the whole pipeline, merges on the writer thread: every chunk of the first sync
    # without the name index, every chunk of the next one (into a filled table) with it.
    present: list[bool] = []
    merge = LoadRun.merge_chunk

    def spy(self: LoadRun) -> None:
        present.append(bool(name_index(self.loader.conn)))
        merge(self)

    monkeypatch.setattr(LoadRun, "merge_chunk", spy)
    sim = simulator(images=180, seed=7)
    db = tmp_path / "swr.db"
    args = ["-q", "sync", "--endpoint", sim.url, "--db", str(db), "--no-auth",
            "--page-size", "50"]
    assert cli(args, capsys).code == 0
    assert present and not any(present)
    assert name_index(sqlite3.connect(db))  # built at the end
    present.clear()
    assert cli(args, capsys).code == 0
    assert present and all(present)
    assert q(db, "SELECT COUNT(*) FROM images") == [(180,)]
