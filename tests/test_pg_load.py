"""The PostgreSQL load (etl.store.pg_load) against a real throwaway cluster: the same listing gives
the same rows in every table as SQLite's load, a reader in another session sees the old state or
the new one and never half, and what the server or another session does wrong is one line and
its documented exit code, with nothing already committed lost."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from etl.config.settings import Settings
from etl.config.sources import Source
from etl.errors import ConfigError, DatabaseBusyError, LockedError
from etl.run import ChunkSizes
from etl.run.pipeline import replay_run, run_sync
from etl.simulator import Simulator
from etl.store.pg import PgRunLock, connect
from tests.helpers import FakeScan, q, rows, table_rows

psycopg = pytest.importorskip("psycopg")

T0, T1, T2 = "2026-11-20T03:00:00Z", "2026-11-21T03:00:00Z", "2026-11-22T03:00:00Z"
TABLES = ("runs", "run_sources", "images", "image_snapshots", "rejects", "quality_issues",
          "raw_pages")
# What differs between two runs of the same listing however they are stored: the clock (a
# replay starts now).
CLOCK_COLUMNS = frozenset({"started_at", "finished_at", "duration_s", "fetched_at"})
# Chunks of 40 and then 80 rows: an id repeated 200 rows later is in another chunk.
SMALL_CHUNKS = ChunkSizes(first=40, largest=80)


def every_table(db: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: table_rows(db, t, skip=CLOCK_COLUMNS) for t in TABLES}


def crafted_history(db: Path | str) -> None:
    """Runs that reach every branch of the load: rejects, duplicates across chunks, an id whose
    name changes, one name under two ids, removals, a partial scan, a rescan, and replays."""
    settings = Settings(endpoint="http://127.0.0.1:9", db=db, allow_anonymous=True,
                        max_reject_ratio=0.5)
    first = rows(range(1, 260)) + [{"id": None}, {"no": "id"}]
    first[200] = {**first[3], "pull_count": 999}  # id 4 again, a chunk later: later wins
    run_sync(settings, now=T0, pages=FakeScan(first, page_size=40), chunk_sizes=SMALL_CHUNKS)
    second = rows(range(5, 300), pulls=300)
    second[0] = {**second[0], "name": "renamed"}  # id 5 changes its name
    second[1] = {**second[1], "name": "img7"}  # id 6 takes id 7's name
    run_sync(settings, now=T1, pages=FakeScan(rows(range(5, 280)), second, page_size=50))
    run_sync(settings, now=T2, pages=FakeScan(rows(range(5, 100)), complete=False))
    replay_run(settings, 1, chunk_sizes=SMALL_CHUNKS)  # older than the state: no overwrite
    replay_run(settings.replace(source_timezone="Asia/Shanghai"), 2)


def test_the_same_history_gives_the_same_rows_on_both_engines(tmp_path: Path,
                                                               pg_url: str) -> None:
    sqlite_db = tmp_path / "swr.db"
    crafted_history(sqlite_db)
    crafted_history(pg_url)
    on_sqlite, on_pg = every_table(sqlite_db), every_table(pg_url)
    assert {t: len(r) for t, r in on_pg.items()} == {t: len(r) for t, r in on_sqlite.items()}
    for table in TABLES:
        assert on_pg[table] == on_sqlite[table], table
    # the history did reach every branch
    assert q(pg_url, "SELECT run_id, count(*) FROM rejects GROUP BY run_id ORDER BY run_id") == [
        (1, 2), (4, 2)]  # run 1 and its replay
    assert q(pg_url, "SELECT count(*) FROM images WHERE removed_at IS NOT NULL")[0][0] > 0
    problems = {p.split(",")[0] for (p,) in q(pg_url, "SELECT problem FROM quality_issues")}
    assert {"duplicate id in scan", "identity changed"} <= {p.split(" was")[0] for p in problems}
    assert q(pg_url, "SELECT pull_count FROM image_snapshots WHERE run_id = 1 AND image_id = 4"
             ) == [(999,)]  # the repeat from a later chunk replaced the first row's snapshot
    assert any(p.startswith("namespace/name shared by ids") for p in problems)


def test_a_simulated_listing_gives_the_same_rows_on_both_engines(tmp_path: Path,
                                                                  pg_url: str) -> None:
    with Simulator(images=700, seed=11, today=date(2026, 11, 20)) as sim:
        source = (Source("simulator", sim.url, "cn-north-4"),)
        dbs: list[Path | str] = [tmp_path / "swr.db", pg_url]
        for now in (T0, T1):
            for db in dbs:
                result = run_sync(Settings(endpoint=sim.url, db=db, allow_anonymous=True,
                                           sources=source, page_size=100, concurrency=1),
                                  now=now)
                assert result.status == "success"
            sim.dataset.advance_day()
    on_sqlite, on_pg = every_table(dbs[0]), every_table(pg_url)
    for table in TABLES:
        assert on_pg[table] == on_sqlite[table], table
    assert len(on_pg["image_snapshots"]) > 1000


def test_a_run_of_several_sources_loads_each_in_its_own_transaction(pg_url: str) -> None:
    sources = (Source("a", "http://127.0.0.1:9", "cn-north-4"),
               Source("b", "http://127.0.0.1:8", "cn-north-4"))
    settings = Settings(db=pg_url, allow_anonymous=True, sources=sources)
    result = run_sync(settings, now=T0, pages={
        "a": FakeScan(rows(range(1, 50))),
        "b": FakeScan(rows(range(1, 30)), fail_at_page=0)})
    assert (result.status, result.exit_code) == ("partial", 4)
    assert q(pg_url, "SELECT source, status, rows_loaded FROM run_sources ORDER BY source") == [
        ("a", "success", 49), ("b", "failed", 0)]
    assert q(pg_url, "SELECT source, count(*) FROM images GROUP BY source") == [("a", 49)]
    assert q(pg_url, "SELECT status, exit_code, rows_loaded FROM runs") == [("partial", 4, 49)]


def test_a_second_run_gets_exit_5_and_touches_nothing(pg_url: str) -> None:
    settings = Settings(endpoint="http://127.0.0.1:9", db=pg_url, allow_anonymous=True)
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 20))))
    before = every_table(pg_url)
    holder = PgRunLock(pg_url)
    holder.acquire()
    try:
        with pytest.raises(LockedError) as caught:
            run_sync(settings, now=T1, pages=FakeScan(rows(range(1, 40))))
    finally:
        holder.release()
    assert caught.value.exit_code == 5
    assert caught.value.message.startswith("another run holds the lock for postgresql://")
    assert every_table(pg_url) == before


def test_rows_held_by_another_writer_past_the_busy_timeout_are_exit_5(pg_url: str) -> None:
    settings = Settings(endpoint="http://127.0.0.1:9", db=pg_url, allow_anonymous=True,
                        busy_timeout=0.3)
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 20))))
    ledger = ("runs", "run_sources")
    before = {t: r for t, r in every_table(pg_url).items() if t not in ledger}
    other, _schema = connect(pg_url)
    with other:
        other.execute("BEGIN")
        other.execute("UPDATE images SET description = 'held' WHERE id = 3")
        with pytest.raises(DatabaseBusyError) as caught:
            run_sync(settings, now=T1, pages=FakeScan(rows(range(1, 20), pulls=7)))
        other.execute("ROLLBACK")
    assert caught.value.exit_code == 5
    assert caught.value.message == (
        f"another writer held database {pg_url} past the busy timeout; nothing of this run "
        "was loaded")
    assert {t: r for t, r in every_table(pg_url).items() if t not in ledger} == before
    assert q(pg_url, "SELECT run_id, status, exit_code, error FROM runs ORDER BY run_id") == [
        (1, "success", 0, None), (2, "failed", 5, caught.value.message)]
    assert run_sync(settings, now=T1, pages=FakeScan(rows(range(1, 20)))).status == "success"


def test_an_unreachable_server_is_exit_2_before_anything_is_read(tmp_path: Path) -> None:
    from tests.services.postgres import free_port

    asked: list[Settings] = []
    url = f"postgresql://swr@127.0.0.1:{free_port()}/swr"
    with pytest.raises(ConfigError) as caught:
        run_sync(Settings(db=url, allow_anonymous=True, endpoint="http://127.0.0.1:9"),
                 pages=lambda s: asked.append(s) or FakeScan(rows(range(1, 3))))
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"cannot open database {url}: ")
    assert asked == []


def test_another_applications_tables_are_refused_before_the_lock(pg_url: str) -> None:
    conn, _schema = connect(pg_url)
    with conn:
        conn.execute("CREATE TABLE images (id BIGINT)")
    with pytest.raises(ConfigError) as caught:
        run_sync(Settings(db=pg_url, allow_anonymous=True, endpoint="http://127.0.0.1:9"),
                 pages=FakeScan(rows(range(1, 3))))
    assert caught.value.message == ("schema public already holds images, not created by "
                                    "swr-etl (left untouched)")
    assert q(pg_url, "SELECT count(*) FROM information_schema.tables WHERE "
                     "table_schema = 'public'") == [(1,)]


def test_a_role_without_rights_is_exit_2_in_one_line(pg_url: str) -> None:
    run_sync(Settings(db=pg_url, allow_anonymous=True, endpoint="http://127.0.0.1:9"),
             now=T0, pages=FakeScan(rows(range(1, 3))))
    conn, _schema = connect(pg_url)
    with conn:
        conn.execute("CREATE ROLE reader LOGIN")
        conn.execute("GRANT USAGE ON SCHEMA public TO reader")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    url = pg_url.replace("postgres@", "reader@")
    try:
        with pytest.raises(ConfigError) as caught:
            run_sync(Settings(db=url, allow_anonymous=True, endpoint="http://127.0.0.1:9"),
                     now=T1, pages=FakeScan(rows(range(1, 3))))
    finally:
        with connect(pg_url)[0] as conn:
            conn.execute("DROP OWNED BY reader")
            conn.execute("DROP ROLE reader")
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith("cannot write database ")
    assert "permission denied" in caught.value.message
    assert "\n" not in caught.value.message
    assert q(pg_url, "SELECT run_id, status FROM runs") == [(1, "success")]


# ------------------------------------------------------------------------ the command line


def test_sync_replay_dry_run_and_metrics_over_the_url(
        pg_url: str, scan_queue: list[FakeScan], clean_env: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import cli

    base = ["--endpoint", "http://127.0.0.1:9", "--no-auth", "--db", pg_url]
    scan_queue.append(FakeScan(rows(range(1, 41))))
    dry = cli(["sync", "--dry-run", *base], capsys)
    assert (dry.code, dry.out.split(":")[0]) == (0, "dry run (success, nothing written)")
    assert q(pg_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]

    metrics = tmp_path / "swr_etl.prom"
    scan_queue.append(FakeScan(rows(range(1, 41))))
    done = cli(["sync", *base, "--metrics-file", str(metrics)], capsys)
    assert done.code == 0, done.err
    assert done.out.startswith("run 1 success: 40 rows (40 new, ")
    text = metrics.read_text()
    assert "swr_etl_images 40.0" in text  # read back from PostgreSQL
    assert "swr_etl_last_success_timestamp_seconds " in text

    again = cli(["replay", "1", "--db", pg_url], capsys)
    assert again.code == 0, again.err
    assert again.out.startswith("run 2 success: 40 rows (0 new, 0 changed, 0 removed, "
                                "0 rejected) replayed from run 1")
    listed = cli(["runs", "--db", pg_url], capsys)
    assert listed.code == 0, listed.err
    assert [line.split()[:3:2] for line in listed.out.splitlines()[1:]] == [
        ["2", "success"], ["1", "success"]]
    assert q(pg_url, "SELECT run_id, replay_of, status FROM runs ORDER BY run_id") == [
        (1, None, "success"), (2, 1, "success")]
    missing = cli(["replay", "9", "--db", pg_url], capsys)
    assert (missing.code, missing.err.strip()) == (2, f"swr-etl: error: no run 9 in {pg_url}")


def test_a_role_that_owns_only_its_schema_can_sync(pg_url: str) -> None:
    # The operators' page sets the job up so: no CREATE on the database, a schema of its own.
    conn, _schema = connect(pg_url)
    with conn:
        conn.execute("CREATE ROLE job LOGIN")
        conn.execute("CREATE SCHEMA jobs AUTHORIZATION job")
    url = pg_url.replace("postgres@", "job@") + "?schema=jobs"
    try:
        for at, ids in ((T0, range(1, 3)), (T1, range(1, 4))):
            run_sync(Settings(db=url, allow_anonymous=True, endpoint="http://127.0.0.1:9"),
                     now=at, pages=FakeScan(rows(ids)))
        assert q(url, "SELECT count(*) FROM jobs.images") == [(3,)]
        assert q(url, "SELECT status FROM jobs.runs ORDER BY run_id") == [("success",)] * 2
    finally:
        with connect(pg_url)[0] as conn:
            conn.execute("DROP SCHEMA jobs CASCADE")
            conn.execute("DROP OWNED BY job")
            conn.execute("DROP ROLE job")


def test_the_sqlite_loader_refuses_a_url_instead_of_making_a_file_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from etl.store.load import Loader

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="open_loader"):
        Loader("postgresql://etl@127.0.0.1:1/db")
    assert list(tmp_path.iterdir()) == []
