"""The extractor against the simulated SWR endpoint: paging, faults, drift, parallel pages."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from etl import __version__
from etl.config.settings import Settings
from etl.errors import AuthError, BadRequestError, InternalError, NotFoundError, UpstreamError
from etl.extract.fetch import REPOS_PATH
from etl.extract.paging import PROOFS
from etl.extract.reader import DEFAULT_BUDGET, ReadBudget
from etl.extract.scan import Page, Scan, make_session, scan_official_images
from etl.simulator import Dataset, Simulator
from tests.helpers import FakeClock

Make = Callable[..., Simulator]


def settings_for(sim: Simulator, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(endpoint=sim.url, allow_anonymous=True, page_size=50,
                                concurrency=1, backoff_base=0.001, backoff_cap=0.01, timeout=10)
    base.update(kw)
    return Settings(**base)


def scan(sim: Simulator, *, auth: Any = None, clock: FakeClock | None = None,
         budget: ReadBudget = DEFAULT_BUDGET, **kw: Any) -> tuple[list[Page], Scan]:
    settings = settings_for(sim, **kw)
    session = make_session(settings)
    extra: dict[str, Any] = {} if clock is None else {"sleep": clock.sleep, "clock": clock}
    result = scan_official_images(session, settings, auth=auth, budget=budget, **extra)
    pages = list(result)
    session.close()
    return pages, result


def last_pass_rows(pages: list[Page]) -> list[dict[str, Any]]:
    last = max(p.pass_no for p in pages)
    rows = [r for p in pages if p.pass_no == last for r in p.rows]
    return [{k: v for k, v in r.items() if k != "total_range"} for r in rows]


def offsets(sim: Simulator) -> list[tuple[int, int]]:
    return [(int(r.query["offset"]), int(r.query["limit"])) for r in sim.repos_requests()]


# -- paging by contract ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["offset-count", "first-last", "none"])
def test_each_content_range_shape_gives_the_exact_listing(simulator: Make, shape: str) -> None:
    sim = simulator(images=180, scenario={"content_range": shape})
    pages, result = scan(sim)
    assert last_pass_rows(pages) == sim.listing()
    assert [p.offset for p in pages] == [0, 50, 100, 150]
    assert [len(p.rows) for p in pages] == [50, 50, 50, 30]
    # the pass, then the completeness proof's second read: the whole listing in one request
    assert offsets(sim) == [(0, 50), (50, 50), (100, 50), (150, 50), (0, 1000)]
    assert all(p.total == 180 for p in pages)
    assert result.stats.complete and result.stats.total_reported == 180
    assert result.stats.proof == "double-read"
    assert (result.stats.requests, result.stats.pages, result.stats.rescans) == (5, 4, 0)
    assert result.stats.rows_seen == 180
    expected_header = {"offset-count": "0-50/180", "first-last": "0-49/180", "none": None}[shape]
    assert pages[0].content_range == expected_header


def test_without_any_total_it_stops_at_the_first_empty_page(simulator: Make) -> None:
    # No header on any page and the body's total_range is not used by a header-less scan of an
    # empty tail: every page lacks the header, so the scan runs on total_range; prove the
    # empty-page rule separately with a filter that matches nothing.
    sim = simulator(images=30, scenario={"content_range": "none"})
    pages, result = scan(sim, namespace="no-such-namespace")
    assert pages == []
    assert offsets(sim) == [(0, 50)]
    assert result.stats.complete and result.stats.total_reported is None


def test_missing_header_on_some_pages_falls_back_to_total_range(simulator: Make) -> None:
    sim = simulator(images=120, scenario={"faults": [{"kind": "no-header", "every": 2}]})
    pages, result = scan(sim)
    assert last_pass_rows(pages) == sim.listing()
    assert [p.content_range is None for p in pages] == [False, True, False]
    assert result.stats.complete and result.stats.requests == 3 + 1  # + the second read


def test_filters_are_sent_and_the_filtered_total_is_proven(simulator: Make) -> None:
    sim = simulator(images=180)
    namespaces = {r["namespace"] for r in sim.listing()} - {"library"}
    ns = sorted(namespaces)[0]
    pages, result = scan(sim, namespace=ns, image_name="")
    want = [r for r in sim.listing() if r["namespace"] == ns]
    assert want and last_pass_rows(pages) == want
    assert all(r.query["namespace"] == ns for r in sim.repos_requests())
    assert "image_name" not in sim.repos_requests()[0].query
    assert result.stats.complete and result.stats.total_reported == len(want)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_capped_page_size_is_adopted_without_gaps_or_overlaps(
    simulator: Make, concurrency: int
) -> None:
    sim = simulator(images=500, scenario={"max_page_size": 30, "latency_ms": 2})
    pages, result = scan(sim, page_size=100, concurrency=concurrency)
    assert last_pass_rows(pages) == sim.listing()
    assert [p.offset for p in pages] == list(range(0, 500, 30))
    assert offsets(sim)[0] == (0, 100)
    assert sorted(offsets(sim)[1:17]) == [(o, 30) for o in range(30, 500, 30)]
    # the second read keeps the cap the pass found: the whole listing again, 30 rows at a time
    assert sorted(offsets(sim)[17:]) == [(o, 30) for o in range(0, 500, 30)]
    assert result.stats.complete and result.stats.requests == 17 + 17


def test_cap_appearing_mid_scan_replans_parallel_offsets(simulator: Make) -> None:
    # The server starts capping after the first page: pages planned in parallel with limit 100
    # come back short; the scan re-plans from the rows actually received.
    sim = simulator(images=400, scenario={"latency_ms": 2})
    settings = settings_for(sim, page_size=100, concurrency=4)
    session = make_session(settings)
    it = iter(scan_official_images(session, settings))
    first = next(it)
    sim.set_scenario({"max_page_size": 30, "latency_ms": 2})
    pages = [first, *it]
    session.close()
    assert [(p.offset, len(p.rows)) for p in pages[:3]] == [(0, 100), (100, 30), (130, 30)]
    assert last_pass_rows(pages) == sim.listing()
    cursor = 0
    for p in pages:
        assert p.offset == cursor
        cursor += len(p.rows)
    assert cursor == 400


def test_server_ignoring_offset_fails_clearly(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"ignore_offset": True})
    with pytest.raises(UpstreamError) as info:
        scan(sim)
    assert info.value.exit_code == 4
    assert str(info.value) == (
        "the API ignores the offset parameter: GET /v2/manage/dockerhub/repos with offset=50 "
        "returned the same 50 rows as offset=0; refusing to loop or duplicate rows")
    assert offsets(sim) == [(0, 50), (50, 50), (0, 50)]


def test_server_ignoring_offset_without_header_fails_too(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"ignore_offset": True, "content_range": "none"})
    with pytest.raises(UpstreamError, match="ignores the offset parameter"):
        scan(sim, concurrency=4)
    assert len(sim.repos_requests()) <= 3 + 8


class EndlessAdapter(requests.adapters.BaseAdapter):
    """A server with no Content-Range and no total_range whose listing never ends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        self.sent += 1
        resp = requests.Response()
        resp.status_code = 200
        resp._content = f'[{{"id": {self.sent}, "name": "n{self.sent}"}}]'.encode()
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def test_no_input_loops_forever() -> None:
    # Without any total the only stop is an empty page; the absolute cap ends a listing that
    # never does (lowered from 100,000 to 25 here).
    settings = Settings(endpoint="https://swr.invalid", allow_anonymous=True, page_size=1)
    session = make_session(settings)
    adapter = EndlessAdapter()
    session.mount("https://", adapter)
    result = scan_official_images(session, settings, budget=ReadBudget(without_total=25))
    with pytest.raises(UpstreamError) as info:
        for _ in result:
            pass
    assert str(info.value) == (
        "gave up: 25 page requests in one pass did not cover the listing of GET "
        "/v2/manage/dockerhub/repos (the API keeps moving or never ends)")
    assert adapter.sent == 25 and result.stats.pages == 25


def test_request_cap_follows_the_reported_total(simulator: Make) -> None:
    sim = simulator(images=200, scenario={"max_page_size": 1})
    pages, result = scan(sim, page_size=100)  # capped to 1 row per page: 200 requests, allowed
    assert len(pages) == 200 and result.stats.complete
    assert result.stats.requests == 200 + 200  # the second read has its own allowance
    sim.clear_requests()
    with pytest.raises(UpstreamError, match="^gave up: 10 page requests in one pass"):
        scan(sim, page_size=100, budget=ReadBudget(beyond_total=-190))  # 200 - 190 = 10
    assert len(sim.repos_requests()) == 10


class ScriptedAdapter(requests.adapters.BaseAdapter):
    """Answers from ``script(n, offset, limit) -> (status, headers, body)``; n counts from 1."""

    def __init__(self, script: Callable[[int, int, int], tuple[int, dict[str, str], bytes]]):
        super().__init__()
        self.script = script
        self.sent: list[tuple[int, int]] = []

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        query = dict(p.split("=") for p in (request.url or "").split("?")[1].split("&"))
        offset, limit = int(query["offset"]), int(query["limit"])
        self.sent.append((offset, limit))
        status, headers, body = self.script(len(self.sent), offset, limit)
        resp = requests.Response()
        resp.request, resp.status_code, resp._content = request, status, body
        resp.headers.update(headers)
        return resp

    def close(self) -> None:
        pass


def scripted(script: Any, **kw: Any) -> tuple[list[Page], Scan, ScriptedAdapter]:
    settings = Settings(endpoint="https://swr.invalid", allow_anonymous=True,
                        **{"page_size": 10, "concurrency": 1, "backoff_base": 0.0, **kw})
    session = make_session(settings)
    adapter = ScriptedAdapter(script)
    session.mount("https://", adapter)
    result = scan_official_images(session, settings)
    return list(result), result, adapter


def rows_json(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps(rows).encode()


def test_server_repeating_its_last_page_forever_fails_clearly() -> None:
    # No Content-Range, no total_range, and every offset past 20 serves rows 10..19 again.
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        start = min(offset, 10)
        return 200, {}, rows_json([{"id": i} for i in range(start, start + 10)])

    with pytest.raises(UpstreamError) as info:
        scripted(script, max_rescans=0)
    assert str(info.value) == (
        "the API ignores the offset parameter: GET /v2/manage/dockerhub/repos with offset=20 "
        "returned the same 10 rows as offset=10; refusing to loop or duplicate rows")


def test_one_page_inserted_at_the_front_is_drift_not_an_ignored_offset() -> None:
    # After the first page, 10 new rows appear at the front: offset 10 now serves what offset 0
    # served. Asking offset 0 again shows the new rows, so this is drift: rescan, complete.
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        ids = list(range(100, 110)) + list(range(20)) if n > 1 else list(range(20))
        rows = [{"id": i} for i in ids[offset:offset + limit]]
        return 200, {"Content-Range": f"{offset}-{len(rows)}/{len(ids)}"}, rows_json(rows)

    pages, result, adapter = scripted(script)
    assert result.stats.complete and result.stats.rescans == 1
    assert [r["id"] for p in pages if p.pass_no == 1 for r in p.rows] == (
        list(range(100, 110)) + list(range(20)))
    # page 0, page 10 (= old page 0), offset 0 again to check, then the rescan's three pages
    # and the completeness proof's second read of the whole listing
    assert adapter.sent == [(0, 10), (10, 10), (0, 10), (0, 10), (10, 10), (20, 10), (0, 1000)]
    # id 0 is no id (the transform rejects it): the row counts as a row without id, not a repeat
    assert pages[1].duplicate_ids == tuple(range(1, 10))


@hypothesis_settings(max_examples=60, deadline=None)
@given(total=st.integers(0, 300), page_size=st.integers(1, 60),
       caps=st.lists(st.integers(1, 60), min_size=1, max_size=6),
       concurrency=st.integers(1, 4), shape=st.sampled_from(["offset-count", "first-last", ""]))
def test_any_cap_sequence_and_concurrency_yields_the_exact_listing(
    total: int, page_size: int, caps: list[int], concurrency: int, shape: str
) -> None:
    # The real scan loop (threads, window, re-plans) against a server whose cap changes from
    # request to request: every row exactly once, in order.
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        count = max(0, min(limit, caps[n % len(caps)], total - offset))
        rows = [{"id": i, "total_range": total} for i in range(offset, offset + count)]
        header = {"offset-count": f"{offset}-{count}/{total}",
                  "first-last": f"{offset}-{offset + count - 1}/{total}"}.get(shape)
        return 200, ({"Content-Range": header} if header else {}), rows_json(rows)

    pages, result, adapter = scripted(script, page_size=page_size, concurrency=concurrency)
    assert [r["id"] for p in pages for r in p.rows] == list(range(total))
    assert result.stats.complete and result.stats.rescans == 0
    assert len(adapter.sent) <= total + 1 + 2 * concurrency * (total + 1)


def test_messages_show_the_real_path_behind_a_base_path() -> None:
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        return 404, {"X-Request-Id": "r-9"}, b'{"error_code": "APIG.0101", "error_msg": "nope"}'

    settings = Settings(endpoint="https://gw.invalid/swr", allow_anonymous=True, page_size=10)
    session = make_session(settings)
    session.mount("https://", ScriptedAdapter(script))
    with pytest.raises(NotFoundError) as info:
        list(scan_official_images(session, settings))
    assert str(info.value) == (
        "endpoint not found in this region: GET /swr/v2/manage/dockerhub/repos?offset=0&"
        'limit=10: HTTP 404 APIG.0101 "nope" (X-Request-Id r-9)')


def test_rows_without_ids_are_counted_not_mistaken_for_an_ignored_offset() -> None:
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        rows = [{"name": f"img-{i}"} for i in range(offset, min(offset + limit, 20))]
        return 200, {"Content-Range": f"{offset}-{len(rows)}/20"}, rows_json(rows)

    pages, result, adapter = scripted(script)
    assert [len(p.rows) for p in pages] == [10, 10]
    assert result.stats.complete and adapter.sent == [(0, 10), (10, 10), (0, 1000)]


def test_header_total_wins_over_a_disagreeing_total_range(
    caplog: pytest.LogCaptureFixture
) -> None:
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        rows = [{"id": i, "total_range": 99} for i in range(offset, min(offset + limit, 15))]
        return 200, {"Content-Range": f"{offset}-{offset + len(rows) - 1}/15"}, rows_json(rows)

    caplog.set_level(logging.WARNING, logger="etl.extract")
    pages, result, _ = scripted(script)
    assert result.stats.complete and result.stats.total_reported == 15
    assert [p.total for p in pages] == [15, 15]
    assert caplog.messages[0] == (
        "Content-Range total 15 disagrees with total_range ['99'] on "
        "/v2/manage/dockerhub/repos?offset=0&limit=10; using the header")


@pytest.mark.parametrize("bad", [b"<html>oops</html>", b'{"errors": []}', b'[{"id": 1}, {"id"'])
def test_unparseable_bodies_are_transient(bad: bytes) -> None:
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        if n == 2:
            return 200, {}, bad
        rows = [{"id": i} for i in range(offset, min(offset + limit, 15))]
        return 200, {"Content-Range": f"{offset}-{len(rows)}/15"}, rows_json(rows)

    pages, result, adapter = scripted(script)
    assert [r["id"] for p in pages for r in p.rows] == list(range(15))
    assert result.stats.retry_causes == {"unparseable": 1}
    assert adapter.sent == [(0, 10), (10, 10), (10, 10), (0, 1000)]


def test_streams_through_a_bounded_window(simulator: Make) -> None:
    sim = simulator(images=5000)
    settings = settings_for(sim, page_size=10, concurrency=2)
    session = make_session(settings)
    it = iter(scan_official_images(session, settings))
    next(it)
    next(it)
    # 500 pages in the listing, but only the first page, one window (2 x 2) and the one page the
    # second next() made room for (if a fetcher was quick enough) were requested.
    assert len(sim.repos_requests()) <= 1 + 4 + 1
    it.close()  # type: ignore[attr-defined]
    session.close()


class OffsetAdapter(requests.adapters.BaseAdapter):
    """Pages 0 and 10 of a 1000-row listing answer; every later page says "come back in 60 s"."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[int] = []

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        offset = int(dict(p.split("=") for p in (request.url or "").split("?")[1].split("&"))[
            "offset"])
        self.sent.append(offset)
        resp = requests.Response()
        resp.request = request
        if offset < 20:
            resp.status_code = 200
            resp.headers["Content-Range"] = f"{offset}-10/1000"
            resp._content = str([{"id": i} for i in range(offset, offset + 10)]).replace(
                "'", '"').encode()
        else:
            resp.status_code = 503
            resp.headers["Retry-After"] = "60"
            resp._content = b"{}"
        return resp

    def close(self) -> None:
        pass


@pytest.mark.timeout(20)
def test_abandoning_a_scan_does_not_wait_out_workers_backoff() -> None:
    # The consumer stops after two pages while the other workers wait out a 60 s Retry-After:
    # it must get control back at once (the pytest timeout fails the test otherwise).
    settings = Settings(endpoint="https://swr.invalid", allow_anonymous=True, page_size=10,
                        concurrency=4)
    session = make_session(settings)
    adapter = OffsetAdapter()
    session.mount("https://", adapter)
    it = iter(scan_official_images(session, settings))
    assert [p.offset for p in (next(it), next(it))] == [0, 10]
    it.close()  # type: ignore[attr-defined]
    assert adapter.sent[0] == 0 and 10 in adapter.sent
    assert set(adapter.sent) - {0, 10} <= set(range(20, 100, 10))  # the window, nothing more


def test_a_scan_iterates_once(simulator: Make) -> None:
    sim = simulator(images=10)
    settings = settings_for(sim)
    result = scan_official_images(make_session(settings), settings)
    assert sim.repos_requests() == []  # lazy: nothing fetched before iteration
    list(result)
    with pytest.raises(InternalError):
        iter(result)


# -- transient faults -----------------------------------------------------------------------

TRANSIENT = [
    ({"kind": "status", "status": 500}, "http_500"),
    ({"kind": "status", "status": 502}, "http_502"),
    ({"kind": "status", "status": 503}, "http_503"),
    ({"kind": "status", "status": 504}, "http_504"),
    ({"kind": "status", "status": 429}, "http_429"),
    ({"kind": "status", "status": 429, "retry_after": "2"}, "http_429"),
    ({"kind": "status", "status": 429, "retry_after": "http-date:+3"}, "http_429"),
    ({"kind": "status", "status": 409, "code": "SVCSTG.SWR.4090023"}, "http_409"),
    ({"kind": "status", "status": 403, "code": "SVCSTG.SWR.4031032"}, "http_403"),
    ({"kind": "status", "status": 403, "code": "SVCSTG.SWR.4031042", "shape": "errors"},
     "http_403"),
    ({"kind": "drop"}, "connection"),
    ({"kind": "truncate"}, "truncated"),
]


@pytest.mark.parametrize("fault,cause", TRANSIENT, ids=[f"{f.get('status', f['kind'])}-{i}"
                                                         for i, (f, _) in enumerate(TRANSIENT)])
def test_every_transient_fault_is_survived_with_the_full_listing(
    simulator: Make, fault: dict[str, Any], cause: str
) -> None:
    sim = simulator(images=180, scenario={"faults": [{**fault, "at": 2, "times": 2}]})
    clock = FakeClock()
    pages, result = scan(sim, clock=clock)
    assert last_pass_rows(pages) == sim.listing()
    assert result.stats.complete
    assert result.stats.retries == 2 and result.stats.retry_causes == {cause: 2}
    assert result.stats.requests == 6 + 1 == len(sim.repos_requests())  # + the second read
    if "retry_after" in fault:
        wanted = 2.0 if fault["retry_after"] == "2" else 3.0
        # Honoured (HTTP dates have 1 s resolution), never replaced by the tiny backoff.
        assert [s for s in clock.sleeps if s > 0.5] and all(
            wanted - 1.01 <= s <= wanted for s in clock.sleeps)
    else:
        assert all(s <= 0.01 for s in clock.sleeps)


def test_an_outage_in_seconds_is_driven_by_the_simulator_clock(simulator: Make) -> None:
    # A 60 s outage without waiting 60 s: the scan's sleeps advance the simulator's clock.
    sim = simulator(images=120, scenario={"faults": [
        {"kind": "status", "status": 503, "at": 2, "for_s": 60}]})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        sim.clock.advance(seconds)

    settings = settings_for(sim, backoff_base=1.0, backoff_cap=10.0, max_attempts=100)
    result = scan_official_images(make_session(settings), settings, sleep=sleep,
                                  clock=sim.clock.now, rng=random.Random(7))
    pages = list(result)
    assert last_pass_rows(pages) == sim.listing() and result.stats.complete
    statuses = [r.status for r in sim.repos_requests()]
    assert statuses[0] == 200 and statuses[-3:] == [200, 200, 200]
    assert set(statuses[1:-3]) == {503} and len(statuses) - 4 == result.stats.retries
    # the last failure came within the 60 s, the first success after them (plus the few
    # milliseconds of real time the requests took)
    assert sum(slept[:-1]) < 60 <= sum(slept) + 1


def test_timeouts_are_transient(simulator: Make) -> None:
    sim = simulator(images=60, scenario={"faults": [{"kind": "delay", "at": 1,
                                                     "delay_ms": 1500}]})
    pages, result = scan(sim, timeout=0.3)
    assert last_pass_rows(pages) == sim.listing()
    assert result.stats.retry_causes == {"timeout": 1}


def test_exhausted_transient_fault_is_upstream_error_with_code_and_request_id(
    simulator: Make
) -> None:
    sim = simulator(images=180, scenario={"faults": [{"kind": "status", "status": 503,
                                                      "every": 1, "message": "down"}]})
    with pytest.raises(UpstreamError) as info:
        scan(sim, max_attempts=3)
    rid = sim.repos_requests()[-1].request_id
    assert str(info.value) == (
        "the API stayed unavailable after 3 attempt(s): GET /v2/manage/dockerhub/repos?"
        f'offset=0&limit=50: HTTP 503 SVCSTG.SWR.5030000 "down" (X-Request-Id {rid})')
    assert len(sim.repos_requests()) == 3


def test_retry_budget_stops_the_run(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"faults": [{"kind": "status", "status": 502,
                                                      "every": 2}]})
    with pytest.raises(UpstreamError, match="^retry budget of 1 retries for this run exhausted"):
        scan(sim, retry_budget=1)
    assert len(sim.repos_requests()) == 4  # ok, 502 (retry 1), ok, 502 -> budget gone


# -- final errors ---------------------------------------------------------------------------

FINAL = [
    (400, "SVCSTG.SWR.4000014", "list", BadRequestError, 4, "the API rejected the request"),
    (401, "SVCSTG.SWR.4010000", "errors", AuthError, 3, "authentication failed"),
    (401, "APIG.0301", "apig", AuthError, 3, "authentication failed"),
    (403, "SVCSTG.SWR.4030000", "top", AuthError, 3, "permission refused"),
    (404, "SVCSTG.SWR.4040083", "apig", NotFoundError, 4, "endpoint not found in this region"),
]


@pytest.mark.parametrize("status,code,shape,exc,exit_code,prefix", FINAL)
def test_final_errors_are_classified_at_once(
    simulator: Make, status: int, code: str, shape: str, exc: type[Exception], exit_code: int,
    prefix: str,
) -> None:
    sim = simulator(images=180, scenario={"faults": [{
        "kind": "status", "status": status, "code": code, "shape": shape, "every": 1,
        "message": "the API's own words"}]})
    with pytest.raises(exc) as info:
        scan(sim, concurrency=4)
    assert type(info.value) is exc and info.value.exit_code == exit_code  # type: ignore[attr-defined]
    rid = sim.repos_requests()[0].request_id
    assert str(info.value) == (
        f"{prefix}: GET /v2/manage/dockerhub/repos?offset=0&limit=50: HTTP {status} {code} "
        f'"the API\'s own words" (X-Request-Id {rid})')
    assert len(sim.repos_requests()) == 1  # no retry storm


class TokenAuth(requests.auth.AuthBase):
    """Sends a token; ``refresh()`` asks ``issue`` for a new one (like the IAM auth does)."""

    def __init__(self, token: str, issue: Callable[[], str] | None = None) -> None:
        self.token = token
        self.issue = issue
        self.refreshes = 0

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = self.token
        return r

    def refresh(self) -> bool:
        self.refreshes += 1
        self.token = self.issue() if self.issue else "still-bad-token"
        return True


def test_401_mid_scan_refreshes_once_and_retries_that_request(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"auth": "token", "tokens": ["old-token-1"],
                                          "faults": [{"kind": "expire-token", "at": 3}]})
    auth = TokenAuth("old-token-1", sim.issue_token)
    pages, result = scan(sim, auth=auth, allow_anonymous=False)
    assert last_pass_rows(pages) == sim.listing()
    assert auth.refreshes == 1
    # (the last one is the completeness proof's second read)
    assert [r.status for r in sim.repos_requests()] == [200, 200, 401, 200, 200, 200]
    assert result.stats.retries == 0


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_token_that_served_then_expires_again_is_refreshed_again(simulator: Make,
                                                                   concurrency: int) -> None:
    sim = simulator(images=180, scenario={
        "auth": "token", "tokens": ["old-token-1"],
        "faults": [{"kind": "expire-token", "at": 3}, {"kind": "expire-token", "at": 12}]})
    auth = TokenAuth("old-token-1", sim.issue_token)
    pages, result = scan(sim, auth=auth, allow_anonymous=False, page_size=10,
                         concurrency=concurrency)
    assert last_pass_rows(pages) == sim.listing()
    assert result.stats.complete
    assert auth.refreshes == 2
    assert [r.status for r in sim.repos_requests()].count(401) >= 2


def test_401_after_refresh_is_auth_error_without_storm(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"auth": "token", "tokens": ["good-token-1"]})
    auth = TokenAuth("bad-token-1")
    with pytest.raises(AuthError) as info:
        scan(sim, auth=auth, allow_anonymous=False, concurrency=4)
    assert info.value.exit_code == 3
    assert auth.refreshes == 1
    assert len(sim.repos_requests()) == 2
    assert "bad-token" not in str(info.value)


def test_auth_without_refresh_fails_on_first_401(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"auth": "token", "tokens": ["good-token-1"]})

    class Plain(requests.auth.AuthBase):
        def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
            r.headers["X-Auth-Token"] = "wrong-token-9"
            return r

    with pytest.raises(AuthError):
        scan(sim, auth=Plain(), allow_anonymous=False)
    assert len(sim.repos_requests()) == 1


# -- drift and rescans ----------------------------------------------------------------------


@pytest.mark.parametrize("drift", [
    {"kind": "insert_front", "at": 2, "count": 3},
    {"kind": "delete", "at": 2, "count": 2, "where": "front"},
    {"kind": "delete", "at": 3, "count": 1, "where": "end"},
    {"kind": "bump", "at": 2, "count": 5},
    {"kind": "reorder", "at": 2, "count": 4},
])
def test_drift_ends_in_an_exact_copy_of_the_final_listing(
    simulator: Make, drift: dict[str, Any]
) -> None:
    sim = simulator(images=180, scenario={"drift": [drift]})
    pages, result = scan(sim, concurrency=2)
    assert result.stats.complete, result.stats.incomplete_reason
    got = {r["id"]: r for r in last_pass_rows(pages)}
    final = {r["id"]: r for r in sim.listing()}
    assert len(got) == len(last_pass_rows(pages)) == result.stats.total_reported == len(final)
    if drift["kind"] == "bump":
        # Counts are whatever they were when each page was read; the set of images is exact.
        assert got.keys() == final.keys()
        assert all(got[i]["pull_count"] <= final[i]["pull_count"] for i in final)
    else:
        # A reorder inside the part already read changes the order, never the rows.
        assert got == final
    if drift["kind"] in ("insert_front", "delete"):
        assert last_pass_rows(pages) == sim.listing()
        assert result.stats.rescans == 1
        assert {p.pass_no for p in pages} == {0, 1}


def test_duplicate_ids_are_reported_on_the_page(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"drift": [{"kind": "insert_front", "at": 2}]})
    pages, result = scan(sim, max_rescans=0)
    assert [p.duplicate_ids for p in pages][:2] == [(), (pages[0].rows[-1]["id"],)]
    assert not result.stats.complete
    assert result.stats.incomplete_reason == (
        "the listing shifted during the scan: 1 id(s) came back on two pages")


def test_listing_that_never_settles_is_flagged_incomplete(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"drift": [{"kind": "insert_front", "every": 2}]})
    pages, result = scan(sim, max_rescans=2)
    assert not result.stats.complete
    assert result.stats.rescans == 2
    assert {p.pass_no for p in pages} == {0, 1, 2}
    assert result.stats.incomplete_reason is not None
    assert "listing shifted" in result.stats.incomplete_reason or "total changed" in (
        result.stats.incomplete_reason)
    # the last pass ran to the end: every offset up to the final total was asked for
    last = [p for p in pages if p.pass_no == 2]
    assert last[0].offset == 0 and sum(len(p.rows) for p in last) >= 180


# -- the completeness proof -----------------------------------------------------------------


def ids_of(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


def test_rows_replaced_behind_the_scan_are_caught_by_the_second_read(simulator: Make) -> None:
    # Issue 14: after two of four pages, 3 rows already read are deleted and 3 new ones are
    # inserted at the front. The total never moves and the pass counts 180 distinct ids, yet
    # it holds 3 deleted images and misses 3 new ones. The second read sees it: rescan.
    sim = simulator(images=180, scenario={"drift": [
        {"kind": "replace", "at": 3, "count": 3, "position": 10}]})
    pages, result = scan(sim)
    first_pass = [r["id"] for p in pages if p.pass_no == 0 for r in p.rows]
    assert len(set(first_pass)) == len(first_pass) == 180  # the count alone was satisfied
    assert set(first_pass) != set(ids_of(sim.listing()))
    assert result.stats.complete and result.stats.proof == "double-read"
    assert result.stats.rescans == 1
    assert last_pass_rows(pages) == sim.listing()
    one_pass = [(0, 50), (50, 50), (100, 50), (150, 50), (0, 1000)]
    assert offsets(sim) == one_pass + one_pass


def test_without_rescans_left_the_caught_drift_is_incomplete(simulator: Make) -> None:
    sim = simulator(images=180, scenario={"drift": [
        {"kind": "replace", "at": 3, "count": 3, "position": 10}]})
    pages, result = scan(sim, max_rescans=0)
    assert not result.stats.complete and result.stats.proof is None
    assert result.stats.incomplete_reason == (
        "the listing changed during the scan: a second read listed 3 id(s) the scan did not see")
    assert len(sim.repos_requests()) == 5


@pytest.mark.parametrize("drift,rescans", [
    ({"kind": "replace", "count": 2, "position": 60, "to": 120}, 1),  # deleted + inserted inside
    ({"kind": "delete", "count": 1, "where": "end"}, 1),              # the total moves
    ({"kind": "move", "count": 1, "position": 170, "to": 5}, 0),      # the same ids: it stands
])
def test_drift_just_before_the_second_read_is_caught(simulator: Make, drift: dict[str, Any],
                                                     rescans: int) -> None:
    # The latest moment drift can strike: after the last page, before the second read.
    sim = simulator(images=180, scenario={"drift": [{**drift, "at": 5}]})
    pages, result = scan(sim, concurrency=2)
    assert result.stats.complete and result.stats.rescans == rescans
    assert sorted(ids_of(last_pass_rows(pages))) == sorted(ids_of(sim.listing()))
    assert len(sim.repos_requests()) == 5 * (1 + rescans)


def test_one_response_is_its_own_proof(simulator: Make) -> None:
    sim = simulator(images=180)
    pages, result = scan(sim, page_size=1000, verify="full")
    assert result.stats.complete and result.stats.proof == "one-page"
    assert offsets(sim) == [(0, 1000)]
    sim.clear_requests()
    pages, result = scan(sim, namespace="no-such-namespace")  # an empty listing: one answer
    assert pages == [] and result.stats.proof == "one-page" and offsets(sim) == [(0, 50)]


def test_auto_reads_only_the_head_of_a_large_listing_again(simulator: Make) -> None:
    # 2,500 rows at page size 1000: above 2,000 rows auto re-reads the first 1,000 only.
    sim = simulator(images=2500, scenario={"drift": [
        {"kind": "replace", "at": 3, "count": 3, "position": 1500}]})  # new rows at the front
    pages, result = scan(sim, page_size=1000)
    assert result.stats.complete and result.stats.proof == "head"
    assert result.stats.rescans == 1
    assert last_pass_rows(pages) == sim.listing()
    assert offsets(sim) == [(0, 1000), (1000, 1000), (2000, 1000), (0, 1000)] * 2


def test_what_the_head_check_cannot_see_and_ids_can(simulator: Make) -> None:
    # A row replaced inside a page already read, below the first 1,000 rows: the head check
    # cannot see it (docs/how-it-works/extractor.md says so); --verify ids reads everything
    # again and does.
    drift = {"drift": [{"kind": "replace", "at": 3, "count": 3, "position": 1500, "to": 1400}]}
    sim = simulator(images=2500, scenario=drift)
    pages, result = scan(sim, page_size=1000)
    assert result.stats.complete and result.stats.proof == "head"
    assert set(ids_of(last_pass_rows(pages))) != set(ids_of(sim.listing()))
    sim = simulator(images=2500, scenario=drift)
    pages, result = scan(sim, page_size=1000, verify="ids")
    assert result.stats.complete and result.stats.proof == "double-read"
    assert result.stats.rescans == 1
    assert last_pass_rows(pages) == sim.listing()
    # the pass, the second read up to the page that differs, the rescan, its second read
    assert len(sim.repos_requests()) == 3 + 2 + 3 + 3


def test_full_compares_values_and_rescans_when_counts_moved(simulator: Make) -> None:
    # Every count grows after two pages were read: auto proves the ids (the counts of the
    # first two pages are older); full sees the values differ, rescans and loads them exact.
    bump = {"drift": [{"kind": "bump", "at": 3, "count": 0}]}
    sim = simulator(images=180, scenario=bump)
    pages, result = scan(sim)
    assert result.stats.complete and result.stats.rescans == 0
    assert ids_of(last_pass_rows(pages)) == ids_of(sim.listing())
    assert last_pass_rows(pages) != sim.listing()
    sim = simulator(images=180, scenario=bump)
    pages, result = scan(sim, verify="full")
    assert result.stats.complete and result.stats.proof == "full"
    assert result.stats.rescans == 1
    assert last_pass_rows(pages) == sim.listing()


def test_full_on_counts_that_never_settle_is_incomplete(simulator: Make) -> None:
    # Every count grows before every second request: each pass's first page is stale by the
    # time its second read (one request) comes.
    sim = simulator(images=180, scenario={"drift": [{"kind": "bump", "every": 2, "count": 0}]})
    pages, result = scan(sim, verify="full", page_size=100)
    assert not result.stats.complete and result.stats.rescans == 2
    assert result.stats.incomplete_reason == (
        "values changed during the scan: 100 row(s) differ on a second read (--verify full)")
    assert len(sim.repos_requests()) == 3 * 3


def test_an_api_refusing_the_larger_page_is_read_again_at_the_pass_size(
    caplog: pytest.LogCaptureFixture
) -> None:
    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        if limit > 10:
            return 400, {}, json.dumps([{"errorCode": "SVCSTG.SWR.4000056",
                                         "errorMessage": "Invalid page size"}]).encode()
        rows = [{"id": i} for i in range(offset, min(offset + limit, 25))]
        return 200, {"Content-Range": f"{offset}-{len(rows)}/25"}, rows_json(rows)

    caplog.set_level(logging.WARNING, logger="etl.extract")
    pages, result, adapter = scripted(script)
    assert result.stats.complete and result.stats.proof == "double-read"
    assert adapter.sent == [(0, 10), (10, 10), (20, 10), (0, 1000), (0, 10), (10, 10), (20, 10)]
    assert caplog.messages == ["the API refused limit=1000 for the completeness check; reading "
                               "again at limit=10"]


# The property the proof stands on, over random drift schedules on the simulator: whenever a
# scan says complete, what it yielded is exactly the listing at one moment, the one the last
# request of its last pass and the first request of the second read were served from (or the
# single response of a one-page pass); when the second read is one request, that is the
# listing as the scan ended. Counted for the report printed after this module.
PROPERTY: Counter[str] = Counter()
POSITION = st.none() | st.integers(0, 320)
DRIFT_EVENT = st.one_of(
    st.fixed_dictionaries({"kind": st.just("replace"), "count": st.integers(1, 4),
                           "where": st.sampled_from(["random", "front", "end"]),
                           "position": POSITION, "to": st.just(0) | st.integers(0, 320)}),
    st.fixed_dictionaries({"kind": st.just("move"), "count": st.integers(1, 4),
                           "position": POSITION, "to": POSITION}),
    st.fixed_dictionaries({"kind": st.just("reorder"), "count": st.integers(0, 5)}),
    st.fixed_dictionaries({"kind": st.just("bump"), "count": st.integers(0, 5)}),
    st.fixed_dictionaries({"kind": st.sampled_from(["insert_front", "delete"]),
                           "count": st.integers(1, 3)}),
).flatmap(lambda d: (st.integers(1, 8) | st.integers(1, 30)).map(lambda at: {**d, "at": at}))


@pytest.fixture(scope="module")
def drifting(pytestconfig: pytest.Config) -> Iterator[Simulator]:
    with Simulator(images=0, history=True) as sim:
        yield sim
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is not None and PROPERTY:
        with capture.global_and_fixture_disabled():
            print("\ncompleteness property: " + ", ".join(
                f"{k}: {v}" for k, v in sorted(PROPERTY.items())))


@hypothesis_settings(max_examples=300, deadline=None)
@given(images=st.integers(0, 300), seed=st.integers(0, 3), schedule=st.lists(DRIFT_EVENT,
       max_size=6), page_size=st.sampled_from([25, 60, 100, 25, 60, 1000]),
       cap=st.sampled_from([None, None, 40]), concurrency=st.sampled_from([1, 3]),
       verify=st.sampled_from(["auto", "ids", "full"]), max_rescans=st.integers(0, 2))
def test_a_complete_scan_is_the_listing_at_one_moment(
    drifting: Simulator, images: int, seed: int, schedule: list[dict[str, Any]],
    page_size: int, cap: int | None, concurrency: int, verify: str, max_rescans: int
) -> None:
    sim = drifting
    sim.dataset = Dataset(images, seed)
    sim.set_scenario({"drift": schedule, **({"max_page_size": cap} if cap else {})})
    sim.clear_requests()
    pages, result = scan(sim, page_size=page_size, concurrency=concurrency, verify=verify,
                         max_rescans=max_rescans)
    applied = sum(1 for d in schedule if d["at"] <= len(sim.repos_requests()))
    PROPERTY["drift schedules"] += 1
    PROPERTY["drift events applied"] += applied
    stats = result.stats
    if not stats.complete:
        PROPERTY["incomplete (rescans used up)"] += 1
        assert stats.incomplete_reason and stats.proof is None
        assert stats.rescans == max_rescans
        return
    log = sim.repos_requests()
    moment = max(r.n for r in log if r.query["offset"] == "0")
    want = sorted(sim.listing_at(moment), key=lambda r: r["id"])
    got = sorted(last_pass_rows(pages) if pages else [], key=lambda r: r["id"])
    assert ids_of(got) == ids_of(want)  # the same images, each once
    if verify == "full" or stats.proof == "one-page":
        assert got == want  # value for value
    if stats.proof == "one-page":  # the whole last pass was that one response
        assert moment == log[-1].n
    else:
        assert stats.proof == {"full": "full"}.get(verify, "double-read")
    assert stats.proof in PROOFS  # every proof the scan records has its words in the table
    PROPERTY[f"complete, proof {stats.proof}"] += 1
    PROPERTY["complete although drift struck"] += applied > 0
    if moment == log[-1].n:
        assert ids_of(want) == sorted(ids_of(sim.listing()))
        PROPERTY["complete and equal to the final listing"] += 1
    if {r.n for r in log} - {r.n for r in log if r.n <= moment} and sim.listing_at(
            log[-1].n) != sim.listing_at(moment):
        PROPERTY["complete, the listing moved again during a multi-request second read"] += 1


# -- parallel pages and timing --------------------------------------------------------------


def max_overlap(records: list[Any]) -> int:
    events = sorted([(r.started, 1) for r in records] + [(r.finished, -1) for r in records])
    best = cur = 0
    for _, step in events:
        cur += step
        best = max(best, cur)
    return best


def test_concurrency_overlaps_requests(simulator: Make) -> None:
    sim = simulator(images=400, scenario={"latency_ms": 60})
    pages, result = scan(sim, concurrency=4)
    assert last_pass_rows(pages) == sim.listing()
    assert max_overlap(sim.repos_requests()[1:]) >= 3
    assert max_overlap(sim.repos_requests()[:1]) == 1  # the first page alone gives the total


def test_sequential_scan_never_overlaps(simulator: Make) -> None:
    sim = simulator(images=200, scenario={"latency_ms": 10})
    scan(sim, concurrency=1)
    assert max_overlap(sim.repos_requests()) == 1


def test_retry_after_is_respected_in_real_time_by_all_workers(simulator: Make) -> None:
    sim = simulator(images=600, scenario={"latency_ms": 20, "faults": [
        {"kind": "status", "status": 429, "at": 4, "retry_after": "1"}]})
    start = time.monotonic()
    pages, result = scan(sim, concurrency=4, page_size=50)
    elapsed = time.monotonic() - start
    assert last_pass_rows(pages) == sim.listing()
    assert elapsed >= 1.0
    log = sim.repos_requests()
    throttled = next(r for r in log if r.status == 429)
    # (0.2 s of slack for requests that had passed the limiter before the answer arrived)
    later = [r for r in log if r.started > throttled.finished + 0.2]
    assert later, "the scan went on after the 429"
    # Every request sent after the answer arrived waited out the second, whichever worker sent it.
    assert all(r.started >= throttled.finished + 0.99 for r in later)
    assert result.stats.retry_causes == {"http_429": 1}


# -- the package's public names ---------------------------------------------------------------

HEAVY = ("requests", "urllib3", "tenacity", "pandas", "pyarrow", "numpy")


def imported_by(*argv: str) -> set[str]:
    """The modules a fresh interpreter imports to run ``argv`` (from ``-X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_the_public_names_load_on_first_use_from_their_modules() -> None:
    import etl.extract

    assert {m for m in imported_by("-c", "import etl.extract")
            if m.split(".")[0] in HEAVY} == set()
    assert etl.extract.__all__ == sorted([
        "BoundedSession", "DeadlineExceeded", "HttpFailure", "Limits", "Page",
        "RetryBudgetExhausted", "Scan", "ScanStats", "build_auth", "exchange", "make_session",
        "scan_official_images"])
    for name in etl.extract.__all__:
        assert getattr(etl.extract, name).__name__ == name
    assert etl.extract.make_session is make_session and etl.extract.Page is Page
    with pytest.raises(AttributeError, match="No etl.extract attribute PageFetcher"):
        etl.extract.PageFetcher  # noqa: B018 - internal names are not exported


def test_help_imports_neither_the_extractor_nor_its_libraries() -> None:
    imported = imported_by("-m", "etl", "--help")
    assert "etl.cli.app" in imported  # the listing is real
    assert {m for m in imported if m.split(".")[0] in HEAVY
            or m.startswith(("etl.extract", "etl.transform"))} == set()


# -- the session and logging ----------------------------------------------------------------


def test_make_session(tmp_path: Any) -> None:
    plain = make_session(Settings(concurrency=16))
    assert plain.headers["User-Agent"] == f"swr-etl/{__version__}"
    assert plain.verify is True
    adapter = plain.get_adapter("https://swr-api.cn-north-4.myhuaweicloud.com")
    assert adapter._pool_maxsize >= 16  # type: ignore[attr-defined]
    bundle = tmp_path / "ca.pem"
    custom = make_session(Settings(ca_bundle=bundle))
    assert custom.verify == str(bundle)


def test_ca_bundle_setting_beats_the_environment(tmp_path: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "env.pem"))
    bundle = tmp_path / "mine.pem"
    settings = Settings(ca_bundle=bundle)
    url = settings.endpoint + REPOS_PATH
    assert make_session(settings).send_env(url)["verify"] == str(bundle)
    plain = Settings()
    assert make_session(plain).send_env(url)["verify"] == str(tmp_path / "env.pem")


def test_one_debug_line_per_page_and_no_credentials(
    simulator: Make, caplog: pytest.LogCaptureFixture
) -> None:
    token = "s3cr3t-token-value"
    sim = simulator(images=120, scenario={"auth": "token", "tokens": [token]})
    caplog.set_level(logging.DEBUG, logger="etl.extract")
    scan(sim, auth=TokenAuth(token), allow_anonymous=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "etl.extract"]
    page_lines = [m for m in lines if m.startswith("page ")]
    assert page_lines == [
        "page offset=0 limit=50 rows=50 status=200 attempt=1 total=120 bytes="
        + page_lines[0].rsplit("=", 1)[1],
        *page_lines[1:],
    ]
    # the pass's three pages, then the completeness proof's second read in one request
    assert [m.split()[1:3] for m in page_lines] == [
        ["offset=0", "limit=50"], ["offset=50", "limit=50"], ["offset=100", "limit=50"],
        ["offset=0", "limit=1000"]]
    assert all("status=200 attempt=1" in m for m in page_lines)
    assert [m for m in lines if m.startswith("completeness check")] == [
        "completeness check: 1 request(s) at limit=1000: the listing matches the pass"]
    assert not any(token in m for m in lines)
    assert REPOS_PATH == "/v2/manage/dockerhub/repos"


# -- bounded by time --------------------------------------------------------------------------


def test_a_default_scan_rides_out_a_60_s_outage_on_a_fake_clock() -> None:
    # Default settings (no --max-attempts, --retry-window 120): the API answers 503 for the
    # first 60 s of (fake) time, then the listing.
    clock = FakeClock()
    refused: list[float] = []

    def script(n: int, offset: int, limit: int) -> tuple[int, dict[str, str], bytes]:
        if clock.now < 60.0:
            refused.append(clock.now)
            return 503, {}, b'{"error_code": "APIG.0201", "error_msg": "down"}'
        rows = [{"id": i} for i in range(offset, min(offset + limit, 15))]
        return 200, {"Content-Range": f"{offset}-{len(rows)}/15"}, rows_json(rows)

    settings = Settings(endpoint="https://swr.invalid", allow_anonymous=True, page_size=10)
    assert (settings.max_attempts, settings.retry_window) == (None, 120.0)
    session = make_session(settings)
    adapter = ScriptedAdapter(script)
    session.mount("https://", adapter)
    result = scan_official_images(session, settings, sleep=clock.sleep, clock=clock,
                                  rng=random.Random(1))
    pages = list(result)
    assert [r["id"] for p in pages for r in p.rows] == list(range(15))
    assert result.stats.complete and 60.0 <= clock.now <= 120.0
    assert len(refused) > 3 and refused[-1] < 60.0  # down the whole minute, then ridden out
    assert result.stats.retry_causes == {"http_503": len(refused)}


def test_the_run_deadline_ends_a_scan_on_a_fake_clock() -> None:
    from etl.extract.throttle import Deadline, DeadlineExceeded

    clock = FakeClock()
    settings = Settings(endpoint="https://swr.invalid", allow_anonymous=True, page_size=10,
                        deadline=20.0)
    session = make_session(settings, deadline=Deadline(settings.deadline, clock=clock))
    adapter = ScriptedAdapter(lambda n, o, limit: (503, {}, b""))
    session.mount("https://", adapter)
    with pytest.raises(DeadlineExceeded) as info:
        list(scan_official_images(session, settings, sleep=clock.sleep, clock=clock,
                                  rng=random.Random(1)))
    assert clock.now < 20.0 and len(adapter.sent) > 1
    assert str(info.value).startswith(
        "gave up: the run deadline (--deadline 20 s) ran out while the API was failing "
        f"(attempt {len(adapter.sent)}: GET /v2/manage/dockerhub/repos?offset=0&limit=10: "
        "HTTP 503")
