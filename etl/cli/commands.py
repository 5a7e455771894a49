"""Sub-command definitions. Each body is a few lines over a library call (sqlite-utils style).

Library modules (pandas, matplotlib, the simulator behind them) are imported inside the command
that needs them, so ``swr-etl --help``, ``runs`` and ``status`` start fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from etl.cli.group import command, quiet, settings_from
from etl.cli.options import (
    DB_OPTION,
    S3_OPTIONS,
    SOURCE_TIMEZONE_OPTION,
    FiniteRange,
    PathOrUrl,
    sync_options,
)
from etl.cli.output import echo_summary
from etl.config.settings import OPTIONS
from etl.integers import INT64_MAX
from etl.publish import MAX_DAYS

# Bounds of the reading commands' numbers: generous, but inside what SQLite and dates can hold.
_MAX_ROWS_SHOWN = 1_000_000
_MAX_AGE_HOURS = 876_000.0  # a century

# ----------------------------------------------------------------------------------------- sync


@command("sync", exit_codes=(0, 2, 3, 4, 5, 6, 7, 130, 143), sqlite_memstatus=False)
@sync_options
def sync_cmd(ctx: click.Context, **flags: Any) -> int:
    """One extract -> transform -> load run against the SWR API.

    Exit 0 on a complete load, 6 when the listing kept moving (loaded, nothing marked removed).
    """
    from etl.cli.progress import ProgressDisplay
    from etl.run.hooks import run_observed
    from etl.run.pipeline import preflight, run_sync

    settings = settings_from(ctx, flags, need_credentials=True)
    # A configuration error stops here: no ping, no metrics file, no lock, no database (run_sync
    # checks again, for library callers; the second time costs a millisecond).
    preflight(settings)
    interactive = not quiet(ctx)
    # Pings and metrics wrap the run; the progress line shows only on a terminal.
    with ProgressDisplay(active=interactive) as progress:
        result = run_observed(settings, lambda: run_sync(
            settings, on_progress=progress.callback))
    echo_summary(result.summary_line(), quiet=quiet(ctx))
    return int(result.exit_code)


@command("replay", exit_codes=(0, 2, 5, 6, 7, 130, 143), sqlite_memstatus=False)
@click.argument("run_id", type=click.IntRange(1, INT64_MAX))
@DB_OPTION
@SOURCE_TIMEZONE_OPTION
def replay_cmd(ctx: click.Context, run_id: int, **flags: Any) -> int:
    """Re-transform and reload a stored run from raw_pages without fetching.

    RUN_ID is the run whose stored pages are read (see `swr-etl runs`).
    """
    from etl.run.pipeline import replay_run

    settings = settings_from(ctx, flags)
    result = replay_run(settings, run_id)
    echo_summary(result.summary_line(), quiet=quiet(ctx))
    return int(result.exit_code)


# --------------------------------------------------------------------------------------- export


@command("export", exit_codes=(0, 2), sqlite_memstatus=False)
@DB_OPTION
@click.option("--out", type=PathOrUrl(file_okay=False, path_type=Path, schemes=("s3",)),
              required=True, metavar="DIR|URL",
              help="Output folder or s3://BUCKET/PREFIX (Hive partitions "
                   "snapshot_date=YYYY-MM-DD/).")
@click.option("--format", "fmt", type=click.Choice(list(OPTIONS["format"].choices)),
              default=OPTIONS["format"].default, show_default=True,
              help="File format of the partitions.")
@click.option("--date", "date", metavar="YYYY-MM-DD", default=None,
              help="Export the last successful run of this date (default: the latest).")
@click.option("--all", "all_dates", is_flag=True, help="Backfill every date with a run.")
@S3_OPTIONS
def export_cmd(ctx: click.Context, db: Path | None, out: Path | str, fmt: str, date: str | None,
               all_dates: bool, **s3: Any) -> int:
    """Write snapshot partitions (CSV or Parquet) plus _manifest.json, to a folder or a bucket."""
    from etl.errors import ConfigError
    from etl.publish.export import export_snapshots
    from etl.publish.storage import S3Options

    try:  # --out is checked as --export-dir is
        settings = settings_from(ctx, {"db": db, "export_dir": out, **s3})
    except ConfigError as exc:
        raise (exc.renamed("out") if exc.param == OPTIONS["export_dir"].key else exc) from None
    parts = export_snapshots(settings.db, settings.export_dir or out, fmt=fmt, date=date,
                             all_dates=all_dates, s3=S3Options.from_settings(settings))
    if not quiet(ctx):
        for p in parts:
            click.echo(str(p))
    return 0


# --------------------------------------------------------------------------------------- report


@command("report", exit_codes=(0, 2), sqlite_memstatus=False)
@DB_OPTION
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file; the format follows the extension unless --format is given. "
                   "- writes to stdout (with --format).")
@click.option("--days", type=click.IntRange(1, MAX_DAYS), default=30, show_default=True,
              help="Days of history the trends cover, ending at the latest run.")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="Top movers listed.")
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default=None,
              help="Report format.  [default: from the extension of --out]")
@click.option("--source", "sources", multiple=True, metavar="NAME",
              help="Only this source (a region, host:port or configured name); repeatable.  "
                   "[default: every source]")
def report_cmd(ctx: click.Context, db: Path | None, out: Path, days: int, top: int,
               fmt: str | None, sources: tuple[str, ...]) -> int:
    """Trend report on pull counts (HTML with charts, Markdown or JSON)."""
    from etl.publish.report import write_report

    settings = settings_from(ctx, {"db": db})
    if str(out) == "-":
        _report_to_stdout(settings.db, days=days, top=top, fmt=fmt, sources=sources)
        return 0
    path = write_report(settings.db, out, days=days, top=top, fmt=fmt, sources=sources)
    if not quiet(ctx):
        click.echo(str(path))
    return 0


def _report_to_stdout(db: Path | str, *, days: int, top: int, fmt: str | None,
                      sources: tuple[str, ...] = ()) -> None:
    """``report --out -``: the report as the library writes it (to a private temp folder, so a
    failure never leaves half a report on stdout), then copied to stdout."""
    import sys
    import tempfile

    from etl.errors import ConfigError
    from etl.publish.report import write_report

    if fmt is None:
        raise ConfigError("--out - (stdout) needs --format html, md or json")
    with tempfile.TemporaryDirectory(prefix="swr-etl-report-") as tmp:
        path = write_report(db, Path(tmp) / f"report.{fmt}", days=days, top=top, fmt=fmt,
                            sources=sources)
        sys.stdout.flush()
        sys.stdout.buffer.write(path.read_bytes())


# ---------------------------------------------------------------------------------- runs/status


@command("runs", exit_codes=(0, 2))
@DB_OPTION
@click.option("--limit", type=click.IntRange(1, _MAX_ROWS_SHOWN), default=20, show_default=True,
              help="Most recent runs shown.")
@click.option("--json", "as_json", is_flag=True, help="JSON array instead of a table.")
def runs_cmd(ctx: click.Context, db: Path | None, limit: int, as_json: bool) -> int:
    """List recent runs from the ledger."""
    from etl.store.ledger import format_runs_table, list_runs

    settings = settings_from(ctx, {"db": db})
    rows = list_runs(settings.db, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(format_runs_table(rows))
    return 0


@command("status", exit_codes=(0, 2, 8))
@DB_OPTION
@click.option("--max-age", "max_age", type=FiniteRange(0, _MAX_AGE_HOURS), default=26.0,
              show_default=True, help="Hours; older than this is stale.")
def status_cmd(ctx: click.Context, db: Path | None, max_age: float) -> int:
    """Freshness probe: exit 0 only if the latest successful run is younger than --max-age."""
    from etl.store.ledger import freshness

    settings = settings_from(ctx, {"db": db})
    ok, message, code = freshness(settings.db, max_age_hours=max_age)
    if not quiet(ctx):  # -q: a probe that answers with its exit code only
        click.echo(message)
    return 0 if ok else int(code)


# ------------------------------------------------------------------------------- demo/simulate


@command("demo", exit_codes=(0, 2, 130), sqlite_memstatus=False)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("swr-demo"), show_default=True,
              help="Folder for the database, the exports and the report.")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="Nightly syncs simulated, one per day, the last one today.")
@click.option("--images", type=click.IntRange(1, 2_000_000), default=180, show_default=True,
              help="Images in the simulated listing.")
def demo_cmd(ctx: click.Context, directory: Path, days: int, images: int) -> int:
    """No network, no credentials: simulate N nightly syncs, export Parquet, write the report."""
    from etl.demo import run_demo

    run_demo(directory, days=days, images=images, interactive=not quiet(ctx))
    return 0


@command("simulate", exit_codes=(0, 2))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback only unless you mean it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free one; the URL printed says which).")
@click.option("--images", type=click.IntRange(0, 5_000_000), default=180, show_default=True,
              help="Dataset size; beyond the ~180 real official names, names are made up.")
@click.option("--seed", type=int, default=42, show_default=True,
              help="The same seed gives the same dataset, byte for byte.")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="JSON or TOML scenario: auth mode, faults, drift.")
def simulate_cmd(ctx: click.Context, **kw: Any) -> int:
    """Serve the simulated SWR endpoint on loopback (Ctrl-C to stop)."""
    from etl.simulator import serve

    serve(**kw)
    return 0
