"""Sub-command definitions. Each body is a few lines over a library call (sqlite-utils style).

Heavy modules (pandas, matplotlib, the simulator) are imported inside the command that needs them,
so ``swr-etl sync`` starts fast.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

import click

from etl.cli.app import command, globals_of, settings_from
from etl.errors import NotImplementedYet
from etl.logs import printable


def _lib(module: str, name: str) -> Any:
    """Import ``module.name`` lazily; a stage that has not landed yet is a clear exit-2 error."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError) as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name and not exc.name.startswith("etl"):
            raise
        raise NotImplementedYet(f"{module}.{name} is not implemented yet") from exc


class FiniteRange(click.FloatRange):
    """A ``FloatRange`` that also refuses ``nan`` and ``inf`` (a NaN passes every comparison,
    so a plain range lets it through)."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# Bounds of the reading commands' numbers: generous, but inside what SQLite and dates can hold.
_MAX_DAYS = 36_500  # a century of history
_MAX_ROWS_SHOWN = 1_000_000
_MAX_AGE_HOURS = 876_000.0  # a century
_MAX_RUN_ID = 2**63 - 1  # SQLite INTEGER


def _quiet(ctx: click.Context) -> bool:
    return bool(globals_of(ctx).get("quiet"))


DB_OPTION = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path), envvar="SWR_ETL_DB",
    default=None, help="SQLite database.  [env: SWR_ETL_DB; default: ./swr.db]",
)

# ----------------------------------------------------------------------------------------- sync


def sync_options(f: Any) -> Any:
    opts = [
        click.option("--endpoint", metavar="URL", default=None,
                     help="SWR API base URL.  [env: SWR_ENDPOINT; default: from --region]"),
        click.option("--region", metavar="NAME", default=None,
                     help="Region; sets https://swr-api.NAME.myhuaweicloud.com.  "
                          "[env: SWR_REGION; default: cn-north-4]"),
        DB_OPTION,
        click.option("--namespace", metavar="NS", default=None, help="Filter passed to the API."),
        click.option("--image-name", metavar="NAME", default=None,
                     help="Filter passed to the API."),
        click.option("--page-size", type=click.IntRange(1, 1000), default=None,
                     help="Rows per request, 1..1000.  [default: 100]"),
        click.option("--concurrency", type=click.IntRange(1, 16), default=None,
                     help="Page fetches in flight once the total is known, 1..16.  [default: 4]"),
        click.option("--max-attempts", type=click.IntRange(min=1), default=None,
                     help="Cap on attempts per request (1: never retry).  [default: none, "
                          "retries are bounded by --retry-window]"),
        click.option("--timeout", type=click.FloatRange(min=0.001), default=None,
                     help="Seconds for one whole request: connect, headers and body.  "
                          "[default: 30]"),
        click.option("--source-timezone", metavar="TZ", default=None,
                     help="Zone assumed for last_updated values without one.  [default: UTC]"),
        click.option("--export-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="After a successful load, export snapshots here."),
        click.option("--format", "format", type=click.Choice(["csv", "parquet"]), default=None,
                     help="Export format with --export-dir.  [default: parquet]"),
        click.option("--metrics-file", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Write Prometheus text-format metrics here (atomically)."),
        click.option("--healthcheck-url", metavar="URL", default=None,
                     help="Ping URL/start, then URL on success or URL/<exit code> on failure."),
        click.option("--dry-run", is_flag=True, default=None,
                     help="Fetch and transform, write nothing, print the summary."),
        click.option("--max-rescans", type=click.IntRange(0, 20), default=None,
                     help="Rescans when the listing moves during a scan.  [default: 2]"),
        click.option("--verify", type=click.Choice(["auto", "ids", "full"]), default=None,
                     help="Completeness proof: ids reads the listing a second time and compares "
                          "ids; full compares every value too; auto does ids up to 2,000 rows "
                          "and re-reads only the first 1,000 rows of a larger listing.  "
                          "[default: auto]"),
        click.option("--max-rps", type=click.FloatRange(min=0.001), default=None,
                     help="Cap on requests per second across all workers."),
        click.option("--max-reject-ratio", type=click.FloatRange(0.0, 1.0), default=None,
                     help="Above this share of rejected rows nothing is loaded (exit 7).  "
                          "[default: 0.05]"),
        click.option("--keep-raw-runs", type=click.IntRange(min=0), default=None,
                     help="Keep raw page bodies of this many recent runs for replay.  "
                          "[default: 30]"),
        click.option("--retry-budget", type=click.IntRange(min=0), default=None,
                     help="Retries allowed in one run across all requests.  [default: 100]"),
        click.option("--busy-timeout", type=click.FloatRange(min=0.0), default=None,
                     help="Seconds to wait for another writer of the database.  [default: 30]"),
        click.option("--ca-bundle", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="CA bundle for a private CA (verification stays on)."),
        click.option("--deadline", type=click.FloatRange(min=0.001, max=7 * 86400),
                     default=None, help="Seconds the whole run may take; past it, exit 4 and "
                     "nothing is loaded.  [env: SWR_ETL_DEADLINE; default: 3600]"),
        click.option("--retry-window", type=click.FloatRange(min=0.0, max=7 * 86400),
                     default=None, help="Seconds one request keeps being retried while the API "
                     "is unavailable.  [default: 120]"),
        click.option("--max-body-mb", type=click.FloatRange(min=0.001, max=4096), default=None,
                     help="Largest response body read, in MiB after decompression; a larger "
                          "page is unusable (exit 4).  [default: 64]"),
        click.option("--max-rows", type=click.IntRange(1, 2**63 - 1), default=None,
                     help="A reported total above this is refused (exit 4).  "
                          "[default: 5000000]"),
        click.option("--no-auth", "allow_anonymous", is_flag=True, default=None,
                     help="Send no credentials (the built-in simulator in open mode)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@command("sync")
@sync_options
def sync_cmd(ctx: click.Context, **flags: Any) -> int:
    """One extract -> transform -> load run against the SWR API.

    Exit 0 on a complete load, 6 when the listing kept moving (loaded, nothing marked removed).
    """
    from etl.cli.progress import ProgressDisplay
    from etl.run.hooks import run_observed

    settings = settings_from(ctx, flags, need_credentials=True)
    run_sync = _lib("etl.run.pipeline", "run_sync")
    interactive = not _quiet(ctx)
    # Pings and metrics wrap the run; the progress line shows only on a terminal.
    with ProgressDisplay(active=interactive) as progress:
        result = run_observed(settings, lambda: run_sync(
            settings, on_progress=progress.callback))
    if not _quiet(ctx):
        click.echo(printable(result.summary_line()))
    return int(result.exit_code)


@command("replay")
@click.argument("run_id", type=click.IntRange(1, _MAX_RUN_ID))
@DB_OPTION
@click.option("--source-timezone", metavar="TZ", default=None,
              help="Zone assumed for last_updated values without one.  [default: UTC]")
def replay_cmd(ctx: click.Context, run_id: int, **flags: Any) -> int:
    """Re-transform and reload a stored run from raw_pages without fetching."""
    settings = settings_from(ctx, flags)
    result = _lib("etl.run.pipeline", "replay_run")(settings, run_id)
    if not _quiet(ctx):
        click.echo(printable(result.summary_line()))
    return int(result.exit_code)


# --------------------------------------------------------------------------------------- export


@command("export")
@DB_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (Hive partitions snapshot_date=YYYY-MM-DD/).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="parquet",
              show_default=True)
@click.option("--date", "date", metavar="YYYY-MM-DD", default=None,
              help="Export the last successful run of this date (default: the latest).")
@click.option("--all", "all_dates", is_flag=True, help="Backfill every date with a run.")
def export_cmd(ctx: click.Context, db: Path | None, out: Path, fmt: str, date: str | None,
               all_dates: bool) -> int:
    """Write snapshot partitions (CSV or Parquet) plus manifest.json."""
    settings = settings_from(ctx, {"db": db})
    parts = _lib("etl.publish.export", "export_snapshots")(
        settings.db, out, fmt=fmt, date=date, all_dates=all_dates
    )
    if not _quiet(ctx):
        for p in parts:
            click.echo(str(p))
    return 0


# --------------------------------------------------------------------------------------- report


@command("report")
@DB_OPTION
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file; the format follows the extension unless --format is given.")
@click.option("--days", type=click.IntRange(1, _MAX_DAYS), default=30, show_default=True)
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default=None)
def report_cmd(ctx: click.Context, db: Path | None, out: Path, days: int, top: int,
               fmt: str | None) -> int:
    """Trend report on pull counts (HTML with charts, Markdown or JSON)."""
    settings = settings_from(ctx, {"db": db})
    path = _lib("etl.publish.report", "write_report")(settings.db, out, days=days, top=top, fmt=fmt)
    if not _quiet(ctx):
        click.echo(str(path))
    return 0


# ---------------------------------------------------------------------------------- runs/status


@command("runs")
@DB_OPTION
@click.option("--limit", type=click.IntRange(1, _MAX_ROWS_SHOWN), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON array instead of a table.")
def runs_cmd(ctx: click.Context, db: Path | None, limit: int, as_json: bool) -> int:
    """List recent runs from the ledger."""
    settings = settings_from(ctx, {"db": db})
    rows = _lib("etl.store.ledger", "list_runs")(settings.db, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(_lib("etl.store.ledger", "format_runs_table")(rows))
    return 0


@command("status")
@DB_OPTION
@click.option("--max-age", "max_age", type=FiniteRange(0, _MAX_AGE_HOURS), default=26.0,
              show_default=True, help="Hours; older than this is stale.")
def status_cmd(ctx: click.Context, db: Path | None, max_age: float) -> int:
    """Freshness probe: exit 0 only if the latest successful run is younger than --max-age."""
    settings = settings_from(ctx, {"db": db})
    ok, message, code = _lib("etl.store.ledger", "freshness")(settings.db, max_age_hours=max_age)
    click.echo(message)
    return 0 if ok else int(code)


# ------------------------------------------------------------------------------- demo/simulate


@command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=Path("swr-demo"), show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option("--images", type=click.IntRange(1, 2_000_000), default=180, show_default=True)
def demo_cmd(ctx: click.Context, directory: Path, days: int, images: int) -> int:
    """No network, no credentials: simulate N nightly syncs, export Parquet, write the report."""
    _lib("etl.demo", "run_demo")(directory, days=days, images=images,
                                 interactive=not _quiet(ctx))
    return 0


@command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Loopback only unless you mean it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--images", type=click.IntRange(0, 5_000_000), default=180, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="JSON or TOML scenario: auth mode, faults, drift.")
def simulate_cmd(ctx: click.Context, **kw: Any) -> int:
    """Serve the simulated SWR endpoint on loopback (Ctrl-C to stop)."""
    _lib("etl.simulator", "serve")(**kw)
    return 0
