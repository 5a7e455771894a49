"""Extract: read SWR's official image list over HTTP, page by page, proven complete.

The public names, for the pipeline, the healthcheck and library users::

    session = make_session(settings)
    scan = scan_official_images(session, settings, auth=build_auth(settings, session))
    for page in scan: ...          # Page; scan.stats is a ScanStats

``exchange`` (with ``BoundedSession``, ``Limits`` and the ``HttpFailure`` leaves) is the one
bounded HTTP call every outbound request goes through. ``DeadlineExceeded`` and
``RetryBudgetExhausted`` are the ``UpstreamError`` leaves a scan raises when its time or retries
run out.

Names load on first use: importing ``etl.extract`` alone imports neither requests nor tenacity,
so commands that never fetch (``--help``, ``runs``, ``status``) do not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers (``name as name``: re-exported)
    from etl.extract.auth import build_auth as build_auth
    from etl.extract.failures import HttpFailure as HttpFailure
    from etl.extract.retry import RetryBudgetExhausted as RetryBudgetExhausted
    from etl.extract.scan import Page as Page
    from etl.extract.scan import Scan as Scan
    from etl.extract.scan import ScanStats as ScanStats
    from etl.extract.scan import make_session as make_session
    from etl.extract.scan import scan_official_images as scan_official_images
    from etl.extract.session import BoundedSession as BoundedSession
    from etl.extract.session import Limits as Limits
    from etl.extract.throttle import DeadlineExceeded as DeadlineExceeded
    from etl.extract.transport import exchange as exchange

# public name -> the module that defines it (imported when the name is first asked for)
_HOMES = {
    "make_session": "etl.extract.scan",
    "scan_official_images": "etl.extract.scan",
    "Scan": "etl.extract.scan",
    "Page": "etl.extract.scan",
    "ScanStats": "etl.extract.scan",
    "build_auth": "etl.extract.auth",
    "exchange": "etl.extract.transport",
    "BoundedSession": "etl.extract.session",
    "Limits": "etl.extract.session",
    "HttpFailure": "etl.extract.failures",
    "DeadlineExceeded": "etl.extract.throttle",
    "RetryBudgetExhausted": "etl.extract.retry",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
