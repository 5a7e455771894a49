"""The name index of ``images``, left out while a load fills an empty table.

A load into an empty images table (a new database) leaves the name index out until its end:
inserting a million rows into it in listing order, which is not name order, touches its pages
at random, and once it outgrows the page cache that was most of the load (1M rows: the upsert
7.3 -> 1.6 s CPU; building it at the end, one sort, 1.6 s). Smaller listings gain too, though
the sort at the end runs alone (200k rows: 0.29 s): a 200k-row sync into a new database took
0.89x the wall time of one keeping the index (benchmarks.floor_ab, 5 rounds). The index is
dropped and built again inside the load's one transaction: a rollback, a rescan or a crash
leaves it as it was, and no other connection ever sees the table without it. The
duplicate-name check, which reads it, runs after it is back.
"""

from __future__ import annotations

import sqlite3

from etl.store.schema import IMAGES_NAME_INDEX

IMAGES_EMPTY_SQL = "SELECT NOT EXISTS (SELECT 1 FROM images)"
NAME_INDEX = IMAGES_NAME_INDEX.split()[0]
DROP_NAME_INDEX_SQL = f"DROP INDEX IF EXISTS {NAME_INDEX}"
CREATE_NAME_INDEX_SQL = f"CREATE INDEX IF NOT EXISTS {IMAGES_NAME_INDEX}"


class NameIndex:
    """What one SQLite load does with the name index, within its transaction."""

    def __init__(self) -> None:
        self.deferred = False

    def begin(self, conn: sqlite3.Connection) -> None:
        """The load's transaction began (again): into an empty table, leave the index out."""
        self.deferred = bool(conn.execute(IMAGES_EMPTY_SQL).fetchone()[0])
        if self.deferred:
            conn.execute(DROP_NAME_INDEX_SQL)

    def restore(self, conn: sqlite3.Connection) -> None:
        """Before anything reads it (the duplicate-name check): build it if it was left out."""
        if self.deferred:
            conn.execute(CREATE_NAME_INDEX_SQL)
            self.deferred = False
