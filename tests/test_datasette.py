"""Analyst access: datasette/metadata.json describes the real schema and its canned queries run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.report_db import build_trend_db

METADATA = Path(__file__).resolve().parent.parent / "datasette" / "metadata.json"


@pytest.fixture()
def conn(tmp_path: Path) -> sqlite3.Connection:
    path = build_trend_db(tmp_path / "swr.db")
    db = sqlite3.connect(path)
    # Datasette queries look at the whole database: drop the report tests' "future" run.
    db.execute("DELETE FROM image_snapshots WHERE run_id = 92")
    db.execute("DELETE FROM runs WHERE run_id = 92")
    db.execute("UPDATE images SET removed_at = '2026-11-06T02:05:00Z' WHERE id = 4")
    db.execute("UPDATE images SET first_seen_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now') "
               "WHERE id = 5")
    db.commit()
    return db


def metadata() -> dict[str, Any]:
    return json.loads(METADATA.read_text(encoding="utf-8"))


def test_every_table_and_view_and_column_is_described(conn: sqlite3.Connection) -> None:
    meta = metadata()
    assert meta["title"] == "SWR official images"
    described = meta["databases"]["swr"]["tables"]
    objects = {name: kind for name, kind in conn.execute(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite_%'")}
    assert {"runs", "images", "image_snapshots", "rejects", "quality_issues",
            "raw_pages"} <= set(objects)
    assert sorted(set(objects) - set(described)) == []  # nothing undocumented
    for name, info in described.items():
        if name not in objects:  # a view the installed schema does not define (yet)
            assert info["description"].startswith("View: "), name
            continue
        assert info["description"], name
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{name}")')]
        assert sorted(columns) == sorted(info["columns"]), name
        assert all(info["columns"].values()), name


def run_query(conn: sqlite3.Connection, key: str, **params: str) -> list[tuple[Any, ...]]:
    sql = metadata()["databases"]["swr"]["queries"][key]["sql"]
    return conn.execute(sql, params).fetchall()


def test_every_canned_query_runs(conn: sqlite3.Connection) -> None:
    queries = metadata()["databases"]["swr"]["queries"]
    assert set(queries) == {"top_movers_this_week", "image_history", "new_images_this_month",
                            "removed_images", "failed_runs", "latest_runs"}
    for key, query in queries.items():
        assert query["title"] and query["description"], key
        params = {"name": "nginx"} if ":name" in query["sql"] else {}
        conn.execute(query["sql"], params).fetchall()


def test_canned_query_answers(conn: sqlite3.Connection) -> None:
    # Latest date 11-08; the week starts at 11-01. nginx 64100 - 60000 (net), alpine
    # 5600 - 1700; "new" was not listed on 11-01 and "stuck" sits at 2147483647.
    assert run_query(conn, "top_movers_this_week") == [
        (2, "library", "nginx", 64100, 4100, 6.83, "2026-11-01", "2026-11-08"),
        (1, "library", "alpine", 5600, 3900, 229.41, "2026-11-01", "2026-11-08"),
    ]
    history = run_query(conn, "image_history", name="library/nginx")
    # One row per successful run (11-06 has two), the partial and failed runs left out.
    assert [(r[0], r[3], r[4]) for r in history] == [
        ("2026-10-25", 50000, None), ("2026-11-01", 60000, 10000), ("2026-11-02", 61000, 1000),
        ("2026-11-03", 60500, -500), ("2026-11-06", 62000, 1500), ("2026-11-06", 63500, 1500),
        ("2026-11-07", 63500, 0), ("2026-11-08", 64100, 600), ]
    assert run_query(conn, "image_history", name="nginx") == history
    assert [r[:3] for r in run_query(conn, "new_images_this_month")] == [(5, "acme", "new")]
    assert [r[:3] + r[5:6] for r in run_query(conn, "removed_images")] == [
        (4, "acme", "old", "2026-11-06T02:05:00Z")]
    assert [r[:2] for r in run_query(conn, "failed_runs")] == [(91, "failed"), (90, "partial")]
    assert [r[0] for r in run_query(conn, "latest_runs")][:3] == [91, 90, 8]
