"""The writer thread: each chunk is written while the next is gathered and transformed, one
chunk in flight, in the statements' serial order, never two threads on the connection at once;
its errors and an interruption end the run as they would on one thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from etl.config.settings import Settings
from etl.errors import DatabaseBusyError, Terminated
from etl.run.pipeline import run_sync
from etl.run.stream import ChunkSizes, Sink, consume
from etl.store.run_record import LoadCounts
from tests.helpers import T0, FakeScan, q, rows
from tests.test_chunks import FakePage, pages
from tests.test_pipeline import Interrupting  # Ctrl-C at page 2: chunk 0 (pages 0-1) is in flight

DEADLINE = 10.0  # seconds a fake write waits for the main thread before giving up


class FakeConn:
    """The connection as the writer's owner sees it: ``interrupt`` stops the write in flight."""

    def __init__(self) -> None:
        self.interrupted = threading.Event()
        self.interrupts = 0

    def interrupt(self) -> None:
        self.interrupts += 1
        self.interrupted.set()


class FakeRun:
    """A ``LoadRun`` that records each use of its connection: what, from which thread, and how
    many threads were inside at once. ``hold(n)`` runs while chunk ``n`` (from 0) is merged."""

    def __init__(self) -> None:
        self.loader = SimpleNamespace(conn=FakeConn())
        self.counts = LoadCounts()
        self.events: list[tuple[Any, ...]] = []
        self.threads: dict[str, set[str]] = defaultdict(set)
        self.inside = self.most_inside = 0
        self._lock = threading.Lock()
        self.chunks = 0
        self.restarted = threading.Event()

    @contextmanager
    def _using(self, *event: Any) -> Iterator[None]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.events.append(event)
            self.threads[event[0]].add(threading.current_thread().name)
        try:
            yield
        finally:
            with self._lock:
                self.inside -= 1

    def hold(self, n: int) -> None:
        """Chunk ``n``'s merge (from 0), on the writer thread (nothing by default)."""

    def write_raw_pages(self, raw: list[tuple[Any, ...]], *, compressed: bool) -> None:
        with self._using("raw", tuple(offset for offset, *_ in raw)):
            assert compressed and all(isinstance(body, bytes) for *_, body in raw)

    def fill_chunk(self, transformed: Any) -> None:
        with self._using("fill", len(transformed.images)):
            self.filled = len(transformed.images)

    def merge_chunk(self) -> None:
        with self._using("merge", self.filled):
            self.chunks += 1
            self.hold(self.chunks - 1)
            self.counts.quality_issues += 1  # as if one id had changed its name

    def write_issues(self, transformed: Any, duplicate_ids: list[int]) -> None:
        with self._using("issues", self.filled):
            self.counts.quality_issues += len(transformed.quality_issues) + len(duplicate_ids)

    def restart_pass(self) -> None:
        with self._using("restart"):
            self.restarted.set()


def sink_of(run: FakeRun) -> Sink:
    return Sink(run)  # type: ignore[arg-type]


def consumed(p: list[FakePage], run: FakeRun, sizes: ChunkSizes) -> Any:
    return consume(p, sink_of(run), source_timezone="UTC", store_raw=True, on_progress=None,
                   total=lambda: None, chunk_sizes=sizes)


def test_chunks_are_written_off_the_main_thread_in_the_serial_order() -> None:
    run = FakeRun()
    tally = consumed(pages(700, 100), run, ChunkSizes(first=200, largest=1000))
    # page bodies, chunk table, merge, issues; chunk after chunk: the one-thread order
    assert run.events == [("raw", (0, 100)), ("fill", 200), ("merge", 200), ("issues", 200),
                          ("raw", (200, 300, 400, 500)), ("fill", 400), ("merge", 400),
                          ("issues", 400), ("raw", (600,)), ("fill", 100), ("merge", 100),
                          ("issues", 100)]
    main = threading.current_thread().name
    assert run.threads["merge"] and main not in run.threads["merge"]
    assert run.threads["raw"] == run.threads["fill"] == run.threads["issues"] == {main}
    assert run.most_inside == 1
    # counted once written: the merges' issues (one each) and nothing the transform found
    assert (tally.rows, tally.rejected, tally.quality_issues, tally.pages) == (700, 0, 3, 7)


class Watched(list[FakePage]):
    """Pages that say when the main thread asks for page ``n``."""

    def __init__(self, p: list[FakePage], n: int) -> None:
        super().__init__(p)
        self.n = n
        self.reached = threading.Event()

    def __iter__(self) -> Iterator[FakePage]:
        for i, page in enumerate(list.__iter__(self)):
            if i == self.n:
                self.reached.set()
            yield page


def test_the_next_chunk_is_gathered_while_one_is_written() -> None:
    p = Watched(pages(600, 100), n=3)  # chunk 0 is pages 0-1; page 3 belongs to chunk 1
    run = FakeRun()
    overlapped: list[bool] = []
    run.hold = lambda n: overlapped.append(p.reached.wait(DEADLINE)) if n == 0 else None
    tally = consumed(p, run, ChunkSizes(first=200, largest=400))
    assert overlapped == [True]
    assert tally.rows == 600
    assert run.most_inside == 1


def test_a_rescan_waits_for_the_write_in_flight() -> None:
    p = Watched(pages(300, 100, pass_no=0) + pages(200, 100, pass_no=1), n=3)
    run = FakeRun()
    late: list[bool] = []

    def hold(n: int) -> None:
        if n == 0:  # the rescan's first page is in hand: the main thread wants to restart
            assert p.reached.wait(DEADLINE)
            # a restart that did not wait would come now; 0.2 s is ample for it to show
            late.append(run.restarted.wait(0.2))

    run.hold = hold
    tally = consumed(p, run, ChunkSizes(first=200, largest=400))
    assert late == [False]
    assert [e[0] for e in run.events] == ["raw", "fill", "merge", "issues", "restart",
                                          "raw", "fill", "merge", "issues"]
    assert run.most_inside == 1
    assert tally.rows == 200  # the final pass only


def test_the_writers_error_is_the_runs_and_nothing_after_it_is_written() -> None:
    run = FakeRun()

    def hold(n: int) -> None:
        if n == 1:
            raise DatabaseBusyError("another writer held database x past the busy timeout")

    run.hold = hold
    with pytest.raises(DatabaseBusyError, match="busy timeout"):
        consumed(pages(900, 100), run, ChunkSizes(first=200, largest=200))
    assert [e[0] for e in run.events if e[0] != "raw"] == ["fill", "merge", "issues",
                                                          "fill", "merge"]
    assert run.inside == 0


def test_an_error_in_the_last_write_surfaces_before_consume_returns() -> None:
    run = FakeRun()

    def hold(n: int) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    run.hold = hold
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        consumed(pages(100, 100), run, ChunkSizes(first=200, largest=200))


def interrupted_run() -> FakeRun:
    """A run whose chunk 0 is merged until its connection is interrupted."""
    run = FakeRun()

    def hold(n: int) -> None:
        if n == 0:
            assert run.loader.conn.interrupted.wait(DEADLINE)
            raise sqlite3.OperationalError("interrupted")

    run.hold = hold
    return run


class Terminating(list[FakePage]):
    """Pages that end in SIGTERM (``Terminated``) at page ``n``."""

    def __init__(self, p: list[FakePage], n: int) -> None:
        super().__init__(p)
        self.n = n

    def __iter__(self) -> Iterator[FakePage]:
        for i, page in enumerate(list.__iter__(self)):
            if i == self.n:
                raise Terminated("terminated by signal SIGTERM")
            yield page


def test_a_signal_interrupts_the_write_in_flight_and_waits_for_it() -> None:
    run = interrupted_run()
    with pytest.raises(Terminated):  # the signal, not the write's "interrupted"
        consumed(Terminating(pages(600, 100), n=3), run, ChunkSizes(first=200, largest=200))
    assert run.loader.conn.interrupts >= 1
    assert run.inside == 0  # the writer let go of the connection before consume ended
    # the interrupted merge's issues are never written: the run is rolled back
    assert run.events == [("raw", (0, 100)), ("fill", 200), ("merge", 200)]


def test_a_second_signal_while_waiting_is_raised_once_the_writer_let_go() -> None:
    run = interrupted_run()
    conn = run.loader.conn
    first = conn.interrupt

    def interrupt() -> None:
        first()
        if conn.interrupts == 1:
            raise Terminated("terminated by signal SIGTERM")  # arrives during the wait

    conn.interrupt = interrupt  # type: ignore[method-assign]
    with pytest.raises(Terminated):
        consumed(Terminating(pages(600, 100), n=3), run, ChunkSizes(first=200, largest=200))
    assert run.inside == 0


# ------------------------------------------------------------------- on both real engines


@pytest.fixture()
def settings(db: Path | str) -> Settings:
    return Settings(endpoint="http://127.0.0.1:9", db=db, allow_anonymous=True)


def test_ctrl_c_with_a_write_in_flight_rolls_back_and_records_interrupted(
        settings: Settings) -> None:
    run_sync(settings, now=T0, pages=FakeScan(rows(range(1, 51))))
    with pytest.raises(KeyboardInterrupt):
        run_sync(settings, now="2026-11-21T03:00:00Z", pages=Interrupting(
            rows(range(1, 500), pulls=7)), chunk_sizes=ChunkSizes(first=200, largest=200))
    assert q(settings.db, "SELECT run_id, status, error, exit_code FROM runs ORDER BY run_id") \
        == [(1, "success", None, 0), (2, "failed", "interrupted", 130)]
    # the first run's state stands whole: nothing of the interrupted run's chunk
    assert q(settings.db, "SELECT count(*), sum(pull_count) FROM images") == [
        (50, sum(100 + i for i in range(1, 51)))]
    assert q(settings.db, "SELECT count(*) FROM image_snapshots WHERE run_id = 2") == [(0,)]


def test_counts_read_back_after_the_writes_are_exact(settings: Settings) -> None:
    data = rows(range(1, 1001)) + rows([5, 6])  # two repeats of ids a written chunk holds
    result = run_sync(settings, now=T0, pages=FakeScan(data),
                      chunk_sizes=ChunkSizes(first=100, largest=300))
    assert (result.rows, result.new, result.quality_issues) == (1000, 1000, 2)
    assert q(settings.db, "SELECT rows_loaded, quality_issues FROM runs") == [(1000, 2)]


def test_interrupt_stops_the_statement_the_server_runs(pg_url: str) -> None:
    """``PgWriter.interrupt`` (what ``Sink.abandon`` calls) cancels a statement running on
    another thread: one line, the busy leaf, at once rather than when the statement ends."""
    from etl.store.pg import connect
    from etl.store.pg_write import PgWriter

    raw, _schema = connect(pg_url)
    writer = PgWriter(raw, "test-db")
    raised: list[Exception] = []

    def long_statement() -> None:
        try:
            writer.execute("SELECT pg_sleep(60)")
        except Exception as exc:  # recorded for the assertion
            raised.append(exc)

    thread = threading.Thread(target=long_statement)
    thread.start()
    try:
        pid = raw.info.backend_pid
        running = "SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND state = 'active'"
        deadline = time.monotonic() + DEADLINE
        while q(pg_url, running, pid) != [(1,)] and time.monotonic() < deadline:
            time.sleep(0.02)  # polling, with a deadline
        writer.interrupt()
        thread.join(DEADLINE)
        assert not thread.is_alive()
        assert len(raised) == 1 and isinstance(raised[0], DatabaseBusyError)
    finally:
        thread.join()
        writer.close()
