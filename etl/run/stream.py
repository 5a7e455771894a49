"""Streaming pages through the transform into the load, in chunks (``ChunkSizes``).

The one page loop of a run (``sync``, ``replay`` and ``--dry-run`` alike): rows are buffered until
a chunk is full, transformed (pure, ``etl.transform.frames``) and written (``etl.store.load``)
inside the run's one transaction, so memory stays flat however long the listing is; a new
``pass_no`` (a rescan) discards the earlier pass. Each chunk's merge runs on a writer thread
while the next chunk is gathered and transformed (``Sink``). ``Sink(None)`` transforms and counts
without writing (``--dry-run``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from etl.integers import usable_ids
from etl.preload import preload
from etl.store.load import LoadRun, compress_body

log = logging.getLogger("etl.chunks")


@dataclass(frozen=True)
class ChunkSizes:
    """Rows per transform-and-write chunk: the first chunk is small and each next one doubles
    up to ``largest``. While workers wait on a slow network, the early chunks are transformed
    and written instead of all of it after the last page; a large scan pays for only a few
    extra flushes, and ``largest`` bounds memory."""

    first: int = 2_000
    # 30,000: each chunk's transform and merge hand the GIL back and forth a fixed number of
    # times (Arrow and SQLite calls), and each time back costs a wait behind the page fetchers;
    # fewer chunks, fewer waits. Against 15,000, a 200k-row sync took 9-10 % less wall time and
    # 1M rows 6-11 %, peak RSS 1M rows 186 -> 204 MiB (40,000: the same time, more memory;
    # 60,000: slower, 234 MiB at 200k). Measured alternating, docs/development/benchmarks.md.
    largest: int = 30_000

    def start(self) -> int:
        return min(self.first, self.largest)

    def after(self, rows: int) -> int:
        return min(rows * 2, self.largest)


DEFAULT_CHUNK_SIZES = ChunkSizes()

ProgressCallback = Callable[[Mapping[str, Any]], None]
RawBody = tuple[int, str, str | None, Future[bytes]]  # offset, fetched_at, range, body
# How often ``Sink.abandon`` asks the merge in flight to stop (seconds).
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

    A run's chunk is merged into the stored state on one writer thread (``LoadRun.merge_chunk``:
    set-based statements, during which SQLite lets go of the GIL and psycopg waits on the
    server) while the main thread gathers and transforms the next chunk. The per-row writes
    stay on the main thread, in their places: page bodies and the chunk table before the merge,
    rejects and quality issues after it (once it is done), since a thread that lets go of the
    GIL at every row waits up to a switch interval to get it back each time (measured: binding
    20k rows took 5x longer on the writer thread). One chunk in flight; every other use of the
    connection (``restart``, and whatever follows ``consume``: finish, failure recording, the
    lock) waits for it first: the statements run in the order they would on one thread, in the
    same transaction, never from two threads at once.
    """

    def __init__(self, run: LoadRun | None) -> None:
        self.run = run
        self._zlib: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: _Merge | None = None

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
        """A dry run's chunk: its rows and quality issues, counted, not written."""
        return len(transformed.images), len(transformed.quality_issues) + len(duplicate_ids)

    def write(self, raw: list[RawBody], transformed: Any, dups: list[int], tally: Tally) -> None:
        """Store a chunk's page bodies, then its rows (``transformed`` None: none), counting it
        into ``tally`` once written: with a run, the merge goes to the writer thread once the
        chunk before it is written whole."""
        if self.run is None:
            if transformed is not None:
                rows, issues = self.chunk(transformed, dups)
                _count(tally, rows, len(transformed.rejects), issues)
            return
        self.settle()
        self.raw(raw)
        if transformed is None:
            return
        before = self.run.counts.quality_issues
        self.run.fill_chunk(transformed)
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="swr-etl-writer")
        # Only what comes after the merge is kept: the images frame can go now (memory).
        self._in_flight = _Merge(
            self._writer.submit(self.run.merge_chunk), _Issues(transformed), dups, tally,
            len(transformed.images), before)

    def settle(self) -> None:
        """Wait for the merge in flight, then write its chunk's rejects and quality issues and
        count the chunk; or raise what the merge raised (the run's one-line error: the load
        raises ``etl.errors`` leaves on whichever thread)."""
        merge = self._in_flight
        if merge is None or self.run is None:
            return
        try:
            merge.future.result()
        finally:
            if merge.future.done():  # not when a signal interrupted the wait: abandon() must
                self._in_flight = None
        self.run.write_issues(merge.issues, merge.dups)
        _count(merge.tally, merge.rows, len(merge.issues.rejects),
               self.run.counts.quality_issues - merge.issues_before)

    def abandon(self) -> None:
        """The run is failing: interrupt the merge in flight and wait until it has stopped, so
        the rollback that follows has the connection to itself. Its own error (most often
        "interrupted") gives way to the one failing the run. A signal arriving meanwhile is
        raised once the writer is done, never while it still holds the connection."""
        if self._in_flight is None or self.run is None:
            return
        future = self._in_flight.future
        signalled: BaseException | None = None
        while not future.done():
            try:
                # Interrupting between two statements is a no-op: ask until the merge ends.
                self.run.loader.conn.interrupt()
                wait([future], timeout=INTERRUPT_EVERY)
            except KeyboardInterrupt as exc:  # Terminated too
                signalled = exc
        self._in_flight = None
        if not future.cancelled() and future.exception() is not None:
            log.debug("the merge in flight stopped: %s", future.exception())
        if signalled is not None:
            raise signalled

    def close(self) -> None:
        """Let the writer and the compressor go."""
        for pool in (self._writer, self._zlib):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._writer = self._zlib = None


@dataclass
class _Merge:
    """A chunk whose merge is in flight: what ``Sink.settle`` writes and counts after it."""

    future: Future[None]
    issues: _Issues
    dups: list[int]
    tally: Tally
    rows: int
    issues_before: int


class _Issues:
    """What ``LoadRun.write_issues`` reads of a transformed chunk: its rejects and issues."""

    def __init__(self, transformed: Any) -> None:
        self.rejects = transformed.rejects
        self.quality_issues = transformed.quality_issues


def _count(tally: Tally, rows: int, rejected: int, issues: int) -> None:
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
            in_chunk = set(usable_ids(self.rows))
            in_page = Counter(usable_ids(page.rows))
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
            from etl.transform.frames import transform_columns

            t = transform_columns(self.rows, page_offsets=self.offsets,
                               source_timezone=source_timezone)
        raw, dups = self.raw, self.dups
        # The row dicts go before the write binds its tuples, so the two never coexist: ~1 KiB
        # per row of the chunk less at the peak (measured: 1M rows, 20,000-row chunks).
        self.rows, self.offsets, self.dups, self.raw = [], [], [], []
        if t is not None or raw:
            sink.write(raw, t, dups, tally)


def _consume_pages(pages: Iterable[Any], sink: Sink, *, source_timezone: str, store_raw: bool,
                   on_progress: ProgressCallback | None, total: Callable[[], int | None],
                   chunk_sizes: ChunkSizes) -> Tally:
    preload("etl.transform.frames")  # numpy and pyarrow, while the first pages arrive
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
