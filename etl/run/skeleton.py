"""The one run skeleton: what every sync, dry run and replay does, in this order.

Commit the run's ``running`` row (``etl.store.load``; the caller holds the lock and the open
database, a dry run has neither), tag log lines with the run's id, stream the pages through the
transform into the load (``etl.run.stream``), apply the reject-ratio rule, then finish (commit)
or fail (roll back, record the run ``failed``, re-raise), and log the summary at the level of
the outcome. A ``Job`` says what differs: where the pages come from, and the figures recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from etl.config.settings import Settings
from etl.errors import QualityError
from etl.logs import current_run_id
from etl.run.stream import ChunkSizes, ProgressCallback, Sink, Tally, consume, reject_problem
from etl.store.load import Loader, LoadRun
from etl.store.run_record import LoadCounts, RunStart, error_line

log = logging.getLogger("etl.pipeline")


@dataclass(frozen=True)
class SyncResult:
    """The outcome of one run (also what ``--dry-run`` reports, with ``run_id`` None)."""

    run_id: int | None
    status: str
    exit_code: int
    rows: int
    new: int
    changed: int
    removed: int
    rejected: int
    quality_issues: int
    requests: int
    retries: int
    rescans: int
    seconds: float
    complete: bool
    db: Path | str | None
    dry_run: bool = False
    replay_of: int | None = None
    incomplete_reason: str | None = None
    source: str | None = None  # the source of one source's result in a run of several
    sources: tuple[SyncResult, ...] = ()  # a run of several sources: each one's result

    def summary_line(self) -> str:
        """``run 12 success: 200,000 rows (3 new, 175 changed, 1 removed, 0 rejected) in 201
        requests, 0 retries, 7.42 s`` (counts with thousands separators, as everywhere people
        read them)."""
        if self.dry_run:
            head = f"dry run ({self.status}, nothing written): {self.rows:,} rows"
            counts = f"({self.rejected:,} rejected, {self.quality_issues:,} quality issues)"
        else:
            head = f"run {self.run_id} {self.status}: {self.rows:,} rows"
            counts = (f"({self.new:,} new, {self.changed:,} changed, {self.removed:,} removed, "
                      f"{self.rejected:,} rejected)")
        if self.replay_of is not None:
            tail = f"replayed from run {self.replay_of}, {self.seconds:.2f} s"
        else:
            tail = (f"in {self.requests:,} requests, {self.retries:,} retries, "
                    f"{self.seconds:.2f} s")
        line = f"{head} {counts} {tail}"
        if self.sources:
            ok = sum(r.exit_code == 0 for r in self.sources)
            line += f"; {ok} of {len(self.sources)} sources loaded"
            if self.incomplete_reason:
                line += f"; failed: {self.incomplete_reason}"
        elif self.incomplete_reason and not self.complete:
            line += f"; incomplete: {self.incomplete_reason}"
        return line


# ------------------------------------------------------------------------------ the skeleton


class Job(Protocol):
    """What differs between a sync, a dry run and a replay; ``execute`` does the rest."""

    @property
    def start(self) -> RunStart: ...  # the run's row
    @property
    def store_raw(self) -> bool: ...  # keep the page bodies for a later replay
    @property
    def filtered(self) -> bool: ...  # a namespace/image-name filter: mark nothing removed
    @property
    def replay_of(self) -> int | None: ...

    def pages(self) -> Iterable[Any]: ...
    def total(self) -> int | None: ...
    def figures(self) -> dict[str, Any]: ...  # what the scan did so far (for a failed run too)
    def complete(self) -> bool: ...
    def final_figures(self, tally: Tally) -> dict[str, Any]: ...
    def finished_at(self) -> str: ...
    def name(self, run_id: int) -> str: ...  # "run 3", in log lines


# A finished run's summary is logged at the level of its outcome (alerting keys on the level).
_LEVELS = {"success": logging.INFO, "partial": logging.WARNING, "failed": logging.ERROR}


class _RunLog:
    """Log lines carry the run's id from the moment its row exists (reset when the run ends);
    a failure is logged at level error once the ledger holds it."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.run_id: int | None = None
        self._token: Any = None

    def started(self, run_id: int) -> None:
        self.run_id = run_id
        self._token = current_run_id.set(run_id)

    def __enter__(self) -> _RunLog:
        return self

    def __exit__(self, _type: type[BaseException] | None, exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        try:
            if exc is not None and self.run_id is not None:
                log.error("%s failed: %s", self.job.name(self.run_id), error_line(exc))
        finally:
            if self._token is not None:
                current_run_id.reset(self._token)


def execute(job: Job, settings: Settings, loader: Loader | None, *, t0: float,
            on_progress: ProgressCallback | None, chunk_sizes: ChunkSizes,
            run_id: int | None = None) -> SyncResult:
    """The one run skeleton. ``loader`` None: a dry run (no run row, nothing written).
    ``run_id``: load one source of that run (begun by ``Loader.begin_run``).

    Raises:
        QualityError (7) and whatever the pages or the load raise; the run is recorded
        ``failed`` first.
    """
    with _RunLog(job) as run_log:
        opened: AbstractContextManager[LoadRun | None] = nullcontext(None) if loader is None \
            else loader.run(job.start, finished_at=job.finished_at, figures=job.figures,
                            on_started=run_log.started, run_id=run_id)
        with opened as run:
            tally = consume(job.pages(), Sink(run), source_timezone=settings.source_timezone,
                            store_raw=job.store_raw and run is not None, on_progress=on_progress,
                            total=job.total, chunk_sizes=chunk_sizes)
            problem = reject_problem(tally, settings.max_reject_ratio)
            if problem is not None and run is not None:
                raise QualityError(problem)
            complete, stats = job.complete(), job.final_figures(tally)
            status, code = ("success", 0) if complete else ("partial", 6)
            if problem is not None:  # a dry run says what a real one would have done
                status, code = "failed", QualityError.exit_code
            counts = LoadCounts(rows=tally.rows, rejected=tally.rejected,
                                quality_issues=tally.quality_issues)
            if run is not None:
                counts = run.finish(status=status, exit_code=code, stats=stats,
                                    mark_removed=complete and not job.filtered,
                                    finished_at=job.finished_at())
        result = SyncResult(
            run_id=run_log.run_id, status=status, exit_code=code, rows=counts.rows,
            new=counts.new, changed=counts.changed, removed=counts.removed,
            rejected=counts.rejected, quality_issues=counts.quality_issues,
            requests=int(stats.get("requests", 0)), retries=int(stats.get("retries", 0)),
            rescans=int(stats.get("rescans", 0)), seconds=round(time.monotonic() - t0, 3),
            complete=complete, db=None if loader is None else settings.db,
            dry_run=loader is None, replay_of=job.replay_of,
            incomplete_reason=stats.get("incomplete_reason"))
        log.log(_LEVELS[status], result.summary_line())
    return result
