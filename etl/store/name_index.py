"""The name index of ``images``, left out while a large listing loads into an empty table.

A load of a large listing into an empty images table (a new database) leaves the name index
out until its end: inserting a million rows into it in listing order, which is not name order,
touches its pages at random, and once it outgrows the page cache that was most of the load
(1M rows: the upsert 7.3 -> 1.6 s CPU; building it at the end, one sort, 1.6 s). Smaller
listings keep it: while it fits the cache the inserts cost less than the sort at the end,
which nothing overlaps (200k rows: 0.29 s). The index is dropped and built again inside the
load's one transaction: a rollback, a rescan or a crash leaves it as it was, and no other
connection ever sees the table without it. The duplicate-name check, which reads it, runs
after it is back.
"""

from __future__ import annotations

import sqlite3

from etl.store.schema_v4 import IMAGES_NAME_INDEX

IMAGES_EMPTY_SQL = "SELECT NOT EXISTS (SELECT 1 FROM images)"
DEFER_NAME_INDEX_ROWS = 300_000  # ~16 MiB of index entries: the loader's page cache
DROP_NAME_INDEX_SQL = f"DROP INDEX IF EXISTS {IMAGES_NAME_INDEX.split()[0]}"
CREATE_NAME_INDEX_SQL = f"CREATE INDEX IF NOT EXISTS {IMAGES_NAME_INDEX}"


class NameIndex:
    """What one SQLite load does with the name index, within its transaction."""

    def __init__(self) -> None:
        self.may_defer = self.deferred = False

    def begin(self, conn: sqlite3.Connection) -> None:
        """The load's transaction began (again): may it leave the index out?"""
        self.may_defer = bool(conn.execute(IMAGES_EMPTY_SQL).fetchone()[0])
        self.deferred = False

    def expect(self, conn: sqlite3.Connection, total: int | None) -> None:
        """The listing's reported size: above ``DEFER_NAME_INDEX_ROWS``, leave it out."""
        if self.may_defer and not self.deferred and total is not None \
                and total > DEFER_NAME_INDEX_ROWS:
            conn.execute(DROP_NAME_INDEX_SQL)
            self.deferred = True

    def restore(self, conn: sqlite3.Connection) -> None:
        """Before anything reads it (the duplicate-name check): build it if it was left out."""
        if self.deferred:
            conn.execute(CREATE_NAME_INDEX_SQL)
            self.deferred = False
