"""A run of several sources: scanned concurrently, each loaded in its own transaction.

One ``runs`` row for the run and one ``run_sources`` row per source. Each source is scanned in
a thread of its own (its own session, credentials, ``Limiter`` and completeness proof: a 429 in
one region pauses only that region). ``--concurrency`` bounds the requests in flight to each
server: sources on one server (several accounts in a region) share one budget, sources on
different servers (regions) have one each, so one region's requests never queue behind
another's. Each source's pages wait in a bounded queue, so memory stays flat in the number of
sources. SQLite has one writer: the loads are serialised, each source in turn as its pages
arrive, while the other scans go on until their queues fill. A source that fails (404 where the
API is retired, refused credentials, an outage) is rolled back alone: its previous state stays,
the others load. The run's exit code is the highest-priority failure among its sources
(``EXIT_PRIORITY``), 0 when every source loaded completely.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from etl.config.settings import Settings
from etl.config.sources import Source
from etl.errors import ConfigError, exit_code_of
from etl.run.pipeline import PageSource, _ScanJob, _utc_text, preflight, resolve_now, scan_api
from etl.run.skeleton import SyncResult, execute
from etl.run.stream import DEFAULT_CHUNK_SIZES, ChunkSizes, ProgressCallback
from etl.store.engine import open_loader
from etl.store.load import Loader
from etl.store.run_record import RunStart, error_line

log = logging.getLogger("etl.pipeline")

# The order in which a failing source's exit code becomes the run's: an operator sees refused
# credentials first, then a quality stop, an outage, an incomplete scan. Any other code (a bug,
# a busy database) comes after these.
EXIT_PRIORITY = (3, 7, 4, 6)
# Pages a source's scan may hold ahead of its load (per source: memory is bounded by sources x
# this x page size, whatever the listing's length).
QUEUE_PAGES = 16


def run_exit_code(codes: Iterable[int]) -> int:
    """The run's exit code from its sources' codes: 0 when all are 0."""
    failing = [c for c in codes if c != 0]
    if not failing:
        return 0
    return min(failing, key=lambda c: (EXIT_PRIORITY.index(c) if c in EXIT_PRIORITY
                                       else len(EXIT_PRIORITY), c))


class _Feed:
    """One source's scan in its own thread; its pages handed over through a bounded queue."""

    _PAGE, _END, _ERROR = "page", "end", "error"

    def __init__(self, index: int, make: Callable[[], Iterable[Any]],
                 ready: queue.Queue[int]) -> None:
        self.index = index
        self._make = make
        self._ready = ready
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(QUEUE_PAGES)
        self._stop = threading.Event()
        self.scan: Any = None
        self._thread = threading.Thread(target=self._produce, daemon=True,
                                        name=f"swr-etl-source-{index}")

    @property
    def stats(self) -> Any:
        return getattr(self.scan, "stats", None)

    def start(self) -> None:
        self._thread.start()

    def _put(self, item: tuple[str, Any]) -> bool:
        """Queue ``item`` unless the consumer gave up on this source (then: False)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        announced = False
        pages: Iterator[Any] | None = None
        try:
            self.scan = self._make()
            pages = iter(self.scan)
            for page in pages:
                if not self._put((self._PAGE, page)):
                    return
                if not announced:
                    self._ready.put(self.index)
                    announced = True
            self._put((self._END, None))
        except BaseException as exc:  # handed to the loading thread, which records it
            self._put((self._ERROR, exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # a scan's generator stops its workers when closed
            if not announced:
                self._ready.put(self.index)

    def pages(self) -> Iterator[Any]:
        """The source's pages, as its scan yields them; its error, raised here."""
        try:
            while True:
                kind, item = self._queue.get()
                if kind == self._PAGE:
                    yield item
                elif kind == self._END:
                    return
                else:
                    raise item
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class _SourceJob(_ScanJob):
    """One source of a run of several: its pages come from its feed."""

    def __init__(self, settings: Settings, source: Source, feed: _Feed, at: datetime,
                 t0: float) -> None:
        super().__init__(settings, None, at, t0)
        self.feed = feed
        self.start = replace(self.start, endpoint=source.endpoint, source=source.name)

    def pages(self) -> Iterable[Any]:
        self.scan = self.feed
        return self.feed.pages()

    def name(self, run_id: int) -> str:
        return f"run {run_id} source {self.start.source}"


def _pages_of(settings: Settings, pages: PageSource | None,
              slots: threading.Semaphore | None, deadline: Any) -> Callable[[], Iterable[Any]]:
    """What a source's feed iterates: the caller's pages for it, else its API scan (with its
    server's budget of requests in flight and the run's one deadline)."""
    if pages is None:
        return lambda: scan_api(settings, slots=slots, deadline=deadline)
    if isinstance(pages, Iterable):
        return lambda: pages
    return lambda: pages(settings)


@dataclass(frozen=True)
class _Outcome:
    source: str
    result: SyncResult | None
    exit_code: int
    error: str | None


def _budgets(settings: Settings, sources: tuple[Source, ...]
             ) -> dict[str, threading.BoundedSemaphore]:
    """Each source's budget of requests in flight (``--concurrency``): one per server, shared by
    the sources on it. The budget spares a server, and each region's API is a server of its own
    (measured: ten regions at 100 ms a request took 1.15 s with one budget for all, 0.80 s with
    one per server; one region, 0.6 s)."""
    from etl.extract.failures import server_of  # the API's runs only: it imports requests

    per_server = {server_of(src.endpoint): threading.BoundedSemaphore(settings.concurrency)
                  for src in sources}
    return {src.name: per_server[server_of(src.endpoint)] for src in sources}


def run_sources(settings: Settings, *, pages: Mapping[str, PageSource] | None = None,
                on_progress: ProgressCallback | None = None, now: str | datetime | None = None,
                chunk_sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) -> SyncResult:
    """One run over every source of ``settings`` (``Settings.source_list``).

    ``pages`` maps a source's name to its pages (tests, library users); by default each source
    is scanned from its API. Returns the run's ``SyncResult`` (``sources``: one per source).

    Raises:
        ConfigError, LockedError, DatabaseBusyError: before any source is read. A source's own
        failure is recorded in its ``run_sources`` row and its exit code, never raised.
    """
    t0 = time.monotonic()
    at = resolve_now(now, settings.now_override)
    sources = settings.source_list()
    preflight(settings, api=pages is None)
    slots: dict[str, threading.BoundedSemaphore] = {}
    deadline = None
    if pages is None:  # the run's one deadline, counted from now for every source
        from etl.extract.throttle import Deadline

        deadline = Deadline(settings.deadline)
        slots = _budgets(settings, sources)
    ready: queue.Queue[int] = queue.Queue()
    if pages is not None and set(pages) != {s.name for s in sources}:
        raise ConfigError(f"pages given for {sorted(pages)}, but the sources are "
                          f"{[s.name for s in sources]}")
    feeds = [_Feed(i, _pages_of(settings.for_source(src), None if pages is None
                                else pages[src.name], slots.get(src.name), deadline), ready)
             for i, src in enumerate(sources)]
    started_at = _utc_text(at)
    start = RunStart(started_at=started_at, snapshot_date=started_at[:10],
                     endpoint=",".join(src.endpoint for src in sources),
                     namespace=settings.namespace,
                     image_name=settings.image_name, page_size=settings.page_size)
    opened: AbstractContextManager[Loader | None] = nullcontext(None) if settings.dry_run \
        else open_loader(settings.db, busy_timeout=settings.busy_timeout,
                         keep_raw_runs=settings.keep_raw_runs, adopt=settings.adopt)
    with opened as loader:  # a dry run: no lock, no database, nothing written
        run_id = loader.begin_run(start) if loader is not None else None
        try:
            for feed in feeds:
                feed.start()
            outcomes = _load_each(settings, sources, feeds, ready, loader, run_id, at, t0,
                                  on_progress, chunk_sizes)
        finally:
            for feed in feeds:
                feed.stop()
        result = _close_run(loader, run_id, outcomes, settings, t0, at)
    for feed in feeds:
        feed.join(timeout=1.0)
    log.log(logging.INFO if result.exit_code == 0 else logging.WARNING, result.summary_line())
    return result


def _load_each(settings: Settings, sources: tuple[Source, ...], feeds: list[_Feed],
               ready: queue.Queue[int], loader: Loader | None, run_id: int | None,
               at: datetime, t0: float,
               on_progress: ProgressCallback | None, chunk_sizes: ChunkSizes) -> list[_Outcome]:
    """Load the sources one at a time, each as soon as its scan has something to hand over."""
    outcomes: dict[int, _Outcome] = {}
    for _ in feeds:
        i = ready.get()
        src = sources[i]
        job = _SourceJob(settings.for_source(src), src, feeds[i], at, t0)
        try:
            res = execute(job, settings.for_source(src), loader, t0=t0, on_progress=on_progress,
                          chunk_sizes=chunk_sizes, run_id=run_id)
            outcomes[i] = _Outcome(src.name, replace(res, source=src.name), res.exit_code,
                                   None if res.exit_code == 0 else res.incomplete_reason)
        except Exception as exc:  # recorded in its run_sources row; the others go on
            outcomes[i] = _Outcome(src.name, None, exit_code_of(exc), error_line(exc))
    return [outcomes[i] for i in range(len(sources))]


# The scans' figures of a run: its sources' (a failed source's requests count too).
_FIGURES = ("requests", "retries", "pages", "total_reported", "rows_seen", "bytes")
_FIGURES_SQL = ", ".join(f"SUM({c})" if c == "total_reported" else f"COALESCE(SUM({c}), 0)"
                         for c in _FIGURES)
_SUMMED = ("rows", "new", "changed", "removed", "rejected", "quality_issues", "requests",
           "retries", "rescans")


def _close_run(loader: Loader | None, run_id: int | None, outcomes: list[_Outcome],
               settings: Settings, t0: float, at: datetime) -> SyncResult:
    """The run's final row (none in a dry run) and result from its sources' outcomes."""
    loaded = [o.result for o in outcomes if o.result is not None]
    code = run_exit_code(o.exit_code for o in outcomes)
    status = ("success" if code == 0 else "partial" if loaded else "failed")
    sums = {k: sum(getattr(r, k) for r in loaded) for k in _SUMMED}
    failures = [f"{o.source}: {o.error}" for o in outcomes if o.exit_code != 0]
    error = "; ".join(failures)[:1000] or None
    seconds = round(time.monotonic() - t0, 3)
    if loader is None or run_id is None:  # a dry run: what a real one would have done
        figures: dict[str, Any] = {"requests": sum(r.requests for r in loaded),
                                   "retries": sum(r.retries for r in loaded)}
    else:
        row = loader.conn.execute(f"SELECT {_FIGURES_SQL} FROM run_sources WHERE run_id = ?",
                                  (run_id,)).fetchone()
        figures = dict(zip(_FIGURES, row, strict=True))
        _end(loader, run_id, figures, status, code, error, sums, seconds, at)
    return SyncResult(
        run_id=run_id, status=status, exit_code=code, rows=sums["rows"], new=sums["new"],
        changed=sums["changed"], removed=sums["removed"], rejected=sums["rejected"],
        quality_issues=sums["quality_issues"], requests=int(figures["requests"]),
        retries=int(figures["retries"]), rescans=sums["rescans"], seconds=seconds,
        complete=code == 0, db=None if loader is None else settings.db,
        dry_run=loader is None, incomplete_reason=error,
        sources=tuple(o.result or _failed_result(o, run_id) for o in outcomes))


def _end(loader: Loader, run_id: int, figures: dict[str, Any], status: str, code: int,
         error: str | None, sums: dict[str, int], seconds: float, at: datetime) -> None:
    """The run's final ``runs`` row (its own small transaction)."""
    loader.end_run(run_id, {
        **figures, "status": status, "exit_code": code, "error": error,
        "finished_at": _utc_text(datetime.fromtimestamp(at.timestamp() + seconds, at.tzinfo)),
        "rows_loaded": sums["rows"], "rows_rejected": sums["rejected"], "rows_new": sums["new"],
        "rows_changed": sums["changed"], "rows_removed": sums["removed"],
        "quality_issues": sums["quality_issues"], "rescans": sums["rescans"],
        "complete": int(code == 0), "duration_s": seconds})


def _failed_result(outcome: _Outcome, run_id: int | None) -> SyncResult:
    return SyncResult(run_id=run_id, status="failed", exit_code=outcome.exit_code, rows=0, new=0,
                      changed=0, removed=0, rejected=0, quality_issues=0, requests=0, retries=0,
                      rescans=0, seconds=0.0, complete=False, db=None,
                      incomplete_reason=outcome.error, source=outcome.source)
