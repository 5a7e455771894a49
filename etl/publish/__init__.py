"""Publishing what the database holds: snapshot exports (CSV/Parquet) and trend reports
(JSON/Markdown/HTML). pandas, pyarrow, matplotlib and jinja2 are imported only when one is
written."""

from etl.publish.export import export_snapshots
from etl.publish.report import build_report, write_report

__all__ = ["build_report", "export_snapshots", "write_report"]
