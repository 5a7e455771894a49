"""The load's SQL on PostgreSQL: how one chunk of images merges into the stored state there.

The same rules as SQLite's (``etl.store.load_sql``), spelled for PostgreSQL: ``IS DISTINCT FROM``
for SQLite's null-safe ``IS NOT``, ``count(*) FILTER`` for a sum of booleans, ``string_agg`` and
``bool_or``. A chunk is ``COPY``'d into the temporary table ``load_chunk`` (made per transaction,
dropped at its end), then each statement below runs once per chunk. Written with ``:name``
placeholders (``etl.store.pg_write.PgWriter`` binds them): ``:run``, ``:source``, ``:at`` and
``:date`` as on SQLite. Columns are always named, never taken by position.
"""

from __future__ import annotations

from etl.store.schema import IMAGE_COLUMNS

CHUNK_TABLE = "load_chunk"
_COLS = ", ".join(f'"{c}"' for c in IMAGE_COLUMNS)

# The chunk's columns with the types ``images`` gives them, no constraints (the stored state's
# NOT NULL bookkeeping columns are not part of a chunk); gone when the transaction ends.
CHUNK_TABLE_SQL = (f"CREATE TEMP TABLE {CHUNK_TABLE} ON COMMIT DROP AS SELECT {_COLS} "
                   "FROM images WITH NO DATA")
CHUNK_KEY_SQL = f"ALTER TABLE {CHUNK_TABLE} ADD PRIMARY KEY (id)"
CLEAR_CHUNK_SQL = f"TRUNCATE {CHUNK_TABLE}"
# For the load's transaction only: a chunk (at most ChunkSizes.largest rows) is joined to images
# by probing images' key once per chunk row. The planner would rather hash or scan all of images
# once per chunk, or even once per chunk row (a materialised copy of it), when images'
# statistics predate this load: a first load, whose table grows inside the transaction (one
# 8,000-row chunk took 14 s instead of 0.1 s, measured).
# SQLite's CROSS JOINs pin the same plan.
# jit off: a switched-off plan type still costs 10^10 in the planner's sums, which passes every
# JIT threshold, so each chunk's upsert and snapshot insert were compiled by LLVM with inlining
# and optimisation (0.1-0.3 s of server CPU per statement and chunk, measured), only
# to run a plan that reads one small chunk once.
LOAD_SETTINGS_SQL = (*(f"SET LOCAL enable_{plan} = off"
                       for plan in ("hashjoin", "mergejoin", "material", "seqscan")),
                     "SET LOCAL jit = off")

_CHANGED = " OR ".join(f'i."{c}" IS DISTINCT FROM c."{c}"' for c in IMAGE_COLUMNS if c != "id")
_RENAMED = "(i.namespace IS DISTINCT FROM c.namespace OR i.name IS DISTINCT FROM c.name)"
# Whether this run's row overwrites the stored one: only if no later run saw the image or marked
# it removed (a replay of an older run never moves the current state backwards).
_APPLIES = "{i}.last_seen_at <= :at AND ({i}.removed_at IS NULL OR {i}.removed_at <= :at)"

NEW_CHANGED_SQL = f"""
SELECT count(*) FILTER (WHERE i.id IS NULL
                           OR (i.removed_at IS NOT NULL AND {_APPLIES.format(i="i")})),
       count(*) FILTER (WHERE i.id IS NOT NULL AND i.removed_at IS NULL
                           AND i.last_seen_run <> :run AND {_APPLIES.format(i="i")}
                           AND ({_CHANGED})),
       count(*) FILTER (WHERE i.id IS NOT NULL AND {_RENAMED}),
       count(i.id),
       count(*) FILTER (WHERE i.last_seen_run = :run OR NOT ({_APPLIES.format(i="i")}))
FROM {CHUNK_TABLE} AS c LEFT JOIN images AS i ON i.source = :source AND i.id = c.id
"""

IDENTITY_CHANGED_SQL = f"""
INSERT INTO quality_issues (run_id, source, image_id, field, raw_value, problem)
SELECT :run, :source, c.id, 'namespace/name',
       COALESCE(c.namespace, '<null>') || '/' || COALESCE(c.name, '<null>'),
       'identity changed, was ' || COALESCE(i.namespace, '<null>') || '/'
       || COALESCE(i.name, '<null>')
FROM {CHUNK_TABLE} AS c JOIN images AS i ON i.source = :source AND i.id = c.id
WHERE i.last_seen_run <> :run AND {_RENAMED}
"""

# namespace and name are set here too (SQLite renames in a statement of its own, to spare its
# index): PostgreSQL keeps an unchanged indexed value without touching the index (HOT update).
_UPDATE_SET = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in IMAGE_COLUMNS if c != "id")
# The plain inserts (no ON CONFLICT) are for chunks that cannot conflict, as the count above
# finds them (its last two figures): images, for a chunk none of whose ids is stored (a first
# load); snapshots, for a chunk none of whose ids an earlier chunk of this load may have
# snapshotted. Such an id's stored row was either written by that chunk (last_seen_run is this
# run) or is one this run does not overwrite (a replay of an older run), and nothing else
# changes it before the load ends; nearly every chunk of a sync has neither. ON CONFLICT costs a
# probe of the key before each row and a second write to confirm it (speculative insertion):
# the plain snapshot insert took a third less server CPU (measured). The key would refuse a row
# the count missed (an error), never store it twice.
INSERT_IMAGES_SQL = f"""
INSERT INTO images (source, {_COLS}, first_seen_at, last_seen_at, first_seen_run, last_seen_run,
                    removed_at)
SELECT :source, {_COLS}, :at, :at, :run, :run, NULL FROM {CHUNK_TABLE}
"""
UPSERT_SQL = f"""{INSERT_IMAGES_SQL.rstrip()}
ON CONFLICT (source, id) DO UPDATE SET {_UPDATE_SET},
    last_seen_at = EXCLUDED.last_seen_at, last_seen_run = EXCLUDED.last_seen_run,
    removed_at = NULL
WHERE {_APPLIES.format(i="images")}
"""

INSERT_SNAPSHOTS_SQL = f"""
INSERT INTO image_snapshots (run_id, source, image_id, captured_at, snapshot_date, star_count,
                             pull_count, last_updated)
SELECT :run, :source, id, :at, :date, star_count, pull_count, last_updated FROM {CHUNK_TABLE}
"""
SNAPSHOTS_SQL = f"""{INSERT_SNAPSHOTS_SQL.rstrip()}
ON CONFLICT (run_id, source, image_id) DO UPDATE SET star_count = EXCLUDED.star_count,
    pull_count = EXCLUDED.pull_count, last_updated = EXCLUDED.last_updated
"""

# One (namespace, name) under two or more listed ids of one source, one of them seen by this
# run: one issue per id naming them all, unless the transform already reported it. Once per
# source, at the end. The names are found by a count per (namespace, name), and only their ids
# are read again (a window lists them); the issues already there are skipped after that, so the
# list still names every id.
NAME_TWO_IDS_SQL = """
INSERT INTO quality_issues (run_id, source, image_id, field, raw_value, problem)
SELECT :run, :source, m.id, 'namespace/name', m.namespace || '/' || m.name,
       'namespace/name shared by ids ' || m.ids
FROM (
    SELECT i.id, i.namespace, i.name,
           string_agg(CAST(i.id AS TEXT), ', ') OVER (
               PARTITION BY i.namespace, i.name ORDER BY i.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS ids
    FROM images AS i
    WHERE i.source = :source AND i.removed_at IS NULL AND (i.namespace, i.name) IN (
        SELECT namespace, name FROM images
        WHERE source = :source AND removed_at IS NULL AND name <> '' AND namespace IS NOT NULL
        GROUP BY namespace, name HAVING count(*) > 1 AND bool_or(last_seen_run = :run))
) AS m
WHERE m.id NOT IN (SELECT image_id FROM quality_issues
                   WHERE run_id = :run AND source = :source AND image_id IS NOT NULL
                     AND field = 'namespace/name'
                     AND problem LIKE 'namespace/name shared by ids %')
ORDER BY m.id
"""

# Removals and raw-page pruning: SQLite's statements as written (``LoadRun.finish``).

REJECT_COLUMNS = ("run_id", "source", "page_offset", "reason", "raw")
ISSUE_COLUMNS = ("run_id", "source", "image_id", "field", "raw_value", "problem")

RAW_PAGES_SQL = (
    "INSERT INTO raw_pages (run_id, source, page_offset, fetched_at, content_range, encoding,"
    " body) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, source, page_offset) DO UPDATE SET"
    " fetched_at = EXCLUDED.fetched_at, content_range = EXCLUDED.content_range,"
    " encoding = EXCLUDED.encoding, body = EXCLUDED.body")
