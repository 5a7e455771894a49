"""The dialect seam and the schema on PostgreSQL: the same tables, keys and views as SQLite,
generated from the one definition (the SQLite migrations and etl.store.trends).

The server tests run against a real throwaway cluster (the ``pg_url`` fixture)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from etl.errors import ConfigError
from etl.store import pg_schema, schema, trends
from etl.store.dialect import POSTGRES, SQLITE, Dialect, dialect_for, lock_key, pg_target
from tests.fixtures.report_db import build_golden_db
from tests.helpers import copy_to_postgres

psycopg = pytest.importorskip("psycopg")

# SQLite's declared type -> what information_schema reports for the generated column.
PG_TYPE = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision", "BLOB": "bytea"}


# --- the dialect, no server ---------------------------------------------------------------------

@pytest.mark.parametrize(("db", "name"), [
    ("postgresql://u@127.0.0.1:5432/swr", "postgres"), ("postgres://127.0.0.1/swr", "postgres"),
    ("POSTGRESQL://127.0.0.1/swr", "postgres"), ("swr.db", "sqlite"),
    ("/var/lib/swr/postgresql.db", "sqlite"), ("postgresql.db", "sqlite"),
])
def test_the_db_value_picks_the_dialect(db: str, name: str) -> None:
    assert dialect_for(db).name == name


def test_the_schema_parameter_is_taken_out_of_the_url() -> None:
    assert pg_target("postgresql://u@127.0.0.1:5/swr?schema=team_a&sslmode=disable") == (
        "postgresql://u@127.0.0.1:5/swr?sslmode=disable", "team_a")
    assert pg_target("postgresql://u@127.0.0.1:5/swr") == ("postgresql://u@127.0.0.1:5/swr",
                                                           "public")


@pytest.mark.parametrize("query", ["schema=", "schema=a&schema=b"])
def test_an_empty_or_repeated_schema_is_a_config_error_without_the_url(query: str) -> None:
    with pytest.raises(ConfigError) as caught:
        pg_target(f"postgresql://u:s3cret@127.0.0.1/swr?{query}")
    assert "s3cret" not in str(caught.value)
    assert caught.value.exit_code == ConfigError.exit_code


def test_lock_keys_are_signed_64_bit_and_differ_per_schema() -> None:
    keys = {lock_key(s) for s in ("public", "team_a", "team_b", "schema:public")}
    assert len(keys) == 4
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("public") == lock_key("public")


def test_sqlite_views_are_the_sqlite_rendering_of_the_one_definition() -> None:
    assert schema.VIEWS == schema.views_for(SQLITE)
    assert "julianday" in schema.VIEWS["daily_pulls"]
    rendered = "\n".join(schema.views_for(POSTGRES).values())
    for sqlite_only in ("julianday", "date(MAX", "MAX(m.pull_count_from", "MAX(anomaly ="):
        assert sqlite_only not in rendered
    assert "GREATEST(m.pull_count_from, 1000)" in rendered
    assert trends.per_day_sql() == "ROUND(CAST(m.pull_delta AS REAL) / m.days_elapsed, 3)"


# --- the schema on a real server ----------------------------------------------------------------

def _connect(url: str) -> Any:
    conninfo, _schema = pg_target(url)
    return psycopg.connect(conninfo, autocommit=True)


def _sqlite_tables(conn: sqlite3.Connection) -> dict[str, list[tuple[str, str, bool]]]:
    """table -> [(column, PostgreSQL type, NOT NULL)] as SQLite's catalogue states them."""
    out = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        out[table] = [(name, PG_TYPE[decl], bool(notnull or pk)) for _c, name, decl, notnull,
                      _d, pk in conn.execute(f"PRAGMA table_info({table})")]
    return out


def _pg_tables(conn: Any, schema_name: str) -> dict[str, list[tuple[str, str, bool]]]:
    out: dict[str, list[tuple[str, str, bool]]] = {}
    for table, column, kind, nullable in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " JOIN information_schema.tables USING (table_schema, table_name)"
            " WHERE table_schema = %s AND table_type = 'BASE TABLE' AND table_name <> %s"
            " ORDER BY table_name, ordinal_position", (schema_name, pg_schema.VERSION_TABLE)):
        out.setdefault(table, []).append((column, kind, nullable == "NO"))
    return out


def _pg_keys(conn: Any, schema_name: str, kind: str) -> dict[str, list[tuple[str, ...]]]:
    """table -> the column lists of its constraints of ``kind`` (p: primary, f: foreign)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    for table, columns in conn.execute(
            "SELECT c.conrelid::regclass::text, array(SELECT a.attname FROM unnest(c.conkey)"
            " WITH ORDINALITY AS k(n, i) JOIN pg_attribute AS a ON a.attrelid = c.conrelid"
            " AND a.attnum = k.n ORDER BY k.i) FROM pg_constraint AS c"
            " WHERE c.connamespace = %s::regnamespace AND c.contype = %s",
            (schema_name, kind)):
        out.setdefault(table.split(".")[-1], []).append(tuple(columns))
    return {t: sorted(v) for t, v in out.items()}


def _sqlite_keys(conn: sqlite3.Connection, kind: str) -> dict[str, list[tuple[str, ...]]]:
    out: dict[str, list[tuple[str, ...]]] = {}
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        if kind == "p":
            info = sorted((c[5], c[1]) for c in conn.execute(f"PRAGMA table_info({table})"))
            key = tuple(name for pk, name in info if pk)
            if key:
                out[table] = [key]
        else:
            fks = [(r[3],) for r in conn.execute(f"PRAGMA foreign_key_list({table})")]
            if fks:
                out[table] = sorted(fks)
    return out


@pytest.fixture
def memory_sqlite() -> Any:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.ensure_schema(conn)
    yield conn
    conn.close()


def test_postgres_gets_the_same_tables_columns_and_keys(pg_url: str,
                                                        memory_sqlite: sqlite3.Connection) -> None:
    with _connect(pg_url) as conn:
        assert pg_schema.ensure_schema(conn, "public") == schema.SCHEMA_VERSION
        assert _pg_tables(conn, "public") == _sqlite_tables(memory_sqlite)
        assert _pg_keys(conn, "public", "p") == _sqlite_keys(memory_sqlite, "p")
        # every reference SQLite declares, but those PostgreSQL would check once per row
        declared = _sqlite_keys(memory_sqlite, "f")
        unchecked = {(t, k[0]) for t, keys in declared.items() for k in keys}
        assert pg_schema.UNDECLARED_REFERENCES < unchecked  # names real references only
        assert _pg_keys(conn, "public", "f") == {
            t: kept for t, keys in declared.items()
            if (kept := [k for k in keys if (t, k[0]) not in pg_schema.UNDECLARED_REFERENCES])}
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert set(schema.VIEWS) == {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'public'")}
    ours = {r[0] for r in memory_sqlite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    assert ours and ours <= indexes


def test_runs_number_themselves_and_statuses_are_checked(pg_url: str) -> None:
    with _connect(pg_url) as conn:
        pg_schema.ensure_schema(conn, "public")
        first = conn.execute("INSERT INTO runs (started_at, status) VALUES ('t', 'running')"
                             " RETURNING run_id").fetchone()[0]
        second = conn.execute("INSERT INTO runs (started_at, status) VALUES ('t', 'running')"
                              " RETURNING run_id").fetchone()[0]
        assert second == first + 1
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO runs (started_at, status) VALUES ('t', 'odd')")
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO run_sources (run_id, source, status)"
                         " VALUES (999, 'x', 'success')")
        big = 12_310_000_000  # pull counts pass 2^31: BIGINT, not PostgreSQL's INTEGER
        conn.execute("INSERT INTO image_snapshots (run_id, source, image_id, captured_at,"
                     " snapshot_date, pull_count) VALUES (%s, 's', 1, 't', 'd', %s)",
                     (first, big))
        assert conn.execute("SELECT pull_count FROM image_snapshots").fetchone()[0] == big


def test_a_second_ensure_keeps_the_data_and_a_changed_view_is_recreated(pg_url: str) -> None:
    with _connect(pg_url) as conn:
        pg_schema.ensure_schema(conn, "public")
        conn.execute("INSERT INTO runs (run_id, started_at, status) VALUES (7, 't', 'success')")
        conn.execute("DROP VIEW top_movers_total_30d")
        conn.execute(f"UPDATE {pg_schema.VERSION_TABLE} SET views_sha256 = 'older'")
        assert pg_schema.ensure_schema(conn, "public") == schema.SCHEMA_VERSION
        assert conn.execute("SELECT run_id FROM runs").fetchall() == [(7,)]
        assert conn.execute("SELECT count(*) FROM top_movers_total_30d").fetchone()[0] == 0
        assert conn.execute(f"SELECT views_sha256 FROM {pg_schema.VERSION_TABLE}").fetchone()[
            0] == pg_schema.refresh_digest(schema.views_for(POSTGRES))


def test_tables_go_into_the_urls_schema(pg_url: str) -> None:
    with _connect(pg_url + "?schema=team_a") as conn:
        pg_schema.ensure_schema(conn, pg_target(pg_url + "?schema=team_a")[1])
        where = dict(conn.execute("SELECT table_name, table_schema FROM information_schema"
                                  ".tables WHERE table_name IN ('runs', 'images')").fetchall())
    assert where == {"runs": "team_a", "images": "team_a"}


def test_a_newer_schema_version_is_refused(pg_url: str) -> None:
    with _connect(pg_url) as conn:
        pg_schema.ensure_schema(conn, "public")
        conn.execute(f"UPDATE {pg_schema.VERSION_TABLE} SET version = version + 1")
        with pytest.raises(ConfigError, match="newer than this swr-etl understands"):
            pg_schema.ensure_schema(conn, "public")


def test_another_applications_tables_are_left_untouched(pg_url: str) -> None:
    with _connect(pg_url) as conn:
        conn.execute("CREATE TABLE runs (theirs TEXT)")
        conn.execute("INSERT INTO runs VALUES ('keep')")
        with pytest.raises(ConfigError, match="already holds runs, not created by swr-etl"):
            pg_schema.ensure_schema(conn, "public")
        assert conn.execute("SELECT theirs FROM runs").fetchall() == [("keep",)]
        assert conn.execute("SELECT to_regclass('images')").fetchone()[0] is None


# --- the views' output on both engines ---------------------------------------------------------

def _plain(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with PostgreSQL's exact decimals as the floats SQLite returns."""
    return [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in rows]


@pytest.mark.parametrize("view", list(schema.VIEWS))
def test_each_view_gives_the_same_rows_on_both_engines(view: str, pg_url: str,
                                                       tmp_path: Path) -> None:
    golden = sqlite3.connect(build_golden_db(tmp_path / "golden.db"))
    with _connect(pg_url) as conn:
        pg_schema.ensure_schema(conn, "public")
        copy_to_postgres(golden, conn)
        got = _plain(conn.execute(f"SELECT * FROM {view}").fetchall())
    expected = golden.execute(f"SELECT * FROM {view}").fetchall()
    golden.close()
    assert expected, f"the golden history leaves {view} empty: nothing compared"
    assert sorted(got, key=repr) == sorted(expected, key=repr)


def _nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    """``node`` and every plan node below it (EXPLAIN's JSON)."""
    return [node] + [n for child in node.get("Plans", []) for n in _nodes(child)]


def test_a_filter_on_an_image_reaches_below_daily_pulls_window(pg_url: str,
                                                                tmp_path: Path) -> None:
    # namespace and name are partition columns of the window: PostgreSQL, like SQLite, filters
    # the observations before it, instead of computing every image's steps first.
    golden = sqlite3.connect(build_golden_db(tmp_path / "golden.db"))
    query = "SELECT * FROM daily_pulls WHERE namespace = 'library' AND name = 'nginx'"
    with _connect(pg_url) as conn:
        pg_schema.ensure_schema(conn, "public")
        copy_to_postgres(golden, conn)
        got = conn.execute(query).fetchall()
        plan = conn.execute("EXPLAIN (FORMAT JSON) " + query).fetchone()[0][0]["Plan"]
    expected = golden.execute(query).fetchall()
    golden.close()
    assert expected and sorted(got) == sorted(expected)
    (window,) = [n for n in _nodes(plan) if n["Node Type"] == "WindowAgg"]
    conditions = [str(node.get(key)) for node in _nodes(window)[1:]
                  for key in ("Filter", "Index Cond", "Recheck Cond")]
    assert any("'nginx'" in c for c in conditions), plan


@pytest.mark.parametrize("days", [7, 30])
def test_the_ranked_movers_give_the_same_rows_on_both_engines(days: int, pg_url: str,
                                                              tmp_path: Path) -> None:
    # trends.ranked_ctes (the report's previous window) is no view: rendered for each engine here.
    golden = sqlite3.connect(build_golden_db(tmp_path / "golden.db"))

    def ranked(dialect: Dialect) -> str:
        return trends.with_ctes(trends.ranked_ctes(trends.counted_runs_ctes(), days,
                                                   dialect=dialect),
                                "SELECT source, image_id, pull_delta FROM ranked")

    with _connect(pg_url) as conn:
        pg_schema.ensure_schema(conn, "public")
        copy_to_postgres(golden, conn)
        got = _plain(conn.execute(ranked(POSTGRES)).fetchall())
    expected = golden.execute(ranked(SQLITE)).fetchall()
    golden.close()
    assert len(expected) > 1, "the golden history ranks nothing: nothing compared"
    assert sorted(got) == sorted(expected)
