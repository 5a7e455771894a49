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

import sqlite3

from etl.config.regions import source_name

# run_sources: what one source of a run did. The same figures as a run's row in `runs`, for
# that source alone.
RUN_SOURCES_DDL = """
CREATE TABLE run_sources (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    source          TEXT NOT NULL,
    endpoint        TEXT,
    status          TEXT NOT NULL CHECK (status IN ('running','success','partial','failed')),
    exit_code       INTEGER,
    error           TEXT,
    started_at      TEXT,
    finished_at     TEXT,
    requests        INTEGER NOT NULL DEFAULT 0,
    retries         INTEGER NOT NULL DEFAULT 0,
    pages           INTEGER NOT NULL DEFAULT 0,
    total_reported  INTEGER,
    rows_seen       INTEGER NOT NULL DEFAULT 0,
    rows_loaded     INTEGER NOT NULL DEFAULT 0,
    rows_rejected   INTEGER NOT NULL DEFAULT 0,
    rows_new        INTEGER NOT NULL DEFAULT 0,
    rows_changed    INTEGER NOT NULL DEFAULT 0,
    rows_removed    INTEGER NOT NULL DEFAULT 0,
    quality_issues  INTEGER NOT NULL DEFAULT 0,
    rescans         INTEGER NOT NULL DEFAULT 0,
    bytes           INTEGER NOT NULL DEFAULT 0,
    duration_s      REAL,
    retry_causes    TEXT,
    complete        INTEGER,
    proof           TEXT,
    PRIMARY KEY (run_id, source)
);
"""

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

# Run on its own (without prepare_v4: tests building a database by the scripts), every earlier
# row's source is 'unknown'.
V4 = f"""
{_MAPPING_DDL};
{RUN_SOURCES_DDL}
INSERT INTO run_sources (run_id, source, {_COPIED_SQL})
SELECT r.run_id, m.source, {_R_COPIED_SQL}
FROM runs AS r JOIN temp.v4_run_source AS m ON m.run_id = r.run_id;

CREATE TABLE images_v4 (
    id              INTEGER NOT NULL,
    namespace       TEXT,
    name            TEXT,
    user            TEXT,
    description     TEXT,
    star_count      INTEGER,
    pull_count      INTEGER,
    collection_id   INTEGER,
    last_updated    TEXT,
    first_seen_at   TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    first_seen_run  INTEGER NOT NULL REFERENCES runs(run_id),
    last_seen_run   INTEGER NOT NULL REFERENCES runs(run_id),
    removed_at      TEXT,
    source          TEXT NOT NULL,
    PRIMARY KEY (source, id)
);
INSERT INTO images_v4
SELECT id, namespace, name, user, description, star_count, pull_count, collection_id,
       last_updated, first_seen_at, last_seen_at, first_seen_run, last_seen_run, removed_at,
       {_SRC.format("images.last_seen_run")}
FROM images;
DROP TABLE images;
ALTER TABLE images_v4 RENAME TO images;
-- source last: the duplicate-name check of a load reads this index alone (covering)
CREATE INDEX images_ns_name ON images(namespace, name, source);

CREATE TABLE image_snapshots_v4 (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    image_id        INTEGER NOT NULL,
    -- every key column before the others: SQLite 3.40's integrity_check misreads a WITHOUT
    -- ROWID table whose key columns come after a non-key one (false "NULL value" reports)
    source          TEXT NOT NULL,
    captured_at     TEXT NOT NULL,
    snapshot_date   TEXT NOT NULL,
    star_count      INTEGER,
    pull_count      INTEGER,
    last_updated    TEXT,
    PRIMARY KEY (run_id, source, image_id)
) WITHOUT ROWID;
INSERT INTO image_snapshots_v4
SELECT run_id, image_id, {_SRC.format("image_snapshots.run_id")}, captured_at, snapshot_date,
       star_count, pull_count, last_updated
FROM image_snapshots;
DROP TABLE image_snapshots;
ALTER TABLE image_snapshots_v4 RENAME TO image_snapshots;
CREATE INDEX image_snapshots_image ON image_snapshots(source, image_id, run_id);
CREATE INDEX image_snapshots_date ON image_snapshots(snapshot_date);

CREATE TABLE rejects_v4 (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    page_offset     INTEGER,
    reason          TEXT NOT NULL,
    raw             TEXT,
    source          TEXT NOT NULL
);
INSERT INTO rejects_v4
SELECT run_id, page_offset, reason, raw, {_SRC.format("rejects.run_id")} FROM rejects;
DROP TABLE rejects;
ALTER TABLE rejects_v4 RENAME TO rejects;
CREATE INDEX rejects_run ON rejects(run_id, source);

CREATE TABLE quality_issues_v4 (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    image_id        INTEGER,
    field           TEXT NOT NULL,
    raw_value       TEXT,
    problem         TEXT NOT NULL,
    source          TEXT NOT NULL
);
INSERT INTO quality_issues_v4
SELECT run_id, image_id, field, raw_value, problem, {_SRC.format("quality_issues.run_id")}
FROM quality_issues;
DROP TABLE quality_issues;
ALTER TABLE quality_issues_v4 RENAME TO quality_issues;
CREATE INDEX quality_issues_run ON quality_issues(run_id, source);

CREATE TABLE raw_pages_v4 (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    page_offset     INTEGER NOT NULL,
    fetched_at      TEXT NOT NULL,
    content_range   TEXT,
    encoding        TEXT NOT NULL DEFAULT 'zlib',
    body            BLOB NOT NULL,
    source          TEXT NOT NULL,
    PRIMARY KEY (run_id, source, page_offset)
);
INSERT INTO raw_pages_v4
SELECT run_id, page_offset, fetched_at, content_range, encoding, body,
       {_SRC.format("raw_pages.run_id")}
FROM raw_pages;
DROP TABLE raw_pages;
ALTER TABLE raw_pages_v4 RENAME TO raw_pages;

DROP TABLE temp.v4_run_source;
"""


def prepare_v4(conn: sqlite3.Connection) -> None:
    """``temp.v4_run_source (run_id, source)``: the source each stored run read, named from its
    ``runs.endpoint`` as a sync names it today (a known region's URL: the region)."""
    conn.execute(_MAPPING_DDL)
    conn.executemany("INSERT INTO temp.v4_run_source VALUES (?, ?)", [
        (run_id, source_name(endpoint))
        for run_id, endpoint in conn.execute("SELECT run_id, endpoint FROM runs")])
