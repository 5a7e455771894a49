"""Render a report document (``etl.publish.report.build_report``) as one self-contained HTML page or
as Markdown. Pure presentation: no database access; numbers are shown human-friendly (1.2 M)."""

from __future__ import annotations

from html import escape
from importlib import resources
from string import Template
from typing import Any

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
    return _literal(f"{ns}/{name}" if ns else name)


def _image_cell(item: dict[str, Any]) -> str:
    if item.get("name") is None or not item.get("namespace"):
        return f"<b>{escape(_image(item))}</b>"
    return (f"<span class=ns>{escape(_literal(item['namespace']))}/</span>"
            f"<b>{escape(_literal(item['name']))}</b>")


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


def _cards(r: dict[str, Any]) -> str:
    t = r["totals"]
    items = [
        ("Images", human(t["images"]), f"{t['images']:,} listed"),
        ("Total pulls", human(t["pull_count"]), f"{t['pull_count']:,}"),
        (f"Pulls gained, {r['window_days']} d", human(t["pull_delta"]),
         "needs two run dates" if t["pull_delta"] is None else f"{t['pull_delta']:,}"),
        ("Pulls per day (7-day avg)", human(t["daily_avg_7d"]), "whole listing"),
        ("New / removed", f"{t['new_images']} / {t['removed_images']}", "images in window"),
        ("Anomalies", str(t["anomalies"]), "see below"),
    ]
    return "".join(f'<div class="card"><div class="k">{escape(k)}</div><div class="v">'
                   f'{escape(v)}</div><div class="s">{escape(s)}</div></div>'
                   for k, v, s in items)


def _top_table(r: dict[str, Any]) -> str:
    movers, unranked = r["top_movers"], r["not_ranked"]
    if r["notice"]:
        return f'<p class="empty">{escape(r["notice"])}</p>'
    if not movers and not unranked:
        return '<p class="empty">No image observed on the as-of date has a step in the window.</p>'
    head = ("<thead><tr><th class=n>#</th><th>Change</th><th>Image</th><th class=n>Pulls</th>"
            "<th class=n>Gained</th><th class=n>Growth</th><th class=n>Per day (7 d)</th>"
            "<th>Daily pulls</th></tr></thead>")
    rows = []
    for i, m in enumerate(movers):
        text, css = _rank_change(m["rank_change"], r["previous_window_start"] is not None)
        color = charts.PALETTE[i % len(charts.PALETTE)]
        rows.append(
            f"<tr><td class=n>{m['rank']}</td><td class={css}>{escape(text)}</td>"
            f"<td>{_image_cell(m)}</td>"
            f"<td class=n title=\"{m['pull_count'] or 0:,}\">{human(m['pull_count'])}</td>"
            f"<td class=n title=\"{m['pull_delta']:,}\">{human(m['pull_delta'])}</td>"
            f"<td class=n>{_pct(m['pull_growth_pct'])}</td>"
            f"<td class=n>{human(m['daily_avg_7d'])}</td>"
            f"<td>{charts.sparkline(m['daily'], color=color)}</td></tr>")
    shown = _unranked_shown(r)
    if shown:
        rows.append(f'<tr class=sub><th colspan=8>Not ranked: growth unknown in this window '
                    f'({r["totals"]["not_ranked"]:,})</th></tr>')
    for u in shown:
        rows.append(
            f"<tr class=unranked><td class=n>–</td><td class=muted>–</td>"
            f"<td>{_image_cell(u)}</td>"
            f"<td class=n title=\"{u['pull_count'] or 0:,}\">{human(u['pull_count'])}</td>"
            f"<td colspan=4><span class=\"tag {escape(u['kind'])}\">{escape(_mark(u))}</span>"
            f"</td></tr>")
    if r["totals"]["not_ranked"] > len(shown):
        rows.append(f"<tr class=unranked><td colspan=8 class=muted>… and "
                    f"{r['totals']['not_ranked'] - len(shown):,} more (see Anomalies)</td></tr>")
    return f"<table>{head}<tbody>{''.join(rows)}</tbody></table>"


def _charts(r: dict[str, Any]) -> str:
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
    if not images:
        return '<p class="empty">Not enough runs in the window for charts.</p>'
    return "".join(f'<img alt="{escape(alt)}" src="{uri}">' for alt, uri in images)


def _listing(items: list[dict[str, Any]], date_key: str, date_label: str, total: int) -> str:
    if not items:
        return '<p class="empty">None in this window.</p>'
    rows = "".join(
        f"<tr><td class=n>{i['id']}</td><td>{escape(_image(i))}</td>"
        f"<td class=d>{escape(i[date_key])}</td><td class=n>{human(i['pull_count'])}</td></tr>"
        for i in items)
    more = (f'<p class="muted">… and {total - len(items):,} more (see the JSON report).</p>'
            if total > len(items) else "")
    return (f"<table><thead><tr><th class=n>Id</th><th>Image</th><th>{date_label}</th>"
            f"<th class=n>Pulls</th></tr></thead><tbody>{rows}</tbody></table>{more}")


def _anomalies(r: dict[str, Any]) -> str:
    items = r["anomalies"]
    if not items:
        return '<p class="empty">No decreases, stuck counters or stale days.</p>'
    rows = "".join(
        f"<tr><td class=d>{escape(a['date'])}</td><td><span class=\"tag {escape(a['kind'])}\">"
        f"{escape(a['kind'].replace('_', ' '))}</span></td><td>{escape(_image(a))}</td>"
        f"<td>{escape(a['detail'])}</td></tr>" for a in items)
    return ("<table><thead><tr><th>Date</th><th>Kind</th><th>Image</th><th>Detail</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def html(r: dict[str, Any]) -> str:
    """The report as one HTML page: inline CSS, charts as data URIs, no external requests."""
    page = Template(resources.files("etl.publish").joinpath("templates/report.html")
                    .read_text(encoding="utf-8"))
    t = r["totals"]
    return page.substitute(
        title=escape(r["title"]), tool_version=escape(r["tool_version"]),
        as_of=escape(r["as_of"]), as_of_run_id=r["as_of_run_id"],
        window_days=r["window_days"], window_start=escape(r["window_start"]),
        run_count=len(r["run_dates"]), generated_at=escape(r["generated_at"]),
        cards=_cards(r), top_table=_top_table(r), charts=_charts(r),
        anomaly_count=t["anomalies"], anomalies=_anomalies(r),
        new_count=t["new_images"],
        new_images=_listing(r["new_images"], "first_seen", "First seen", t["new_images"]),
        removed_count=t["removed_images"],
        removed_images=_listing(r["removed_images"], "last_seen", "Last seen",
                                t["removed_images"]),
        method="".join(f"<li>{escape(m)}</li>" for m in METHOD),
    )


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
