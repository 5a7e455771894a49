"""The completeness proof's second read: which proof a pass gets, and reading the listing again.

Distinct ids equal to an unchanged total do not prove a pass: rows deleted behind the scan and as
many inserted ahead of it keep both. One response is a snapshot by itself; otherwise the listing
is read again (``--verify``): all of it, or with ``auto`` and a listing above
``AUTO_DOUBLE_READ_ROWS``, its first ``CHECK_PAGE_SIZE`` rows. The comparison itself is pure
(``etl.extract.paging.PassCheck``, ``head_reason``); the proofs' names and meanings are
``etl.extract.paging.PROOFS``.
"""

from __future__ import annotations

import logging
from contextlib import closing

from etl.config.settings import Settings
from etl.errors import BadRequestError
from etl.extract.paging import CHECK_PAGE_SIZE, PagePlanner, PassCheck, PassLedger, head_reason
from etl.extract.reader import PageReader

log = logging.getLogger("etl.extract")

# --verify auto reads a listing of up to this many rows twice (one or two requests at
# CHECK_PAGE_SIZE); a larger one only has its first CHECK_PAGE_SIZE rows read again: reading
# 200,000 rows twice cost ~40 % more time (measured), against the performance targets.
AUTO_DOUBLE_READ_ROWS = 2000


def prove(reader: PageReader, settings: Settings, ledger: PassLedger, *, responses: int,
          pass_page_size: int) -> tuple[str, str | None]:
    """How a pass whose count held is proven (a ``PROOFS`` key), and why it cannot stand after
    all (None: it stands).

    ``responses`` is the number of answers the pass used, ``pass_page_size`` the page size it
    ended with (lower than ``--page-size`` when the server caps it).
    """
    verify = settings.verify
    if responses == 1:
        return "one-page", None
    if verify == "full":
        proof = "full"
    elif verify == "auto" and ledger.rows_seen > AUTO_DOUBLE_READ_ROWS:
        proof = "head"
    else:
        proof = "double-read"
    # The largest page, unless the server capped the pass's pages (keep the cap).
    limit = pass_page_size if pass_page_size < settings.page_size else CHECK_PAGE_SIZE
    head, values = proof == "head", verify == "full"
    try:
        return proof, read_again(reader, ledger, limit, head=head, values=values)
    except BadRequestError:
        if limit <= pass_page_size:
            raise
        # The pass's page size was accepted: an API that refuses the larger one is read
        # again at the pass's size rather than failing the run.
        log.warning("the API refused limit=%d for the completeness check; reading again "
                    "at limit=%d", limit, pass_page_size)
        return proof, read_again(reader, ledger, pass_page_size, head=head, values=values)


def read_again(reader: PageReader, ledger: PassLedger, limit: int, *, head: bool,
               values: bool) -> str | None:
    """Read the listing again at ``limit`` rows per request (only the first page with
    ``head``) and compare it with the pass (value for value with ``values``); stops at the
    first page that differs."""
    reader.start()
    counters = reader.fetcher.counters
    before = counters.requests
    if head:
        first = reader.fetch(0, limit)
        reason = head_reason(ledger, first.rows, first.total)
    else:
        check = PassCheck(ledger, values=values)
        reason = None
        with closing(reader.read(PagePlanner(limit))) as fetches:
            for fetched in fetches:
                reason = check.record(fetched.rows, fetched.total)
                if reason is not None:
                    break
        reason = reason or check.finish()
    log.debug("completeness check: %d request(s) at limit=%d: %s",
              counters.requests - before, limit, reason or "the listing matches the pass")
    return reason
