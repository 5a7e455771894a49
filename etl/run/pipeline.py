"""``swr-etl sync`` (and ``--dry-run``) and ``swr-etl replay``: where a run's pages come from.

A sync reads the SWR API (``scan_api``, the default) or the pages a caller hands in
(``run_sync(settings, pages=...)``: tests, library users); a replay reads a stored run's
``raw_pages``. Both take the lock and open the database first (a dry run neither), then run the
one skeleton of ``etl.run.skeleton``: the ``running`` row, the page loop, the reject rule, finish
or fail, the summary line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl.config.settings import Settings
from etl.errors import ConfigError
from etl.integers import usable_id
from etl.run.skeleton import SyncResult, execute
from etl.run.stream import DEFAULT_CHUNK_SIZES, ChunkSizes, ProgressCallback, Tally
from etl.store.engine import check_writable, database_exists, open_loader
from etl.store.load import Loader
from etl.store.run_record import RunStart

if TYPE_CHECKING:
    from etl.extract.scan import Page
    from etl.extract.throttle import Deadline

log = logging.getLogger("etl.pipeline")

PageSource = Iterable[Any] | Callable[[Settings], Iterable[Any]]
"""Pages for ``run_sync``: an iterable of ``etl.extract`` pages (``pass_no``, ``offset``,
``rows``, ``body``, ``content_range``, ``fetched_at``, ``duplicate_ids``), optionally with a
``stats`` attribute like the extractor's scan, or a factory called with the settings once the
run's row exists. By default, ``scan_api``: the SWR API."""

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




def _finished(at: datetime, t0: float) -> str:
    """finished_at on the run's own clock (``now`` may be in the past: demo time travel)."""
    return _utc_text(datetime.fromtimestamp(at.timestamp() + (time.monotonic() - t0),
                                            timezone.utc))


# ---------------------------------------------------------------------------------- run_sync


def preflight(settings: Settings, *, api: bool = True) -> None:
    """Refuse, before a sync opens, creates, locks or sends anything, what it cannot work with:
    the database (a file: not SQLite, or another application's without ``--adopt``; a
    ``postgresql://`` URL: a server that refuses us, or a schema that is not swr-etl's; a dry run
    opens none) and, for the API source (``api``), the credentials' auth object, built once
    (AK/SK needs the optional ``huaweicloudsdkcore`` package:
    install the ``[aksk]`` extra) and a ``--ca-bundle`` that names no file.
    The run checks the file again under its lock.

    Raises:
        ConfigError: (exit 2) saying which.
    """
    if not settings.dry_run:
        check_writable(settings.db, adopt=settings.adopt)
    if not api:
        return
    from etl.extract.auth import build_auth
    from etl.extract.scan import make_session

    bundle = settings.ca_bundle
    if bundle is not None and not Path(bundle).is_file():
        # worded as when REQUESTS_CA_BUNDLE names no file (then found at the first request)
        raise ConfigError(f"cannot set up TLS for {settings.endpoint}: Could not find a suitable "
                          f"TLS CA certificate bundle, invalid path: {bundle}")
    for source in settings.source_list():  # each source's own credentials
        one = settings.for_source(source)
        with make_session(one) as session:
            build_auth(one, session)


def scan_api(settings: Settings, *, slots: threading.Semaphore | None = None,
             deadline: Deadline | None = None) -> Iterable[Page]:
    """The default page source: the SWR API, scanned as ``settings`` say (``etl.extract``).
    ``slots``: the requests in flight, shared with the run's other sources on the same server;
    ``deadline``: the run's, shared with all its sources."""
    from etl.extract.auth import build_auth
    from etl.extract.scan import make_session, scan_official_images

    session = make_session(settings, deadline=deadline)
    return scan_official_images(session, settings, auth=build_auth(settings, session),
                                slots=slots)


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


class _ScanJob:
    """A sync (or a dry run) of the pages ``source`` gives: the SWR API by default."""

    store_raw = True
    replay_of = None

    def __init__(self, settings: Settings, source: PageSource | None, at: datetime,
                 t0: float) -> None:
        self.settings, self.source, self.at, self.t0 = settings, source, at, t0
        self.scan: Any = None
        self.filtered = settings.filtered
        started_at = _utc_text(at)
        self.start = RunStart(started_at=started_at, snapshot_date=started_at[:10],
                              endpoint=settings.endpoint, namespace=settings.namespace,
                              image_name=settings.image_name, page_size=settings.page_size,
                              source=settings.source_list()[0].name)

    def pages(self) -> Iterable[Any]:
        source = self.source
        if source is None:
            self.scan = scan_api(self.settings)
        elif isinstance(source, Iterable):
            self.scan = source
        else:
            self.scan = source(self.settings)
        return self.scan  # type: ignore[no-any-return]

    def total(self) -> int | None:
        return getattr(getattr(self.scan, "stats", None), "total_reported", None)

    def figures(self) -> dict[str, Any]:
        return _scan_stats(self.scan)

    def complete(self) -> bool:
        return bool(self.figures().get("complete", True))

    def final_figures(self, tally: Tally) -> dict[str, Any]:
        stats = self.figures()
        stats.update(rows_seen=tally.rows_seen, pages=stats.get("pages", tally.pages),
                     duration_s=round(time.monotonic() - self.t0, 3))
        return stats

    def finished_at(self) -> str:
        return _finished(self.at, self.t0)

    def name(self, run_id: int) -> str:
        return f"run {run_id}"


def run_sync(settings: Settings, *, pages: PageSource | Mapping[str, PageSource] | None = None,
             on_progress: ProgressCallback | None = None, now: str | datetime | None = None,
             chunk_sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) -> SyncResult:
    """One extract -> transform -> load run. Returns a ``SyncResult`` (exit code 0, or 6 when
    the scan was incomplete: what was seen is loaded, nothing marked removed).

    ``pages``: where the pages come from (see ``PageSource``; default: the SWR API), or a
    mapping of source name to its pages. Several sources (``settings.source_list()``) are one
    run of several (``etl.run.sources``): its exit code is the highest-priority failure among
    them, which are recorded, not raised.
    ``on_progress`` gets progress events (pages done and expected, rows loaded). ``now`` (or
    ``settings.now_override``) fixes the recorded instant. ``settings.dry_run``: fetch and
    transform, write nothing (no lock, no database file), report what a real run would do.

    Raises:
        EtlError leaves: LockedError (5), ConfigError (2), AuthError (3), UpstreamError (4),
        QualityError (7), DatabaseBusyError (5); the run is recorded ``failed`` first, except for
        what is refused before the database is opened (the settings, the file, the lock).
    """
    if isinstance(pages, Mapping) or len(settings.source_list()) > 1:
        from etl.run.sources import run_sources

        if pages is not None and not isinstance(pages, Mapping):
            raise ConfigError("pages for a run of several sources: give a mapping of source "
                              "name to its pages")
        return run_sources(settings, pages=pages, on_progress=on_progress, now=now,
                           chunk_sizes=chunk_sizes)
    if settings.sources:  # one [[sources]] table: its endpoint, region and credentials
        settings = settings.for_source(settings.sources[0])
    t0 = time.monotonic()
    job = _ScanJob(settings, pages, resolve_now(now, settings.now_override), t0)
    # A configuration error is exit 2 before the lock or the file is touched.
    preflight(settings, api=pages is None)
    if settings.dry_run:
        return execute(job, settings, None, t0=t0, on_progress=on_progress,
                       chunk_sizes=chunk_sizes)
    with open_loader(settings.db, busy_timeout=settings.busy_timeout,
                     keep_raw_runs=settings.keep_raw_runs, adopt=settings.adopt) as loader:
        result = execute(job, settings, loader, t0=t0, on_progress=on_progress,
                         chunk_sizes=chunk_sizes)
    _export(settings, result.status)
    return result


def _export(settings: Settings, status: str) -> None:
    """``--export-dir``: export the run just loaded (a partial run's snapshot too: it is what
    was seen, and exporting an older date instead would mislead)."""
    if settings.export_dir is None:
        return
    from etl.publish.export import export_snapshots
    from etl.publish.storage import S3Options

    extra: dict[str, Any] = {"include_partial": True} if status == "partial" else {}
    if isinstance(settings.export_dir, str):  # s3://: the run's timeout and attempts bound it
        extra["s3"] = S3Options.from_settings(settings)
    export_snapshots(settings.db, settings.export_dir, fmt=settings.format, date=None,
                     all_dates=False, **extra)


# -------------------------------------------------------------------------------- replay_run


class _ReplayJob:
    """A stored run's pages, re-transformed and loaded as a new run (``replay_of``)."""

    store_raw = False  # they are stored already, under the original run

    def __init__(self, loader: Loader, original: dict[str, Any], t0: float) -> None:
        self.loader, self.original, self.t0 = loader, original, t0
        self.replay_of = int(original["run_id"])
        self.source: str = original["source"]
        self.filtered = bool(original["namespace"] or original["image_name"])
        captured = str(original["started_at"])
        self.start = RunStart(
            started_at=_utc_text(datetime.now(timezone.utc)), captured_at=captured,
            snapshot_date=str(original["snapshot_date"] or captured[:10]),
            endpoint=original["endpoint"], namespace=original["namespace"],
            image_name=original["image_name"], page_size=original["page_size"],
            replay_of=self.replay_of, source=self.source)

    def pages(self) -> Iterable[Any]:
        return _stored_pages(self.loader, self.replay_of, self.source)

    def total(self) -> int | None:
        return self.original["total_reported"]  # type: ignore[no-any-return]

    def figures(self) -> dict[str, Any]:
        return {}

    def complete(self) -> bool:
        if self.original["complete"] is not None:
            return bool(self.original["complete"])
        return bool(self.original["status"] == "success")

    def final_figures(self, tally: Tally) -> dict[str, Any]:
        complete = self.complete()
        return {"rows_seen": tally.rows_seen, "pages": tally.pages,
                "total_reported": self.original["total_reported"], "complete": int(complete),
                "proof": self.original.get("proof") if complete else None,
                "duration_s": round(time.monotonic() - self.t0, 3)}

    def finished_at(self) -> str:
        return _utc_text(datetime.now(timezone.utc))

    def name(self, run_id: int) -> str:
        return f"run {run_id} (replay of run {self.replay_of})"


def _stored_pages(loader: Loader, run_id: int, source: str) -> Iterator[Page]:
    """Pages of a stored run's source, decoded, with cross-page duplicate ids recomputed."""
    from etl.extract.scan import Page

    seen: set[int | None] = set()
    for raw in loader.raw_pages(run_id, source):
        rows = json.loads(raw.body)
        if not isinstance(rows, list):
            raise ConfigError(f"stored page {raw.offset} of run {run_id} is not a JSON array")
        ids = [usable_id(r) for r in rows]
        dups = tuple(i for i in ids if i is not None and i in seen)
        seen.update(ids)
        yield Page(0, raw.offset, rows, raw.body, raw.content_range, raw.fetched_at, dups)


def _run_list(run_ids: list[int], most: int = 5) -> str:
    """``3, 4, 5`` or, for many, ``3, 4, 5, 6, … 40 (38 runs)``."""
    if len(run_ids) <= most:
        return ", ".join(map(str, run_ids))
    head = ", ".join(map(str, run_ids[:most - 1]))
    return f"{head}, … {run_ids[-1]} ({len(run_ids)} runs)"


def _original_run(loader: Loader, run_id: int, db: Path | str) -> dict[str, Any]:
    """The run whose stored pages a replay of ``run_id`` reads (a replay's own original).

    Raises:
        ConfigError: unknown run, or its pages were pruned (``--keep-raw-runs``) or never kept.
    """
    orig = loader.get_run(run_id)
    if orig is None:
        raise ConfigError(f"no run {run_id} in {db}")
    if orig["replay_of"] is not None:  # replaying a replay: go back to the stored pages
        run_id = int(orig["replay_of"])
        orig = loader.get_run(run_id) or orig
    sources = loader.run_sources(run_id)
    if not sources:
        raise ConfigError(
            f"run {run_id} has no stored pages to replay (pruned by --keep-raw-runs, or the "
            "run failed)")
    if len(sources) > 1:
        raise ConfigError(f"run {run_id} read {len(sources)} sources; replay takes a run of one "
                          "source")
    return {**orig, "run_id": run_id, "source": sources[0]}


def replay_run(settings: Settings, run_id: int, *,
               on_progress: ProgressCallback | None = None,
               chunk_sizes: ChunkSizes = DEFAULT_CHUNK_SIZES) -> SyncResult:
    """Re-transform and reload a stored run from ``raw_pages`` without fetching.

    A new run row (``replay_of`` = ``run_id``) with the original's snapshot date and capture
    time, transformed with the current ``settings.source_timezone``.

    Raises:
        ConfigError: unknown run, or its pages were pruned (``--keep-raw-runs``) or never kept.
    """
    t0 = time.monotonic()
    if not database_exists(settings.db):
        raise ConfigError(f"no database at {settings.db}")
    # A replay stores no pages, so it prunes none (replay has no --keep-raw-runs of its own:
    # the default would undo a larger value the nightly sync uses).
    with open_loader(settings.db, busy_timeout=settings.busy_timeout, keep_raw_runs=-1) as loader:
        job = _ReplayJob(loader, _original_run(loader, run_id, settings.db), t0)
        day = job.start.snapshot_date
        newer = loader.newer_runs(job.replay_of, day)
        if newer:
            log.warning("replaying run %s of %s, which newer runs follow (%s, up to %s): images "
                        "they saw keep their newer values; only what %s shows can change",
                        job.replay_of, day, _run_list([r for r, _d in newer]), newer[-1][1], day)
        return execute(job, settings, loader, t0=t0, on_progress=on_progress,
                        chunk_sizes=chunk_sizes)


__all__ = ["PageSource", "SyncResult", "preflight", "replay_run", "resolve_now", "run_sync",
           "scan_api"]
