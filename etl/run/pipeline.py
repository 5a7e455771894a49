"""Wiring for ``swr-etl sync`` and ``swr-etl replay``: extract -> transform -> load, streamed.

Pages stream through ``etl.run.stream`` (transform and write in chunks inside the run's one write
transaction, so memory stays flat however long the listing is). The lock is taken before
anything else; errors roll the load back, record the run as ``failed`` and re-raise.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.config.settings import Settings
from etl.errors import ConfigError, EtlError, QualityError, Terminated, exit_code_of
from etl.logs import current_run_id, mask
from etl.run.stream import ProgressCallback, Sink, check_rejects, consume, reject_problem
from etl.store.load import Loader

if TYPE_CHECKING:
    from etl.extract.scan import Page

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
    db: Path | None
    dry_run: bool = False
    replay_of: int | None = None
    incomplete_reason: str | None = None

    def summary_line(self) -> str:
        """``run 12 success: 180 rows (3 new, 175 changed, 1 removed, 0 rejected) in 14
        requests, 0 retries, 0.42 s``."""
        if self.dry_run:
            head = f"dry run ({self.status}, nothing written): {self.rows} rows"
            counts = f"({self.rejected} rejected, {self.quality_issues} quality issues)"
        else:
            head = f"run {self.run_id} {self.status}: {self.rows} rows"
            counts = (f"({self.new} new, {self.changed} changed, {self.removed} removed, "
                      f"{self.rejected} rejected)")
        if self.replay_of is not None:
            tail = f"replayed from run {self.replay_of}, {self.seconds:.2f} s"
        else:
            tail = (f"in {self.requests} requests, {self.retries} retries, "
                    f"{self.seconds:.2f} s")
        line = f"{head} {counts} {tail}"
        if self.incomplete_reason and not self.complete:
            line += f"; incomplete: {self.incomplete_reason}"
        return line


# ------------------------------------------------------------------------------------- clock


def _utc_text(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_now(now: str | datetime | None, override: str | None = None) -> datetime:
    """The instant a run records: ``now`` (demo time travel), else the override, else the clock.

    Raises:
        ConfigError: an unparseable value.
    """
    value: str | datetime | None = now if now is not None else override
    if value is None:
        return datetime.now(timezone.utc).replace(microsecond=0)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise ConfigError(f"invalid time {value!r}: expected ISO-8601 UTC") from exc
        value = parsed
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0)


# ----------------------------------------------------------------------------- the page loop


def _scan_stats(scan: Any) -> dict[str, Any]:
    stats = getattr(scan, "stats", None)
    if stats is None:
        return {}
    out = {k: getattr(stats, k) for k in (
        "requests", "retries", "retry_causes", "pages", "rescans", "total_reported",
        "rows_seen", "bytes", "duration_s", "complete", "incomplete_reason", "proof")
        if hasattr(stats, k)}
    if "complete" in out:
        out["complete"] = int(bool(out["complete"]))
    return out


def _one_line(exc: BaseException) -> str:
    """The error as one line for the ledger, secrets masked (they never reach the database)."""
    if isinstance(exc, EtlError):
        text = exc.message
    elif isinstance(exc, Terminated):
        text = _text_of(exc) or "terminated"
    elif isinstance(exc, KeyboardInterrupt):
        text = "interrupted"
    else:
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        at = f" at {where[0].filename.rsplit('/', 1)[-1]}:{where[0].lineno}" if where else ""
        text = f"internal error: {type(exc).__name__}: {_text_of(exc)}{at}"
    return mask(text.replace("\r", " ").replace("\n", " "))


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when even that fails (a hostile value inside the error)."""
    try:
        return str(exc)
    except Exception:  # the failure must still be recorded
        return f"<unprintable {type(exc).__name__}>"


_INT64 = (-(2**63), 2**63 - 1)


def _storable(stats: dict[str, Any] | None) -> dict[str, Any]:
    """The figures SQLite can store as they are: a count beyond INTEGER (hostile totals) or a
    value of an odd type is left out, so writing the failure itself cannot fail on it."""
    out: dict[str, Any] = {}
    for key, value in (stats or {}).items():
        if isinstance(value, dict):  # retry causes: stored as JSON text
            out[key] = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, bool) or value is None or isinstance(value, float | str):
            out[key] = value
        elif isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            out[key] = value
    return out


def _record_failure(loader: Loader, exc: BaseException, *, finished_at: str,
                    stats: dict[str, Any] | None = None) -> None:
    """Record the run ``failed`` with its exit code and error, whatever went wrong: should even
    that raise (a figure the ledger cannot hold), record it again without the figures."""
    error, code = _one_line(exc), exit_code_of(exc)
    for figures in (_storable(stats), None):
        try:
            loader.fail(error, exit_code=code, finished_at=finished_at, stats=figures)
            return
        except Exception:
            log.warning("could not record run %s as failed%s", loader.run_id,
                        " with its figures" if figures else "", exc_info=True)


# A finished run's summary is logged at the level of its outcome (alerting keys on the level).
_LEVELS = {"success": logging.INFO, "partial": logging.WARNING, "failed": logging.ERROR}


# ---------------------------------------------------------------------------------- run_sync


def run_sync(settings: Settings, *, interactive: bool = False,
             on_progress: ProgressCallback | None = None,
             now: str | datetime | None = None) -> SyncResult:
    """One extract -> transform -> load run. Returns a ``SyncResult`` (exit code 0, or 6 when
    the scan was incomplete: what was seen is loaded, nothing marked removed).

    ``interactive`` is accepted for the CLI's sake; progress display is the caller's
    ``on_progress``. ``now`` (or ``settings.now_override``) fixes the recorded instant.

    Raises:
        EtlError leaves: LockedError (5), ConfigError (2), AuthError (3), UpstreamError (4),
        QualityError (7), DatabaseBusyError (5); the run is recorded ``failed`` first.
    """
    from etl.extract.auth import build_auth
    from etl.extract.scan import make_session, scan_official_images

    t0 = time.monotonic()
    at = resolve_now(now, settings.now_override)
    started_at = _utc_text(at)
    if settings.dry_run:
        return _dry_run(settings, t0, on_progress)

    with Loader(settings.db, busy_timeout=settings.busy_timeout,
                keep_raw_runs=settings.keep_raw_runs) as loader:
        loader.open()
        run_id = loader.start_run(
            started_at=started_at, snapshot_date=started_at[:10], endpoint=settings.endpoint,
            namespace=settings.namespace, image_name=settings.image_name,
            page_size=settings.page_size)
        token = current_run_id.set(run_id)
        scan: Any = None
        try:
            session = make_session(settings)
            scan = scan_official_images(session, settings, auth=build_auth(settings, session))
            loader.begin_load()
            tally = consume(
                scan, Sink(loader), source_timezone=settings.source_timezone, store_raw=True,
                on_progress=on_progress,
                total=lambda: getattr(getattr(scan, "stats", None), "total_reported", None))
            check_rejects(tally, settings.max_reject_ratio)
            stats = _scan_stats(scan)
            complete = bool(stats.get("complete", True))
            status, code = ("success", 0) if complete else ("partial", 6)
            stats.update(rows_seen=tally.rows_seen, pages=stats.get("pages", tally.pages),
                         duration_s=round(time.monotonic() - t0, 3))
            counts = loader.finish(
                status=status, exit_code=code, mark_removed=complete and not settings.filtered,
                stats=stats, finished_at=_finished(at, t0))
            rows_loaded = loader.rows_loaded()
        except BaseException as exc:
            _record_failure(loader, exc, finished_at=_finished(at, t0), stats=_scan_stats(scan))
            log.error("run %s failed: %s", run_id, _one_line(exc))
            current_run_id.reset(token)
            raise
        result = SyncResult(
            run_id=run_id, status=status, exit_code=code, rows=rows_loaded, new=counts.new,
            changed=counts.changed, removed=counts.removed, rejected=counts.rejected,
            quality_issues=counts.quality_issues, requests=int(stats.get("requests", 0)),
            retries=int(stats.get("retries", 0)), rescans=int(stats.get("rescans", 0)),
            seconds=round(time.monotonic() - t0, 3), complete=complete, db=settings.db,
            incomplete_reason=stats.get("incomplete_reason"))
        log.log(_LEVELS[status], result.summary_line())
        current_run_id.reset(token)
    _export(settings, result.status)
    return result


def _finished(at: datetime, t0: float) -> str:
    """finished_at on the run's own clock (``now`` may be in the past: demo time travel)."""
    return _utc_text(datetime.fromtimestamp(at.timestamp() + (time.monotonic() - t0),
                                            timezone.utc))


def _export(settings: Settings, status: str) -> None:
    """``--export-dir``: export the run just loaded (a partial run's snapshot too: it is what
    was seen, and exporting an older date instead would mislead)."""
    if settings.export_dir is None:
        return
    from etl.publish.export import export_snapshots

    extra = {"include_partial": True} if status == "partial" else {}
    export_snapshots(settings.db, settings.export_dir, fmt=settings.format, date=None,
                     all_dates=False, **extra)


def _dry_run(settings: Settings, t0: float, on_progress: ProgressCallback | None) -> SyncResult:
    """Fetch and transform, count, write nothing (no lock, no database file)."""
    from etl.extract.auth import build_auth
    from etl.extract.scan import make_session, scan_official_images

    session = make_session(settings)
    scan = scan_official_images(session, settings, auth=build_auth(settings, session))
    tally = consume(scan, Sink(None), source_timezone=settings.source_timezone,
                     store_raw=False, on_progress=on_progress,
                     total=lambda: scan.stats.total_reported)
    stats = _scan_stats(scan)
    complete = bool(stats.get("complete", True))
    ratio_ok = reject_problem(tally, settings.max_reject_ratio) is None
    status = ("success" if complete else "partial") if ratio_ok else "failed"
    code = (0 if complete else 6) if ratio_ok else QualityError.exit_code
    result = SyncResult(
        run_id=None, status=status, exit_code=code, rows=tally.rows, new=0, changed=0,
        removed=0, rejected=tally.rejected, quality_issues=tally.quality_issues,
        requests=int(stats.get("requests", 0)), retries=int(stats.get("retries", 0)),
        rescans=int(stats.get("rescans", 0)), seconds=round(time.monotonic() - t0, 3),
        complete=complete, db=None, dry_run=True,
        incomplete_reason=stats.get("incomplete_reason"))
    log.log(_LEVELS[status], result.summary_line())
    return result


# -------------------------------------------------------------------------------- replay_run


def _stored_pages(loader: Loader, run_id: int) -> Iterable[Page]:
    """Pages of a stored run, decoded, with cross-page duplicate ids recomputed."""
    from etl.extract.paging import usable_id
    from etl.extract.scan import Page

    seen: set[int | None] = set()
    for raw in loader.raw_pages(run_id):
        rows = json.loads(raw.body)
        if not isinstance(rows, list):
            raise ConfigError(f"stored page {raw.offset} of run {run_id} is not a JSON array")
        ids = [usable_id(r) for r in rows]
        dups = tuple(i for i in ids if i is not None and i in seen)
        seen.update(ids)
        yield Page(0, raw.offset, rows, raw.body, raw.content_range, raw.fetched_at,
                          tuple(i for i in dups if i is not None))


def _run_list(run_ids: list[int], most: int = 5) -> str:
    """``3, 4, 5`` or, for many, ``3, 4, 5, 6, … 40 (38 runs)``."""
    if len(run_ids) <= most:
        return ", ".join(map(str, run_ids))
    head = ", ".join(map(str, run_ids[:most - 1]))
    return f"{head}, … {run_ids[-1]} ({len(run_ids)} runs)"


def replay_run(settings: Settings, run_id: int, *,
               on_progress: ProgressCallback | None = None) -> SyncResult:
    """Re-transform and reload a stored run from ``raw_pages`` without fetching.

    A new run row (``replay_of`` = ``run_id``) with the original's snapshot date and capture
    time, transformed with the current ``settings.source_timezone``.

    Raises:
        ConfigError: unknown run, or its pages were pruned (``--keep-raw-runs``) or never kept.
    """
    t0 = time.monotonic()
    if not Path(settings.db).is_file():
        raise ConfigError(f"no database at {settings.db}")
    # A replay stores no pages, so it prunes none (replay has no --keep-raw-runs of its own:
    # the default would undo a larger value the nightly sync uses).
    with Loader(settings.db, busy_timeout=settings.busy_timeout, keep_raw_runs=-1) as loader:
        loader.open()
        orig = loader.get_run(run_id)
        if orig is None:
            raise ConfigError(f"no run {run_id} in {settings.db}")
        if orig["replay_of"] is not None:  # replaying a replay: go back to the stored pages
            run_id = int(orig["replay_of"])
            orig = loader.get_run(run_id) or orig
        if not loader.raw_page_offsets(run_id):
            raise ConfigError(
                f"run {run_id} has no stored pages to replay (pruned by --keep-raw-runs, or the "
                "run failed)")
        source_run = run_id
        started = _utc_text(datetime.now(timezone.utc))
        captured = str(orig["started_at"])
        day = str(orig["snapshot_date"] or captured[:10])
        newer = loader.newer_runs(run_id, day)
        if newer:
            log.warning("replaying run %s of %s, which newer runs follow (%s, up to %s): images "
                        "they saw keep their newer values; only what %s shows can change",
                        run_id, day, _run_list([r for r, _d in newer]), newer[-1][1], day)
        new_id = loader.start_run(
            started_at=started, captured_at=captured,
            snapshot_date=day,
            endpoint=orig["endpoint"], namespace=orig["namespace"],
            image_name=orig["image_name"], page_size=orig["page_size"], replay_of=source_run)
        token = current_run_id.set(new_id)
        try:
            loader.begin_load()
            tally = consume(_stored_pages(loader, run_id), Sink(loader),
                             source_timezone=settings.source_timezone, store_raw=False,
                             on_progress=on_progress, total=lambda: orig["total_reported"])
            check_rejects(tally, settings.max_reject_ratio)
            complete = bool(orig["complete"]) if orig["complete"] is not None else (
                orig["status"] == "success")
            filtered = bool(orig["namespace"] or orig["image_name"])
            status, code = ("success", 0) if complete else ("partial", 6)
            counts = loader.finish(
                status=status, exit_code=code, mark_removed=complete and not filtered,
                stats={"rows_seen": tally.rows_seen, "pages": tally.pages,
                       "total_reported": orig["total_reported"], "complete": int(complete),
                       "proof": orig.get("proof") if complete else None,
                       "duration_s": round(time.monotonic() - t0, 3)},
                finished_at=_utc_text(datetime.now(timezone.utc)))
            rows_loaded = loader.rows_loaded()
        except BaseException as exc:
            _record_failure(loader, exc, finished_at=_utc_text(datetime.now(timezone.utc)))
            log.error("run %s (replay of run %s) failed: %s", new_id, source_run,
                      _one_line(exc))
            current_run_id.reset(token)
            raise
        result = SyncResult(
            run_id=new_id, status=status, exit_code=code, rows=rows_loaded, new=counts.new,
            changed=counts.changed, removed=counts.removed, rejected=counts.rejected,
            quality_issues=counts.quality_issues, requests=0, retries=0, rescans=0,
            seconds=round(time.monotonic() - t0, 3), complete=complete, db=settings.db,
            replay_of=source_run)
        log.log(_LEVELS[status], result.summary_line())
        current_run_id.reset(token)
    return result
