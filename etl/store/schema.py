"""The database schema (docs/reference/database.md shows it), versioned and migrated in place.

``SCHEMA_VERSION`` is stored in ``PRAGMA user_version``. ``MIGRATIONS[n]`` upgrades a database at
version ``n - 1`` to version ``n``; a fresh database runs them all. Views are dropped and recreated
on every migration so their definitions always match the code.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable

from etl.errors import ConfigError
from etl.store import schema_v4, trends
from etl.store.dialect import SQLITE, Dialect

# table -> primary key (facts as data: the tests check the DDL against it).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "images": ("source", "id"),
    "image_snapshots": ("run_id", "source", "image_id"),
    "runs": ("run_id",),
    "run_sources": ("run_id", "source"),
    "raw_pages": ("run_id", "source", "page_offset"),
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

# v2: analysts' views (recreated from VIEWS below) and an index the views lean on.
V2 = """
CREATE INDEX IF NOT EXISTS runs_snapshot_date ON runs(snapshot_date, status);
-- every run rewrites last_seen_run of every image: keeping this index cost ~10 % of a load,
-- and no query needs it
DROP INDEX IF EXISTS images_last_seen_run;
"""

# v3: how the run's scan was proven complete (etl.extract.paging.PROOFS); NULL for runs that were
# not
# complete (failed, partial) and for runs recorded before v3.
V3 = """
ALTER TABLE runs ADD COLUMN proof TEXT;
"""

# Version n's migration: an SQL script. Append, never edit a released one.
# v4: source in every table of image data, run_sources (etl.store.schema_v4).
V4 = schema_v4.script(V1)

# v5: the name index with the name first, in place of v4's (namespace, name, source). An image
# asked for by its name alone (``daily_pulls WHERE name = ?``, Datasette's image_history) is then
# found through it, not by reading every counted run's snapshots: 2.5 s -> ~0.02 s over a year
# of 10,000 images (docs/development/benchmarks.md). namespace and name together use it as they
# used the old one, and the load's duplicate-name check reads it alone as before (covering, its
# GROUP BY in the index's order; source last). A load into an empty images table builds it once
# at its end (etl.store.name_index). PostgreSQL drops ``RETIRED_INDEXES`` too
# (etl.store.pg_schema.tune_tables). IMAGES_NAME_INDEX is v5's text and the loader's name index
# (etl.store.name_index): an index changed later is a new migration with a constant of its own,
# and this one stays as released.
IMAGES_NAME_INDEX = "images_name ON images(name, namespace, source)"
RETIRED_INDEXES = (schema_v4.V4_NAME_INDEX.split()[0],)
V5 = f"""
DROP INDEX IF EXISTS {RETIRED_INDEXES[0]};
CREATE INDEX IF NOT EXISTS {IMAGES_NAME_INDEX};
"""
MIGRATIONS: dict[int, str] = {1: V1, 2: V2, 3: V3, 4: V4, 5: V5}
# Work done before version n's script, in Python: what SQL alone cannot say (v4: the source each
# earlier run read, a name derived from its endpoint URL).
PREPARE: dict[int, Callable[[sqlite3.Connection], None]] = {4: schema_v4.prepare_v4}
SCHEMA_VERSION = max(MIGRATIONS)

# The views, in dependency order. Each is dropped and recreated whenever its SQL differs. The
# analytic rules behind daily_pulls and top_movers_* are stated once, in etl.store.trends, which the
# report runs too: a view and the report cannot disagree. Each engine gets its own rendering of
# the same definitions (etl.store.dialect).
def views_for(dialect: Dialect) -> dict[str, str]:
    """Every view's SQL for ``dialect``, in dependency order."""
    return {
        # Images still listed, with their latest counts and the date of the run that last saw
        # them.
        "latest_images": """
SELECT i.id, i.namespace, i.name, i.user, i.description, i.star_count, i.pull_count,
       i.collection_id, i.last_updated, i.first_seen_at, i.last_seen_at, i.first_seen_run,
       i.last_seen_run, r.snapshot_date, i.source
FROM images AS i
LEFT JOIN runs AS r ON r.run_id = i.last_seen_run
WHERE i.removed_at IS NULL""",
        # One row per observation (image x counted date), with its step from the previous one.
        "daily_pulls": trends.daily_pulls_sql(dialect=dialect),
        # Every mover of the window, ranked; images with a stuck counter or a decrease unranked.
        "top_movers_7d": trends.top_movers_sql(7, dialect=dialect),
        "top_movers_30d": trends.top_movers_sql(30, dialect=dialect),
        # The same across sources: summed per (namespace, name), with the source that gained most.
        "image_totals": trends.IMAGE_TOTALS_SQL,
        "top_movers_total_7d": trends.top_movers_total_sql(7, dialect=dialect),
        "top_movers_total_30d": trends.top_movers_total_sql(30, dialect=dialect),
    }


VIEWS: dict[str, str] = views_for(SQLITE)


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _view_sql(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall()
    return {name: sql for name, sql in rows}


def ensure_schema(conn: sqlite3.Connection) -> int:
    """Create or upgrade the schema in place; return the version now stored.

    Runs each pending migration and refreshes the views in one ``BEGIN IMMEDIATE`` transaction,
    so an interrupted upgrade leaves the old version intact. Cheap when nothing is pending (one
    pragma and one catalogue read). ``conn`` must be in autocommit mode (``isolation_level=None``).

    Raises:
        ConfigError: the database was written by a newer swr-etl (unknown ``user_version``).
    """
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"database schema version {version} is newer than this swr-etl understands "
            f"({SCHEMA_VERSION}); upgrade swr-etl"
        )
    existing = _view_sql(conn)
    if version == SCHEMA_VERSION and all(
        existing.get(name, "").endswith(" AS " + sql.strip()) for name, sql in VIEWS.items()
    ):
        return version
    # Plain SQL, as for PostgreSQL (etl.store.pg_schema): sqlite-utils, used here for the views
    # before, cost a new database's sync ~0.1 s of imports (its own and numpy's) before the
    # first page was asked for.
    conn.execute("BEGIN IMMEDIATE")
    try:
        view_names = set(_view_sql(conn))  # again, under the write lock
        for name in reversed(list(VIEWS)):  # dependants first
            if name in view_names:
                conn.execute(f'DROP VIEW "{name}"')
        for n in range(version + 1, SCHEMA_VERSION + 1):
            if n in PREPARE:
                PREPARE[n](conn)
            for statement in _statements(MIGRATIONS[n]):
                conn.execute(statement)
        for name, sql in VIEWS.items():
            conn.execute(f'CREATE VIEW "{name}" AS {sql.strip()}')
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


@functools.cache
def object_names() -> frozenset[str]:
    """Names of every table, index and view the schema creates (built once, in memory): what
    adopting another application's database must not find there already."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        ensure_schema(conn)
        return frozenset(str(n) for (n,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would COMMIT on its own)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not buf.strip().startswith("--"):
        out.append(buf.strip())
    return out
