"""Render a report document (``etl.publish.report.build_report``) as one self-contained HTML page or
as Markdown. Pure presentation: no database access; numbers are shown human-friendly (1.2 M).

HTML comes from the Jinja2 template ``templates/report.html`` with autoescaping on, so every
value (image names, namespaces, anomaly details, notices) reaches the page as text; this module
hands it plain values and formatting filters. Markdown has its own escaping (``_cell``)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from markupsafe import Markup  # Jinja2's own string type (a tiny package it depends on)

if TYPE_CHECKING:
    from jinja2 import Environment

from etl.publish import charts
from etl.publish.charts import human

BAR_LIMIT = 20

METHOD = [
    "Each date counts once: its last successful run (partial and failed runs never count; "
    "filtered runs only when every run is filtered). The window holds the run dates from "
    "as-of minus the window's days to as-of, both included.",
    "Pulls gained by an image = its count on the as-of date minus its count at its first "
    "observation in the window (a new image counts from its first sighting).",
    "A decrease, or a counter at exactly 2,147,483,647 (stuck at the int32 maximum upstream; "
    "larger counts are normal), makes an image's growth unknown: it is not ranked, is listed "
    "under the ranking with its mark, and under Anomalies. Such steps add nothing to any total.",
    "Growth % = pulls gained / max(pulls at the image's first observation in the window, "
    "1,000): tiny images cannot dominate.",
    "Rank is by pulls gained (ties: lower id first) among images observed on the as-of date; "
    "rank change = rank in the previous window of the same length minus this rank (▲ climbed, "
    "▼ fell, new = not ranked before).",
    "Gaps between runs are not zero days: a gap's pulls are spread evenly over its days. The "
    "7-day average is the mean daily pulls over the covered days of the last 7.",
    "A stale day: more than 80 % of images kept the same pull count between two consecutive "
    "run dates.",
    "The same rules define the database views daily_pulls, top_movers_7d and top_movers_30d.",
]

# How an unranked image is marked on its row: kind -> (tag text, what the date means).
MARKS = {"stuck_counter": ("stuck counter", "since"), "decrease": ("decrease", "on")}


def _literal(text: Any) -> str:
    """Server text made safe to show: control characters (CR, LF, ESC, C1, line separators)
    as visible escapes, so a name can neither split a line nor drive a terminal."""
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in str(text))


def _image(item: dict[str, Any]) -> str:
    ns, name = item.get("namespace"), item.get("name")
    if name is None:  # a listing-wide anomaly, or an id missing from ``images``
        return "(all images)" if item.get("id") is None else f"#{item['id']}"
    where = f" · {item['where']}" if item.get("where") else ""
    return _literal(f"{ns}/{name}{where}" if ns else f"{name}{where}")


# The lists whose rows are one image of one source: with several sources in the report, the
# same image can be on two rows, told apart only by where it was read.
_PER_SOURCE = ("top_movers", "not_ranked", "anomalies", "new_images", "removed_images")


def _with_sources_named(r: dict[str, Any]) -> dict[str, Any]:
    """``r`` with each per-source row's ``where`` set to its source when the report covers more
    than one (a copy: the caller's report is left as it is)."""
    if len(r.get("sources") or ()) < 2:
        return r
    named = dict(r)
    for key in _PER_SOURCE:
        if key in r:
            named[key] = [{**item, "where": item.get("source")} for item in r[key]]
    return named


def _unranked_shown(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The unranked images shown under the ranking: as many as it has rows, at least 10."""
    return list(r["not_ranked"][:max(len(r["top_movers"]), 10)])


def _mark(item: dict[str, Any]) -> str:
    """``stuck counter since 2026-11-02`` / ``decrease on 2026-11-03``."""
    tag, when = MARKS[item["kind"]]
    return f"{tag} {when} {item['date']}"


def _rank_change(value: int | None, compared: bool = True) -> tuple[str, str]:
    """(text, css class) for a rank change; ``compared`` is False without a previous window."""
    if value is None:
        return ("new" if compared else "–"), "muted"
    if value > 0:
        return f"▲ {value}", "up"
    if value < 0:
        return f"▼ {-value}", "down"
    return "=", "muted"


def _pct(value: float) -> str:
    return f"{value:,.1f} %"


# --------------------------------------------------------------------------------------- HTML


def _cards(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The summary cards: (label, value, small print), plain text."""
    t = r["totals"]
    return [
        ("Images", human(t["images"]), f"{t['images']:,} listed"),
        ("Total pulls", human(t["pull_count"]), f"{t['pull_count']:,}"),
        (f"Pulls gained, {r['window_days']} d", human(t["pull_delta"]),
         "needs two run dates" if t["pull_delta"] is None else f"{t['pull_delta']:,}"),
        ("Pulls per day (7-day avg)", human(t["daily_avg_7d"]), "whole listing"),
        ("New / removed", f"{t['new_images']} / {t['removed_images']}", "images in window"),
        ("Anomalies", str(t["anomalies"]), "see below"),
    ]


def _charts(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The charts as (alt text, SVG data URI); none when the window has too few runs."""
    movers = r["top_movers"]
    images = []
    if movers:
        bars = movers[:BAR_LIMIT]  # a readable chart; the table lists every top mover
        images.append(("Pulls gained by the top movers", charts.top_movers_bar(
            [_image(m) for m in bars], [m["pull_delta"] for m in bars])))
        images.append(("Cumulative pulls gained by the top 5 images", charts.cumulative_lines(
            [(_image(m), [h["date"] for h in m["history"]],
              [h["cumulative_delta"] for h in m["history"]]) for m in movers[:5]])))
    daily = r["daily"][1:]
    if daily:
        images.append(("Pulls per day, all images", charts.daily_bars(
            [d["date"] for d in daily], [d["daily_pulls"] for d in daily])))
    return images


def _sparkline(values: list[float], color: str) -> Markup:
    # The one piece of markup the template is handed: an SVG drawn from numbers and a colour
    # of the palette, no text of the server's in it.
    return Markup(charts.sparkline(values, color=color))


@functools.cache
def _environment() -> Environment:
    """The templates, autoescaped (a value can only ever be text) and strict (a misspelt name
    is an error, not an empty cell)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined  # HTML only

    env = Environment(loader=PackageLoader("etl.publish", "templates"), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=True)
    env.filters.update(human=human, pct=_pct, image=_image, literal=_literal, mark=_mark,
                       rank_change=_rank_change, thousands=lambda n: f"{n:,}")
    env.globals.update(sparkline=_sparkline, palette=charts.PALETTE, method=METHOD)
    return env


def charts_of(r: dict[str, Any]) -> list[tuple[str, str]]:
    """The page's charts, from the report's ``sources``, ``daily`` and ``top_movers`` (all a
    chart reads: ``etl.publish.report`` draws them before the rest of the report is known)."""
    return _charts(_with_sources_named(r))


def html(r: dict[str, Any], *, charts: list[tuple[str, str]] | None = None) -> str:
    """The report as one HTML page: inline CSS, charts as data URIs, no external requests.
    ``charts``: ``charts_of(r)``, drawn already."""
    charts = charts_of(r) if charts is None else charts
    r = _with_sources_named(r)
    return _environment().get_template("report.html").render(
        r=r, cards=_cards(r), charts=charts, unranked_shown=_unranked_shown(r),
        compared=r["previous_window_start"] is not None)


# ----------------------------------------------------------------------------------- Markdown


# Characters that would turn a cell's text into markup on GitHub: cell separators, emphasis,
# code, links, inline HTML and entities, strikethrough, math, and the escape itself. CommonMark
# shows any ASCII punctuation after a backslash literally.
_MD_SPECIAL = frozenset("\\|*_`[]<>&~$")


def _cell(value: Any) -> str:
    """A table cell: one line, no markup, no HTML (``<script>`` shows as text)."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in _literal(value))


def _md_table(head: list[str], rows: list[list[Any]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def markdown(r: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown (tables, no charts)."""
    r = _with_sources_named(r)
    t = r["totals"]
    compared = r["previous_window_start"] is not None
    gained = ("needs two run dates" if t["pull_delta"] is None
              else f"**{human(t['pull_delta'])}** ({t['pull_delta']:,})")
    out = [f"# {r['title']}", "",
           f"As of **{r['as_of']}** (run {r['as_of_run_id']}), window {r['window_days']} days "
           f"from {r['window_start']} ({len(r['run_dates'])} run dates), generated "
           f"{r['generated_at']}.", "",
           f"- Images: **{t['images']:,}**",
           f"- Total pulls: **{human(t['pull_count'])}** ({t['pull_count']:,})",
           f"- Pulls gained in the window: {gained}",
           f"- Pulls per day, 7-day average: **{human(t['daily_avg_7d'])}**",
           f"- New / removed images: {t['new_images']} / {t['removed_images']}; "
           f"anomalies: {t['anomalies']}", "", "## Top movers", ""]
    if r["notice"]:
        out.append(f"_{_cell(r['notice'])}_")
    elif r["top_movers"] or r["not_ranked"]:
        out += _md_table(
            ["#", "Change", "Image", "Pulls", "Gained", "Growth", "Per day (7 d)"],
            [[m["rank"], _rank_change(m["rank_change"], compared)[0], _image(m),
              human(m["pull_count"]), human(m["pull_delta"]), _pct(m["pull_growth_pct"]),
              human(m["daily_avg_7d"])] for m in r["top_movers"]]
            + [["–", "not ranked", _image(u), human(u["pull_count"]), _mark(u), "–", "–"]
               for u in _unranked_shown(r)],
            {0, 3, 4, 5, 6})
        if t["not_ranked"] > len(_unranked_shown(r)):
            out.append(f"\n… and {t['not_ranked'] - len(_unranked_shown(r)):,} more not ranked "
                       "(see Anomalies).")
    else:
        out.append("_No image observed on the as-of date has a step in the window._")
    if len(r["sources"]) > 1:
        out += ["", "## Regions: where the growth comes from", ""]
        out += (_md_table(
            ["#", "Image", "Gained, all regions", "By region", "Most from"],
            [[m["rank"], _image(m), human(m["pull_delta"]),
              ", ".join(f"{p['source']} {human(p['pull_delta'])}" for p in m["by_source"]),
              m["top_source"]] for m in r["regions"]], {0, 2})
            if r["regions"] else ["_Trends need at least two run dates._"])
    out += ["", f"## Anomalies ({t['anomalies']})", ""]
    out += (_md_table(["Date", "Kind", "Image", "Detail"],
                      [[a["date"], a["kind"], _image(a), a["detail"]] for a in r["anomalies"]],
                      set()) if r["anomalies"] else ["_None._"])
    for key, title, date_key, label in (("new_images", "New images", "first_seen",
                                         "First seen"),
                                        ("removed_images", "Removed images", "last_seen",
                                         "Last seen")):
        out += ["", f"## {title} ({t[key]})", ""]
        out += (_md_table(["Id", "Image", label, "Pulls"],
                          [[i["id"], _image(i), i[date_key], human(i["pull_count"])]
                           for i in r[key]], {0, 3}) if r[key] else ["_None._"])
        if t[key] > len(r[key]):
            out.append(f"\n… and {t[key] - len(r[key]):,} more (see the JSON report).")
    out += ["", "## How to read this report", ""] + [f"- {m}" for m in METHOD]
    return "\n".join(out) + "\n"
