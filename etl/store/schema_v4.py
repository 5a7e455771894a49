"""Schema v4: many sources in one database.

Every table of image data gains ``source TEXT NOT NULL`` as its last column (in
``image_snapshots``, after the key's other columns), so ``SELECT *`` keeps the columns before it
in place: a region name, ``host:port`` of an explicit endpoint, or a
configured name (``etl.config.regions.source_name``). ``images`` is keyed
by ``(source, id)``, ``image_snapshots`` by ``(run_id, source, image_id)``, ``raw_pages`` by
``(run_id, source, page_offset)``; the ledger gains ``run_sources``, one row per source of a run.

SQLite cannot change a primary key in place, so the keyed tables are rebuilt (create the new
table, copy, drop, rename), all in the migration's one transaction. Rows of a v3 database get
the source of the endpoint their run read (``runs.endpoint``): ``prepare_v4`` writes that
mapping into ``temp.v4_run_source`` first, since naming a source from a URL is not SQL's job.
Written in SQL that PostgreSQL runs too, apart from the rebuild itself.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from etl.config.regions import source_name

# The figures a v3 run row holds for its one source.
_COPIED = ("endpoint", "status", "exit_code", "error", "started_at", "finished_at", "requests",
           "retries", "pages", "total_reported", "rows_seen", "rows_loaded", "rows_rejected",
           "rows_new", "rows_changed", "rows_removed", "quality_issues", "rescans", "bytes",
           "duration_s", "retry_causes", "complete", "proof")
_COPIED_SQL = ", ".join(_COPIED)
_R_COPIED_SQL = ", ".join(f"r.{c}" for c in _COPIED)

# The source a v3 row belongs to: that of the run that wrote it (images: the run that last saw
# it). Every run has a row in the mapping, so the COALESCE only guards a dangling run id.
_SRC = "COALESCE((SELECT m.source FROM temp.v4_run_source AS m WHERE m.run_id = {0}), 'unknown')"

_MAPPING_DDL = ("CREATE TEMP TABLE IF NOT EXISTS v4_run_source"
                " (run_id INTEGER PRIMARY KEY, source TEXT)")

# The name index as v4 made it (source last: the duplicate-name check of a load reads it alone,
# covering). v5 replaced it by one with the name first (etl.store.schema.IMAGES_NAME_INDEX).
V4_NAME_INDEX = "images_ns_name ON images(namespace, name, source)"

# The tables rebuilt, as facts: the run column that names a row's source (images: the run that
# last saw it), the new primary key, the column ``source`` follows (default: last), and the
# indexes made again. Their other columns are taken from the v1 DDL itself (``script``), so the
# definitions are written once.
REBUILT: dict[str, dict[str, Any]] = {
    "images": {"run": "last_seen_run", "key": ("source", "id"), "indexes": [V4_NAME_INDEX]},
    # every key column before the others: SQLite 3.40's integrity_check misreads a WITHOUT
    # ROWID table whose key columns come after a non-key one (false "NULL value" reports)
    "image_snapshots": {"run": "run_id", "key": ("run_id", "source", "image_id"),
                        "after": "image_id", "indexes": [
        "image_snapshots_image ON image_snapshots(source, image_id, run_id)",
        "image_snapshots_date ON image_snapshots(snapshot_date)"]},
    "rejects": {"run": "run_id", "indexes": ["rejects_run ON rejects(run_id, source)"]},
    "quality_issues": {"run": "run_id",
                       "indexes": ["quality_issues_run ON quality_issues(run_id, source)"]},
    "raw_pages": {"run": "run_id", "key": ("run_id", "source", "page_offset"), "indexes": []},
}


def _v1_columns(v1: str, table: str) -> tuple[dict[str, str], str]:
    """Column name -> its definition, of ``table`` in the v1 script (comments and the key taken
    out, an inline key made NOT NULL), and the table's options."""
    found = re.search(rf"CREATE TABLE IF NOT EXISTS {table} \(\n(.*?)\n\)( WITHOUT ROWID)?;",
                      v1, re.DOTALL)
    if found is None:
        raise ValueError(f"no table {table} in the v1 script")
    columns = {}
    for line in found[1].splitlines():
        text = line.split("--", 1)[0].strip().rstrip(",")
        if text and not text.startswith("PRIMARY KEY"):
            columns[text.split()[0]] = text.replace(" PRIMARY KEY", " NOT NULL")
    return columns, found[2] or ""


def _run_sources_ddl(v1: str) -> str:
    """run_sources: what one source of a run did, in the columns ``runs`` has for it."""
    runs, _options = _v1_columns(v1, "runs")
    runs["proof"] = "proof TEXT"  # added to runs by v3
    # A source's row is upserted as it goes (running, then its end): an insert that would
    # conflict must still pass NOT NULL, so only the key and the status are required.
    runs["started_at"] = "started_at TEXT"
    body = ["run_id INTEGER NOT NULL REFERENCES runs(run_id)", "source TEXT NOT NULL",
            *(runs[c] for c in _COPIED), "PRIMARY KEY (run_id, source)"]
    return "CREATE TABLE run_sources (\n    " + ",\n    ".join(body) + "\n);"


def _rebuild(v1: str, table: str, facts: dict[str, Any]) -> str:
    """Create ``<table>_v4`` with the source column and new key, copy, swap, index again."""
    definitions, options = _v1_columns(v1, table)
    columns = list(definitions)
    at = columns.index(facts["after"]) + 1 if "after" in facts else len(columns)
    body = [*columns[:at], "source", *columns[at:]]
    lines = [f"    {definitions.get(c, 'source TEXT NOT NULL')}" for c in body]
    if "key" in facts:
        lines.append(f"    PRIMARY KEY ({', '.join(facts['key'])})")
    named = ", ".join(columns)
    return "\n".join([
        f"CREATE TABLE {table}_v4 (", ",\n".join(lines), f"){options};",
        f"INSERT INTO {table}_v4 ({named}, source)",
        f"SELECT {named}, {_SRC.format(f'{table}.' + facts['run'])} FROM {table};",
        f"DROP TABLE {table};", f"ALTER TABLE {table}_v4 RENAME TO {table};",
        *(f"CREATE INDEX {index};" for index in facts["indexes"])])


def script(v1: str) -> str:
    """The v4 migration, from the v1 script (``etl.store.schema.V1``). Run on its own (without
    ``prepare_v4``: tests building a database by the scripts), every earlier row's source is
    'unknown'."""
    return "\n\n".join([
        f"{_MAPPING_DDL};", _run_sources_ddl(v1),
        f"INSERT INTO run_sources (run_id, source, {_COPIED_SQL})\n"
        f"SELECT r.run_id, m.source, {_R_COPIED_SQL}\n"
        "FROM runs AS r JOIN temp.v4_run_source AS m ON m.run_id = r.run_id;",
        *(_rebuild(v1, t, facts) for t, facts in REBUILT.items()),
        "DROP TABLE temp.v4_run_source;"]) + "\n"


def prepare_v4(conn: sqlite3.Connection) -> None:
    """``temp.v4_run_source (run_id, source)``: the source each stored run read, named from its
    ``runs.endpoint`` as a sync names it today (a known region's URL: the region)."""
    conn.execute(_MAPPING_DDL)
    conn.executemany("INSERT INTO temp.v4_run_source VALUES (?, ?)", [
        (run_id, source_name(endpoint))
        for run_id, endpoint in conn.execute("SELECT run_id, endpoint FROM runs")])
