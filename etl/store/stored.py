"""What a replay reads from the database: a stored run's row and its page bodies.

A mixin of ``etl.store.load.Loader`` (which holds the connection, and the lock a replay needs).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from etl.store.read import run_row


@dataclass(frozen=True)
class RawPage:
    """A stored page body (decompressed) for replay."""

    offset: int
    fetched_at: str
    content_range: str | None
    body: bytes


class StoredRuns:
    """Reads of stored runs, on ``self.conn``."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        """The ``runs`` row of one run, or None."""
        return run_row(self.conn, run_id)

    def newer_runs(self, run_id: int, snapshot_date: str) -> list[tuple[int, str]]:
        """(run_id, snapshot_date) of the loaded runs after ``run_id`` on or after its date."""
        return [(int(r), str(d)) for r, d in self.conn.execute(
            "SELECT run_id, snapshot_date FROM runs WHERE run_id > ? AND snapshot_date >= ? "
            "AND status IN ('success', 'partial') ORDER BY run_id", (run_id, snapshot_date))]

    def run_sources(self, run_id: int) -> list[str]:
        """The sources whose pages a run stored, by name."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT source FROM raw_pages WHERE run_id = ? ORDER BY source", (run_id,))]

    def raw_page_offsets(self, run_id: int, source: str | None = None) -> list[int]:
        """Offsets of a run's stored pages (of one source, or of all)."""
        return [r[0] for r in self.conn.execute(
            "SELECT page_offset FROM raw_pages WHERE run_id = ? AND source = COALESCE(?, source)"
            " ORDER BY page_offset", (run_id, source))]

    def raw_pages(self, run_id: int, source: str | None = None) -> Iterator[RawPage]:
        """Stored pages of a run's source (default: its first) in offset order, decompressed
        one at a time."""
        source = source or next(iter(self.run_sources(run_id)), None)
        for offset in self.raw_page_offsets(run_id, source):
            fetched_at, content_range, encoding, body = self.conn.execute(
                "SELECT fetched_at, content_range, encoding, body FROM raw_pages"
                " WHERE run_id = ? AND source = ? AND page_offset = ?",
                (run_id, source, offset)).fetchone()
            data = zlib.decompress(body) if encoding == "zlib" else bytes(body)
            yield RawPage(offset, fetched_at, content_range, data)
