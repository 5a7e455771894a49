"""The database schema (CONTRACT.md "Database"), versioned and migrated in place.

``SCHEMA_VERSION`` is stored in ``PRAGMA user_version``. ``MIGRATIONS[n]`` upgrades a database at
version ``n - 1`` to version ``n``; a fresh database runs them all. Views are dropped and recreated
on every migration so their definitions always match the code.
"""

from __future__ import annotations

import sqlite3

# table -> primary key (facts as data: the loader and tests read this).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "images": ("id",),
    "image_snapshots": ("run_id", "image_id"),
    "runs": ("run_id",),
}

IMAGE_COLUMNS = (
    "id", "namespace", "name", "user", "description", "star_count", "pull_count",
    "collection_id", "last_updated",
)

V1 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id          INTEGER PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    status          TEXT NOT NULL CHECK (status IN ('running','success','partial','failed')),
    endpoint        TEXT,
    namespace       TEXT,
    image_name      TEXT,
    page_size       INTEGER,
    requests        INTEGER NOT NULL DEFAULT 0,
    retries         INTEGER NOT NULL DEFAULT 0,
    pages           INTEGER NOT NULL DEFAULT 0,
    total_reported  INTEGER,
    rows_seen       INTEGER NOT NULL DEFAULT 0,
    rows_loaded     INTEGER NOT NULL DEFAULT 0,
    rows_rejected   INTEGER NOT NULL DEFAULT 0,
    rescans         INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    tool_version    TEXT,
    -- extensions beyond the contract
    snapshot_date   TEXT,
    exit_code       INTEGER,
    rows_new        INTEGER NOT NULL DEFAULT 0,
    rows_changed    INTEGER NOT NULL DEFAULT 0,
    rows_removed    INTEGER NOT NULL DEFAULT 0,
    quality_issues  INTEGER NOT NULL DEFAULT 0,
    bytes           INTEGER NOT NULL DEFAULT 0,
    duration_s      REAL,
    retry_causes    TEXT,              -- JSON object: cause -> count
    complete        INTEGER,           -- 1 when the completeness proof held
    replay_of       INTEGER,           -- run whose raw_pages this run re-transformed
    pid             INTEGER
);

CREATE TABLE IF NOT EXISTS images (
    id              INTEGER PRIMARY KEY,
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
    removed_at      TEXT
);
CREATE INDEX IF NOT EXISTS images_ns_name ON images(namespace, name);
CREATE INDEX IF NOT EXISTS images_last_seen_run ON images(last_seen_run);

CREATE TABLE IF NOT EXISTS image_snapshots (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    image_id        INTEGER NOT NULL,
    captured_at     TEXT NOT NULL,
    snapshot_date   TEXT NOT NULL,
    star_count      INTEGER,
    pull_count      INTEGER,
    last_updated    TEXT,
    PRIMARY KEY (run_id, image_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_snapshots_image ON image_snapshots(image_id, run_id);
CREATE INDEX IF NOT EXISTS image_snapshots_date ON image_snapshots(snapshot_date);

CREATE TABLE IF NOT EXISTS rejects (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    page_offset     INTEGER,
    reason          TEXT NOT NULL,
    raw             TEXT
);
CREATE INDEX IF NOT EXISTS rejects_run ON rejects(run_id);

CREATE TABLE IF NOT EXISTS quality_issues (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    image_id        INTEGER,
    field           TEXT NOT NULL,
    raw_value       TEXT,
    problem         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_issues_run ON quality_issues(run_id);

CREATE TABLE IF NOT EXISTS raw_pages (
    run_id          INTEGER NOT NULL REFERENCES runs(run_id),
    page_offset     INTEGER NOT NULL,
    fetched_at      TEXT NOT NULL,
    content_range   TEXT,
    encoding        TEXT NOT NULL DEFAULT 'zlib',
    body            BLOB NOT NULL,
    PRIMARY KEY (run_id, page_offset)
);
"""

# Version n's migration: a list of SQL scripts. Append, never edit a released one.
MIGRATIONS: dict[int, str] = {1: V1}
SCHEMA_VERSION = max(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])
