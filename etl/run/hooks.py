"""Unattended-run hooks around one sync: healthcheck pings and the metrics file.

``run_observed`` pings ``URL/start``, runs the sync, writes the metrics file, then pings ``URL``
(exit 0) or ``URL/<exit code>`` (anything else, including exceptions, which are re-raised
unchanged). Metrics are written before the final ping, so when a monitor hears "done" the file is
already there. Neither hook can change the run's outcome: a failing ping or metrics write is
logged, never raised. A ``--dry-run`` writes nothing, so it neither pings nor writes metrics.
During the run SIGTERM unwinds like Ctrl-C, so a stopped or timed-out job still reports.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from etl.config.settings import Settings
from etl.errors import EtlError, Terminated, exit_code_of

if TYPE_CHECKING:
    from pathlib import Path

    from etl.run.healthcheck import Healthcheck

log = logging.getLogger("etl.ops")


class SyncOutcome(Protocol):
    """The parts of ``etl.run.pipeline.SyncResult`` the hooks read."""

    @property
    def run_id(self) -> int | None: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def retries(self) -> int: ...

    def summary_line(self) -> str: ...


R = TypeVar("R", bound=SyncOutcome)

# Re-exported: the one exit-code rule and the SIGTERM exception live in etl.errors.
__all__ = ["Terminated", "exit_code_of", "run_observed", "sigterm_unwinds"]


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` (main thread only; restored afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"terminated by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def run_observed(
    settings: Settings,
    run: Callable[[], R],
    *,
    healthcheck: Healthcheck | None = None,
    clock: Callable[[], float] = time.time,
) -> R:
    """Run ``run()`` with start/end pings and a metrics file, as ``settings`` asks.

    Returns what ``run()`` returns; re-raises whatever it raised, after pinging and writing
    metrics. Raises ``ConfigError`` before anything runs if the metrics folder is unusable.
    """
    if settings.dry_run:
        return run()
    if settings.metrics_file is not None:  # etl.run.metrics only then: ~3 ms of a nightly run
        from etl.run.metrics import check_writable

        check_writable(settings.metrics_file)
    own_healthcheck = healthcheck is None and bool(settings.healthcheck_url)
    if own_healthcheck:
        from etl.run.healthcheck import Healthcheck  # requests: only when a URL is given

        healthcheck = Healthcheck(settings.healthcheck_url or "")
    before = _latest_run_id(settings.db) if settings.metrics_file else None
    if healthcheck is not None:
        healthcheck.start()

    started = clock()
    result: R | None = None
    error: BaseException | None = None
    try:
        with sigterm_unwinds():
            result = run()
    except (Exception, KeyboardInterrupt) as exc:
        error = exc
    finished = clock()
    code = exit_code_of(error) if error is not None else int(cast(R, result).exit_code)

    if settings.metrics_file is not None:
        _write_metrics(settings, result, code, started, finished, before)
    if healthcheck is not None:
        if code == 0 and result is not None:
            healthcheck.success(result.summary_line())
        else:
            detail = result.summary_line() if result is not None else _describe(error)
            healthcheck.failure(code, detail)
        if own_healthcheck:
            healthcheck.close()
    if error is not None:
        raise error
    return cast(R, result)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, EtlError):
        return f"exit {error.exit_code}: {error.message}"
    return f"{type(error).__name__}: {error}" if error is not None else ""


def _latest_run_id(db: Path | str) -> int | None:
    from etl.run.metrics import read_database_figures

    return read_database_figures(db).latest_run_id


def _write_metrics(
    settings: Settings, result: SyncOutcome | None, code: int, started: float, finished: float,
    before: int | None,
) -> None:
    from etl.run.metrics import RunFigures, run_row, write_metrics

    figures: dict[str, int | None] = {}
    if result is not None:
        figures = {"rejected": result.rejected, "requests": result.requests,
                   "retries": result.retries, "images": result.rows}
    else:
        # A failed run raised; its ledger row (if it got that far) still has its figures.
        latest = _latest_run_id(settings.db)
        if latest is not None and latest != before:
            row = run_row(settings.db, latest) or {}
            figures = {"rejected": _int(row.get("rows_rejected")),
                       "requests": _int(row.get("requests")),
                       "retries": _int(row.get("retries"))}
    run = RunFigures(finished=finished, duration=max(0.0, finished - started), exit_code=code,
                     **figures)
    try:
        write_metrics(settings.metrics_file, settings.db, run)  # type: ignore[arg-type]
    except OSError as exc:
        log.error("could not write metrics file %s: %s", settings.metrics_file, exc,
                  extra={"event": "metrics_failed"})
    else:
        log.debug("metrics written to %s", settings.metrics_file, extra={"event": "metrics"})
