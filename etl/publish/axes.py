"""Tick labels for the report's charts (matplotlib is imported with this module, so only when a
chart is drawn): count axes in one number format, date axes on whole days within the data."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.ticker import Formatter

from etl.publish.charts import UNITS, human


class AxisNumbers(Formatter):
    """Tick labels of a count axis in one format: one unit and one number of decimals for every
    tick (``0, 20 M, 40 M … 100 M``; ``human`` per value would mix ``80.0 M`` with ``100 M``).
    The largest unit in which every tick needs at most one decimal, else plain numbers."""

    def __init__(self) -> None:
        self.size, self.unit, self.decimals = 1.0, "", 0

    def set_locs(self, locs: list[float]) -> None:
        super().set_locs(locs)
        top = max((abs(v) for v in locs), default=0.0)
        units = [(s, u) for s, u in UNITS if top >= s] + [(1.0, "")]
        self.size, self.unit, self.decimals = next(
            ((size, unit, d) for size, unit in units for d in (0, 1)
             if all(math.isclose(round(v / size, d), v / size, abs_tol=1e-9) for v in locs)),
            (1.0, "", 2))

    def __call__(self, x: float, pos: int | None = None) -> str:
        if pos is None:  # one value on its own (a cursor readout): no axis to agree with
            return human(x)
        if x == 0:
            return "0"
        text = f"{x / self.size:,.{self.decimals}f}"
        return f"{text} {self.unit}" if self.unit else text


class DayLabels(Formatter):
    """Date tick labels ``8 Nov``, with the year under the first visible tick and under any
    tick where it changes. No offset text: matplotlib's concise one names the last tick's
    month, which read "2026-Dec" under November data."""

    def __init__(self) -> None:
        self.with_year: set[float] = set()

    def set_locs(self, locs: list[float]) -> None:
        from matplotlib.dates import num2date

        super().set_locs(locs)
        low, high = sorted(self.axis.get_view_interval()) if self.axis else (-math.inf, math.inf)
        self.with_year, year = set(), None
        for loc in sorted(v for v in locs if low <= v <= high):
            if num2date(loc).year != year:
                self.with_year.add(loc)
                year = num2date(loc).year

    def __call__(self, x: float, pos: int | None = None) -> str:
        from matplotlib.dates import num2date

        day = num2date(x)
        label = f"{day.day} {day:%b}"
        return f"{label}\n{day.year}" if x in self.with_year else label


def date_axis(ax: Any, days: Sequence[dt.date]) -> None:
    """Whole-day ticks inside the data's span, which the axis ends half a day beyond."""
    from matplotlib.dates import AutoDateLocator, DayLocator, date2num

    if not days:
        return
    first, last = date2num(min(days)), date2num(max(days))
    ax.set_xlim(first - 0.5, last + 0.5)
    # Under three days AutoDateLocator would tick hours; a run date is a day.
    span = last - first
    ax.xaxis.set_major_locator(AutoDateLocator(minticks=3, maxticks=8) if span >= 3
                               else DayLocator())
    ax.xaxis.set_major_formatter(DayLabels())
