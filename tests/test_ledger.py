"""The run ledger readers behind `swr-etl runs` and `swr-etl status` (read-only, exit codes)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from etl.errors import ConfigError
from etl.store.ledger import EXIT_STALE, format_runs_table, freshness, list_runs
from etl.store.schema import MIGRATIONS
from tests.helpers import cli

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)

RUNS: list[dict[str, Any]] = [
    {"run_id": 1, "started_at": "2026-11-25T03:00:00Z", "finished_at": "2026-11-25T03:00:09Z",
     "status": "success", "requests": 2, "retries": 0, "rows_loaded": 180, "rows_new": 180,
     "rows_rejected": 0, "duration_s": 9.25, "retry_causes": "{}", "proof": "one-page"},
    {"run_id": 2, "started_at": "2026-11-26T03:00:00Z", "finished_at": "2026-11-26T03:00:12Z",
     "status": "success", "requests": 3, "retries": 1, "rows_loaded": 181, "rows_new": 1,
     "rows_changed": 40, "rows_removed": 0, "rows_rejected": 2, "duration_s": 12.0,
     "retry_causes": '{"http_503": 1}', "proof": "double-read"},
    {"run_id": 3, "started_at": "2026-11-27T03:00:00Z", "finished_at": "2026-11-27T03:00:31Z",
     "status": "failed", "requests": 5, "retries": 4, "rows_loaded": 0, "rows_rejected": 0,
     "error": "SWR API unavailable after 5 attempts:\nHTTP 503 SVCSTG.SWR.5000001",
     "exit_code": 4, "duration_s": None},
]


def make_db(path: Path, runs: list[dict[str, Any]], version: int = max(MIGRATIONS)) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    for n in range(1, version + 1):
        conn.executescript(MIGRATIONS[n])
    for run in runs:
        cols = ", ".join(run)
        conn.execute(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(run))})",
                     tuple(run.values()))
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "swr.db", RUNS)


def test_list_runs_newest_first_whole_rows(db: Path) -> None:
    rows = list_runs(db, limit=2)
    assert [r["run_id"] for r in rows] == [3, 2]
    second = rows[1]
    assert {k: second[k] for k in ("status", "requests", "retries", "rows_loaded", "rows_new",
                                   "rows_changed", "rows_removed", "rows_rejected")} == {
        "status": "success", "requests": 3, "retries": 1, "rows_loaded": 181, "rows_new": 1,
        "rows_changed": 40, "rows_removed": 0, "rows_rejected": 2}
    assert second["retry_causes"] == {"http_503": 1}  # decoded from JSON text
    assert rows[0]["error"].startswith("SWR API unavailable")


def test_runs_table_is_aligned_and_single_line_per_run(db: Path) -> None:
    table = format_runs_table(list_runs(db, limit=10))
    assert table.splitlines() == [
        "run_id  started_at            status   proof        rows  new/changed/removed  rejected"
        "  requests  retries  duration  error",
        "     3  2026-11-27T03:00:00Z  failed   -               0                0/0/0         0"
        # the error is cut in the middle: what failed, and the cause at its end
        "         5        4     31.0s  SWR API unavailable… 5 attempts: HTTP 503 "
        "SVCSTG.SWR.5000001",
        "     2  2026-11-26T03:00:00Z  success  double-read   181               1/40/0         2"
        "         3        1     12.0s",
        "     1  2026-11-25T03:00:00Z  success  one-page      180              180/0/0         0"
        "         2        0      9.2s",
    ]


def test_runs_of_a_database_from_before_the_proof_column(tmp_path: Path) -> None:
    old = [{k: v for k, v in run.items() if k != "proof"} for run in RUNS]
    db = make_db(tmp_path / "v2.db", old, version=2)
    rows = list_runs(db)
    assert "proof" not in rows[0]
    assert [line.split()[3] for line in format_runs_table(rows).splitlines()] == [
        "proof", "-", "-", "-"]


def test_runs_table_empty() -> None:
    assert format_runs_table([]) == "no runs recorded yet"


def test_status_verdicts(db: Path) -> None:
    ok, message, code = freshness(db, max_age_hours=36, now=NOW)
    assert (ok, code) == (True, 0)
    assert message.splitlines() == [
        "last success: 2026-11-26T03:00:12Z (run 2), age 33.0 h",
        "last run:     3 failed at 2026-11-27T03:00:31Z: SWR API unavailable after 5 attempts: "
        "HTTP 503 SVCSTG.SWR.5000001",
        "status:       fresh (max age 36 h)",
    ]
    ok, message, code = freshness(db, max_age_hours=26, now=NOW)
    assert (ok, code) == (False, EXIT_STALE) == (False, 8)
    assert message.splitlines()[-1] == "status:       STALE: last success older than 26 h"


def test_never_succeeded_is_stale(tmp_path: Path) -> None:
    db = make_db(tmp_path / "swr.db", [RUNS[2]])
    ok, message, code = freshness(db, now=NOW)
    assert (ok, code) == (False, 8)
    assert message.splitlines()[0] == "last success: never"
    assert message.splitlines()[-1] == "status:       STALE: no successful run recorded"
    empty = make_db(tmp_path / "empty.db", [])
    assert freshness(empty, now=NOW) == (
        False, "last success: never\nlast run:     none\n"
               "status:       STALE: no successful run recorded", 8)


def test_missing_database_is_reported_and_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "swr.db"
    with pytest.raises(ConfigError) as exc:
        freshness(missing)
    assert exc.value.exit_code == 2
    assert str(exc.value) == (
        f"database not found: {missing} (run `swr-etl sync --db {missing}` first)")
    with pytest.raises(ConfigError):
        list_runs(missing)
    assert not missing.exists() and not missing.parent.exists()


def test_unusable_database_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError) as exc:
        list_runs(junk)
    assert str(exc.value) == f"{junk} is not a SQLite database (left untouched)"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(ConfigError, match=r"^not an swr-etl database \(no runs table\): "):
        freshness(other)


def test_readers_do_not_write(db: Path) -> None:
    before = db.read_bytes()
    list_runs(db)
    freshness(db, now=NOW)
    assert db.read_bytes() == before


# ----------------------------------------------------------------------------- CLI exit codes


def test_status_command_exit_codes(db: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["status", "--db", str(db), "--max-age", "100000"], capsys)
    assert code == 0
    assert out.splitlines()[0] == "last success: 2026-11-26T03:00:12Z (run 2), age " + \
        out.splitlines()[0].split("age ")[1]
    assert out.splitlines()[-1] == "status:       fresh (max age 100000 h)"
    code, out, _ = cli(["status", "--db", str(db), "--max-age", "1"], capsys)
    assert code == 8
    assert out.splitlines()[-1] == "status:       STALE: last success older than 1 h"
    missing = tmp_path / "missing.db"
    code, out, err = cli(["status", "--db", str(missing)], capsys)
    assert (code, out) == (2, "")
    assert err == f"swr-etl: error: database not found: {missing} " \
                  f"(run `swr-etl sync --db {missing}` first)\n"
    assert not missing.exists()


def test_runs_command_table_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["runs", "--db", str(db), "--limit", "2"], capsys)
    assert code == 0
    assert out.splitlines()[0].split() == ["run_id", "started_at", "status", "proof", "rows",
                                           "new/changed/removed", "rejected", "requests",
                                           "retries", "duration", "error"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["3", "2"]
    code, out, _ = cli(["runs", "--db", str(db), "--json"], capsys)
    assert code == 0
    data = json.loads(out)
    assert [r["run_id"] for r in data] == [3, 2, 1]
    assert data[1]["retry_causes"] == {"http_503": 1}
    assert [r["proof"] for r in data] == [None, "double-read", "one-page"]


def test_probe_without_write_access_reads_the_file_alone(db: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitoring user cannot create the -shm file of a WAL database: fall back to immutable."""
    import etl.store.read

    real_open = etl.store.read._open_uri
    uris: list[str] = []

    def open_as_other_user(uri: str) -> sqlite3.Connection:
        uris.append(uri)
        if "immutable=1" not in uri:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_open(uri)

    monkeypatch.setattr(etl.store.read, "_open_uri", open_as_other_user)
    assert [r["run_id"] for r in list_runs(db)] == [3, 2, 1]
    assert [u.rsplit("?", 1)[1] for u in uris] == ["mode=ro", "mode=ro&immutable=1"]


def test_other_open_errors_are_not_retried(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import etl.store.read

    calls: list[str] = []

    def broken(uri: str) -> sqlite3.Connection:
        calls.append(uri)
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(etl.store.read, "_open_uri", broken)
    with pytest.raises(ConfigError, match=r"^cannot read database .*: disk I/O error$"):
        freshness(db)
    assert len(calls) == 1
