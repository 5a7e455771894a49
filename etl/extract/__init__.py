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

from typing import TYPE_CHECKING

import lazy_loader

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

# module -> the public names it defines (each imported when it is first asked for)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "scan": ["Page", "Scan", "ScanStats", "make_session", "scan_official_images"],
    "auth": ["build_auth"],
    "transport": ["exchange"],
    "session": ["BoundedSession", "Limits"],
    "failures": ["HttpFailure"],
    "throttle": ["DeadlineExceeded"],
    "retry": ["RetryBudgetExhausted"],
})
