"""Sources: --region lists and all, repeated --endpoint, [[sources]] tables with their own
credentials named by environment variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from etl.config import Settings, build_settings
from etl.config.file import load_config_file
from etl.config.regions import KNOWN_REGIONS
from etl.errors import AuthError, ConfigError
from etl.run.pipeline import run_sync
from etl.run.sources import run_exit_code
from tests.helpers import FakeScan, q, rows


def names(settings: Settings) -> list[tuple[str, str]]:
    return [(s.name, s.endpoint) for s in settings.source_list()]


def test_one_region_is_one_source_as_before() -> None:
    s = Settings()
    assert s.endpoint == "https://swr-api.cn-north-4.myhuaweicloud.com"
    assert names(s) == [("cn-north-4", "https://swr-api.cn-north-4.myhuaweicloud.com")]
    assert s.for_source(s.source_list()[0]) == s.replace(sources=s.source_list())


def test_a_region_list_is_a_source_per_region_in_order() -> None:
    s = build_settings({"region": "cn-north-4, eu-west-101,cn-north-4"}, {})
    assert s.region == "cn-north-4,eu-west-101"
    assert names(s) == [("cn-north-4", "https://swr-api.cn-north-4.myhuaweicloud.com"),
                        ("eu-west-101", "https://swr-api.eu-west-101.myhuaweicloud.eu")]
    one = s.for_source(s.source_list()[1])
    assert (one.region, one.endpoint) == (
        "eu-west-101", "https://swr-api.eu-west-101.myhuaweicloud.eu")


def test_all_is_every_known_region() -> None:
    s = build_settings({}, {"SWR_REGION": "all"})
    assert s.region == "all"
    assert [n for n, _ in names(s)] == list(KNOWN_REGIONS)
    assert len(KNOWN_REGIONS) == 27 and "eu-west-101" in KNOWN_REGIONS


@pytest.mark.parametrize("flags, env", [
    ({"endpoint": ("http://127.0.0.1:1", "http://127.0.0.1:2/")}, {}),
    ({}, {"SWR_ENDPOINT": "http://127.0.0.1:1, http://127.0.0.1:2"}),
])
def test_several_endpoints_are_sources_named_host_port(flags: dict[str, object],
                                                        env: dict[str, str]) -> None:
    s = build_settings(flags, env)
    assert names(s) == [("127.0.0.1:1", "http://127.0.0.1:1"),
                        ("127.0.0.1:2", "http://127.0.0.1:2")]
    assert {x.region for x in s.source_list()} == {"cn-north-4"}


@pytest.mark.parametrize("values, message", [
    ({"region": " , "}, "region must be region names separated by commas, or all; got ' , '"),
    ({"region": "CN north"}, "region must be region names separated by commas, or all"),
    ({"endpoint": "http://127.0.0.1:1,ftp://x"}, "endpoint"),
])
def test_bad_source_options_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_settings(values, {})
    assert message in str(err.value)


SOURCES_TOML = """
region = "cn-north-4"

[[sources]]
name = "europe"
region = "eu-west-101"
ak_env = "EU_AK"
sk_env = "EU_SK"

[[sources]]
endpoint = "http://127.0.0.1:8080"
token_env = "LAB_TOKEN"

[[sources]]
region = "ap-southeast-1"
"""


def config(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    os.chmod(path, 0o644)  # names of variables are no secrets: the file may be readable
    return load_config_file(path)


def test_sources_tables_with_their_own_credentials(tmp_path: Path) -> None:
    env = {"EU_AK": "ak-eu", "EU_SK": "sk-eu", "LAB_TOKEN": "tok-lab",
           "SWR_AUTH_TOKEN": "tok-default"}
    s = build_settings({}, env, config(tmp_path, SOURCES_TOML), need_credentials=True)
    assert names(s) == [("europe", "https://swr-api.eu-west-101.myhuaweicloud.eu"),
                        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
                        ("ap-southeast-1", "https://swr-api.ap-southeast-1.myhuaweicloud.com")]
    creds = [s.for_source(x).credentials for x in s.source_list()]
    assert [(c.kind, c.ak, c.token) for c in creds] == [
        ("aksk", "ak-eu", None), ("token", None, "tok-lab"), ("token", None, "tok-default")]
    assert [s.for_source(x).region for x in s.source_list()] == [
        "eu-west-101", "cn-north-4", "ap-southeast-1"]
    # a source's repr says which kind of credentials, never a secret
    assert "ak-eu" not in repr(s.source_list()) and "credentials=aksk" in repr(s.source_list())


@pytest.mark.parametrize("text, env, message", [
    ('[[sources]]\nregion = "eu-west-101"\nak_env = "EU_AK"\nsk_env = "EU_SK"\n',
     {"EU_AK": "a"}, "source eu-west-101: sk_env names EU_SK, which is not set"),
    ('[[sources]]\nregion = "eu-west-101"\nak_env = "EU_AK"\n', {"EU_AK": "a"},
     "source eu-west-101: HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK must be set together"),
    ('[[sources]]\nname = "x"\n', {}, "[[sources]] table 1: give region or endpoint"),
    ('[[sources]]\nregion = "a-b-1"\nendpoint = "http://127.0.0.1:1"\n', {},
     "[[sources]] table 1: give region or endpoint (one of them)"),
    ('[[sources]]\nregion = "a-b-1"\ntoken = "s3cret"\n', {}, "unknown key token"),
    ('[[sources]]\nregion = "a-b-1"\n[[sources]]\nregion = "a-b-1"\n', {},
     "source a-b-1 is given twice"),
])
def test_bad_sources_tables(tmp_path: Path, text: str, env: dict[str, str],
                            message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_settings({}, env, config(tmp_path, text))
    assert message in str(err.value)
    assert "s3cret" not in str(err.value)


def test_sources_without_own_credentials_need_the_default_ones(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[[sources]]\nregion = "eu-west-101"\ntoken_env = "EU_TOKEN"\n'
                           '[[sources]]\nregion = "ap-southeast-1"\n')
    with pytest.raises(ConfigError, match="no credentials"):
        build_settings({}, {"EU_TOKEN": "t"}, cfg, need_credentials=True)
    only_own = config(tmp_path, '[[sources]]\nregion = "eu-west-101"\ntoken_env = "EU_TOKEN"\n')
    s = build_settings({}, {"EU_TOKEN": "t"}, only_own, need_credentials=True)
    assert s.for_source(s.source_list()[0]).credentials.token == "t"


# ------------------------------------------------------------------ one run, several sources

T0 = "2026-11-20T03:00:00Z"
T1 = "2026-11-21T03:00:00Z"


@pytest.fixture()
def two(tmp_path: Path) -> Settings:
    return Settings(region="cn-north-4,eu-west-101", db=tmp_path / "swr.db", allow_anonymous=True)


def test_two_sources_are_one_run_each_with_its_own_rows(two: Settings) -> None:
    result = run_sync(two, now=T0, pages={"cn-north-4": FakeScan(rows(range(1, 4))),
                                          "eu-west-101": FakeScan(rows(range(2, 6), pulls=7))})
    assert (result.status, result.exit_code, result.rows, result.new) == ("success", 0, 7, 7)
    assert [(r.source, r.status, r.rows) for r in result.sources] == [
        ("cn-north-4", "success", 3), ("eu-west-101", "success", 4)]
    assert q(two.db, "SELECT run_id, status, exit_code, rows_loaded, endpoint FROM runs") == [
        (1, "success", 0, 7, two.endpoint)]
    assert q(two.db, "SELECT run_id, source, status, exit_code, rows_loaded, rows_new, endpoint"
                     " FROM run_sources ORDER BY source") == [
        (1, "cn-north-4", "success", 0, 3, 3, "https://swr-api.cn-north-4.myhuaweicloud.com"),
        (1, "eu-west-101", "success", 0, 4, 4, "https://swr-api.eu-west-101.myhuaweicloud.eu")]
    # the same id in two regions is two images, each with its own count
    assert q(two.db, "SELECT source, id, pull_count FROM images WHERE id IN (2, 3)"
                     " ORDER BY source, id") == [
        ("cn-north-4", 2, 102), ("cn-north-4", 3, 103), ("eu-west-101", 2, 9),
        ("eu-west-101", 3, 10)]
    assert q(two.db, "SELECT source, COUNT(*) FROM image_snapshots GROUP BY source") == [
        ("cn-north-4", 3), ("eu-west-101", 4)]
    assert q(two.db, "SELECT source, COUNT(*) FROM raw_pages GROUP BY source") == [
        ("cn-north-4", 1), ("eu-west-101", 1)]


def test_a_failing_source_keeps_its_state_while_the_others_load(two: Settings) -> None:
    run_sync(two, now=T0, pages={"cn-north-4": FakeScan(rows(range(1, 4))),
                                 "eu-west-101": FakeScan(rows(range(1, 4)))})
    before = q(two.db, "SELECT * FROM images WHERE source = 'eu-west-101' ORDER BY id")
    result = run_sync(two, now=T1, pages={
        "cn-north-4": FakeScan(rows(range(2, 5), pulls=500)),
        "eu-west-101": FakeScan(rows(range(1, 300), pulls=900), fail_at_page=1)})
    assert (result.status, result.exit_code) == ("partial", 4)
    assert [(r.source, r.exit_code) for r in result.sources] == [
        ("cn-north-4", 0), ("eu-west-101", 4)]
    assert q(two.db, "SELECT * FROM images WHERE source = 'eu-west-101' ORDER BY id") == before
    # the region that loaded: its own removal rule (1 is gone there), new counts
    assert q(two.db, "SELECT id, pull_count, removed_at FROM images WHERE source = 'cn-north-4'"
                     " ORDER BY id") == [(1, 101, T1), (2, 502, None), (3, 503, None),
                                         (4, 504, None)]
    assert q(two.db, "SELECT source, status, exit_code, error, rows_loaded FROM run_sources"
                     " WHERE run_id = 2 ORDER BY source") == [
        ("cn-north-4", "success", 0, None, 3),
        ("eu-west-101", "failed", 4,
         "GET /v2/manage/dockerhub/repos: HTTP 503 after 5 attempts", 0)]
    assert q(two.db, "SELECT status, exit_code, error, rows_loaded FROM runs WHERE run_id = 2"
                     ) == [("partial", 4, "eu-west-101: GET /v2/manage/dockerhub/repos: HTTP 503"
                                          " after 5 attempts", 3)]
    # the views count each region by its own status: eu-west-101 has no second date
    assert q(two.db, "SELECT source, COUNT(*) FROM daily_pulls GROUP BY source") == [
        ("cn-north-4", 6), ("eu-west-101", 3)]


@pytest.mark.parametrize("codes, code", [
    ((0, 0, 0), 0), ((6, 4), 4), ((6, 7, 4), 7), ((4, 3, 7, 6), 3), ((6, 0), 6),
    ((1, 6), 6), ((5, 1), 1)])
def test_the_run_exit_code_is_the_highest_priority_failure(codes: tuple[int, ...],
                                                          code: int) -> None:
    assert run_exit_code(codes) == code


def test_exit_code_priority_through_a_run(tmp_path: Path) -> None:
    s = Settings(region="a-one-1,b-two-1,c-three-1", db=tmp_path / "swr.db",
                 allow_anonymous=True)
    result = run_sync(s, now=T0, pages={
        "a-one-1": FakeScan(rows(range(1, 4)), complete=False),             # 6
        "b-two-1": FakeScan(rows(range(1, 4)), fail=AuthError("HTTP 401")),  # 3
        "c-three-1": FakeScan(rows(range(1, 300)), fail_at_page=2)})         # 4
    assert (result.status, result.exit_code) == ("partial", 3)
    assert q(s.db, "SELECT source, status, exit_code FROM run_sources ORDER BY source") == [
        ("a-one-1", "partial", 6), ("b-two-1", "failed", 3), ("c-three-1", "failed", 4)]
    assert "1 of 3 sources loaded" not in result.summary_line()
    assert "0 of 3 sources loaded; failed: a-one-1: " in result.summary_line()


def test_every_source_failing_is_a_failed_run(two: Settings) -> None:
    result = run_sync(two, now=T0, pages={
        "cn-north-4": FakeScan(rows(range(1, 4)), fail=AuthError("HTTP 401")),
        "eu-west-101": FakeScan(rows(range(1, 4)), fail=AuthError("HTTP 403"))})
    assert (result.status, result.exit_code, result.rows) == ("failed", 3, 0)
    assert q(two.db, "SELECT COUNT(*) FROM images") == [(0,)]
    assert q(two.db, "SELECT status, exit_code FROM runs") == [("failed", 3)]


def test_a_dry_run_of_several_sources_writes_nothing(two: Settings) -> None:
    result = run_sync(two.replace(dry_run=True), now=T0, pages={
        "cn-north-4": FakeScan(rows(range(1, 4))),
        "eu-west-101": FakeScan(rows(range(1, 6)), complete=False)})
    assert (result.dry_run, result.run_id, result.rows, result.exit_code) == (True, None, 8, 6)
    assert [(r.source, r.rows, r.exit_code) for r in result.sources] == [
        ("cn-north-4", 3, 0), ("eu-west-101", 5, 6)]
    assert not two.db.exists()
