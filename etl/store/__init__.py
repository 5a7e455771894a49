"""The database: its schema, the one-transaction load, and reading it back.

Writers go through ``Loader`` (the lock, the file checks, one transaction per run); readers
through ``open_readonly`` (never creates, migrates or blocks it). The analytic rules are SQL, in
``etl.store.trends``. Standard library only: no command pays for pandas here.

Names load on first use: ``runs`` and ``status`` read the ledger without importing the load,
its statements and the schema's migrations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:  # the same names, for type checkers (``name as name``: re-exported)
    from etl.store.ledger import EXIT_STALE as EXIT_STALE
    from etl.store.ledger import format_runs_table as format_runs_table
    from etl.store.ledger import freshness as freshness
    from etl.store.ledger import list_runs as list_runs
    from etl.store.load import Loader as Loader
    from etl.store.load import LoadRun as LoadRun
    from etl.store.load import compress_body as compress_body
    from etl.store.read import LEDGER_READER as LEDGER_READER
    from etl.store.read import SNAPSHOT_READER as SNAPSHOT_READER
    from etl.store.read import Reader as Reader
    from etl.store.read import RunDay as RunDay
    from etl.store.read import open_readonly as open_readonly
    from etl.store.read import run_days as run_days
    from etl.store.run_record import LoadCounts as LoadCounts
    from etl.store.run_record import RunStart as RunStart
    from etl.store.run_record import error_line as error_line
    from etl.store.schema import ensure_schema as ensure_schema

# module -> the public names it defines (each imported when it is first asked for)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "ledger": ["EXIT_STALE", "format_runs_table", "freshness", "list_runs"],
    "load": ["LoadRun", "Loader", "compress_body"],
    "read": ["LEDGER_READER", "SNAPSHOT_READER", "Reader", "RunDay", "open_readonly",
             "run_days"],
    "run_record": ["LoadCounts", "RunStart", "error_line"],
    "schema": ["ensure_schema"],
})
