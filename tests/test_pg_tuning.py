"""What keeps a PostgreSQL load cheap, pinned against a real throwaway cluster: the load's
statements are never JIT-compiled, every image seen again is updated in place (HOT), the
per-row references are not declared, and a schema an earlier swr-etl made gets the same layout
without losing a row."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from etl.config.settings import Settings
from etl.config.sources import Source
from etl.run.pipeline import run_sync
from etl.simulator import Simulator
from etl.store import pg_load_sql, pg_schema, schema
from etl.store.dialect import POSTGRES
from etl.store.pg import connect, pg_query
from tests.helpers import q, table_rows

psycopg = pytest.importorskip("psycopg")

NIGHTS = ("2026-11-20T03:00:00Z", "2026-11-21T03:00:00Z", "2026-11-22T03:00:00Z")


def _sync(url: str, sim: Simulator, now: str) -> None:
    result = run_sync(Settings(endpoint=sim.url, db=url, allow_anonymous=True, page_size=100,
                               sources=(Source("simulator", sim.url, "cn-north-4"),),
                               concurrency=1), now=now)
    assert result.exit_code == 0


def _plan(conn: Any, settings: tuple[str, ...]) -> str:
    """EXPLAIN of the images upsert in a load's transaction begun with ``settings``."""
    conn.execute("BEGIN")
    try:
        for statement in settings:
            conn.execute(statement)
        conn.execute(pg_load_sql.CHUNK_TABLE_SQL)
        text, bound = pg_query(pg_load_sql.UPSERT_SQL,
                               {"run": 1, "source": "s", "at": "t", "date": "d"})
        return "\n".join(r[0] for r in conn.execute("EXPLAIN " + text, bound))
    finally:
        conn.execute("ROLLBACK")


def test_the_loads_statements_are_never_jit_compiled(pg_url: str) -> None:
    conn, name = connect(pg_url)
    with conn:
        pg_schema.ensure_schema(conn, name)
        if not conn.execute("SELECT pg_jit_available()").fetchone()[0]:
            pytest.skip("this server has no JIT to switch off")
        # The trap is real: the switched-off plan types alone make an empty chunk's upsert
        # look costly enough to compile.
        assert "JIT:" in _plan(conn, pg_load_sql.LOAD_SETTINGS_SQL[:-1])
        assert "JIT:" not in _plan(conn, pg_load_sql.LOAD_SETTINGS_SQL)


def _blocks(url: str) -> dict[int, int]:
    """image id -> the heap page its current row version is on."""
    return dict(q(url, "SELECT id, (ctid::text::point)[0]::bigint FROM images"))


def _poll(probe: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while (got := probe()) is None:
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(0.05)
    return got


def test_every_image_seen_again_is_updated_in_place(pg_url: str) -> None:
    with Simulator(images=1500, seed=5, today=date(2026, 11, 20)) as sim:
        _sync(pg_url, sim, NIGHTS[0])
        placed = _blocks(pg_url)
        for now in NIGHTS[1:]:  # the third run finds the second's old versions to prune
            _sync(pg_url, sim, now)
    assert len(placed) == 1500 and _blocks(pg_url) == placed
    assert q(pg_url, "SELECT count(DISTINCT last_seen_run) FROM images") == [(1,)]

    def updates() -> tuple[int, int] | None:
        # Statistics reach the shared counters when the load's session ends, a moment after
        # the sync returned.
        upd, hot = q(pg_url, "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                             "WHERE relname = 'images'")[0]
        return (upd, hot) if upd >= 3000 else None

    upd, hot = _poll(updates, "the load's statistics")
    assert hot == upd


def _references(url: str) -> set[tuple[str, str]]:
    return set(q(url, "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint AS c "
                      "JOIN pg_attribute AS a ON a.attrelid = c.conrelid "
                      "AND a.attnum = ANY(c.conkey) WHERE c.contype = 'f'"))


def _images_options(url: str) -> list[str] | None:
    return q(url, "SELECT reloptions FROM pg_class WHERE oid = 'images'::regclass")[0][0]


def _as_an_earlier_swr_etl_made_it(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema of version 4 as swr-etl made it before the layout: every reference SQLite
    declares, no storage parameters, the digest of the views alone, and v4's name index."""
    with monkeypatch.context() as patch:
        patch.setattr(pg_schema, "UNDECLARED_REFERENCES", frozenset())
        patch.setattr(pg_schema, "TABLE_OPTIONS", {})
        conn, name = connect(url)
        with conn:
            pg_schema.ensure_schema(conn, name)
            views = schema.views_for(POSTGRES)
            old = hashlib.sha256("\n;\n".join(f"{k}\n{v}" for k, v in views.items())
                                 .encode()).hexdigest()
            conn.execute(f"UPDATE {pg_schema.VERSION_TABLE} SET views_sha256 = %s,"
                         " version = 4", (old,))
            conn.execute("DROP INDEX images_name")
            conn.execute("CREATE INDEX images_ns_name ON images(namespace, name, source)")


def test_a_schema_an_earlier_swr_etl_made_gets_the_layout_and_keeps_its_rows(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _as_an_earlier_swr_etl_made_it(pg_url, monkeypatch)
    assert pg_schema.UNDECLARED_REFERENCES <= _references(pg_url)
    with Simulator(images=300, seed=7, today=date(2026, 11, 20)) as sim:
        _sync(pg_url, sim, NIGHTS[0])  # upgrades the schema first, then loads
        before = {t: table_rows(pg_url, t) for t in ("runs", "images", "image_snapshots")}
        assert _references(pg_url).isdisjoint(pg_schema.UNDECLARED_REFERENCES)
        assert ("run_sources", "run_id") in _references(pg_url)
        assert _images_options(pg_url) == ["fillfactor=45"]
        assert q(pg_url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'images'"
                 " AND indexname LIKE 'images_n%' ") == [
            ("images_name", "CREATE INDEX images_name ON public.images USING btree"
                            " (name, namespace, source)")]
        assert q(pg_url, f"SELECT version, views_sha256 FROM {pg_schema.VERSION_TABLE}") == [
            (schema.SCHEMA_VERSION, pg_schema.refresh_digest(schema.views_for(POSTGRES)))]
        conn, name = connect(pg_url)
        with conn:  # once upgraded, opening it again changes nothing
            assert pg_schema.ensure_schema(conn, name) == schema.SCHEMA_VERSION
        assert {t: table_rows(pg_url, t) for t in before} == before
        _sync(pg_url, sim, NIGHTS[1])
    assert len(table_rows(pg_url, "image_snapshots")) == 600
    assert q(pg_url, "SELECT count(*) FROM images WHERE last_seen_run = 2") == [(300,)]


def test_a_new_schema_declares_the_references_with_few_rows_and_the_fillfactor(
        pg_url: str) -> None:
    conn, name = connect(pg_url)
    with conn:
        pg_schema.ensure_schema(conn, name)
    declared = _references(pg_url)
    assert declared.isdisjoint(pg_schema.UNDECLARED_REFERENCES)
    assert {("run_sources", "run_id"), ("raw_pages", "run_id"), ("rejects", "run_id"),
            ("quality_issues", "run_id")} <= declared
    assert _images_options(pg_url) == ["fillfactor=45"]
