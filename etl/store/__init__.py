"""The database: its schema, the one-transaction load, and reading it back.

Writers go through ``Loader`` (the lock, the file checks, one transaction per run); readers
through ``open_readonly`` (never creates, migrates or blocks it). The analytic rules are SQL, in
``etl.store.trends``. Standard library only: no command pays for pandas here.
"""

from etl.store.ledger import EXIT_STALE, format_runs_table, freshness, list_runs
from etl.store.load import LoadCounts, Loader, LoadRun, compress_body
from etl.store.read import (
    LEDGER_READER,
    SNAPSHOT_READER,
    Reader,
    RunDay,
    open_readonly,
    run_days,
)
from etl.store.run_record import RunStart, error_line
from etl.store.schema import ensure_schema

__all__ = [
    "EXIT_STALE", "LEDGER_READER", "SNAPSHOT_READER", "LoadCounts", "LoadRun", "Loader",
    "Reader", "RunDay", "RunStart", "compress_body", "ensure_schema", "error_line",
    "format_runs_table", "freshness", "list_runs", "open_readonly", "run_days",
]
