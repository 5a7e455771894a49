"""A one-line progress display for interactive ``sync`` runs: pages fetched / total, rows loaded,
and once the total is known, rows/s and the time left.

It draws only when stderr is a terminal and ``TERM`` is not ``dumb``, so cron mail, journald and
redirected logs never receive carriage returns or escape sequences. The line is drawn by ``tqdm``
(imported only then, ~10 ms): its rate smoothing, time formats and trimming to the terminal's
width. ``NO_COLOR`` (any non-empty value, https://no-color.org) drops the coloured prefix, the
only escape sequence written. While the line is shown, log records first erase it, so log lines
and progress never share a line.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

_MIN_INTERVAL = 0.1  # seconds between redraws; the final state is always drawn
_PREFIX = "swr-etl"
_COLOURED_PREFIX = f"\x1b[36m{_PREFIX}\x1b[0m"


def wants_display(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when ``stream`` is a terminal that can redraw a line."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
    return bool(tty) and env.get("TERM", "") != "dumb"


def format_progress(event: Mapping[str, Any], *, rate: float | None = None,
                    remaining: str | None = None) -> str:
    """``pages 12/40 (30%)  1,200 rows  850 rows/s  ETA 00:04`` from a pipeline progress event
    (``rate`` in rows/s and ``remaining`` shown once the total is known)."""
    done = int(event.get("pages_done") or 0)
    total = event.get("pages_total")
    rows = f"{int(event.get('rows_loaded') or 0):,} rows"
    if not total:
        return f"pages {done}  {rows}"
    pct = min(100, done * 100 // int(total))
    parts = [f"pages {done}/{int(total)} ({pct}%)", rows]
    if rate is not None:
        parts.append(f"{rate:,.0f} rows/s")
    if remaining is not None:
        parts.append(f"ETA {remaining}")
    return "  ".join(parts)


# A terminal that reports no size (0 x 0, as a fresh pseudo-terminal does) would make tqdm trim
# the line to nothing and hide it as a bar "below the screen": draw it untrimmed instead.
_UNKNOWN_SIZE = (1_000, 24)


def _size(stream: TextIO) -> tuple[int, int]:
    """(columns, lines) of the terminal ``stream`` writes to, asked afresh (it may be resized)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return _UNKNOWN_SIZE
    return (size.columns or _UNKNOWN_SIZE[0], size.lines or _UNKNOWN_SIZE[1])


class _EraseBeforeLog(logging.Filter):
    def __init__(self, display: ProgressDisplay) -> None:
        super().__init__()
        self.display = display

    def filter(self, record: logging.LogRecord) -> bool:
        self.display.erase()
        return True


class ProgressDisplay:
    """The ``on_progress`` callback for ``run_sync``; a no-op when not on a terminal.

    Use as a context manager so the line is erased (and the log hook removed) at the end.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        env: Mapping[str, str] | None = None,
        *,
        active: bool = True,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        env = os.environ if env is None else env
        self.enabled = active and wants_display(self.stream, env)
        self.color = self.enabled and not env.get("NO_COLOR")
        self._bar: Any = None  # the tqdm line, made at the first event
        self._shown = False
        self._hook = _EraseBeforeLog(self)
        self._hooked: list[logging.Handler] = []

    @property
    def callback(self) -> Callable[[Mapping[str, Any]], None] | None:
        """``self`` when drawing, else None (so the pipeline skips building events)."""
        return self if self.enabled else None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            for handler in logging.getLogger().handlers + logging.getLogger("etl").handlers:
                handler.addFilter(self._hook)
                self._hooked.append(handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, event: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        bar = self._open(event) if self._bar is None else self._bar
        done, total = int(event.get("pages_done") or 0), event.get("pages_total")
        if done < bar.n:  # a rescan started over: so do the counts, the rate and the clock
            bar.reset(total=total or None)
        if total and total != bar.total:
            bar.total = int(total)
        bar.event = event
        bar.ncols, bar.nrows = _size(self.stream)
        try:
            bar.update(done - bar.n)  # tqdm redraws at most every _MIN_INTERVAL s ...
            if not self._shown or (total and done == total):
                bar.refresh()  # ... and here: the first and the final state, always
        except (OSError, ValueError):  # the terminal went away: stop drawing, keep running
            self.enabled = False
        self._shown = True

    def _open(self, first: Mapping[str, Any]) -> Any:
        """The tqdm line, counting pages; its text is ``format_progress`` of the last event
        (``first`` until the next one)."""
        from tqdm import tqdm

        prefix = _COLOURED_PREFIX if self.color else _PREFIX

        class Line(tqdm):  # type: ignore[type-arg,misc]
            monitor_interval = 0  # no monitor thread: the run's own loop updates the line
            event: Mapping[str, Any] = first

            @property
            def format_dict(self) -> dict[str, Any]:
                d = super().format_dict
                rate = remaining = None
                if d["total"] and d["elapsed"] > 0:  # pages/s is tqdm's smoothed rate
                    rate = int(self.event.get("rows_loaded") or 0) / d["elapsed"]
                    pages_per_s = d["rate"] or (d["n"] / d["elapsed"])
                    if pages_per_s:
                        remaining = self.format_interval((d["total"] - d["n"]) / pages_per_s)
                text = format_progress(self.event, rate=rate, remaining=remaining)
                return {**d, "prefix": f"{prefix} {text}"}

        # One line in one process: a thread lock, not tqdm's default multiprocessing one (whose
        # setup doubled the cost of the first draw).
        Line.set_lock(threading.RLock())
        # tqdm draws the line as it makes it: ``first`` is shown
        ncols, nrows = _size(self.stream)
        self._bar = Line(total=None, file=self.stream, leave=False, bar_format="{desc}",
                         mininterval=_MIN_INTERVAL, miniters=0, ncols=ncols, nrows=nrows)
        self._shown = True
        return self._bar

    def erase(self) -> None:
        """Remove the line from the screen (before a log line, or at the end)."""
        if not self.enabled or not self._shown or self._bar is None:
            return
        try:
            self._bar.clear()
        except (OSError, ValueError):
            self.enabled = False
        self._shown = False  # redraw on the next event

    def close(self) -> None:
        self.erase()
        if self._bar is not None:
            try:
                self._bar.close()
            except (OSError, ValueError):
                pass
            self._bar = None
        for handler in self._hooked:
            handler.removeFilter(self._hook)
        self._hooked.clear()
