"""The simulated SWR endpoint: paging, shapes, filters, faults, drift, auth, dataset, scenarios."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from etl.errors import ConfigError
from etl.simulator import Dataset, Scenario, Simulator

REPOS = "/v2/manage/dockerhub/repos"
TODAY = date(2026, 11, 27)
FIELDS = {"id", "user", "name", "namespace", "description", "star_count", "pull_count",
          "collection_id", "last_updated", "total_range"}

Make = Callable[..., Simulator]


def get(sim: Simulator, session: requests.Session | None = None, path: str = REPOS,
        **params: Any) -> requests.Response:
    return (session or requests).get(sim.url + path, params=params, timeout=10)


def scan(sim: Simulator, limit: int, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with requests.Session() as s:
        offset = 0
        while True:
            page = get(sim, s, offset=offset, limit=limit, **params).json()
            if not page:
                return rows
            rows += page
            offset += len(page)


# ------------------------------------------------------------------------------ paging & shapes


def test_page_has_every_field_and_offset_count_content_range(simulator: Make) -> None:
    sim = simulator(images=180, seed=42, today=TODAY)
    r = get(sim, offset=10, limit=5)
    assert r.status_code == 200
    assert r.headers["Content-Range"] == "10-5/180"
    assert r.headers["Content-Type"].startswith("application/json")
    assert len(r.headers["X-Request-Id"]) == 32
    rows = r.json()
    assert len(rows) == 5
    assert all(set(row) == FIELDS for row in rows)
    assert all(row["total_range"] == 180 for row in rows)
    expected = sim.listing()[10:15]
    assert [{k: v for k, v in row.items() if k != "total_range"} for row in rows] == expected
    assert rows[0]["last_updated"][10] == " " and len(rows[0]["last_updated"]) == 19


def test_full_scan_equals_listing_and_ids_are_unique(simulator: Make) -> None:
    sim = simulator(images=180, today=TODAY)
    rows = scan(sim, 50)
    assert [r["id"] for r in rows] == [r["id"] for r in sim.listing()]
    assert len({r["id"] for r in rows}) == 180


def test_defaults_offset_0_limit_100(simulator: Make) -> None:
    sim = simulator(images=180)
    r = get(sim)
    assert r.headers["Content-Range"] == "0-100/180"
    assert len(r.json()) == 100


def test_offset_past_end_is_empty_with_sensible_content_range(simulator: Make) -> None:
    sim = simulator(images=30)
    r = get(sim, offset=100, limit=10)
    assert r.status_code == 200
    assert r.json() == []
    assert r.headers["Content-Range"] == "100-0/30"


def test_first_last_and_absent_content_range(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"content_range": "first-last"})
    assert get(sim, offset=10, limit=10).headers["Content-Range"] == "10-19/30"
    assert get(sim, offset=25, limit=10).headers["Content-Range"] == "25-29/30"
    assert get(sim, offset=40, limit=10).headers["Content-Range"] == "*/30"
    sim.set_scenario({"content_range": "none"})
    r = get(sim, offset=0, limit=10)
    assert "Content-Range" not in r.headers
    assert len(r.json()) == 10


def test_server_side_page_cap(simulator: Make) -> None:
    sim = simulator(images=300, scenario={"max_page_size": 40})
    r = get(sim, offset=0, limit=100)
    assert len(r.json()) == 40
    assert r.headers["Content-Range"] == "0-40/300"


@pytest.mark.parametrize("params,code", [
    ({"limit": 1001}, "SVCSTG.SWR.4000056"),
    ({"limit": 0}, "SVCSTG.SWR.4000056"),
    ({"limit": "ten"}, "SVCSTG.SWR.4000014"),
    ({"offset": -1}, "SVCSTG.SWR.4000014"),
    ({"offset": "x"}, "SVCSTG.SWR.4000014"),
])
def test_bad_paging_parameters_are_400(simulator: Make, params: dict[str, Any],
                                       code: str) -> None:
    sim = simulator(images=10)
    r = get(sim, **params)
    assert r.status_code == 400
    body = r.json()
    assert body["errorCode"] == code
    assert body["errorMessage"]
    assert r.headers["X-Request-Id"]


def test_unknown_path_is_404_4040083(simulator: Make) -> None:
    sim = simulator(images=10)
    r = get(sim, path="/v2/manage/nothing")
    assert r.status_code == 404
    assert r.json()["errorCode"] == "SVCSTG.SWR.4040083"
    assert r.headers["X-Request-Id"]


def test_unsupported_method_is_json_with_a_request_id(simulator: Make) -> None:
    sim = simulator(images=5)
    r = requests.request("PATCH", sim.url + REPOS, timeout=10)
    assert r.status_code == 501
    assert r.json() == {"errorCode": "SVCSTG.SWR.5010000",
                        "errorMessage": "Unsupported method ('PATCH')"}
    assert len(r.headers["X-Request-Id"]) == 32


def test_filters_namespace_exact_and_image_name_fuzzy(simulator: Make) -> None:
    sim = simulator(images=180)
    rows = scan(sim, 7, namespace="bitnami")
    assert sorted(r["name"] for r in rows) == ["nginx", "redis"]
    assert {r["total_range"] for r in rows} == {2}
    assert scan(sim, 7, namespace="bitnam") == []
    r = get(sim, image_name="NGI", limit=10)
    assert sorted((x["namespace"], x["name"]) for x in r.json()) == [
        ("bitnami", "nginx"), ("library", "nginx")]
    assert r.headers["Content-Range"] == "0-2/2"
    both = get(sim, image_name="redis", namespace="library").json()
    assert [(x["namespace"], x["name"]) for x in both] == [("library", "redis")]


def test_request_log_masks_secrets(simulator: Make) -> None:
    sim = simulator(images=10)
    requests.get(sim.url + REPOS, params={"offset": 0, "limit": 5}, timeout=10,
                 headers={"X-Auth-Token": "s3cr3t-token", "Authorization": "Bearer abc"})
    get(sim, path="/other")
    log = sim.requests
    assert [(r.seq, r.n, r.method, r.path, r.status) for r in log] == [
        (1, 1, "GET", REPOS, 200), (2, 0, "GET", "/other", 404)]
    assert log[0].query == {"offset": "0", "limit": "5"}
    assert log[0].headers["X-Auth-Token"] == "***"
    assert log[0].headers["Authorization"] == "***"
    assert "s3cr3t" not in repr(log)
    get(sim, offset=0, limit=1, password="pw-123", access_token="tk-456")
    assert sim.requests[-1].query == {"offset": "0", "limit": "1", "password": "***",
                                      "access_token": "***"}
    assert log[0].started <= log[0].finished


def test_timestamp_format_iso(simulator: Make) -> None:
    sim = simulator(images=5, today=TODAY, scenario={"timestamp_format": "iso", "iso_digits": 6})
    swr = Dataset(5, 42, today=TODAY).rows()
    rows = get(sim).json()
    for row, plain in zip(rows, swr, strict=True):
        ts = row["last_updated"]
        assert ts.endswith("Z") and ts[10] == "T" and len(ts) == len("2017-09-11T03:00:02.542841Z")
        assert ts[:19].replace("T", " ") == plain["last_updated"]
    assert [r["last_updated"] for r in rows] == [r["last_updated"] for r in sim.listing()]


def test_body_is_valid_utf8_json_with_awkward_text(simulator: Make) -> None:
    sim = simulator(images=180)
    raw = requests.get(sim.url + REPOS, params={"limit": 180}, timeout=10).content
    rows = json.loads(raw.decode("utf-8"))
    text = "".join(r["description"] for r in rows)
    assert any(ord(c) > 0x4E00 for c in text)  # Chinese
    assert "é" in text and "🐳" in text and '"' in text and "\n" in text and "," in text


def test_ignore_offset_always_serves_the_first_page(simulator: Make) -> None:
    sim = simulator(images=50, scenario={"ignore_offset": True})
    first = get(sim, offset=0, limit=10)
    later = get(sim, offset=20, limit=10)
    assert later.json() == first.json()
    assert later.headers["Content-Range"] == "0-10/50"


# ------------------------------------------------------------------------------------- faults


@pytest.mark.parametrize("shape,expected", [
    ("list", [{"errorCode": "SVCSTG.SWR.4090023", "errorMessage": "system busy"}]),
    ("errors", {"errors": [{"errorCode": "SVCSTG.SWR.4090023", "errorMessage": "system busy"}]}),
    ("top", {"errorCode": "SVCSTG.SWR.4090023", "errorMessage": "system busy"}),
])
def test_status_fault_body_shapes(simulator: Make, shape: str, expected: Any) -> None:
    sim = simulator(images=20, scenario={"faults": [
        {"at": 2, "kind": "status", "status": 409, "code": "SVCSTG.SWR.4090023",
         "shape": shape, "message": "system busy"}]})
    assert get(sim).status_code == 200
    r = get(sim)
    assert r.status_code == 409
    assert r.json() == expected
    assert "Retry-After" not in r.headers
    assert get(sim).status_code == 200  # `at` hits once by default
    assert [rec.faults for rec in sim.requests] == [(), ("status",), ()]


def test_gateway_429_with_retry_after_seconds(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [
        {"at": 1, "kind": "status", "status": 429, "retry_after": 2}]})
    r = get(sim)
    assert r.status_code == 429
    body = r.json()
    assert body["error_code"] == "APIG.0308"  # default code and shape for 429
    assert body["request_id"] == r.headers["X-Request-Id"]
    assert r.headers["Retry-After"] == "2"


def test_retry_after_as_http_date(simulator: Make) -> None:
    from email.utils import parsedate_to_datetime

    sim = simulator(images=20, scenario={"faults": [
        {"at": 1, "kind": "status", "status": 503, "retry_after": "http-date:+30"}]})
    r = get(sim)
    assert r.status_code == 503
    when = parsedate_to_datetime(r.headers["Retry-After"])
    sent = parsedate_to_datetime(r.headers["Date"])
    assert 29 <= (when - sent).total_seconds() <= 31
    assert r.json() == [{"errorCode": "SVCSTG.SWR.5030000",
                         "errorMessage": "simulated fault: HTTP 503"}]


def test_at_with_times_and_every(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [
        {"at": 2, "times": 2, "kind": "status", "status": 500},
        {"every": 3, "kind": "status", "status": 502}]})
    statuses = [get(sim).status_code for _ in range(7)]
    assert statuses == [200, 500, 500, 200, 200, 502, 200]
    assert [r.n for r in sim.requests] == [1, 2, 3, 4, 5, 6, 7]


def test_faults_count_only_repos_requests(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [{"at": 2, "kind": "status", "status": 500}]})
    assert get(sim, path="/elsewhere").status_code == 404
    assert get(sim).status_code == 200
    assert get(sim).status_code == 500


def test_drop_closes_without_a_response(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [{"at": 1, "kind": "drop"}]})
    with requests.Session() as s:
        with pytest.raises(requests.ConnectionError):
            get(sim, s)
        assert get(sim, s).status_code == 200
    assert [(r.n, r.status, r.faults) for r in sim.requests] == [
        (1, None, ("drop",)), (2, 200, ())]


def test_truncate_sends_a_short_body(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [{"at": 1, "kind": "truncate"}]})
    with requests.Session() as s:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            get(sim, s, limit=20)
        full = get(sim, s, limit=20)
    assert full.status_code == 200 and len(full.json()) == 20
    # what actually went over the wire: the promised length, and half of it
    import socket

    sim.set_scenario({"faults": [{"at": 1, "kind": "truncate"}]})
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as conn:
        conn.sendall(f"GET {REPOS}?offset=0&limit=20 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    assert length == len(full.content)
    assert len(body) == length // 2


def test_no_header_fault_omits_content_range_once(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [{"at": 2, "kind": "no-header"}]})
    ranges = [get(sim, limit=5).headers.get("Content-Range") for _ in range(3)]
    assert ranges == ["0-5/20", None, "0-5/20"]


def test_delay_fault_makes_a_client_time_out_then_recovers(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [{"at": 1, "kind": "delay",
                                                     "delay_ms": 1500}]})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.url + REPOS, timeout=0.2)
    assert get(sim).status_code == 200


def test_latency_applies_to_every_request(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"latency_ms": 60})
    get(sim)
    get(sim, path="/x")
    assert all(r.finished - r.started >= 0.06 for r in sim.requests)
    assert len(sim.requests) == 2


def test_expire_token_fault(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"auth": "token",
                                         "faults": [{"at": 2, "kind": "expire-token"}]})
    token = sim.issue_token()
    hdr = {"X-Auth-Token": token}
    assert requests.get(sim.url + REPOS, headers=hdr, timeout=10).status_code == 200
    r = requests.get(sim.url + REPOS, headers=hdr, timeout=10)
    assert r.status_code == 401
    assert r.json()["errorCode"] == "SVCSTG.SWR.4010000"
    assert requests.get(sim.url + REPOS, headers=hdr, timeout=10).status_code == 401
    fresh = {"X-Auth-Token": sim.issue_token()}
    assert requests.get(sim.url + REPOS, headers=fresh, timeout=10).status_code == 200


def test_set_scenario_resets_counters(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [{"at": 2, "kind": "status", "status": 500}]})
    assert [get(sim).status_code for _ in range(3)] == [200, 500, 200]
    sim.set_scenario({"faults": [{"at": 2, "kind": "status", "status": 500}]})
    assert [get(sim).status_code for _ in range(3)] == [200, 500, 200]
    assert [r.n for r in sim.requests] == [1, 2, 3, 1, 2, 3]


# -------------------------------------------------------------------------------------- drift


def ids_of(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


def test_drift_insert_front(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"drift": [{"at": 2, "kind": "insert_front",
                                                    "count": 3}]})
    before = ids_of(sim.listing())
    first = get(sim, limit=10)
    assert ids_of(first.json()) == before[:10]
    second = get(sim, offset=10, limit=10)
    assert second.headers["Content-Range"] == "10-10/33"
    after = ids_of(sim.listing())
    assert len(after) == 33 and after[3:] == before
    assert not set(after[:3]) & set(before)
    # the shift a scanner must notice: page 2 now starts 3 rows earlier in the old order
    assert ids_of(second.json()) == before[7:17]


def test_drift_delete(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"drift": [{"at": 1, "kind": "delete", "count": 2,
                                                    "where": "front"}]})
    before = ids_of(sim.listing())
    r = get(sim, limit=5)
    assert r.headers["Content-Range"] == "0-5/28"
    assert ids_of(r.json()) == before[2:7]
    assert ids_of(sim.listing()) == before[2:]


def test_drift_delete_random_every(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"drift": [{"every": 2, "kind": "delete"}]})
    before = ids_of(sim.listing())
    for _ in range(4):
        get(sim)
    after = ids_of(sim.listing())
    assert len(after) == 28
    assert [i for i in before if i in after] == after  # order kept, two gone


def test_drift_reorder(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"drift": [{"at": 1, "kind": "reorder", "count": 0}]})
    before = ids_of(sim.listing())
    rows = get(sim, limit=30).json()
    assert sorted(ids_of(rows)) == sorted(before)
    assert ids_of(rows) != before
    assert ids_of(rows) == ids_of(sim.listing())


def test_drift_bump(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"drift": [{"at": 2, "kind": "bump", "count": 5}]})
    before = get(sim, limit=30).json()
    after = get(sim, limit=30).json()
    assert ids_of(after) == ids_of(before)
    grew = [(a["pull_count"] - b["pull_count"]) for a, b in zip(after, before, strict=True)]
    assert sum(1 for g in grew if g > 0) == 5
    assert all(g >= 0 for g in grew)


def test_drift_replace_keeps_the_total_front_and_inside(simulator: Make) -> None:
    # The issue's trap: rows already read are deleted and as many new ones appear at the front.
    sim = simulator(images=30, scenario={"drift": [
        {"at": 2, "kind": "replace", "count": 3, "position": 4},
        {"at": 3, "kind": "replace", "count": 2, "where": "end", "to": 12}]})
    before = ids_of(sim.listing())
    assert get(sim, limit=30).headers["Content-Range"] == "0-30/30"
    second = get(sim, limit=30)
    assert second.headers["Content-Range"] == "0-30/30"
    after_first = ids_of(second.json())
    assert after_first[3:] == before[:4] + before[7:]
    assert not set(after_first[:3]) & set(before)
    third = ids_of(get(sim, limit=30).json())
    assert third[:12] + third[14:] == after_first[:28]
    assert not set(third[12:14]) & set(after_first)
    assert third == ids_of(sim.listing())


def test_drift_move_between_pages(simulator: Make) -> None:
    sim = simulator(images=30, scenario={"drift": [
        {"at": 2, "kind": "move", "count": 2, "position": 25, "to": 3}]})
    before = ids_of(sim.listing())
    get(sim)
    rows = ids_of(get(sim, limit=30).json())
    assert rows == before[:3] + before[25:27] + before[3:25] + before[27:]
    random_move = Dataset(30, seed=1)
    start = random_move.ids()
    moved = random_move.move(4)
    assert sorted(random_move.ids()) == sorted(start) and len(moved) == 4
    assert random_move.ids() != start


def test_listing_history_records_what_each_request_was_served_from(simulator: Make) -> None:
    sim = simulator(images=10, history=True, scenario={"drift": [
        {"at": 2, "kind": "replace", "count": 1, "position": 9}]})
    before = ids_of(sim.listing())
    get(sim)
    get(sim)
    get(sim)
    assert ids_of(sim.listing_at(1)) == before
    assert sim.listing_at(2) == sim.listing_at(3) == sim.listing()
    assert ids_of(sim.listing()) != before
    with pytest.raises(ValueError, match="no repos request 4 was served yet"):
        sim.listing_at(4)
    sim.set_scenario({})
    with pytest.raises(ValueError, match="no repos request 1"):
        sim.listing_at(1)
    plain = simulator(images=10)
    with pytest.raises(ValueError, match="needs Simulator\\(history=True\\)"):
        plain.listing_at(1)


def test_outage_for_seconds_on_the_simulator_clock(simulator: Make) -> None:
    # A 60 s outage from request 2 on, driven by advancing the simulator's clock: no sleeping.
    sim = simulator(images=20, scenario={"faults": [
        {"at": 2, "for_s": 60, "kind": "status", "status": 503}]})
    codes = [get(sim).status_code]
    for step in (0, 30, 29.5):
        sim.clock.advance(step)
        codes.append(get(sim).status_code)
    sim.clock.advance(0.6)  # 60.1 s after the outage began
    codes += [get(sim).status_code, get(sim).status_code]
    assert codes == [200, 503, 503, 503, 200, 200]
    assert [r.faults for r in sim.requests] == [(), ("status",), ("status",), ("status",),
                                                (), ()]


def test_outage_from_seconds_and_times(simulator: Make) -> None:
    sim = simulator(images=20, scenario={"faults": [
        {"from_s": 10, "for_s": 5, "kind": "drop"},
        {"from_s": 100, "kind": "status", "status": 502},
        {"from_s": 200, "for_s": 50, "times": 1, "kind": "status", "status": 500}]})
    seen: list[int | None] = []
    with requests.Session() as session:
        for step in (0, 9.5, 0.6, 4.4, 0.6, 84.9, 0, 100, 0):
            sim.clock.advance(step)
            try:
                seen.append(get(sim, session).status_code)
            except requests.ConnectionError:
                seen.append(None)
    # (seconds, plus the little real time the requests take) 0, 9.5 ok; 10.1, 14.5 dropped;
    # 15.1 ok; 100 and 100 -> 502 once; 200 and 200 -> 500 once
    assert seen == [200, 200, None, None, 200, 502, 200, 500, 200]


# --------------------------------------------------------------------------------------- auth


def test_token_mode(simulator: Make) -> None:
    sim = simulator(images=10, scenario={"auth": "token", "tokens": ["static-token-1"]})
    assert get(sim).status_code == 401
    bad = requests.get(sim.url + REPOS, headers={"X-Auth-Token": "nope"}, timeout=10)
    assert bad.status_code == 401
    assert bad.json() == {"errorCode": "SVCSTG.SWR.4010000",
                          "errorMessage": "Authenticate failed: token invalid or expired"}
    for token in ("static-token-1", sim.issue_token()):
        r = requests.get(sim.url + REPOS, headers={"X-Auth-Token": token}, timeout=10)
        assert r.status_code == 200


def iam_body(name: str = "u1", password: str = "p1", domain: str = "d1",
             scope: dict[str, Any] | bool = True) -> dict[str, Any]:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "password": password, "domain": {"name": domain}}}}}
    if scope is not False:
        auth["scope"] = scope if isinstance(scope, dict) else {"project": {"name": "cn-north-4"}}
    return {"auth": auth}


def test_iam_mode_login_token_and_expiry(simulator: Make) -> None:
    sim = simulator(images=10, scenario={"auth": "iam", "token_ttl": 3600, "iam_users": [
        {"domain": "d1", "name": "u1", "password": "p1"}]})
    r = requests.post(sim.url + "/v3/auth/tokens", json=iam_body(), timeout=10)
    assert r.status_code == 201
    token = r.headers["X-Subject-Token"]
    expires = datetime.strptime(r.json()["token"]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    ttl = expires.replace(tzinfo=timezone.utc).timestamp() - sim.clock.now()
    assert 3590 < ttl <= 3600
    ok = requests.get(sim.url + REPOS, headers={"X-Auth-Token": token}, timeout=10)
    assert ok.status_code == 200
    sim.clock.advance(3601)
    late = requests.get(sim.url + REPOS, headers={"X-Auth-Token": token}, timeout=10)
    assert late.status_code == 401
    login = [rec for rec in sim.requests if rec.path == "/v3/auth/tokens"][0]
    assert login.status == 201 and login.n == 0


@pytest.mark.parametrize("body,status", [
    (iam_body(password="wrong"), 401),
    (iam_body(domain="other"), 401),
    (iam_body(scope=False), 400),
    ({"auth": {}}, 400),
])
def test_iam_login_refusals(simulator: Make, body: dict[str, Any], status: int) -> None:
    sim = simulator(images=5, scenario={"auth": "iam", "iam_users": [
        {"domain": "d1", "name": "u1", "password": "p1"}]})
    r = requests.post(sim.url + "/v3/auth/tokens", json=body, timeout=10)
    assert r.status_code == status
    assert "X-Subject-Token" not in r.headers
    assert r.json()["error"]["code"] == status


def test_iam_path_is_404_outside_iam_mode(simulator: Make) -> None:
    sim = simulator(images=5)
    r = requests.post(sim.url + "/v3/auth/tokens", json=iam_body(), timeout=10)
    assert r.status_code == 404


AK, SK = "AKEXAMPLE0001", "SKEXAMPLE0001secret"


def signed_get(sim: Simulator, sk: str = SK, params: dict[str, Any] | None = None,
               when: Any = None, tamper: Callable[[dict[str, str]], None] | None = None,
               ) -> requests.Response:
    """Sign with the vendor's own signer, send exactly what it produced."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    host = f"127.0.0.1:{sim.port}"
    headers: dict[str, str] = {}
    if when is not None:
        headers["X-Sdk-Date"] = when.strftime("%Y%m%dT%H%M%SZ")
    req = SdkRequest(method="GET", schema="http", host=host, resource_path=REPOS,
                     query_params=list((params or {"offset": 0, "limit": 5}).items()),
                     header_params=headers, body="")
    signed = Signer(BasicCredentials(AK, sk)).sign(req)
    out = dict(signed.header_params)
    if tamper:
        tamper(out)
    return requests.get(f"http://{host}{signed.uri}", headers=out, timeout=10)


def test_aksk_accepts_the_vendor_signature(simulator: Make) -> None:
    sim = simulator(images=10, scenario={"auth": "aksk", "aksk": {AK: SK}})
    r = signed_get(sim, params={"offset": 0, "limit": 3, "image_name": "ng x/é"})
    assert r.status_code == 200, r.text
    r = signed_get(sim)
    assert r.status_code == 200 and len(r.json()) == 5
    assert sim.requests[-1].headers["Authorization"] == "***"


def flip(headers: dict[str, str]) -> None:
    sig = headers["Authorization"]
    headers["Authorization"] = sig[:-1] + ("0" if sig[-1] != "0" else "1")


@pytest.mark.parametrize("kind", ["signature", "sk", "date", "no-auth"])
def test_aksk_refuses_bad_signatures(simulator: Make, kind: str) -> None:
    sim = simulator(images=10, scenario={"auth": "aksk", "aksk": {AK: SK}})
    if kind == "signature":
        r = signed_get(sim, tamper=flip)
    elif kind == "sk":
        r = signed_get(sim, sk="other")
    elif kind == "date":
        r = signed_get(sim, when=datetime.now(timezone.utc) - timedelta(minutes=16))
    else:
        r = get(sim)
    assert r.status_code == 401
    body = r.json()
    assert body["error_code"] == "APIG.0301"
    assert body["error_msg"].startswith("Incorrect IAM authentication information")
    assert SK not in r.text


def test_aksk_lockout_after_five_failures(simulator: Make) -> None:
    sim = simulator(images=10, scenario={"auth": "aksk", "aksk": {AK: SK}})
    assert [signed_get(sim, tamper=flip).status_code for _ in range(5)] == [401] * 5
    locked = signed_get(sim)
    assert locked.status_code == 401 and "locked" in locked.json()["error_msg"]
    sim.clock.advance(301)
    ok = signed_get(sim, when=datetime.fromtimestamp(sim.clock.now(), timezone.utc))
    assert ok.status_code == 200


def test_aksk_success_resets_the_failure_count(simulator: Make) -> None:
    sim = simulator(images=10, scenario={"auth": "aksk", "aksk": {AK: SK}})
    for _ in range(4):
        assert signed_get(sim, tamper=flip).status_code == 401
    assert signed_get(sim).status_code == 200
    for _ in range(4):
        assert signed_get(sim, tamper=flip).status_code == 401
    assert signed_get(sim).status_code == 200


# ------------------------------------------------------------------------------------ dataset


def test_dataset_is_deterministic_by_seed() -> None:
    a = Dataset(180, seed=7, today=TODAY).rows()
    assert a == Dataset(180, seed=7, today=TODAY).rows()
    assert a != Dataset(180, seed=8, today=TODAY).rows()


def test_default_dataset_looks_like_the_official_list() -> None:
    rows = Dataset(180, seed=42, today=TODAY).rows()
    assert len(rows) == 180
    names = {r["name"] for r in rows}
    assert {"nginx", "redis", "ubuntu", "mysql", "postgres", "node", "python", "golang",
            "alpine", "busybox", "httpd", "mongo"} <= names
    assert len({r["id"] for r in rows}) == 180
    assert len({(r["namespace"], r["name"]) for r in rows}) == 180
    assert sum(r["namespace"] == "library" for r in rows) > 150
    pulls = sorted(r["pull_count"] for r in rows)
    assert sum(p > 2**31 for p in pulls) >= 2  # billions, beyond int32
    assert pulls[90] < pulls[-1] / 1000  # long tail: the median is tiny next to the top
    assert all(isinstance(r["star_count"], int) and r["star_count"] >= 0 for r in rows)
    assert all(r["last_updated"] < "2026-11-27 00:00:00" for r in rows)


def test_any_size_synthesises_unique_names() -> None:
    ds = Dataset(5000, seed=1, today=TODAY)
    rows = ds.rows()
    assert len(rows) == 5000
    assert len({r["id"] for r in rows}) == 5000
    assert len({(r["namespace"], r["name"]) for r in rows}) == 5000
    page = json.loads(ds.page(4990, 100).body)
    assert [r["id"] for r in page] == [r["id"] for r in rows[4990:]]
    assert Dataset(0).rows() == []


def test_time_travel_is_deterministic_and_realistic() -> None:
    a, b = Dataset(180, seed=5, today=TODAY), Dataset(180, seed=5, today=TODAY)
    reports = []
    for _ in range(30):
        before = {r["id"]: r for r in a.rows()}
        rep = a.advance_day()
        assert rep == b.advance_day()
        reports.append(rep)
        after = {r["id"]: r for r in a.rows()}
        assert set(after) == (set(before) | set(rep.added)) - set(rep.retired)
        for i, row in after.items():
            if i in before and i not in rep.decreased:
                assert row["pull_count"] >= before[i]["pull_count"]
        for i in rep.decreased:
            assert after[i]["pull_count"] < before[i]["pull_count"]
        assert all(r["last_updated"] < f"{rep.today.isoformat()} 00:00:00"
                   for r in after.values())
    assert a.rows() == b.rows()
    assert a.today == date(2026, 12, 27)
    assert any(r.added for r in reports) and any(r.retired for r in reports)
    assert any(r.decreased for r in reports)
    stuck = [i for r in reports for i in r.stuck]
    assert len(stuck) == 1
    final = {r["id"]: r for r in a.rows()}
    assert final[stuck[0]]["pull_count"] == 2_147_483_647
    grew = sum(r["pull_count"] for r in a.rows() if r["id"] in before)
    assert grew > sum(r["pull_count"] for r in Dataset(180, seed=5, today=TODAY).rows()
                      if r["id"] in final)


def test_set_today_keeps_last_updated_ages() -> None:
    ds = Dataset(20, seed=3, today=TODAY)
    before = [r["last_updated"] for r in ds.rows()]
    ds.set_today(date(2026, 11, 30))
    after = [r["last_updated"] for r in ds.rows()]
    fmt = "%Y-%m-%d %H:%M:%S"
    assert all((datetime.strptime(y, fmt) - datetime.strptime(x, fmt)) == timedelta(days=3)
               for x, y in zip(before, after, strict=True))


def test_simulator_serves_time_travelled_data(simulator: Make) -> None:
    sim = simulator(images=40, seed=2, today=TODAY)
    first = get(sim, limit=40).json()
    sim.dataset.advance_day()
    second = get(sim, limit=100).json()
    assert [r for r in second if r["id"] in {x["id"] for x in first}] != first
    assert [{k: v for k, v in r.items() if k != "total_range"} for r in second] == sim.listing()


# ---------------------------------------------------------------------------------- scenarios

SCENARIO = {
    "auth": "token", "tokens": ["t0k3n"], "content_range": "first-last", "max_page_size": 50,
    "latency_ms": 5,
    "faults": [{"at": 3, "kind": "status", "status": 503, "code": "SVCSTG.SWR.5000001",
                "shape": "errors", "retry_after": "http-date:+2"},
               {"every": 5, "times": 2, "kind": "drop"}],
    "drift": [{"at": 2, "kind": "insert_front", "count": 1}],
}

SCENARIO_TOML = '''
auth = "token"
tokens = ["t0k3n"]
content_range = "first-last"
max_page_size = 50
latency_ms = 5

[[faults]]
at = 3
kind = "status"
status = 503
code = "SVCSTG.SWR.5000001"
shape = "errors"
retry_after = "http-date:+2"

[[faults]]
every = 5
times = 2
kind = "drop"

[[drift]]
at = 2
kind = "insert_front"
count = 1
'''


def test_scenario_files_json_and_toml_load_the_same(tmp_path: Any, simulator: Make) -> None:
    (tmp_path / "s.json").write_text(json.dumps(SCENARIO))
    (tmp_path / "s.toml").write_text(SCENARIO_TOML)
    from_json = Scenario.load(tmp_path / "s.json")
    from_toml = Scenario.load(tmp_path / "s.toml")
    assert from_json == from_toml == Scenario.from_dict(SCENARIO)
    assert from_json.faults[1].times == 2 and from_json.faults[0].shape == "errors"
    sim = simulator(images=10, scenario=tmp_path / "s.toml")
    assert sim.scenario == from_toml


@pytest.mark.parametrize("data,needle", [
    ({"auht": "open"}, "unknown key(s) auht"),
    ({"auth": "kerberos"}, "scenario auth must be one of open, token, iam, aksk"),
    ({"faults": [{"kind": "explode", "at": 1}]}, "fault kind must be one of"),
    ({"faults": [{"kind": "drop"}]}, "fault drop: give exactly one of 'at', 'every' or 'from_s'"),
    ({"faults": [{"kind": "drop", "at": 1, "from_s": 2}]}, "give exactly one of 'at', 'every'"),
    ({"faults": [{"kind": "drop", "every": 2, "for_s": 5}]},
     "fault drop: 'for_s' goes with 'at' or 'from_s', not 'every'"),
    ({"faults": [{"kind": "drop", "at": 1, "for_s": 0}]},
     "fault drop: 'for_s' must be a number of seconds > 0, got 0"),
    ({"faults": [{"kind": "drop", "from_s": -1}]},
     "fault drop: 'from_s' must be a number of seconds >= 0, got -1"),
    ({"faults": [{"kind": "drop", "from_s": "soon"}]}, "'from_s' must be a number of seconds"),
    ({"drift": [{"kind": "bump"}]}, "drift bump: give exactly one of 'at' or 'every'"),
    ({"drift": [{"kind": "move", "at": 1, "to": -3}]},
     "drift move: 'to' must be an integer >= 0, got -3"),
    ({"drift": [{"kind": "replace", "at": 1, "position": 1.5}]},
     "drift replace: 'position' must be an integer >= 0, got 1.5"),
    ({"drift": [{"kind": "bump", "at": 0}]}, "'at' must be an integer >= 1"),
    ({"content_range": "bytes"}, "scenario content_range must be one of"),
])
def test_bad_scenarios_are_config_errors(data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Scenario.from_dict(data)
    assert needle in str(exc.value)
    assert exc.value.exit_code == 2


def test_unreadable_scenario_file(tmp_path: Any) -> None:
    (tmp_path / "bad.toml").write_text("auth = ")
    with pytest.raises(ConfigError, match="is not valid"):
        Scenario.load(tmp_path / "bad.toml")


# ---------------------------------------------------------------------------------- the command


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_simulate_command_serves_until_interrupted(tmp_path: Any, signame: str) -> None:
    import signal
    import subprocess
    import sys

    (tmp_path / "s.json").write_text(json.dumps({"content_range": "first-last"}))
    proc = subprocess.Popen([sys.executable, "-m", "etl", "simulate", "--port", "0",
                             "--images", "12", "--scenario", str(tmp_path / "s.json")],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("swr-etl simulator: 12 images (seed 42) at http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        r = requests.get(url + REPOS, params={"offset": 0, "limit": 5}, timeout=10)
        assert r.headers["Content-Range"] == "0-4/12"
        proc.send_signal(getattr(signal, signame))
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "swr-etl simulator: stopped" in err
    assert "Traceback" not in err


def test_simulate_command_usage_errors_exit_2(tmp_path: Any, simulator: Make) -> None:
    import subprocess
    import sys

    busy = simulator(images=1)
    (tmp_path / "bad.json").write_text('{"auth": "kerberos"}')
    for args, message in [
        (["--port", str(busy.port)],
         f"swr-etl: error: simulator cannot listen on 127.0.0.1:{busy.port}: "
         "Address already in use"),
        (["--scenario", str(tmp_path / "bad.json")],
         "swr-etl: error: scenario auth must be one of open, token, iam, aksk, not 'kerberos'"),
    ]:
        out = subprocess.run([sys.executable, "-m", "etl", "simulate", *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        assert out.stderr.strip() == message


def test_concurrent_clients_get_consistent_pages_and_numbering(simulator: Make) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sim = simulator(images=500)
    expected = sim.listing()

    def fetch(offset: int) -> list[int]:
        with requests.Session() as s:
            return ids_of(get(sim, s, offset=offset, limit=50).json())

    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(fetch, range(0, 500, 50)))
    assert [i for page in pages for i in page] == ids_of(expected)
    assert sorted(r.n for r in sim.requests) == list(range(1, 11))
