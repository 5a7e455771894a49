"""The simulated SWR endpoint: paging, shapes, filters, faults, drift, auth, dataset, scenarios."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
import requests

from etl.simulator import Dataset, Simulator

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
