"""Replay the recorded cassettes (``record_mode="none"``): request and response shapes.

The cassettes were recorded from the simulator by ``tests/record_cassettes.py``; its port changed
on every run, so requests are matched on method, path and query only (``swr_request``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import vcr
import yaml

from etl.config.settings import Settings
from etl.errors import AuthError, BadRequestError, EtlError, NotFoundError
from etl.extract.scan import Page, Scan, make_session, scan_official_images
from tests.record_cassettes import CASES, FILTERED_HEADERS, NAMESPACE, RECORDING_TOKEN

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
# Replayed against a real-looking endpoint: the matcher ignores scheme, host and port.
ENDPOINT = "https://swr-api.cn-north-4.myhuaweicloud.com"


def swr_request(r1: Any, r2: Any) -> None:
    """vcrpy matcher: same method, path and query (any host/port); raises AssertionError if not."""
    assert r1.method == r2.method, f"{r1.method} != {r2.method}"
    assert r1.path == r2.path, f"{r1.path} != {r2.path}"
    assert sorted(r1.query) == sorted(r2.query), f"{r1.query} != {r2.query}"


def player() -> vcr.VCR:
    my = vcr.VCR(cassette_library_dir=str(CASSETTES), record_mode="none",
                 match_on=["swr_request"], filter_headers=FILTERED_HEADERS)
    my.register_matcher("swr_request", swr_request)
    return my


def replay(name: str, **kw: Any) -> tuple[list[Page], Scan, Any]:
    settings = Settings(endpoint=ENDPOINT, page_size=50, concurrency=1, max_attempts=1, **kw)
    session = make_session(settings)
    with player().use_cassette(f"{name}.yaml", allow_playback_repeats=False) as cassette:
        result = scan_official_images(session, settings)
        pages = list(result)
    return pages, result, cassette


def test_every_case_has_a_cassette() -> None:
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == sorted(CASES)


def test_multi_page_scan_replays_the_recorded_shape() -> None:
    pages, result, cassette = replay("multi_page_scan")
    assert [(p.offset, len(p.rows), p.content_range) for p in pages] == [
        (0, 50, "0-50/120"), (50, 50, "50-50/120"), (100, 20, "100-20/120")]
    # three pages, then the completeness proof's second read (the whole listing, limit=1000)
    assert cassette.play_count == 4 and cassette.all_played
    assert dict(cassette.requests[-1].query) == {"offset": "0", "limit": "1000"}
    assert result.stats.proof == "double-read"
    assert result.stats.complete and result.stats.total_reported == 120
    ids = [r["id"] for p in pages for r in p.rows]
    assert len(set(ids)) == 120
    assert set(pages[0].rows[0]) == {"id", "user", "name", "namespace", "description",
                                     "star_count", "pull_count", "collection_id",
                                     "last_updated", "total_range"}
    assert all(r["total_range"] == 120 for p in pages for r in p.rows)


def test_filtered_scan_sends_the_namespace() -> None:
    pages, result, cassette = replay("filtered_scan", namespace=NAMESPACE)
    assert cassette.all_played
    assert all(r["namespace"] == NAMESPACE for p in pages for r in p.rows)
    sent = [dict(req.query) for req in cassette.requests]
    assert sent[0] == {"namespace": NAMESPACE, "offset": "0", "limit": "50"}
    total = result.stats.total_reported
    assert total is not None and sum(len(p.rows) for p in pages) == total > 50
    assert result.stats.complete


def test_a_filter_not_recorded_does_not_match() -> None:
    with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
        replay("filtered_scan", namespace="someone-else")


@pytest.mark.parametrize("name,exc,code,message", [
    ("error_list_400", BadRequestError, "SVCSTG.SWR.4000014", "Invalid parameter"),
    ("error_errors_401", AuthError, "SVCSTG.SWR.4010000", "Authentication failed"),
    ("error_top_404", NotFoundError, "SVCSTG.SWR.4040083", "The URL does not exist"),
    ("error_apig_403", AuthError, "APIG.0302", "The IAM user is forbidden"),
])
def test_each_error_body_shape_is_read(
    name: str, exc: type[EtlError], code: str, message: str
) -> None:
    recorded = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text(encoding="utf-8"))
    rid = recorded["interactions"][0]["response"]["headers"]["X-Request-Id"][0]
    with pytest.raises(exc) as info:
        replay(name)
    assert type(info.value) is exc
    assert f'{code} "{message}" (X-Request-Id {rid})' in str(info.value)
    assert "/v2/manage/dockerhub/repos?offset=0&limit=50" in str(info.value)


def test_no_cassette_contains_a_credential() -> None:
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert RECORDING_TOKEN not in text, path.name
        assert not re.search(r"(?i)x-auth-token|authorization|x-subject-token|x-sdk-date", text)
        data = yaml.safe_load(text)
        for interaction in data["interactions"]:
            headers = {k.lower() for k in interaction["request"]["headers"]}
            assert headers <= {"accept", "accept-encoding", "connection", "user-agent"}, path.name
