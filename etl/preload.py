"""Importing heavy modules on a thread of their own while the caller goes on with other work.

A sync imports its transform (numpy, pyarrow) while the first pages are fetched; an HTML report
imports matplotlib and Jinja2 while SQLite computes the trends, once its heaviest statements
leave a core free (``cores``, ``once``). Either import is 0.1-0.5 s of Python that would
otherwise wait for the network or the database, which both let go of the GIL.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable


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


def cores() -> int:
    """The cores this process may run on: whether an import beside other busy threads has a
    core of its own."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def once(hook: Callable[[], None] | None) -> Callable[[], None]:
    """A function that calls ``hook`` the first time it is called, from whichever thread, and
    does nothing after (nor ever, when ``hook`` is None)."""
    left = [hook] if hook is not None else []
    lock = threading.Lock()

    def call() -> None:
        with lock:
            todo = left.pop() if left else None
        if todo is not None:
            todo()

    return call
