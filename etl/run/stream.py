"""Streaming pages through the transform into the load, in chunks (``ChunkSizes``).

The one page loop of a run (``sync``, ``replay`` and ``--dry-run`` alike): rows are buffered until
a chunk is full, transformed (pure, ``etl.transform.frames``) and written (``etl.store.load``)
inside the run's one transaction, so memory stays flat however long the listing is; a new
``pass_no`` (a rescan) discards the earlier pass. ``Sink(None)`` transforms and counts without
writing (``--dry-run``).
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from etl.integers import usable_id
from etl.store.load import LoadRun, compress_body

log = logging.getLogger("etl.chunks")


@dataclass(frozen=True)
class ChunkSizes:
    """Rows per transform-and-write chunk: the first chunk is small and each next one doubles
    up to ``largest``. While workers wait on a slow network, the early chunks are transformed
    and written instead of all of it after the last page; a large scan pays for only a few
    extra flushes, and ``largest`` bounds memory."""

    first: int = 2_000
    largest: int = 20_000

    def start(self) -> int:
        return min(self.first, self.largest)

    def after(self, rows: int) -> int:
        return min(rows * 2, self.largest)


DEFAULT_CHUNK_SIZES = ChunkSizes()

ProgressCallback = Callable[[Mapping[str, Any]], None]
RawBody = tuple[int, str, str | None, Future[bytes]]  # offset, fetched_at, range, body
# What one chunk's write counts: rows written, rows rejected, quality issues (None: page bodies
# only).
Counted = tuple[int, int, int] | None
# How often ``Sink.abandon`` asks the write in flight to stop.
INTERRUPT_EVERY = 0.05


@dataclass
class Tally:
    """Counters of the current pass (reset on a rescan)."""

    pages: int = 0
    rows_seen: int = 0
    rows: int = 0  # images rows written (a duplicate counts once per chunk)
    rejected: int = 0
    quality_issues: int = 0
    max_page_rows: int = 0


class Sink:
    """Where transformed chunks go: the run's load, or nothing at all (``--dry-run``).

    A run's chunks are written on one writer thread, one chunk at a time: chunk N is written
    while the main thread gathers and transforms chunk N+1 (SQLite releases the GIL while it
    steps a statement, psycopg while it waits on the server). Only one chunk is ever in flight,
    and every other use of the connection (``restart``, and whatever follows ``consume``: finish,
    failure recording, the lock) waits for it first, so the statements run in the order they
    would on one thread, in the same transaction, never from two threads at once.
    """

    def __init__(self, run: LoadRun | None) -> None:
        self.run = run
        self._zlib: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[Counted], Tally] | None = None

    def restart(self) -> None:
        if self.run is not None:
            self.settle()
            self.run.restart_pass()

    def compress(self, body: bytes) -> Future[bytes]:
        """Compress a page body in a worker thread (zlib releases the GIL) while the main
        thread transforms and writes: ~0.5 s of a 200k-row run off the critical path."""
        if self._zlib is None:
            self._zlib = ThreadPoolExecutor(1, thread_name_prefix="swr-etl-zlib")
        return self._zlib.submit(compress_body, body)

    def raw(self, pages: list[RawBody]) -> None:
        if self.run is not None and pages:
            self.run.write_raw_pages(
                [(o, at, cr, body.result()) for o, at, cr, body in pages], compressed=True)

    def chunk(self, transformed: Any, duplicate_ids: list[int]) -> tuple[int, int]:
        if self.run is not None:
            before = self.run.counts.quality_issues
            self.run.write_chunk(transformed, duplicate_ids=duplicate_ids)
            return len(transformed.images), self.run.counts.quality_issues - before
        return len(transformed.images), len(transformed.quality_issues) + len(duplicate_ids)

    def write(self, raw: list[RawBody], transformed: Any, dups: list[int], tally: Tally) -> None:
        """Store a chunk's page bodies, then its rows (``transformed`` None: none), and count it
        into ``tally`` once written. With a run, on the writer thread, after the chunk before it
        has been written; the lists are the writer's from here on."""
        if self.run is None:
            _count(self._store(raw, transformed, dups), tally)
            return
        self.settle()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="swr-etl-writer")
        self._in_flight = (self._writer.submit(self._store, raw, transformed, dups), tally)

    def _store(self, raw: list[RawBody], transformed: Any, dups: list[int]) -> Counted:
        self.raw(raw)
        if transformed is None:
            return None
        rows, issues = self.chunk(transformed, dups)
        return rows, len(transformed.rejects), issues

    def settle(self) -> None:
        """Wait for the chunk in flight and count it, or raise what its write raised (the
        run's one-line error: the writer raises ``etl.errors`` leaves as the load does)."""
        if self._in_flight is None:
            return
        future, tally = self._in_flight
        try:
            counted = future.result()
        finally:
            if future.done():  # not when a signal interrupted the wait: abandon() still must
                self._in_flight = None
        _count(counted, tally)

    def abandon(self) -> None:
        """The run is failing: interrupt the write in flight and wait until it has stopped, so
        the rollback that follows has the connection to itself. Its own error (most often
        "interrupted") gives way to the one failing the run. A signal arriving meanwhile is
        raised once the writer is done, never while it still holds the connection."""
        if self._in_flight is None or self.run is None:
            return
        future, _tally = self._in_flight
        signalled: BaseException | None = None
        while not future.done():
            # Interrupting between two statements is a no-op: ask again until the write ends.
            self.run.loader.conn.interrupt()
            try:
                wait([future], timeout=INTERRUPT_EVERY)
            except KeyboardInterrupt as exc:  # Terminated too
                signalled = exc
        self._in_flight = None
        if not future.cancelled() and future.exception() is not None:
            log.debug("the write in flight stopped: %s", future.exception())
        if signalled is not None:
            raise signalled

    def close(self) -> None:
        """Let the writer and the compressor go (the writer first: it may wait on a body)."""
        for pool in (self._writer, self._zlib):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._writer = self._zlib = None


def _count(counted: Counted, tally: Tally) -> None:
    if counted is not None:
        rows, rejected, issues = counted
        tally.rows += rows
        tally.rejected += rejected
        tally.quality_issues += issues


def consume(pages: Iterable[Any], sink: Sink, *, source_timezone: str, store_raw: bool,
            on_progress: ProgressCallback | None, total: Callable[[], int | None],
            chunk_sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) -> Tally:
    """Transform and write pages in chunks; a new ``pass_no`` discards the earlier pass."""
    try:
        return _consume_pages(pages, sink, source_timezone=source_timezone, store_raw=store_raw,
                              on_progress=on_progress, total=total, chunk_sizes=chunk_sizes)
    except BaseException:
        sink.abandon()
        raise
    finally:
        sink.close()


def _preload_transform() -> None:
    """Import the transform (pandas and pyarrow: ~0.5 s) on a thread while the first pages are
    fetched, instead of before them. Not a daemon: an early exit waits for the import to finish
    rather than tearing an extension module down half-loaded."""
    threading.Thread(target=importlib.import_module, args=("etl.transform.frames",),
                     name="swr-etl-preload").start()


@dataclass
class _Chunk:
    """The chunk being gathered: its rows with their page offsets, the ids it repeats from a
    chunk already written, and the page bodies (being compressed) to store with it."""

    rows: list[Any] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    dups: list[int] = field(default_factory=list)
    raw: list[RawBody] = field(default_factory=list)

    def clear(self) -> None:
        self.rows.clear()
        self.offsets.clear()
        self.dups.clear()
        self.raw.clear()

    def add(self, page: Any, body: Future[bytes] | None) -> None:
        if page.duplicate_ids:
            # Duplicates inside one chunk (this page included) are reported by the transform;
            # report only repeats of an id last seen in a chunk already written. quality_issues
            # lists one entry per repeated row: k entries for an id this page holds c times (and
            # the chunk so far not at all) leave k - (c - 1) for us.
            in_chunk = {usable_id(r) for r in self.rows}
            in_page = Counter(usable_id(r) for r in page.rows)
            entries = Counter(i for i in page.duplicate_ids if i not in in_chunk)
            self.dups.extend(i for i, k in entries.items() for _ in range(k - in_page[i] + 1))
        self.rows.extend(page.rows)
        self.offsets.extend([page.offset] * len(page.rows))
        if body is not None:
            self.raw.append((page.offset, page.fetched_at, page.content_range, body))

    def flush(self, sink: Sink, tally: Tally, source_timezone: str) -> None:
        """Transform the rows, hand them with the page bodies to the sink (bodies first, as
        they are stored), and start an empty chunk: the lists are the sink's now."""
        t = None
        if self.rows:
            # Waits on the import lock if the preload has not finished yet.
            from etl.transform.frames import transform_rows

            t = transform_rows(self.rows, page_offsets=self.offsets,
                               source_timezone=source_timezone)
        if t is not None or self.raw:
            sink.write(self.raw, t, self.dups, tally)
        self.rows, self.offsets, self.dups, self.raw = [], [], [], []


def _consume_pages(pages: Iterable[Any], sink: Sink, *, source_timezone: str, store_raw: bool,
                   on_progress: ProgressCallback | None, total: Callable[[], int | None],
                   chunk_sizes: ChunkSizes) -> Tally:
    _preload_transform()
    tally = Tally()
    chunk, chunk_rows = _Chunk(), chunk_sizes.start()
    current_pass: int | None = None
    for page in pages:
        if page.pass_no != current_pass:
            if current_pass is not None:
                log.info("listing moved: rescan %d discards the earlier pass", page.pass_no)
                chunk.clear()
                sink.restart()
                tally, chunk_rows = Tally(), chunk_sizes.start()
            current_pass = page.pass_no
        chunk.add(page, sink.compress(page.body) if store_raw else None)
        tally.pages += 1
        tally.rows_seen += len(page.rows)
        tally.max_page_rows = max(tally.max_page_rows, len(page.rows))
        if len(chunk.rows) >= chunk_rows:
            chunk.flush(sink, tally, source_timezone)
            chunk_rows = chunk_sizes.after(chunk_rows)
        if on_progress is not None:
            on_progress(_progress(tally, total()))
    chunk.flush(sink, tally, source_timezone)
    sink.settle()  # the last chunk's counts, for the last progress line and the caller
    if on_progress is not None and tally.pages:
        on_progress(_progress(tally, total()))
    return tally


def _progress(tally: Tally, reported: int | None) -> dict[str, Any]:
    return {
        "pages_done": tally.pages,
        "pages_total": (math.ceil(reported / tally.max_page_rows)
                        if reported is not None and tally.max_page_rows else None),
        "rows_loaded": tally.rows,
    }


def reject_problem(tally: Tally, max_ratio: float) -> str | None:
    """The one reject-ratio rule (sync, replay and --dry-run): rejected rows / rows seen in
    the final pass above ``max_ratio`` is a problem, said here; None when within it."""
    if tally.rows_seen and tally.rejected / tally.rows_seen > max_ratio:
        return (f"{tally.rejected:,} of {tally.rows_seen:,} rows rejected "
                f"({tally.rejected / tally.rows_seen:.1%}), above --max-reject-ratio "
                f"{max_ratio:.1%}; nothing of this run was loaded")
    return None
