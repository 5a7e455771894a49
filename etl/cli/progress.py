"""A one-line progress display for interactive ``sync`` runs (pages fetched / total, rows loaded).

It draws only when stderr is a terminal and ``TERM`` is not ``dumb``, so cron mail, journald and
redirected logs never receive carriage returns or escape sequences. ``NO_COLOR`` (any non-empty
value, https://no-color.org) drops the colour and every escape sequence; the line is then redrawn
with a bare carriage return and padding. While the line is shown, log records first erase it, so
log lines and progress never share a line.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

_MIN_INTERVAL = 0.1  # seconds between redraws; the final state is always drawn


def wants_display(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when ``stream`` is a terminal that can redraw a line."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
    return bool(tty) and env.get("TERM", "") != "dumb"


def format_progress(event: Mapping[str, Any]) -> str:
    """``pages 12/40 (30%)  rows 1,200`` from a pipeline progress event."""
    done = int(event.get("pages_done") or 0)
    total = event.get("pages_total")
    rows = int(event.get("rows_loaded") or 0)
    if total:
        pct = min(100, done * 100 // int(total))
        pages = f"pages {done}/{int(total)} ({pct}%)"
    else:
        pages = f"pages {done}"
    return f"{pages}  rows {rows:,}"


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
        clock: Callable[[], float] = time.monotonic,
        *,
        active: bool = True,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        env = os.environ if env is None else env
        self.enabled = active and wants_display(self.stream, env)
        self.color = self.enabled and not env.get("NO_COLOR")
        self.clock = clock
        self._shown = 0  # width of the line currently on screen, 0 = nothing shown
        self._last_draw = float("-inf")
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
        now = self.clock()
        final = bool(event.get("pages_total")) and event.get("pages_done") == event.get(
            "pages_total"
        )
        if not final and now - self._last_draw < _MIN_INTERVAL:
            return
        self._last_draw = now
        self._draw(format_progress(event))

    def _draw(self, text: str) -> None:
        if self.color:
            out = f"\r\x1b[2K\x1b[36mswr-etl\x1b[0m {text}"
        else:
            line = f"swr-etl {text}"
            out = "\r" + line + " " * max(0, self._shown - len(line))
        self._write(out)
        self._shown = len("swr-etl ") + len(text)

    def erase(self) -> None:
        """Remove the line from the screen (before a log line, or at the end)."""
        if not self.enabled or not self._shown:
            return
        self._write("\r\x1b[2K" if self.color else "\r" + " " * self._shown + "\r")
        self._shown = 0
        self._last_draw = float("-inf")  # redraw on the next event

    def close(self) -> None:
        self.erase()
        for handler in self._hooked:
            handler.removeFilter(self._hook)
        self._hooked.clear()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing, keep running
            self.enabled = False
