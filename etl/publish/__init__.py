"""Publishing what the database holds: snapshot exports (CSV/Parquet, to a folder or a bucket)
and trend reports (JSON/Markdown/HTML). pandas, pyarrow, matplotlib and jinja2 are imported only
when one is written.

Names load on first use: importing ``etl.publish`` (or one light module of it, as the command
line does for ``report --days``'s bound) does not import the export and its storage layer, so
``--help``, ``runs`` and ``status`` do not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

# report --days: a century of nightly runs; beyond it date arithmetic overflows. Here, not in
# etl.publish.report, so the command line can bound the option without importing the report.
MAX_DAYS = 36_500

if TYPE_CHECKING:  # the same names, for type checkers (``name as name``: re-exported)
    from etl.publish.export import export_snapshots as export_snapshots
    from etl.publish.report import build_report as build_report
    from etl.publish.report import write_report as write_report

# module -> the public names it defines (each imported when it is first asked for)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "export": ["export_snapshots"],
    "report": ["build_report", "write_report"],
})
