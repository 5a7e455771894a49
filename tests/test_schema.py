"""Schema: versioned migrations in place, and every view against values computed by hand."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from etl.errors import ConfigError
from etl.store import schema
from tests.helpers import fresh_python


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.ensure_schema(conn)
    return conn


def test_fresh_database_gets_every_table_and_view() -> None:
    conn = fresh()
    assert schema.current_version(conn) == schema.SCHEMA_VERSION == 5
    db = sqlite_utils.Database(conn)  # introspection (the tool itself creates with plain SQL)
    assert set(db.table_names()) == {"runs", "images", "image_snapshots", "rejects",
                                     "quality_issues", "raw_pages", "run_sources"}
    assert set(db.view_names()) == {"latest_images", "daily_pulls", "top_movers_7d",
                                    "top_movers_30d", "image_totals", "top_movers_total_7d",
                                    "top_movers_total_30d"}
    for table, pks in schema.PRIMARY_KEYS.items():
        assert tuple(db.table(table).pks) == pks
    assert db.table("images").columns_dict == {
        "id": int, "namespace": str, "name": str, "user": str, "description": str,
        "star_count": int, "pull_count": int, "collection_id": int, "last_updated": str,
        "first_seen_at": str, "last_seen_at": str, "first_seen_run": int, "last_seen_run": int,
        "removed_at": str, "source": str}
    for table in ("images", "image_snapshots", "rejects", "quality_issues", "raw_pages",
                  "run_sources"):
        notnull = {r[1]: r[3] for r in conn.execute(f"PRAGMA table_info({table})")}
        assert notnull["source"] == 1, table
    for view in ("latest_images", "daily_pulls", "top_movers_7d", "top_movers_30d"):
        assert "source" in [r[1] for r in conn.execute(f"PRAGMA table_info({view})")], view
    for view in ("image_totals", "top_movers_total_7d", "top_movers_total_30d"):  # summed
        assert "sources" in [r[1] for r in conn.execute(f"PRAGMA table_info({view})")], view
    cols = [r[1] for r in conn.execute("PRAGMA table_info(daily_pulls)")]
    assert cols == ["image_id", "namespace", "name", "snapshot_date", "pull_count", "pull_delta",
                    "days_elapsed", "anomaly", "run_id", "source"]
    assert db.table("runs").columns_dict["proof"] is str


def test_ensure_schema_is_idempotent_and_cheap() -> None:
    conn = fresh()
    before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert schema.ensure_schema(conn) == 5
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

    assert schema.ensure_schema(conn) == 5
    assert schema.current_version(conn) == 5
    latest = conn.execute("SELECT id, name, pull_count, snapshot_date, source FROM latest_images")
    assert latest.fetchall() == [(7, "nginx", 42, "2026-11-01", "unknown")]  # no endpoint
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
    assert schema.ensure_schema(conn) == 5
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
                              "understands (5); upgrade swr-etl")


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
        conn.execute("INSERT INTO run_sources (run_id, source, status) VALUES (?, 'r1', ?)",
                     (run_id, status))
    dates = {r: d for r, d, _ in RUNS}
    for image_id, name in IMAGES:
        runs = SNAPSHOTS[image_id]
        last = max(runs)
        conn.execute(
            "INSERT INTO images (id, namespace, name, pull_count, first_seen_at, last_seen_at, "
            "first_seen_run, last_seen_run, removed_at, source) "
            "VALUES (?, 'library', ?, ?, ?, ?, ?, ?, ?, 'r1')",
            (image_id, name, runs[last], f"{dates[min(runs)]}T03:00:00Z",
             f"{dates[last]}T03:00:00Z", min(runs), last,
             "2026-11-05T03:00:00Z" if name == "gone" else None))
        for run_id, pulls in runs.items():
            conn.execute(
                "INSERT INTO image_snapshots (run_id, image_id, captured_at, snapshot_date, "
                "pull_count, source) VALUES (?, ?, ?, ?, ?, 'r1')",
                (run_id, image_id, f"{dates[run_id]}T03:00:00Z", dates[run_id], pulls))
    return conn


def test_daily_pulls_by_hand(history: sqlite3.Connection) -> None:
    rows = history.execute("SELECT * FROM daily_pulls ORDER BY image_id, snapshot_date").fetchall()
    assert rows == [
        (1, "library", "a", "2026-10-20", 50, None, None, None, 1, "r1"),
        (1, "library", "a", "2026-11-01", 100, 50, 12, None, 2, "r1"),
        (1, "library", "a", "2026-11-02", 160, 60, 1, None, 4, "r1"),    # run 4, not run 3
        (1, "library", "a", "2026-11-05", 200, 40, 3, None, 6, "r1"),    # failed run 5 skipped
        (2, "library", "b", "2026-11-01", 500, None, None, None, 2, "r1"),
        (2, "library", "b", "2026-11-02", 400, None, 1, "decrease", 4, "r1"),
        (2, "library", "b", "2026-11-05", 2147483647, None, 3, "stuck_counter", 6, "r1"),
        # c is only in run 3: the date 2026-11-02 counts through run 4, which did not list it
        (3, "library", "c", "2026-11-05", 40, None, None, None, 6, "r1"),
        (4, "library", "d", "2026-11-01", 1000, None, None, None, 2, "r1"),
        (4, "library", "d", "2026-11-05", 900, None, 4, "decrease", 6, "r1"),
        (5, "library", "gone", "2026-10-20", 7, None, None, None, 1, "r1"),
        (5, "library", "gone", "2026-11-01", 8, 1, 12, None, 2, "r1"),
    ]  # the partial run 7 (2026-11-06) is nowhere


def test_top_movers_by_hand(history: sqlite3.Connection) -> None:
    # Latest counted date 2026-11-05 (the partial run of 11-06 never counts). 7 days: from
    # 2026-10-29. b went down then stuck, d went down: listed unranked, never dropped. c has one
    # observation (no step), gone is not listed on 11-05.
    flagged = [
        (2, "library", "b", "2026-11-01", "2026-11-05", 500, 2147483647, None, 4, None, None,
         None, "stuck_counter", "r1"),
        (4, "library", "d", "2026-11-01", "2026-11-05", 1000, 900, None, 4, None, None, None,
         "decrease", "r1"),
    ]
    assert history.execute("SELECT * FROM top_movers_7d").fetchall() == [
        # gain 100 over 4 days; growth on the 1000-pull minimum baseline
        (1, "library", "a", "2026-11-01", "2026-11-05", 100, 200, 100, 4, 25.0, 10.0, 1, None,
         "r1"),
    ] + flagged
    # 30 days: from 2026-10-06, so a's baseline is 2026-10-20 (50 pulls, 16 days).
    assert history.execute("SELECT * FROM top_movers_30d").fetchall() == [
        (1, "library", "a", "2026-10-20", "2026-11-05", 50, 200, 150, 16, 9.375, 15.0, 1, None,
         "r1"),
    ] + flagged
    cols = [r[1] for r in history.execute("PRAGMA table_info(top_movers_7d)")]
    assert cols == ["image_id", "namespace", "name", "from_date", "to_date", "pull_count_from",
                    "pull_count", "pull_delta", "days_elapsed", "per_day", "pull_growth_pct",
                    "rank", "anomaly", "source"]


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


def test_creating_or_upgrading_the_schema_imports_no_sqlite_utils(tmp_path: Path) -> None:
    """The schema is plain SQL: neither a new database nor an upgrade pays sqlite-utils' import
    (~0.06 s, and numpy's on top, before a new database's sync asks for its first page)."""
    script = (
        "import sqlite3, sys\n"
        "from etl.store.schema import MIGRATIONS, current_version, ensure_schema\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "if sys.argv[2] == 'v2':  # as swr-etl left it two versions ago\n"
        "    for n in (1, 2):\n"
        "        conn.executescript(MIGRATIONS[n])\n"
        "    conn.execute('PRAGMA user_version = 2')\n"
        "before = current_version(conn)\n"
        "after = ensure_schema(conn)\n"
        "print(before, after, 'sqlite_utils' in sys.modules)\n"
    )
    v = str(schema.SCHEMA_VERSION)
    steps = [("new.db", "new"), ("old.db", "v2"), ("old.db", "again")]
    runs = [fresh_python(script, str(tmp_path / db), step) for db, step in steps]
    assert [r.stdout.split() for r in runs] == [
        ["0", v, "False"], ["2", v, "False"], [v, v, "False"]], [r.stderr for r in runs]


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


# --------------------------------------------- v4: a database written by the release before it

V3_FIXTURE = Path(__file__).parent / "fixtures" / "v3-release.db"
# The fixture was written by swr-etl at schema v3 (the commit before v4): four nightly demo runs
# against the simulator on 127.0.0.1:45427, one run against eu-west-101 (one reject, one quality
# issue) and a failed run against ap-southeast-1.
V3_SOURCES = {1: "127.0.0.1:45427", 2: "127.0.0.1:45427", 3: "127.0.0.1:45427",
              4: "127.0.0.1:45427", 5: "eu-west-101", 6: "ap-southeast-1"}
V3_TABLES = {  # table -> its v3 columns (ordered so rows compare one to one) and its run column
    "images": ("id", "last_seen_run"),
    "image_snapshots": ("run_id, image_id", "run_id"),
    "rejects": ("run_id, page_offset, reason, raw", "run_id"),
    "quality_issues": ("run_id, image_id, field, raw_value, problem", "run_id"),
    "raw_pages": ("run_id, page_offset", "run_id"),
}


def test_a_v3_database_of_the_last_release_migrates_keeping_every_row(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    db.write_bytes(V3_FIXTURE.read_bytes())
    conn = sqlite3.connect(db, isolation_level=None)
    assert schema.current_version(conn) == 3
    before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY {order}").fetchall()
              for t, (order, _run) in V3_TABLES.items()}
    runs_before = conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    assert len(before["image_snapshots"]) == 186 and len(before["rejects"]) == 1

    assert schema.ensure_schema(conn) == 5
    for table, (order, run_col) in V3_TABLES.items():
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        at, run_at = cols.index("source"), cols.index(run_col)
        assert at == (2 if table == "image_snapshots" else len(cols) - 1)
        after = conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
        # every row is there, unchanged, with the source of the run that wrote it
        assert [r[:at] + r[at + 1:] for r in after] == before[table], table
        assert [r[at] for r in after] == [V3_SOURCES[r[run_at]] for r in after], table
    assert conn.execute("SELECT * FROM runs ORDER BY run_id").fetchall() == runs_before
    assert conn.execute(
        "SELECT run_id, source, status, exit_code, rows_loaded, rows_rejected, endpoint"
        " FROM run_sources ORDER BY run_id").fetchall() == [
        (r, V3_SOURCES[r], st, code, loaded, rejected, ep) for r, st, code, loaded, rejected, ep
        in conn.execute("SELECT run_id, status, exit_code, rows_loaded, rows_rejected, endpoint"
                        " FROM runs ORDER BY run_id")]
    # the views read the migrated rows: each source's history is its own
    assert conn.execute("SELECT source, COUNT(*) FROM daily_pulls GROUP BY source").fetchall() \
        == [("127.0.0.1:45427", 156), ("eu-west-101", 29)]
    assert not conn.execute("SELECT name FROM sqlite_temp_master").fetchall()
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _name_indexes(conn) == [("images_name", "(name, namespace, source)")]


def _name_indexes(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(name, sql[sql.index("("):]) for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'images'"
        " AND sql IS NOT NULL ORDER BY name")]


def test_a_v4_database_gets_the_name_index_by_name_first(tmp_path: Path) -> None:
    # v5 replaces (namespace, name, source) by (name, namespace, source): an image asked for by
    # its name alone is found through it. Built from the v4 database's rows, in place.
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for n in range(1, 5):
        conn.executescript(schema.MIGRATIONS[n])
    conn.execute("PRAGMA user_version = 4")
    assert _name_indexes(conn) == [("images_ns_name", "(namespace, name, source)")]
    conn.execute("INSERT INTO images (id, namespace, name, first_seen_at, last_seen_at,"
                 " first_seen_run, last_seen_run, source) VALUES"
                 " (7, 'library', 'nginx', 't', 't', 1, 1, 'cn-north-4')")
    assert schema.ensure_schema(conn) == 5
    assert _name_indexes(conn) == [("images_name", "(name, namespace, source)")]
    assert conn.execute("SELECT id FROM images INDEXED BY images_name WHERE name = 'nginx'"
                        ).fetchall() == [(7,)]
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_sources_are_named_as_the_migration_and_a_sync_name_them() -> None:
    from etl.config.regions import source_name

    assert [source_name(u) for u in (
        "https://swr-api.cn-north-4.myhuaweicloud.com",
        "https://swr-api.eu-west-101.myhuaweicloud.eu/",
        "https://swr-api.eu-west-101.myhuaweicloud.com",  # not that region's official URL
        "http://127.0.0.1:8080", "https://swr-api.eu-de.otc.t-systems.com",
        "https://[::1]:9000", None)] == [
        "cn-north-4", "eu-west-101", "swr-api.eu-west-101.myhuaweicloud.com:443",
        "127.0.0.1:8080", "swr-api.eu-de.otc.t-systems.com:443", "[::1]:9000", "unknown"]


@pytest.mark.parametrize("command", [["report", "--out", "{tmp}/r.json"],
                                     ["export", "--out", "{tmp}/exports"]])
def test_readers_of_a_v3_database_ask_for_the_upgrade(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    from tests.helpers import cli

    db = tmp_path / "swr.db"
    db.write_bytes(V3_FIXTURE.read_bytes())
    args = [a.format(tmp=tmp_path) for a in command]
    code, out, err = cli([*args, "--db", str(db)], capsys)
    assert (code, out) == (2, "")
    assert err == (f"swr-etl: error: {db} was written by an older swr-etl (before sources, "
                   "database schema 4): run 'swr-etl sync' with this version once, which "
                   "upgrades it in place\n")
    assert db.read_bytes() == V3_FIXTURE.read_bytes()  # a reader never changes it
    assert cli(["status", "--db", str(db), "--max-age", "800000"], capsys).code == 0  # reads it
