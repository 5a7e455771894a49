"""``runs`` and ``status`` (the run ledger) read from PostgreSQL say what they say from SQLite:
the same ledger copied into both engines gives the same rows, table and verdicts."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from etl.errors import ConfigError
from etl.store.ledger import format_runs_table, freshness, list_runs
from etl.store.pg_schema import ensure_schema
from etl.store.read import latest_run, open_ledger, recent_runs
from tests.helpers import cli, copy_to_postgres
from tests.test_ledger import NOW, RUNS, make_db

psycopg = pytest.importorskip("psycopg")

# Two sources: eu-west-101 last succeeded in run 1, cn-north-4 in run 2; run 3 failed for both.
SOURCES = [(1, "cn-north-4", "success"), (1, "eu-west-101", "success"),
           (2, "cn-north-4", "success"), (2, "eu-west-101", "failed"),
           (3, "cn-north-4", "failed"), (3, "eu-west-101", "failed")]


def _both(tmp_path: Path, url: str, *, sources: bool = False) -> tuple[Path, str]:
    """The ledger RUNS (and SOURCES) in a SQLite file and in the PostgreSQL database ``url``."""
    db = make_db(tmp_path / "swr.db", RUNS)
    with sqlite3.connect(db) as conn:
        if sources:
            conn.executemany("INSERT INTO run_sources (run_id, source, status, finished_at) "
                             "SELECT ?, ?, ?, finished_at FROM runs WHERE run_id = ?",
                             [(r, s, st, r) for r, s, st in SOURCES])
        with psycopg.connect(url, autocommit=True) as pg:
            ensure_schema(pg, "public")
            copy_to_postgres(conn, pg)
    conn.close()
    return db, url


@pytest.mark.parametrize("sources", [False, True])
def test_runs_reads_the_same_ledger_from_both_engines(tmp_path: Path, pg_url: str,
                                                      sources: bool) -> None:
    db, url = _both(tmp_path, pg_url, sources=sources)
    from_pg = list_runs(url, limit=10)
    assert from_pg == list_runs(db, limit=10)
    assert [r["run_id"] for r in from_pg] == [3, 2, 1]
    assert from_pg[1]["retry_causes"] == {"http_503": 1}
    assert len(from_pg[0]["sources"]) == (2 if sources else 0)
    assert format_runs_table(from_pg) == format_runs_table(list_runs(db, limit=10))


# The last success (run 2) is 33 h old at NOW; eu-west-101's (run 1) 57 h.
@pytest.mark.parametrize(("sources", "later_h", "max_age", "code"), [
    (False, -20, 26, 0), (False, 0, 26, 8), (True, -20, 26, 8), (True, -20, 48, 0),
    (False, -40, 26, 8)])  # stamped in the future
def test_status_gives_the_same_verdict_from_both_engines(tmp_path: Path, pg_url: str,
                                                         sources: bool, later_h: int,
                                                         max_age: int, code: int) -> None:
    db, url = _both(tmp_path, pg_url, sources=sources)
    now = NOW + timedelta(hours=later_h)
    verdict = freshness(url, max_age_hours=max_age, now=now)
    assert verdict == freshness(db, max_age_hours=max_age, now=now)
    assert verdict[2] == code


def test_a_schema_without_the_ledger_is_not_ours_and_stays_empty(pg_url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        list_runs(pg_url + "?schema=elsewhere")
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"not an swr-etl database (no runs table): {pg_url.split('?')[0]}")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                            ).fetchone()[0] == 0


def _insert_run(url: str, run_id: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO runs (run_id, started_at, status) VALUES (%s, 't', 'running')",
                     (run_id,))


def test_one_probe_sees_one_committed_state(tmp_path: Path, pg_url: str) -> None:
    _db, url = _both(tmp_path, pg_url)
    with open_ledger(url) as reader:
        first: Any = latest_run(reader)
        _insert_run(url, 4)  # committed by another session while the probe reads
        during = [r["run_id"] for r in recent_runs(reader, 10)]
    assert (first["run_id"], during) == (3, [3, 2, 1])
    assert [r["run_id"] for r in list_runs(url)] == [4, 3, 2, 1]


def test_a_probe_cannot_write(tmp_path: Path, pg_url: str) -> None:
    _db, url = _both(tmp_path, pg_url)
    with open_ledger(url) as reader, pytest.raises(ConfigError, match="read-only transaction"):
        reader.execute("DELETE FROM runs WHERE run_id = ?", (1,))
    assert [r["run_id"] for r in list_runs(url)] == [3, 2, 1]


# ------------------------------------------------------------- the commands over a URL


def test_runs_and_status_take_the_url_from_the_flag_and_the_environment(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db, url = _both(tmp_path, pg_url)
    from_file = cli(["runs", "--db", str(db), "--json"], capsys)
    from_flag = cli(["runs", "--db", url, "--json"], capsys)
    assert from_flag.code == 0 and from_flag.out == from_file.out
    assert [r["run_id"] for r in json.loads(from_flag.out)] == [3, 2, 1]
    monkeypatch.setenv("SWR_ETL_DB", url)
    assert cli(["runs", "--json"], capsys).out == from_file.out
    # The last success is days old by now: stale, from either engine alike.
    assert cli(["status"], capsys).code == cli(["status", "--db", str(db)], capsys).code == 8


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://etl:s3cret@127.0.0.1/db", "must not contain a password"),
    ("postgresql://127.0.0.1/db?password=s3cret", "must not contain a password"),
    ("postgresql://127.0.0.1:port/db", "is not a valid postgresql:// URL"),
    ("postgresql:db", "must be a file or postgresql://USER@HOST:PORT/DBNAME"),
])
def test_a_bad_url_is_refused_before_anything_is_opened(
        url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    sync = ["sync", "--no-auth", "--endpoint", "http://127.0.0.1:9"]
    for command in (["runs"], ["status"], sync, ["report", "--out", "-"], ["export", "--out", "x"]):
        result = cli([*command, "--db", url], capsys)
        assert result.code == 2, command
        assert message in result.err and result.err.count("\n") == 1
        assert "s3cret" not in result.err
