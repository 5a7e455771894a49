"""Charts for the HTML report: matplotlib figures as SVG data URIs, and hand-drawn sparklines.

Only ``etl.publish.render`` (and ``etl.publish.axes``) import this module, and matplotlib is
imported inside the functions, so no other command (nor a Markdown report) pays for it. The
object API (``matplotlib.figure.Figure``) is used instead of pyplot: no GUI backend, no global
figure state, nothing left open between calls. Every chart is embedded in the page (no files,
no network).

Axis labels follow ``etl.publish.axes``: one number format per count axis, and date axes that
end half a day beyond the data, labelled ``8 Nov`` with the year where it starts or changes.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626",
           "#65a30d", "#9333ea", "#ea580c"]
INK, GRID = "#1f2937", "#e5e7eb"
UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))  # largest first


def human(n: float | int | None) -> str:
    """1234 -> '1.2 k', 1_234_567 -> '1.2 M'; small numbers stay exact; None -> '–'."""
    if n is None:
        return "–"
    sign = "-" if n < 0 else ""
    n = abs(n)
    for size, unit in UNITS:
        if n >= size:
            value = n / size
            text = f"{value:.1f}" if value < 100 else f"{value:.0f}"
            return f"{sign}{text} {unit}"
    return f"{sign}{n:.0f}" if float(n).is_integer() else f"{sign}{n:.1f}"


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 28,
              color: str = PALETTE[0]) -> str:
    """An inline SVG polyline of ``values`` (e.g. daily pulls), last point marked."""
    if not values:
        return ""
    pad = 3
    top = max(values) or 1.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    pts = [(pad + i * step, height - pad - (v / top) * (height - 2 * pad))
           for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    area = f"{pad:.1f},{height - pad:.1f} {line} {pts[-1][0]:.1f},{height - pad:.1f}"
    x, y = pts[-1]
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} '
            f'{height}" role="img" aria-label="daily pulls">'
            f'<polygon points="{area}" fill="{color}" fill-opacity="0.12"/>'
            f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.5" '
            f'stroke-linejoin="round"/><circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" '
            f'fill="{color}"/></svg>')


F = TypeVar("F", bound=Callable[..., str])


def _literal_text(chart: F) -> F:
    """Draw ``chart`` with math text off: labels are image names from the server, and
    matplotlib would read ``$...$`` in one as TeX (``$\\alpha$`` drawn as a Greek letter, an
    unknown command such as ``$\\foo$`` an exception). Names are shown as they are."""

    @functools.wraps(chart)
    def draw(*args: Any, **kwargs: Any) -> str:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return chart(*args, **kwargs)

    return draw  # type: ignore[return-value]


def _legend_label(label: str) -> str:
    """A legend skips labels starting with ``_``; a zero-width space keeps such a name."""
    return "\u200b" + label if label.startswith("_") else label


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.patch.set_facecolor("white")
    return fig


def _style(ax: Any) -> None:
    from etl.publish.axes import AxisNumbers

    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=INK, labelsize=9)
    ax.grid(color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.yaxis.set_major_formatter(AxisNumbers())


def _data_uri(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    # Text stays text (small files, crisp in any browser); fixed salt = reproducible output.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "swr-etl",
                                "font.family": "DejaVu Sans"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    data = base64.b64encode(buf.getvalue().encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{data}"


@_literal_text
def top_movers_bar(labels: Sequence[str], deltas: Sequence[int]) -> str:
    """Horizontal bars of pull deltas, biggest on top."""
    from etl.publish.axes import AxisNumbers

    fig = _figure(7.5, 0.45 * max(len(labels), 3) + 0.8)
    ax = fig.add_subplot()
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, deltas, color=[PALETTE[i % len(PALETTE)] for i in range(len(labels))],
            height=0.62)
    _style(ax)
    ax.grid(axis="y", visible=False)
    ax.xaxis.set_major_formatter(AxisNumbers())
    ax.set_yticks(ys, labels=list(labels))
    span = max(deltas, default=0) or 1
    for y, d in zip(ys, deltas, strict=True):
        ax.text(d + span * 0.01, y, human(d), va="center", fontsize=9, color=INK)
    ax.set_xlim(0, span * 1.12)
    ax.set_title("Pulls gained in the window", loc="left", fontsize=11, color=INK)
    return _data_uri(fig)


@_literal_text
def cumulative_lines(series: Sequence[tuple[str, Sequence[str], Sequence[int]]]) -> str:
    """One line per image: cumulative pulls gained since the window start, by run date."""
    import datetime as dt

    from etl.publish.axes import date_axis

    fig = _figure(7.5, 3.4)
    ax = fig.add_subplot()
    days = []
    for i, (label, dates, values) in enumerate(series):
        xs = [dt.date.fromisoformat(d) for d in dates]
        days += xs
        ax.plot(xs, values, marker="o", markersize=3, linewidth=1.8,
                color=PALETTE[i % len(PALETTE)], label=_legend_label(label))
    _style(ax)
    date_axis(ax, days)
    if series:
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_title("Cumulative pulls gained, top images", loc="left", fontsize=11, color=INK)
    return _data_uri(fig)


@_literal_text
def daily_bars(dates: Sequence[str], values: Sequence[float | None]) -> str:
    """Whole-listing pulls per day (gaps spread over their days) by run date."""
    import datetime as dt

    from etl.publish.axes import date_axis

    fig = _figure(7.5, 2.6)
    ax = fig.add_subplot()
    xs = [dt.date.fromisoformat(d) for d in dates]
    ys = [0.0 if v is None or math.isnan(v) else v for v in values]
    ax.bar(xs, ys, color=PALETTE[0], width=0.8)
    _style(ax)
    date_axis(ax, xs)
    ax.set_title("Pulls per day, all images", loc="left", fontsize=11, color=INK)
    return _data_uri(fig)
