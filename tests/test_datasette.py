"""Analyst access: datasette/metadata.json describes the real schema and its canned queries run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.report_db import STUCK, add_image, build_trend_db

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
    # A second image called nginx, in another namespace: filters by name must tell them apart.
    add_image(db, 6, "nginx", namespace="bitnami")
    for run_id, date, pulls in ((7, "2026-11-07", 700), (8, "2026-11-08", 750)):
        db.execute("INSERT INTO image_snapshots (run_id, source, image_id, captured_at, "
                   "snapshot_date, pull_count) VALUES (?, 'cn-north-4', 6, ?, ?, ?)",
                   (run_id, f"{date}T03:05:00Z", date, pulls))
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
    assert set(queries) == {"top_movers_this_week", "top_movers_this_month", "image_history",
                            "new_images_this_month", "removed_images", "failed_runs",
                            "latest_runs", "top_movers_across_regions", "failed_sources"}
    for key, query in queries.items():
        assert query["title"] and query["description"], key
        params = {"name": "nginx", "namespace": ""} if ":name" in query["sql"] else {}
        conn.execute(query["sql"], params).fetchall()


def test_every_query_that_names_images_shows_their_namespace() -> None:
    meta = metadata()["databases"]["swr"]
    for key, query in meta["queries"].items():
        sql = query["sql"]
        if "name" in sql.split("FROM")[0]:
            assert "namespace" in sql.split("FROM")[0], key
    for table in ("images", "latest_images", "daily_pulls", "top_movers_7d", "top_movers_30d"):
        assert meta["tables"][table]["facets"][0] == "namespace", table


def test_canned_query_answers(conn: sqlite3.Connection) -> None:
    # The top_movers_7d view: latest date 11-08, window from 11-01. alpine +3900 and new +300
    # ranked; bitnami/nginx has one date in the window (no step); nginx fell on 11-03 and stuck
    # is stuck at 2147483647: unranked, listed after, never dropped.
    unranked = [
        (None, "library", "stuck", STUCK, None, None, None, "2026-11-01", "2026-11-08",
         "stuck_counter", 3, "cn-north-4"),
        (None, "library", "nginx", 64100, None, None, None, "2026-11-01", "2026-11-08",
         "decrease", 2, "cn-north-4")]
    assert run_query(conn, "top_movers_this_week") == [
        (1, "library", "alpine", 5600, 3900, 229.41, 557.143, "2026-11-01", "2026-11-08", None,
         1, "cn-north-4"),
        (2, "acme", "new", 400, 300, 30.0, 150.0, "2026-11-06", "2026-11-08", None, 5,
         "cn-north-4"),
        (3, "bitnami", "nginx", 750, 50, 5.0, 50.0, "2026-11-07", "2026-11-08", None, 6,
         "cn-north-4"),
    ] + unranked
    month = run_query(conn, "top_movers_this_month")
    assert month[0] == (1, "library", "alpine", 5600, 4600, 460.0, 328.571, "2026-10-25",
                        "2026-11-08", None, 1, "cn-north-4")
    assert [r[:3] + r[9:11] for r in month[1:]] == [
        (2, "acme", "new", None, 5), (3, "bitnami", "nginx", None, 6),
        (None, "library", "stuck", "stuck_counter", 3),
        (None, "library", "nginx", "decrease", 2)]

    history = run_query(conn, "image_history", name="nginx", namespace="library")
    # One row per counted date (11-06 through its later run), the partial and failed runs left
    # out; the decrease has no delta and says so.
    assert [r[:7] for r in history] == [
        ("library", "nginx", "2026-10-25", 50000, None, None, None),
        ("library", "nginx", "2026-11-01", 60000, 10000, 7, None),
        ("library", "nginx", "2026-11-02", 61000, 1000, 1, None),
        ("library", "nginx", "2026-11-03", 60500, None, 1, "decrease"),
        ("library", "nginx", "2026-11-06", 63500, 3000, 3, None),
        ("library", "nginx", "2026-11-07", 63500, 0, 1, None),
        ("library", "nginx", "2026-11-08", 64100, 600, 1, None)]
    assert [r[-3] for r in history] == [1, 2, 3, 4, 6, 7, 8]  # run ids
    assert {r[-1] for r in history} == {"cn-north-4"}  # the source
    assert run_query(conn, "image_history", name="library/nginx", namespace="") == history
    both = run_query(conn, "image_history", name="nginx", namespace="")
    assert [(r[0], r[2]) for r in both] == [("bitnami", "2026-11-07"), ("bitnami", "2026-11-08")
                                            ] + [("library", r[2]) for r in history]
    assert [r[:3] for r in run_query(conn, "new_images_this_month")] == [(5, "acme", "new")]
    assert [r[:3] + r[5:6] for r in run_query(conn, "removed_images")] == [
        (4, "acme", "old", "2026-11-06T02:05:00Z")]
    assert [r[:2] for r in run_query(conn, "failed_runs")] == [(91, "failed"), (90, "partial")]
    assert [r[0] for r in run_query(conn, "latest_runs")][:3] == [91, 90, 8]


# What image_history means (its description): :name in :namespace (any namespace when empty), or
# :name as namespace/name, the namespace ending at the first '/'. Stated here as a plain filter:
# the canned query must answer exactly this, through the name index.
IMAGE_HISTORY_SPEC = """SELECT d.namespace, d.name, d.snapshot_date, d.pull_count, d.source
FROM daily_pulls AS d
WHERE (d.name = :name AND (:namespace = '' OR d.namespace = :namespace))
   OR (instr(:name, '/') > 0 AND d.namespace = substr(:name, 1, instr(:name, '/') - 1)
       AND d.name = substr(:name, instr(:name, '/') + 1))
ORDER BY 1, 2, 5, 3"""


def test_image_history_answers_every_form_of_every_name(conn: sqlite3.Connection) -> None:
    # Names with a '/' of their own: library's nginx/unit, and nginx's unit, which
    # "nginx/unit" names too when no namespace is given.
    for image_id, namespace, name in ((7, "library", "nginx/unit"), (8, "nginx", "unit")):
        add_image(conn, image_id, name, namespace=namespace)
        conn.execute("INSERT INTO image_snapshots (run_id, source, image_id, captured_at, "
                     "snapshot_date, pull_count) VALUES (8, 'cn-north-4', ?, "
                     "'2026-11-08T03:05:00Z', '2026-11-08', ?)", (image_id, 10 * image_id))
    names = conn.execute("SELECT DISTINCT namespace, name FROM daily_pulls").fetchall()
    assert ("library", "nginx/unit") in names and len(names) > 5
    forms = [p for ns, name in names for p in (
        {"name": name, "namespace": ns}, {"name": name, "namespace": ""},
        {"name": f"{ns}/{name}", "namespace": ""}, {"name": name, "namespace": "elsewhere"})]
    for params in forms:
        got = [r[:4] + r[-1:] for r in run_query(conn, "image_history", **params)]
        assert got == conn.execute(IMAGE_HISTORY_SPEC, params).fetchall(), params
    both = run_query(conn, "image_history", name="nginx/unit", namespace="")
    assert [(r[0], r[1]) for r in both] == [("library", "nginx/unit"), ("nginx", "unit")]


@pytest.mark.parametrize("namespace", ["library", ""])
def test_image_history_reads_one_image_through_the_name_index(conn: sqlite3.Connection,
                                                              namespace: str) -> None:
    # Not every image's steps first: over a year of 10,000 images that took ~35 s, beyond
    # Datasette's 1 s time limit (docs/development/benchmarks.md).
    sql = metadata()["databases"]["swr"]["queries"]["image_history"]["sql"]
    plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql,
                                           {"name": "library/nginx", "namespace": namespace})]
    assert plan.count("SEARCH i USING INDEX images_name (name=?)") == 2, plan
