"""Importing heavy modules on a thread of their own while the caller goes on with other work.

A sync imports its transform (numpy, pyarrow) while the first pages are fetched; an HTML report
imports matplotlib and Jinja2 while SQLite computes the trends. Either import is 0.1-0.5 s of
Python that would otherwise wait for the network or the database, which both let go of the GIL.
"""

from __future__ import annotations

import importlib
import threading


def _import_all(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # the caller's own import raises it, as one line, where it belongs
            return


def preload(*names: str) -> None:
    """Import ``names`` in order on a new thread; the caller's own ``import`` of one of them then
    waits on the import lock until it is done. Not a daemon: an early exit waits for the imports
    rather than tear an extension module down half-loaded."""
    threading.Thread(target=_import_all, args=(names,), name="swr-etl-preload").start()
