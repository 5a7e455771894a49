"""The load's SQL: how one chunk of transformed images merges into the stored state.

A chunk is first put into the temporary table ``load_chunk`` (same columns as ``images``); these
set-based statements then count what is new or changed, record identity changes, apply renames,
upsert ``images`` and write ``image_snapshots``, with ``:run`` (the run id), ``:source`` (the
source the chunk was read from: every statement touches that source's rows only), ``:at`` (its
capture time) and ``:date`` (its snapshot date) bound. Per-row Python work is what a load costs
(measured: ``python -m benchmarks.run``), so everything here is one statement per chunk.
"""

from __future__ import annotations

from etl.store.name_index import NAME_INDEX
from etl.store.schema import IMAGE_COLUMNS

LOAD_CHUNK_TABLE_SQL = (
    "CREATE TEMP TABLE IF NOT EXISTS load_chunk (id INTEGER PRIMARY KEY, "
    + ", ".join(f'"{c}"' for c in IMAGE_COLUMNS if c != "id") + ")"
)

CHUNK_COLUMNS = ", ".join(f'"{c}"' for c in IMAGE_COLUMNS)
# namespace/name are indexed: assigning them, even unchanged, rewrites the index entry of every
# row (5x slower upsert, measured). They rarely change: a separate UPDATE does it (RENAME_SQL).
_IDENTITY = ("id", "namespace", "name")
_UPDATE_SET = ", ".join(
    f'"{c}" = excluded."{c}"' for c in IMAGE_COLUMNS if c not in _IDENTITY
)
_CHANGED = " OR ".join(f'i."{c}" IS NOT c."{c}"' for c in IMAGE_COLUMNS if c != "id")

# Whether this run's row overwrites the stored one (alias ``i``): only if no later run saw the
# image or marked it removed. A replay of an older run must not move current state backwards
# (nor bring back an image a later run found gone). The upsert, the rename and the new/changed
# counts all use this one predicate, so the counts say what the upsert really wrote.
_APPLIES = "{i}.last_seen_at <= :at AND ({i}.removed_at IS NULL OR {i}.removed_at <= :at)"

# CROSS JOIN below pins the chunk as the outer loop: the temp table has no statistics, and the
# planner would otherwise scan all of images once per chunk.
NEW_CHANGED_SQL = f"""
SELECT COALESCE(SUM(i.id IS NULL OR (i.removed_at IS NOT NULL AND {_APPLIES.format(i="i")})), 0),
       COALESCE(SUM(i.id IS NOT NULL AND i.removed_at IS NULL AND i.last_seen_run <> :run
                    AND {_APPLIES.format(i="i")} AND ({_CHANGED})), 0),
       COALESCE(SUM(i.id IS NOT NULL AND (i.namespace IS NOT c.namespace
                                           OR i.name IS NOT c.name)), 0)
FROM temp.load_chunk AS c LEFT JOIN images AS i ON i.source = :source AND i.id = c.id
"""

# An id whose (namespace, name) changed since an earlier run: ids are the identity, names may
# change. The only implementation of this check: it needs the stored state, so it is SQL here.
IDENTITY_CHANGED_SQL = """
INSERT INTO quality_issues (run_id, source, image_id, field, raw_value, problem)
SELECT :run, :source, c.id, 'namespace/name',
       COALESCE(c.namespace, '<null>') || '/' || COALESCE(c.name, '<null>'),
       'identity changed, was ' || COALESCE(i.namespace, '<null>') || '/'
       || COALESCE(i.name, '<null>')
FROM temp.load_chunk AS c CROSS JOIN images AS i ON i.source = :source AND i.id = c.id
WHERE i.last_seen_run <> :run AND (i.namespace IS NOT c.namespace OR i.name IS NOT c.name)
"""

RENAME_SQL = f"""
UPDATE images
SET namespace = (SELECT c.namespace FROM temp.load_chunk AS c WHERE c.id = images.id),
    name = (SELECT c.name FROM temp.load_chunk AS c WHERE c.id = images.id)
WHERE source = :source
  AND id IN (SELECT c.id FROM temp.load_chunk AS c
             CROSS JOIN images AS i ON i.source = :source AND i.id = c.id
             WHERE (i.namespace IS NOT c.namespace OR i.name IS NOT c.name)
               AND {_APPLIES.format(i="i")})
"""

UPSERT_SQL = f"""
INSERT INTO images (source, {CHUNK_COLUMNS}, first_seen_at, last_seen_at, first_seen_run,
                    last_seen_run, removed_at)
SELECT :source, {CHUNK_COLUMNS}, :at, :at, :run, :run, NULL FROM temp.load_chunk WHERE true
ON CONFLICT (source, id) DO UPDATE SET {_UPDATE_SET},
    last_seen_at = excluded.last_seen_at, last_seen_run = excluded.last_seen_run,
    removed_at = NULL
WHERE {_APPLIES.format(i="images")}
"""

SNAPSHOTS_SQL = """
INSERT INTO image_snapshots (run_id, source, image_id, captured_at, snapshot_date, star_count,
                             pull_count, last_updated)
SELECT :run, :source, id, :at, :date, star_count, pull_count, last_updated
FROM temp.load_chunk WHERE true
ON CONFLICT (run_id, source, image_id) DO UPDATE SET star_count = excluded.star_count,
    pull_count = excluded.pull_count, last_updated = excluded.last_updated
"""

# One (namespace, name) under two or more listed ids of one source, at least one seen by this run
# (the same name in two regions is normal): one issue per id, unless the transform already
# reported it (pairs inside one chunk). Once per source of a run, at the end.
# `dup` reads only the (name, namespace, source) index (covering, in its order: no sort); the
# table is touched for the few duplicates only (a per-row check cost more than the whole upsert,
# measured). INDEXED BY, since the planner otherwise takes the source's equality to the
# (source, id) key: it then reads every row of the source through that key and the table, and
# sorts them for the GROUP BY (~0.1 s more per 200,000 rows, measured).
NAME_TWO_IDS_SQL = f"""
INSERT INTO quality_issues (run_id, source, image_id, field, raw_value, problem)
WITH dup AS (
    SELECT namespace, name FROM images INDEXED BY {NAME_INDEX}
    WHERE source = :source AND name <> '' AND namespace IS NOT NULL
    GROUP BY namespace, name HAVING count(*) > 1
), members AS (
    SELECT i.id, i.namespace, i.name, i.last_seen_run
    FROM dup CROSS JOIN images AS i ON i.namespace = dup.namespace AND i.name = dup.name
    WHERE i.source = :source AND i.removed_at IS NULL
    ORDER BY i.namespace, i.name, i.id
), g AS (
    SELECT namespace, name, group_concat(id, ', ') AS ids FROM members
    GROUP BY namespace, name
    HAVING count(*) > 1 AND max(last_seen_run = :run) = 1
)
SELECT :run, :source, m.id, 'namespace/name', m.namespace || '/' || m.name,
       'namespace/name shared by ids ' || g.ids
FROM g JOIN members AS m ON m.namespace = g.namespace AND m.name = g.name
WHERE NOT EXISTS (SELECT 1 FROM quality_issues AS q
                  WHERE q.run_id = :run AND q.source = :source AND q.image_id = m.id
                    AND q.field = 'namespace/name'
                    AND q.problem LIKE 'namespace/name shared by ids %')
ORDER BY m.id
"""

MARK_REMOVED_SQL = """
UPDATE images SET removed_at = :at
WHERE source = :source AND removed_at IS NULL AND last_seen_run <> :run AND last_seen_at <= :at
"""

_FILL = f"INSERT OR REPLACE INTO temp.load_chunk ({CHUNK_COLUMNS}) VALUES "
_ROW = f"({', '.join('?' * len(IMAGE_COLUMNS))})"
FILL_CHUNK_SQL = _FILL + _ROW
# The chunk table is filled FILL_ROWS rows per statement: one statement per row lets go of the
# GIL at every row, and while the HTTP threads want it the main thread then waits to get it
# back each time (15,000 rows: 35 ms alone, 226 ms beside two busy threads; 100 per statement:
# 17 and 74 ms, measured). 100 rows bind 900 values (at most MAX_BOUND_VALUES).
FILL_ROWS = 100
FILL_CHUNK_MANY_SQL = _FILL + ", ".join([_ROW] * FILL_ROWS)

REJECTS_SQL = ("INSERT INTO rejects (run_id, source, page_offset, reason, raw)"
               " VALUES (?,?,?,?,?)")

QUALITY_ISSUES_SQL = ("INSERT INTO quality_issues (run_id, source, image_id, field, raw_value,"
                      " problem) VALUES (?,?,?,?,?,?)")

RAW_PAGES_SQL = (
    "INSERT INTO raw_pages (run_id, source, page_offset, fetched_at, content_range, encoding,"
    " body) VALUES (?,?,?,?,?,?,?) ON CONFLICT (run_id, source, page_offset) DO UPDATE SET"
    " fetched_at = excluded.fetched_at, content_range = excluded.content_range,"
    " body = excluded.body")

# Page bodies of all but the ``?`` most recent runs that stored any go (replay needs them).
PRUNE_RAW_PAGES_SQL = (
    "DELETE FROM raw_pages WHERE run_id NOT IN (SELECT DISTINCT run_id FROM raw_pages"
    " ORDER BY run_id DESC LIMIT ?)")
