"""SQLite's memory statistics, turned off in a process of ours before the library starts.

SQLite counts every allocation it makes (``SQLITE_CONFIG_MEMSTATUS``, on unless the library was
built otherwise, as Debian's is) under one mutex for the whole process. SQLite's documentation
recommends building without them: ``sqlite3_malloc`` runs faster, and so does the library.

- Two connections working at once on two threads take turns on that mutex for every
  allocation: the window's steps of a report over a year of 10,000 images took 1.1-1.4 s alone
  and 1.7-2.1 s each beside a second such statement on another thread; in two processes, or
  with the statistics off, 0.9-1.2 s each (the report computes the previous window on a second
  connection).
- On one thread the mutex is never contended, and costs less: a 200,000-row sync into a new
  database ~5 % of its time, the nightly run of 180 rows nothing measurable.

Nothing of ours reads those statistics (no ``soft_heap_limit``; the page caches are bounded by
``cache_size``).

Python's ``sqlite3`` has no ``sqlite3_config``; it is called through ctypes on the library the
``_sqlite3`` extension is linked with (loading the extension's file loads that library; Python's
import later finds it loaded). Importing ``sqlite3`` initialises SQLite, after which the setting
can no longer change (shutting the library down again would pull it from under any connection a
caller holds), so this does something only before ``sqlite3`` is first imported: the command
line calls it first thing in the commands that do much SQLite work. Where the symbol is not
reachable (a build with SQLite linked in privately), it does nothing.
"""

from __future__ import annotations

import sys

SQLITE_OK = 0
SQLITE_CONFIG_MEMSTATUS = 9


def memstatus_off() -> bool:
    """Turn SQLite's allocation statistics off for this process; True when done, False when it
    is too late (``sqlite3`` already imported) or the library's ``sqlite3_config`` is not
    reachable. Never raises."""
    if "_sqlite3" in sys.modules:
        return False
    try:
        import ctypes
        import importlib.util

        spec = importlib.util.find_spec("_sqlite3")
        if spec is None or not spec.origin:
            return False
        config = ctypes.CDLL(spec.origin).sqlite3_config
        return bool(config(SQLITE_CONFIG_MEMSTATUS, ctypes.c_int(0)) == SQLITE_OK)
    except (ImportError, OSError, AttributeError, ValueError):
        return False
