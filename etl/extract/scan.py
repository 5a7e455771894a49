"""The extractor: scans SWR's official image list, the only stage that speaks HTTP.

``scan_official_images`` pages through ``GET /v2/manage/dockerhub/repos`` by contract (offset and
limit always sent, advance by rows received, stop on the reported total), fetches pages in
parallel once the total is known, proves each pass complete and rescans when the listing moves
(docs/how-it-works/extractor.md). The parts: ``etl.extract.paging`` plans offsets and keeps the
proof's counts (pure), ``etl.extract.reader`` reads a plan's pages in order, ``etl.extract.fetch``
sends one page request (retries, auth, the bounded exchange), ``etl.extract.proof`` reads the
listing a second time.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from etl import __version__
from etl.config.settings import Settings
from etl.errors import InternalError, UpstreamError
from etl.extract.fetch import Fetched, PageFetcher, Stopped
from etl.extract.paging import PagePlanner, PassLedger
from etl.extract.proof import prove
from etl.extract.reader import DEFAULT_BUDGET, PageReader, ReadBudget
from etl.extract.response import signature
from etl.extract.retry import RetryPolicy, make_policy
from etl.extract.session import BoundedSession, Limits, limits_of
from etl.extract.throttle import Clock, Deadline, Limiter, Sleep

log = logging.getLogger("etl.extract")


def make_session(settings: Settings, *, deadline: Deadline | None = None) -> BoundedSession:
    """A session for the SWR API: User-Agent, TLS verification, pool size, the run's bounds.

    TLS verification is always on; ``settings.ca_bundle`` replaces the default CA store.
    Retries are ours (``etl.extract.retry``), so the adapter itself never retries. The session
    carries ``Limits``: ``--timeout`` per request, ``--max-body-mb`` per body and the run's
    ``Deadline`` (``--deadline``, counted from now unless one is passed in), shared by the IAM
    login.
    """
    session = BoundedSession(limits_for(settings, deadline or Deadline(settings.deadline)))
    session.headers["User-Agent"] = f"swr-etl/{__version__}"
    session.headers["Accept"] = "application/json"
    session.verify = str(settings.ca_bundle) if settings.ca_bundle else True
    pool = max(10, settings.concurrency * 2)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def limits_for(settings: Settings, deadline: Deadline | None) -> Limits:
    """The ``Limits`` of ``settings`` (``max_body_mb`` is in MiB)."""
    return Limits(timeout=settings.timeout, max_bytes=int(settings.max_body_mb * 2**20),
                  deadline=deadline)


@dataclass(frozen=True)
class Page:
    """One fetched page. A higher ``pass_no`` than before means: discard earlier passes."""

    pass_no: int
    offset: int
    rows: list[Any]
    body: bytes
    content_range: str | None
    fetched_at: str
    duplicate_ids: tuple[Any, ...] = ()
    total: int | None = None  # the total this page reported (header, else body's total_range)


@dataclass
class ScanStats:
    """What a scan did. Work counters (requests, retries, pages, bytes) cover every pass;
    ``total_reported`` and ``rows_seen`` describe the last pass."""

    requests: int = 0
    retries: int = 0
    retry_causes: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    rescans: int = 0
    total_reported: int | None = None
    rows_seen: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    complete: bool = False
    incomplete_reason: str | None = None
    proof: str | None = None  # how the last pass was proven complete (etl.extract.paging.PROOFS)


class Scan:
    """An iterable of ``Page`` (offset order within a pass) plus ``stats``. Iterate once."""

    def __init__(
        self,
        session: requests.Session,
        settings: Settings,
        *,
        auth: AuthBase | None,
        sleep: Sleep,
        clock: Clock,
        rng: random.Random | None = None,
        budget: ReadBudget = DEFAULT_BUDGET,
        slots: threading.Semaphore | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.auth = auth
        self.stats = ScanStats()
        self._clock = clock
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        if sleep is time.sleep:
            # Real waits end early when the scan is over, so no worker outlives it by a backoff.
            def sleep(seconds: float) -> None:
                if self._stop.wait(seconds):
                    raise Stopped("scan over")
        limits = limits_of(session, limits_for(settings, Deadline(settings.deadline, clock=clock)))
        limiter = Limiter(settings.max_rps, sleep=sleep, clock=clock, deadline=limits.deadline)
        self.policy: RetryPolicy = make_policy(settings, limiter, sleep, rng, clock=clock,
                                               deadline=limits.deadline)
        fetcher = PageFetcher(session, settings, auth=auth, policy=self.policy, limiter=limiter,
                              limits=limits, counters=self.stats, lock=self._lock,
                              stop=self._stop, slots=slots)
        self._reader = PageReader(fetcher, concurrency=settings.concurrency, lock=self._lock,
                                  stop=self._stop, budget=budget)

    def __iter__(self) -> Iterator[Page]:
        if self._started:
            raise InternalError("a Scan can be iterated only once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Page]:
        started = self._clock()
        try:
            pass_no = 0
            values = self.settings.verify == "full"
            while True:
                ledger = PassLedger(pass_no, digests={} if values else None)
                responses, page_size = yield from self._pass(ledger)
                reason = ledger.incomplete_reason()
                proof = None
                if reason is None:
                    proof, reason = prove(self._reader, self.settings, ledger,
                                          responses=responses, pass_page_size=page_size)
                self.stats.total_reported = ledger.last_total
                self.stats.rows_seen = ledger.rows_seen
                if reason is None:
                    self.stats.complete, self.stats.incomplete_reason = True, None
                    self.stats.proof = proof
                    break
                if pass_no >= self.settings.max_rescans:
                    self.stats.complete, self.stats.incomplete_reason = False, reason
                    log.warning("scan incomplete after %d rescan(s): %s", pass_no, reason)
                    break
                log.info("rescanning (pass %d): %s", pass_no + 1, reason)
                pass_no += 1
                self.stats.rescans = pass_no
        finally:
            self.stats.duration_s = self._clock() - started
            self.stats.retries = self.policy.retries
            self.stats.retry_causes = dict(self.policy.causes)

    def _pass(self, ledger: PassLedger) -> Generator[Page, None, tuple[int, int]]:
        """One pass over the listing; stops early when it moved and a rescan is still allowed.

        Returns the number of responses the pass used and the page size it ended with (lower
        than asked when the server caps it).
        """
        planner = PagePlanner(self.settings.page_size)
        self._reader.start()
        can_rescan = ledger.pass_no < self.settings.max_rescans
        seen: dict[int, int] = {}  # hash of a page's content -> the offset it came from
        responses = 0
        with closing(self._reader.read(planner)) as fetches:
            for fetched in fetches:
                responses += 1
                sig = signature(fetched.rows)
                earlier = seen.setdefault(hash(sig), fetched.offset) if sig else fetched.offset
                if earlier != fetched.offset:
                    self._check_ignored_offset(fetched, earlier, sig)
                if fetched.rows:
                    yield self._to_page(ledger, fetched)
                if ledger.moved and can_rescan:
                    break
        return responses, planner.page_size

    def _to_page(self, ledger: PassLedger, fetched: Fetched) -> Page:
        dup = ledger.record(fetched.rows, fetched.total)
        with self._lock:
            self.stats.pages += 1
            # Live figures for progress displays; final values are set when the pass ends.
            if fetched.total is not None:
                self.stats.total_reported = fetched.total
            self.stats.retries = self.policy.retries
            self.stats.retry_causes = dict(self.policy.causes)
        return Page(
            pass_no=ledger.pass_no,
            offset=fetched.offset,
            rows=fetched.rows,
            body=fetched.body,
            content_range=fetched.content_range,
            fetched_at=fetched.fetched_at,
            duplicate_ids=tuple(dup),
            total=fetched.total,
        )

    def _check_ignored_offset(self, fetched: Fetched, earlier: int,
                              sig: tuple[Any, ...]) -> None:
        """The same page came back for two offsets: ask the earlier offset again to tell drift
        (rows inserted exactly one page's worth) from a server that ignores ``offset``, which
        would otherwise loop or duplicate rows."""
        again = self._reader.fetch(earlier, fetched.limit)
        if signature(again.rows) == sig:
            raise UpstreamError(
                f"the API ignores the offset parameter: GET {self._reader.fetcher.path} with "
                f"offset={fetched.offset} returned the same {len(sig)} rows as offset={earlier}; "
                "refusing to loop or duplicate rows"
            )


def scan_official_images(
    session: requests.Session,
    settings: Settings,
    *,
    auth: AuthBase | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    budget: ReadBudget = DEFAULT_BUDGET,
    slots: threading.Semaphore | None = None,
) -> Scan:
    """Scan the official image list; iterate the result for pages, then read ``.stats``.

    Nothing is fetched until iteration starts. ``budget`` bounds the page requests of each read
    (``etl.extract.reader.ReadBudget``). Raises (while iterating) ``AuthError`` (exit 3),
    ``NotFoundError``/``BadRequestError``/``UpstreamError`` (exit 4). ``slots`` bounds the
    requests in flight across several scans at once (the sources of one run on one server).
    """
    return Scan(session, settings, auth=auth, sleep=sleep, clock=clock, rng=rng, budget=budget,
                slots=slots)

