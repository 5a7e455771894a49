"""Schema: versioned migrations in place, and every view against values computed by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from etl.errors import ConfigError
from etl.store import schema


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.ensure_schema(conn)
    return conn


def test_fresh_database_gets_every_table_and_view() -> None:
    conn = fresh()
    assert schema.current_version(conn) == schema.SCHEMA_VERSION == 3
    db = sqlite_utils.Database(conn)  # introspection (the tool itself creates with plain SQL)
    assert set(db.table_names()) == {"runs", "images", "image_snapshots", "rejects",
                                     "quality_issues", "raw_pages"}
    assert set(db.view_names()) == {"latest_images", "daily_pulls", "top_movers_7d",
                                    "top_movers_30d"}
    for table, pks in schema.PRIMARY_KEYS.items():
        assert tuple(db.table(table).pks) == pks
    assert db.table("images").columns_dict == {
        "id": int, "namespace": str, "name": str, "user": str, "description": str,
        "star_count": int, "pull_count": int, "collection_id": int, "last_updated": str,
        "first_seen_at": str, "last_seen_at": str, "first_seen_run": int, "last_seen_run": int,
        "removed_at": str}
    cols = [r[1] for r in conn.execute("PRAGMA table_info(daily_pulls)")]
    assert cols == ["image_id", "namespace", "name", "snapshot_date", "pull_count", "pull_delta",
                    "days_elapsed", "anomaly", "run_id"]
    assert db.table("runs").columns_dict["proof"] is str


def test_ensure_schema_is_idempotent_and_cheap() -> None:
    conn = fresh()
    before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert schema.ensure_schema(conn) == 3
    assert conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    assert not conn.in_transaction


def test_v1_database_is_migrated_in_place_keeping_its_rows() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(schema.V1)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (run_id, started_at, status, snapshot_date) "
                 "VALUES (1, '2026-11-01T03:00:00Z', 'success', '2026-11-01')")
    conn.execute("INSERT INTO images (id, namespace, name, pull_count, first_seen_at, "
                 "last_seen_at, first_seen_run, last_seen_run) VALUES "
                 "(7, 'library', 'nginx', 42, '2026-11-01T03:00:00Z', "
                 "'2026-11-01T03:00:00Z', 1, 1)")
    assert "latest_images" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}

    assert schema.ensure_schema(conn) == 3
    assert schema.current_version(conn) == 3
    latest = conn.execute("SELECT id, name, pull_count, snapshot_date FROM latest_images")
    assert latest.fetchall() == [(7, "nginx", 42, "2026-11-01")]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "runs_snapshot_date" in indexes
    # a run recorded before v3 has no record of how it was proven
    assert conn.execute("SELECT run_id, status, proof FROM runs").fetchall() == [
        (1, "success", None)]


def test_v2_database_gains_the_proof_column() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for n in (1, 2):
        conn.executescript(schema.MIGRATIONS[n])
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO runs (run_id, started_at, status, complete) "
                 "VALUES (1, '2026-11-01T03:00:00Z', 'success', 1)")
    assert schema.ensure_schema(conn) == 3
    conn.execute("UPDATE runs SET proof = 'double-read' WHERE run_id = 1")
    conn.execute("INSERT INTO runs (run_id, started_at, status) "
                 "VALUES (2, '2026-11-02T03:00:00Z', 'failed')")
    assert conn.execute("SELECT run_id, complete, proof FROM runs").fetchall() == [
        (1, 1, "double-read"), (2, None, None)]


def test_stale_view_definition_is_replaced() -> None:
    conn = fresh()
    conn.execute("DROP VIEW top_movers_30d")
    conn.execute("CREATE VIEW top_movers_30d AS SELECT 1 AS x")
    schema.ensure_schema(conn)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(top_movers_30d)")]
    assert cols[:3] == ["image_id", "namespace", "name"]


def test_newer_database_is_refused() -> None:
    conn = fresh()
    conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError) as err:
        schema.ensure_schema(conn)
    assert str(err.value) == ("database schema version 99 is newer than this swr-etl "
                              "understands (3); upgrade swr-etl")


# ------------------------------------------------------------------------- views, by hand

RUNS = [  # run_id, date, status
    (1, "2026-10-20", "success"),
    (2, "2026-11-01", "success"),
    (3, "2026-11-02", "success"),
    (4, "2026-11-02", "success"),   # later run of the same date wins
    (5, "2026-11-03", "failed"),    # ignored even if it had snapshots
    (6, "2026-11-05", "success"),
    (7, "2026-11-06", "partial"),   # partial runs never count
]
IMAGES = [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "gone")]
SNAPSHOTS = {  # image_id -> {run_id: pull_count}
    1: {1: 50, 2: 100, 3: 150, 4: 160, 5: 9999, 6: 200, 7: 99999},
    2: {2: 500, 4: 400, 6: 2147483647, 7: 1},
    3: {3: 10, 6: 40},
    4: {2: 1000, 6: 900},
    5: {1: 7, 2: 8},
}


@pytest.fixture()
def history() -> sqlite3.Connection:
    conn = fresh()
    for run_id, date, status in RUNS:
        conn.execute("INSERT INTO runs (run_id, started_at, status, snapshot_date) "
                     "VALUES (?, ?, ?, ?)", (run_id, f"{date}T03:00:00Z", status, date))
    dates = {r: d for r, d, _ in RUNS}
    for image_id, name in IMAGES:
        runs = SNAPSHOTS[image_id]
        last = max(runs)
        conn.execute(
            "INSERT INTO images (id, namespace, name, pull_count, first_seen_at, last_seen_at, "
            "first_seen_run, last_seen_run, removed_at) VALUES (?, 'library', ?, ?, ?, ?, ?, ?, ?)",
            (image_id, name, runs[last], f"{dates[min(runs)]}T03:00:00Z",
             f"{dates[last]}T03:00:00Z", min(runs), last,
             "2026-11-05T03:00:00Z" if name == "gone" else None))
        for run_id, pulls in runs.items():
            conn.execute(
                "INSERT INTO image_snapshots (run_id, image_id, captured_at, snapshot_date, "
                "pull_count) VALUES (?, ?, ?, ?, ?)",
                (run_id, image_id, f"{dates[run_id]}T03:00:00Z", dates[run_id], pulls))
    return conn


def test_daily_pulls_by_hand(history: sqlite3.Connection) -> None:
    rows = history.execute("SELECT * FROM daily_pulls ORDER BY image_id, snapshot_date").fetchall()
    assert rows == [
        (1, "library", "a", "2026-10-20", 50, None, None, None, 1),
        (1, "library", "a", "2026-11-01", 100, 50, 12, None, 2),
        (1, "library", "a", "2026-11-02", 160, 60, 1, None, 4),    # run 4, not run 3
        (1, "library", "a", "2026-11-05", 200, 40, 3, None, 6),    # failed run 5 skipped
        (2, "library", "b", "2026-11-01", 500, None, None, None, 2),
        (2, "library", "b", "2026-11-02", 400, None, 1, "decrease", 4),
        (2, "library", "b", "2026-11-05", 2147483647, None, 3, "stuck_counter", 6),
        # c is only in run 3: the date 2026-11-02 counts through run 4, which did not list it
        (3, "library", "c", "2026-11-05", 40, None, None, None, 6),
        (4, "library", "d", "2026-11-01", 1000, None, None, None, 2),
        (4, "library", "d", "2026-11-05", 900, None, 4, "decrease", 6),
        (5, "library", "gone", "2026-10-20", 7, None, None, None, 1),
        (5, "library", "gone", "2026-11-01", 8, 1, 12, None, 2),
    ]  # the partial run 7 (2026-11-06) is nowhere


def test_top_movers_by_hand(history: sqlite3.Connection) -> None:
    # Latest counted date 2026-11-05 (the partial run of 11-06 never counts). 7 days: from
    # 2026-10-29. b went down then stuck, d went down: listed unranked, never dropped. c has one
    # observation (no step), gone is not listed on 11-05.
    flagged = [
        (2, "library", "b", "2026-11-01", "2026-11-05", 500, 2147483647, None, 4, None, None,
         None, "stuck_counter"),
        (4, "library", "d", "2026-11-01", "2026-11-05", 1000, 900, None, 4, None, None, None,
         "decrease"),
    ]
    assert history.execute("SELECT * FROM top_movers_7d").fetchall() == [
        # gain 100 over 4 days; growth on the 1000-pull minimum baseline
        (1, "library", "a", "2026-11-01", "2026-11-05", 100, 200, 100, 4, 25.0, 10.0, 1, None),
    ] + flagged
    # 30 days: from 2026-10-06, so a's baseline is 2026-10-20 (50 pulls, 16 days).
    assert history.execute("SELECT * FROM top_movers_30d").fetchall() == [
        (1, "library", "a", "2026-10-20", "2026-11-05", 50, 200, 150, 16, 9.375, 15.0, 1, None),
    ] + flagged
    cols = [r[1] for r in history.execute("PRAGMA table_info(top_movers_7d)")]
    assert cols == ["image_id", "namespace", "name", "from_date", "to_date", "pull_count_from",
                    "pull_count", "pull_delta", "days_elapsed", "per_day", "pull_growth_pct",
                    "rank", "anomaly"]


def test_latest_images_by_hand(history: sqlite3.Connection) -> None:
    # Current state: the partial run's values are what was last seen (it loads what it saw).
    rows = history.execute(
        "SELECT id, name, pull_count, last_seen_run, snapshot_date FROM latest_images ORDER BY id"
    ).fetchall()
    assert rows == [
        (1, "a", 99999, 7, "2026-11-06"),
        (2, "b", 1, 7, "2026-11-06"),
        (3, "c", 40, 6, "2026-11-05"),
        (4, "d", 900, 6, "2026-11-05"),
    ]


def test_an_up_to_date_database_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    """sqlite-utils builds and upgrades the schema; a nightly run with nothing to migrate must not
    pay its import (~0.24 s of a ~1 s run)."""
    import subprocess
    import sys

    db = tmp_path / "swr.db"
    code = (
        "import sqlite3, sys\n"
        "from etl.store.schema import ensure_schema\n"
        f"conn = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        "ensure_schema(conn)\n"
        "print('sqlite_utils' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (first.stdout.strip(), second.stdout.strip()) == ("True", "False"), (
        first.stderr + second.stderr)


def test_a_failed_migration_leaves_the_old_version_intact(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    # v2 -> v3 adds runs.proof; here its script fails after that statement: the upgrade is
    # rolled back whole: still the v2 it was, without the column and without views made
    # half-way.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for n in (1, 2):
        conn.executescript(schema.MIGRATIONS[n])
    conn.execute("PRAGMA user_version = 2")
    monkeypatch.setitem(schema.MIGRATIONS, 3,
                        schema.V3 + "\nINSERT INTO no_such_table VALUES (1);\n")
    with pytest.raises(sqlite3.OperationalError, match="no such table: no_such_table"):
        schema.ensure_schema(conn)
    assert not conn.in_transaction
    assert schema.current_version(conn) == 2
    assert "proof" not in [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall() == []
