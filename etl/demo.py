"""``swr-etl demo``: the whole job on the built-in simulated endpoint, no network, no credentials.

Starts a simulator per region (three regions, ``DEMO_REGIONS``) on 127.0.0.1, runs N simulated
nightly syncs of all three into one database (time travel: each night the
dataset advances a day and the run is recorded under that night's date, the last one today),
exports the Parquet history, writes the HTML report, and prints where everything is.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from etl.config.settings import Settings
from etl.errors import ConfigError

log = logging.getLogger(__name__)

# The outputs a demo owns inside its folder; a re-run replaces exactly these.
DB_NAME = "swr.db"
EXPORT_DIR = "exports"
REPORT_NAME = "report.html"
# Three regions of one catalogue, each with its own counts: the report's region breakdown and
# the totals views have something real to show.
DEMO_REGIONS = ("cn-north-4", "ap-southeast-1", "eu-west-101")
_OWNED = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}.lock", REPORT_NAME)


@dataclass(frozen=True)
class DemoResult:
    directory: Path
    db: Path
    exports: Path
    report: Path
    nights: int
    runs_ok: int
    images: int
    seconds: float


def _night_instant(day: date, today: date, now: datetime) -> datetime:
    """Past nights run at 02:00 UTC; tonight's run is recorded at the real current instant."""
    if day >= today:
        return now
    return datetime.combine(day, time(2, 0), tzinfo=timezone.utc)


def _clear(directory: Path) -> None:
    # unlink() removes a symlink planted at one of these names, never what it points to.
    try:
        for name in _OWNED:
            (directory / name).unlink(missing_ok=True)
        exports = directory / EXPORT_DIR
        if exports.is_symlink():
            exports.unlink()
        elif exports.is_dir():
            shutil.rmtree(exports)
    except OSError as exc:
        raise ConfigError(f"cannot clear the previous demo in {directory}: {exc}") from exc


_CHATTY = ("etl.pipeline", "etl.export", "etl.load", "etl.report")


def run_demo(directory: Path, *, days: int = 30, images: int = 180, seed: int = 42,
             interactive: bool = True, now: datetime | None = None,
             echo: Callable[[str], None] | None = None) -> DemoResult:
    """Run ``days`` simulated nightly syncs into ``directory`` and build the outputs."""
    # The demo prints its own line per night; per-run INFO lines would say it twice. -v (DEBUG)
    # keeps everything. Levels are restored afterwards so a caller's logging is left as it was.
    loggers = [logging.getLogger(name) for name in _CHATTY]
    saved = [lg.level for lg in loggers]
    if logging.getLogger("etl").getEffectiveLevel() == logging.INFO:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        return _run_demo(directory, days=days, images=images, seed=seed,
                         interactive=interactive, now=now, echo=echo)
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def _run_demo(directory: Path, *, days: int, images: int, seed: int, interactive: bool,
              now: datetime | None, echo: Callable[[str], None] | None) -> DemoResult:
    from etl.publish.export import export_snapshots
    from etl.publish.report import write_report
    from etl.run.pipeline import run_sync
    from etl.simulator.regions import Regions

    say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    progress = say if interactive else (lambda line: None)
    started = clock.perf_counter()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"demo folder is a file: {directory}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create demo folder {directory}: {exc.strerror}") from exc
    _clear(directory)
    db = directory / DB_NAME
    real_now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    today = real_now.date()
    first = today - timedelta(days=days - 1)
    # The datasets start the evening before the first night; advance_day() moves them to each
    # night.
    regions = Regions(DEMO_REGIONS, images=images, seed=seed, today=first - timedelta(days=1))
    ok = 0
    progress(f"demo: simulating {days} nights of {images} images in {len(DEMO_REGIONS)} regions "
             f"({', '.join(DEMO_REGIONS)}) into {db}")
    with regions:
        settings = Settings(sources=regions.sources(), db=db, allow_anonymous=True,
                            page_size=100, concurrency=2, backoff_base=0.05, backoff_cap=0.5)
        listing = regions[DEMO_REGIONS[0]].dataset
        for night in range(days):
            regions.advance_day()
            at = _night_instant(listing.today, today, real_now)
            result = run_sync(settings, now=at)
            ok += result.exit_code == 0
            progress(f"  night {night + 1:>2}/{days} {listing.today.isoformat()}: "
                     f"{result.rows} images, {result.new} new, {result.removed} removed, "
                     f"{result.changed} changed")
        listed = len(listing)
    exports = directory / EXPORT_DIR
    progress("demo: exporting the Parquet history")
    export_snapshots(db, exports, fmt="parquet", all_dates=True)
    progress("demo: writing the HTML report")
    report_path = write_report(db, directory / REPORT_NAME, days=days, top=10, fmt="html",
                               now=real_now)
    seconds = clock.perf_counter() - started
    result_obj = DemoResult(directory, db, exports, Path(report_path), days, ok, listed,
                            seconds)
    if interactive:
        for line in describe(result_obj):
            print(line)
    return result_obj


def describe(r: DemoResult) -> list[str]:
    """The closing text: where everything is and three ways to explore it."""
    return [
        f"Done in {r.seconds:.1f} s: {r.runs_ok}/{r.nights} nightly runs loaded, "
        f"{r.images} images in the simulated listing of each of {len(DEMO_REGIONS)} regions.",
        f"  database: {r.db}",
        f"  exports:  {r.exports}/source=REGION/snapshot_date=YYYY-MM-DD/images.parquet",
        f"  report:   {r.report}  (open it in a browser)",
        "",
        "Explore:",
        # The report's region breakdown, from the view built on the same rules: the report
        # covers the whole history (up to 30 nights), as does the 30-day view.
        f'  sqlite-utils query {r.db} "select rank, namespace, name, pull_delta, top_source '
        f'from top_movers_total_30d where rank <= 10 order by rank" --table'
        + ("" if r.nights <= 31 else f"   # the last 30 days; the report covers {r.nights}"),
        # The plain call: the export folder is a dataset pandas opens with no arguments.
        f"  python -c \"import pandas as pd; df = pd.read_parquet('{r.exports}'); "
        f"print(df.groupby('snapshot_date').pull_count.sum())\"",
        f"  swr-etl runs --db {r.db}",
    ]
