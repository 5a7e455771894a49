"""Hostile servers, one loopback stub per case: redirects, floods, drips, storms, absurd totals.

Every case runs a whole ``swr-etl sync`` (in-process, ``etl.cli.app.main``) into a database that
holds
a previous good run, with small bounds so it ends in seconds, and checks: the exit code, the one
line on stderr, that no credential reached any other host, and that ``images`` and
``image_snapshots`` are exactly as before while the run is recorded ``failed`` with that line.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import socket
import sqlite3
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from etl.config.settings import Settings
from etl.extract import failures, transport
from etl.extract.session import BoundedSession, Limits
from etl.run.healthcheck import Healthcheck
from etl.run.hooks import run_observed
from etl.run.pipeline import run_sync
from tests.helpers import (
    ROWS,
    Behaviour,
    Seen,
    Stub,
    StubHandler,
    answer,
    cli,
    listing,
    q,
)

TOKEN = "TOKEN-HOSTILE-0123456789"
AK, SK = "AKHOSTILE0000001", "SKHOSTILE0000001secret"
PASSWORD = "PW-HOSTILE-0123456789"
ISSUED = "ISSUED-IAM-TOKEN-0123456789"  # what the IAM stub hands out
SECRETS = (TOKEN, AK, SK, PASSWORD, ISSUED)
REPOS = "/v2/manage/dockerhub/repos"


# ------------------------------------------------------------------------------- stub servers


def iam_ok(h: StubHandler, seen: Seen) -> None:
    answer(h, 201, json.dumps({"token": {"expires_at": "2099-01-01T00:00:00.000000Z"}}).encode(),
           (("X-Subject-Token", ISSUED), ("Content-Type", "application/json")))


def redirect(status: int, location: str) -> Behaviour:
    def behave(h: StubHandler, seen: Seen) -> None:
        answer(h, status, b"", (("Location", location),))

    return behave


def drip(headers_first: bool) -> Behaviour:
    """One byte per second: of the body after quick headers, or of the status line itself."""

    def behave(h: StubHandler, seen: Seen) -> None:
        if headers_first:
            h.send_response(200)
            h.send_header("Content-Length", "100000")
            h.end_headers()
            h.wfile.flush()
            data = b"[" + b" " * 99_999
        else:
            data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"
        for byte in data:
            if h.server.closing.wait(1.0):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()

    return behave


# ----------------------------------------------------------------------------- running syncs


CREDENTIALS: dict[str, dict[str, str]] = {
    "token": {"SWR_AUTH_TOKEN": TOKEN},
    "aksk": {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK},
    "iam": {"HUAWEICLOUD_USERNAME": "etl-reader", "HUAWEICLOUD_PASSWORD": PASSWORD,
            "HUAWEICLOUD_DOMAIN_NAME": "acme"},
}


def sync(capsys: pytest.CaptureFixture[str], endpoint: str, db: Path, *args: str,
         quiet: bool = True) -> tuple[int, str]:
    """Run ``swr-etl sync``; return the exit code and everything written to stderr."""
    code, _, err = cli(["sync", *(["-q"] if quiet else []), "--endpoint", endpoint, "--db",
                        str(db), *args], capsys)
    assert "Traceback" not in err, err
    return code, err


def last_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


def state(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {"images": q(db, "SELECT * FROM images ORDER BY id"),
            "snapshots": q(db, "SELECT * FROM image_snapshots ORDER BY run_id, image_id")}


def last_run(db: Path) -> tuple[Any, ...]:
    return q(db, "SELECT status, error, total_reported FROM runs ORDER BY run_id DESC LIMIT 1")[0]


@dataclass
class Harness:
    """One case: stub servers, a database holding a previous good run, the environment, the CLI."""

    stub: Callable[..., Stub]
    env: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    tmp_path: Path
    db: Path
    before: dict[str, Any]

    def sync(self, endpoint: str, *args: str, quiet: bool = True) -> tuple[int, str]:
        return sync(self.capsys, endpoint, self.db, *args, quiet=quiet)

    def credentials(self, kind: str, iam: Stub | None = None) -> None:
        for name, value in CREDENTIALS[kind].items():
            self.env.setenv(name, value)
        if iam is not None:
            self.env.setenv("HUAWEICLOUD_IAM_ENDPOINT", iam.url)

    def refused(self, code: int, err: str, want_code: int, message: str) -> None:
        """Exit code and the one line as given; nothing loaded; the run recorded failed."""
        assert code == want_code, err
        assert last_line(err) == f"swr-etl: error: {message}"
        assert state(self.db) == self.before
        status, error, _ = last_run(self.db)
        assert (status, error) == ("failed", message)


@pytest.fixture
def hx(stubs: Callable[..., Stub], tmp_path: Path, clean_env: pytest.MonkeyPatch,
       capsys: pytest.CaptureFixture[str]) -> Harness:
    db = tmp_path / "swr.db"
    good = stubs(listing())
    code, err = sync(capsys, good.url, db, "--no-auth")
    assert (code, err) == (0, "")
    before = state(db)
    assert [row[0] for row in before["images"]] == [11, 12]
    return Harness(stubs, clean_env, capsys, tmp_path, db, before)


def assert_no_secret(*servers: Stub) -> None:
    """No credential (nor netrc's) reached these servers in any header, target or body."""
    for server in servers:
        for seen in server.seen:
            blob = json.dumps(seen.headers) + seen.target + seen.body.decode("latin-1")
            for value in SECRETS:
                assert value not in blob, (server.url, seen)
            assert "Authorization" not in seen.headers and "X-Auth-Token" not in seen.headers


# ----------------------------------------------------------------------------------- redirects

LOCATION_QUERY = "stolen=LOCATION-QUERY-MARK"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("creds", ["token", "aksk", "iam"])
def test_swr_redirect_to_another_server_is_not_followed(hx: Harness, creds: str,
                                                         status: int) -> None:
    other = hx.stub(listing([{**ROWS[0], "id": 666, "name": "evil"}]))
    swr = hx.stub(redirect(status, f"{other.url}{REPOS}?{LOCATION_QUERY}"))
    iam = hx.stub(iam_ok)
    hx.credentials(creds, iam)
    code, err = hx.sync(swr.url)
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: HTTP {status} redirect to another server "
               f"(127.0.0.1:{other.port}) not followed: credentials are sent only to the "
               "configured endpoint")
    assert "LOCATION-QUERY-MARK" not in err
    assert other.seen == []  # nothing at all went there
    assert len(swr.seen) == 1  # final: not retried
    sent = swr.seen[0].headers
    assert {"token": "X-Auth-Token", "iam": "X-Auth-Token", "aksk": "Authorization"}[creds] in sent
    assert len(iam.seen) == (1 if creds == "iam" else 0)


@pytest.mark.parametrize("creds", ["token", "aksk", "iam"])
def test_https_to_http_redirect_is_never_followed(
        hx: Harness, cert: tuple[Path, Path], creds: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    plain = hx.stub(listing())
    secure = hx.stub(redirect(302, f"{plain.url}{REPOS}?{LOCATION_QUERY}"), context=ctx)
    hx.credentials(creds, hx.stub(iam_ok))
    code, err = hx.sync(secure.url, "--ca-bundle", str(cert[0]))
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: HTTP 302 redirect from https to http:// "
               f"(127.0.0.1:{plain.port}) not followed: credentials are never sent "
               "unencrypted")
    assert plain.seen == []
    sent = secure.seen[0].headers  # the credentials went to the configured endpoint only
    assert {"token": sent.get("X-Auth-Token") == TOKEN, "iam": sent.get("X-Auth-Token") == ISSUED,
            "aksk": sent.get("Authorization", "").startswith("SDK-HMAC-SHA256")}[creds]


def test_same_origin_redirect_is_followed_and_signed_again(hx: Harness) -> None:
    serve = listing()

    def moved(h: StubHandler, seen: Seen) -> None:
        if seen.target.startswith("/moved"):
            serve(h, seen)
        else:
            answer(h, 307, b"", (("Location", "/moved" + seen.target),))

    swr = hx.stub(moved)
    hx.env.setenv("HUAWEICLOUD_SDK_AK", AK)
    hx.env.setenv("HUAWEICLOUD_SDK_SK", SK)
    code, err = hx.sync(swr.url)
    assert (code, err) == (0, "")
    assert [s.target.split("?")[0] for s in swr.seen] == [REPOS, "/moved" + REPOS]
    # the hop carries its own signature (the signed path changed), not a copy of the first one
    first, second = (s.headers["Authorization"] for s in swr.seen)
    assert first != second and second.startswith(f"SDK-HMAC-SHA256 Access={AK}")
    assert last_run(hx.db)[:2] == ("success", None)


def test_a_redirect_with_an_endless_body_is_refused_without_reading_it(hx: Harness) -> None:
    other = hx.stub(listing())

    def flood(h: StubHandler, seen: Seen) -> None:
        answer(h, 302, b"", (("Location", f"{other.url}{REPOS}"),
                             ("Transfer-Encoding", "chunked")))
        while not h.server.closing.is_set():
            h.wfile.write(b"10000\r\n" + b"x" * 65536 + b"\r\n")

    swr = hx.stub(flood)
    code, err = hx.sync(swr.url, "--no-auth", "--timeout", "5")
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: HTTP 302 redirect to another server "
               f"(127.0.0.1:{other.port}) not followed: credentials are sent only to the "
               "configured endpoint")
    assert other.seen == []


def test_a_same_origin_redirect_loop_ends(hx: Harness) -> None:
    swr = hx.stub(lambda h, seen: answer(h, 302, b"", (("Location", seen.target),)))
    code, err = hx.sync(swr.url, "--no-auth")
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: more than 5 redirects")
    assert len(swr.seen) == 6


@pytest.mark.parametrize("status", [307, 308])
def test_iam_login_is_not_reposted_to_another_server(hx: Harness, status: int) -> None:
    other = hx.stub(iam_ok)
    iam = hx.stub(redirect(status, f"{other.url}/v3/auth/tokens?{LOCATION_QUERY}"))
    swr = hx.stub(listing())
    hx.credentials("iam", iam)
    code, err = hx.sync(swr.url)
    hx.refused(code, err, 3,
               f"IAM login at {iam.url}/v3/auth/tokens: HTTP {status} redirect to another "
               f"server (127.0.0.1:{other.port}) not followed: credentials are sent only to "
               "the configured endpoint (credentials from HUAWEICLOUD_USERNAME/"
               "HUAWEICLOUD_PASSWORD/HUAWEICLOUD_DOMAIN_NAME)")
    assert other.seen == [] and swr.seen == []
    assert PASSWORD.encode() in iam.seen[0].body  # it went where it was configured to go


def test_iam_same_origin_307_reposts_the_login(hx: Harness) -> None:

    def iam_moved(h: StubHandler, seen: Seen) -> None:
        if seen.target.startswith("/new"):
            iam_ok(h, seen)
        else:
            answer(h, 307, b"", (("Location", "/new" + seen.target),))

    iam = hx.stub(iam_moved)
    swr = hx.stub(listing())
    hx.credentials("iam", iam)
    code, err = hx.sync(swr.url)
    assert (code, err) == (0, "")
    assert [(s.method, s.target) for s in iam.seen] == [
        ("POST", "/v3/auth/tokens?nocatalog=true"), ("POST", "/new/v3/auth/tokens?nocatalog=true")]
    assert iam.seen[0].body == iam.seen[1].body
    assert swr.seen[0].headers["X-Auth-Token"] == ISSUED


# ------------------------------------------------------------------------ netrc and proxies


def test_netrc_never_adds_credentials(
        stubs: Callable[..., Stub], tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    netrc = Path(str(Path.home())) / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password NETRC-SECRET-42\n"
                     "default login netrc-user password NETRC-SECRET-42\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    swr = stubs(listing())
    pings = stubs(lambda h, seen: answer(h, 200, b"OK"))
    code, err = sync(capsys, swr.url, tmp_path / "swr.db", "--no-auth",
                     "--healthcheck-url", f"{pings.url}/ping/uuid")
    assert (code, err) == (0, "")
    assert len(swr.seen) == 1 and len(pings.seen) == 2
    basic = base64.b64encode(b"netrc-user:NETRC-SECRET-42").decode()
    for seen in swr.seen + pings.seen:
        assert "Authorization" not in seen.headers, seen
        assert basic not in json.dumps(seen.headers)
    # the same request through requests' defaults would have carried it (the test can fail)
    assert requests.Session().prepare_request(
        requests.Request("GET", swr.url)).headers["Authorization"] == f"Basic {basic}"


def test_proxies_from_the_environment_keep_working(
        stubs: Callable[..., Stub], tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    proxy = stubs(listing())  # answers absolute-form requests itself, as a caching proxy may
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("http_proxy", proxy.url)
    clean_env.setenv("SWR_AUTH_TOKEN", TOKEN)
    code, err = sync(capsys, "http://swr-api.example.invalid", tmp_path / "swr.db")
    assert (code, err) == (0, "")
    assert [s.target for s in proxy.seen] == [
        f"http://swr-api.example.invalid{REPOS}?offset=0&limit=100"]
    with sqlite3.connect(tmp_path / "swr.db") as conn:
        assert conn.execute("SELECT id FROM images ORDER BY id").fetchall() == [(11,), (12,)]


# ------------------------------------------------------------------------- floods and drips


def gzip_bomb(inflated_mib: int) -> bytes:
    """``inflated_mib`` MiB of zeros as concatenated gzip members (~1 kB each): a bomb."""
    member = gzip.compress(b"\0" * 2**20, compresslevel=9)
    return member * inflated_mib


def endless(h: StubHandler, seen: Seen) -> None:
    answer(h, 200, b"", (("Transfer-Encoding", "chunked"),))
    block = b"[" + b" " * 65535
    while not h.server.closing.is_set():
        h.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))


def huge(h: StubHandler, seen: Seen) -> None:
    answer(h, 200, b"", (("Content-Length", str(2 * 2**30)),))
    block = b" " * 65536
    while not h.server.closing.is_set():
        h.wfile.write(block)


def bomb(h: StubHandler, seen: Seen) -> None:
    data = gzip_bomb(2048)  # 2 GiB once inflated, ~2 MB on the wire
    answer(h, 200, data, (("Content-Encoding", "gzip"), ("Content-Type", "application/json")))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("behaviour", [endless, huge, bomb], ids=["endless", "huge", "bomb"])
def test_oversized_bodies_are_refused_without_reading_on(hx: Harness, behaviour: Behaviour) -> None:
    swr = hx.stub(behaviour)
    hx.env.setenv("SWR_AUTH_TOKEN", TOKEN)
    code, err = hx.sync(swr.url, "--max-body-mb", "1")
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: response body larger than --max-body-mb 1 "
               "(MiB, after decompression); read no further, not retried")
    assert len(swr.seen) == 1


def test_the_byte_cap_applies_after_decompression() -> None:
    # The cap counts inflated bytes: a 64 MiB bomb read under a 1 MiB cap stops at 1 MiB + 1.
    body = gzip_bomb(64)
    raw = urllib3.HTTPResponse(body=io.BytesIO(body), preload_content=False,
                               headers={"Content-Encoding": "gzip"})
    resp = requests.Response()
    resp.raw, resp.status_code = raw, 200
    with pytest.raises(failures.TooLarge):
        transport._read(resp, 2**20, strict=True)
    assert raw.tell() < len(body)  # it stopped reading the wire early, too
    small = requests.Response()
    small.raw = urllib3.HTTPResponse(body=io.BytesIO(gzip_bomb(1)),
                                     preload_content=False, headers={"Content-Encoding": "gzip"})
    assert transport._read(small, 2**20, strict=True) == b"\0" * 2**20  # exactly the cap: fine


@pytest.mark.timeout(30)
@pytest.mark.parametrize("headers_first", [True, False], ids=["body-drip", "header-drip"])
def test_a_dripping_swr_server_does_not_outlive_the_timeout(hx: Harness,
                                                            headers_first: bool) -> None:
    swr = hx.stub(drip(headers_first))
    code, err = hx.sync(swr.url, "--no-auth", "--timeout", "1", "--retry-window", "0")
    hx.refused(code, err, 4,
               "the API stayed unavailable after 1 attempt(s) over 1 s (--retry-window 0 s): "
               f"GET {REPOS}?offset=0&limit=100: no complete answer within --timeout 1 s")
    assert len(swr.seen) == 1


@pytest.mark.timeout(30)
def test_a_dripping_iam_login_is_bounded(hx: Harness) -> None:
    iam = hx.stub(drip(True))
    swr = hx.stub(listing())
    hx.credentials("iam", iam)
    code, err = hx.sync(swr.url, "--timeout", "1")
    hx.refused(code, err, 4,
               f"IAM login at {iam.url}/v3/auth/tokens failed: no complete answer within 1 s "
               "(credentials from HUAWEICLOUD_USERNAME/HUAWEICLOUD_PASSWORD/"
               "HUAWEICLOUD_DOMAIN_NAME)")
    assert swr.seen == []


@pytest.mark.timeout(30)
def test_a_stalled_healthcheck_neither_holds_the_run_nor_changes_its_exit(
        stubs: Callable[..., Stub], tmp_path: Path, clean_env: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    swr = stubs(listing())
    pings = stubs(drip(False))
    settings = Settings(endpoint=swr.url, db=tmp_path / "swr.db", allow_anonymous=True,
                        healthcheck_url=f"{pings.url}/ping/uuid")
    hc = Healthcheck(settings.healthcheck_url or "", timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="etl.healthcheck"):
        result = run_observed(settings, lambda: run_sync(settings), healthcheck=hc)
    assert (result.exit_code, result.rows) == (0, 2)
    assert [r.getMessage() for r in caplog.records if r.name == "etl.healthcheck"] == [
        f"healthcheck ping {what} to http://127.0.0.1:{pings.port}/… failed: no complete answer "
        "within 0.5 s (the run is not affected)" for what in ("start", "success")]
    assert len(pings.seen) == 2 and hc.sent == []  # both pings sent, neither answered in time


def test_a_healthcheck_redirect_to_another_server_is_not_followed(
        stubs: Callable[..., Stub], caplog: pytest.LogCaptureFixture) -> None:
    other = stubs(lambda h, seen: answer(h, 200, b"OK"))
    pings = stubs(redirect(302, f"{other.url}/ping/stolen"))
    hc = Healthcheck(f"{pings.url}/ping/uuid-capability", run_key="r1")
    with caplog.at_level(logging.WARNING, logger="etl.healthcheck"):
        assert hc.start() is False
    assert other.seen == [] and len(pings.seen) == 1
    assert caplog.records[-1].getMessage() == (
        f"healthcheck ping start to http://127.0.0.1:{pings.port}/… failed: HTTP 302 redirect to "
        f"another server (127.0.0.1:{other.port}) not followed: credentials are sent only to the "
        "configured endpoint (the run is not affected)")
    assert "uuid-capability" not in caplog.text


# ------------------------------------------------------------------- retries, storms, deadline


def fast_backoff(env: pytest.MonkeyPatch, base: float = 0.05, cap: float = 0.2) -> None:
    """Fast backoff for the sync under test (these tests bound time, not the default curve).

    The backoff curve is internal (no option, no config key), so it is set where the CLI builds
    its settings.
    """
    import etl.config.settings

    build = etl.config.settings.build_settings

    def fast(*args: Any, **kwargs: Any) -> Any:
        return build(*args, **kwargs).replace(backoff_base=base, backoff_cap=cap)

    env.setattr(etl.config.settings, "build_settings", fast)


@pytest.mark.timeout(30)
def test_retry_after_storm_over_many_pages_ends_at_the_deadline(hx: Harness) -> None:
    rows = [{**ROWS[0], "id": i, "name": f"img{i}", "total_range": 60} for i in range(1, 61)]
    serve, told = listing(rows), set()

    def storm(h: StubHandler, seen: Seen) -> None:
        offset = seen.query().get("offset")
        if offset in told:
            serve(h, seen)
        else:  # every page says "come back in a second", once
            told.add(offset)
            answer(h, 429, b'{"error_code": "APIG.0308", "error_msg": "throttled"}',
                   (("Retry-After", "1"),))

    swr = hx.stub(storm)
    code, err = hx.sync(swr.url, "--no-auth", "--page-size", "1", "--concurrency", "4",
                     "--deadline", "3")
    assert code == 4, err
    line = last_line(err)
    assert line.startswith("swr-etl: error: gave up: the run deadline (--deadline 3 s) ran out ")
    assert state(hx.db) == hx.before
    assert last_run(hx.db)[:2] == ("failed", line.removeprefix("swr-etl: error: "))
    assert len(told) < 60  # it stopped asking: the sum of the waits is bounded


def test_a_retry_after_beyond_the_window_ends_the_request_at_once(hx: Harness) -> None:
    swr = hx.stub(lambda h, seen: answer(
        h, 429, b'{"error_code": "APIG.0308", "error_msg": "throttled"}',
        (("Retry-After", "3600"), ("X-Request-Id", "r-1"))))
    code, err = hx.sync(swr.url, "--no-auth")
    hx.refused(code, err, 4,
               "the API stayed unavailable after 1 attempt(s) (it asked to retry after 600 s, "
               f"beyond --retry-window 120 s): GET {REPOS}?offset=0&limit=100: HTTP 429 "
               'APIG.0308 "throttled" (X-Request-Id r-1)')
    assert len(swr.seen) == 1


@pytest.mark.timeout(30)
def test_the_run_deadline_ends_retrying(hx: Harness) -> None:
    swr = hx.stub(lambda h, seen: answer(h, 503, b'{"error_code": "APIG.0201", "error_msg": "x"}'))
    # The environment variable, to test it too; long enough that a loaded machine still sends
    # the first request within it (the test would then see "no time left to send it").
    hx.env.setenv("SWR_ETL_DEADLINE", "4")
    fast_backoff(hx.env)
    code, err = hx.sync(swr.url, "--no-auth")
    assert code == 4, err
    line = last_line(err)
    assert line.startswith("swr-etl: error: gave up: the run deadline (--deadline 4 s) ran out "
                           "while the API was failing (attempt ")
    assert line.endswith(f'GET {REPOS}?offset=0&limit=100: HTTP 503 APIG.0201 "x")')
    assert state(hx.db) == hx.before and last_run(hx.db)[0] == "failed"
    assert len(swr.seen) >= 2  # it did retry, within the deadline


def test_max_attempts_1_means_exactly_one_attempt(hx: Harness) -> None:
    swr = hx.stub(lambda h, seen: answer(h, 503, b""))
    code, err = hx.sync(swr.url, "--no-auth", "--max-attempts", "1")
    hx.refused(code, err, 4,
               f"the API stayed unavailable after 1 attempt(s): GET {REPOS}?offset=0&limit=100:"
               " HTTP 503")
    assert len(swr.seen) == 1


@pytest.mark.timeout(60)
def test_an_api_down_for_a_few_seconds_is_ridden_out(hx: Harness) -> None:
    swr = hx.stub(listing(), listen=False)  # bound, not listening: connections are refused
    timer = threading.Timer(2.0, swr.go_live)
    timer.start()
    fast_backoff(hx.env, cap=1.0)
    try:
        code, err = hx.sync(swr.url, "--no-auth", "-v", "--retry-window", "30", quiet=False)
    finally:
        timer.cancel()
    assert code == 0, err
    outage = [ln for ln in err.splitlines() if "API unavailable" in ln]
    assert len(outage) == 1, err
    assert outage[0].split("] ", 1)[1].startswith(
        f"API unavailable (cannot connect to 127.0.0.1:{swr.port}: Connection refused), "
        "retrying for up to 30 s")
    waits = [ln for ln in err.splitlines() if "retrying in" in ln]
    assert waits and all("(connection): GET " in ln for ln in waits)
    assert "attempt 1 failed (connection)" in waits[0]
    assert last_run(hx.db)[:2] == ("success", None)


# ---------------------------------------------------------------------------------- totals


@pytest.mark.parametrize("where,total", [
    ("header", 10**12), ("header", 2**63), ("body", 10**12), ("body", 2**63 + 5),
])
def test_absurd_totals_are_refused_before_paging_on(hx: Harness, where: str, total: int) -> None:
    rows = [{**r, "total_range": total if where == "body" else 2} for r in ROWS]
    headers = (("Content-Range", f"0-2/{total}"),) if where == "header" else ()
    swr = hx.stub(lambda h, seen: answer(h, 200, json.dumps(rows).encode(), headers))
    code, err = hx.sync(swr.url, "--no-auth")
    shown = str(total) if total < 2**63 else "beyond 64-bit integers (19 digits)"
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: the API reported a total of {shown} rows, "
               "above --max-rows 5000000; refusing to page on")
    assert len(swr.seen) == 1
    assert last_run(hx.db)[2] is None  # the absurd number never reached the ledger


def test_max_rows_is_a_setting(hx: Harness) -> None:
    swr = hx.stub(listing())
    code, err = hx.sync(swr.url, "--no-auth", "--max-rows", "1")
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: the API reported a total of 2 rows, above "
               "--max-rows 1; refusing to page on")


def test_more_rows_than_the_limit_is_unusable(hx: Harness) -> None:
    rows = [{**ROWS[0], "id": i, "total_range": 5} for i in range(1, 6)]
    swr = hx.stub(lambda h, seen: answer(h, 200, json.dumps(rows).encode(),
                                       (("Content-Range", "0-5/5"),)))
    code, err = hx.sync(swr.url, "--no-auth", "--page-size", "2", "--max-attempts", "2")
    hx.refused(code, err, 4,
               f"the API stayed unavailable after 2 attempt(s): GET {REPOS}?offset=0&limit=2: "
               "HTTP 200 with 5 rows, more than the limit of 2 asked for (unusable answer)")
    assert [s.query()["limit"] for s in swr.seen] == ["2", "2"]


# ------------------------------------------------------------------------ connection errors


def test_plain_http_on_an_https_url_is_named_as_such(hx: Harness) -> None:
    plain = hx.stub(listing())
    hx.env.setenv("SWR_AUTH_TOKEN", TOKEN)
    code, err = hx.sync(f"https://127.0.0.1:{plain.port}")
    hx.refused(code, err, 4,
               f"GET {REPOS}?offset=0&limit=100: cannot connect to 127.0.0.1:{plain.port}: "
               "the server did not speak TLS (is the URL meant to be http://?)")
    assert_no_secret(plain)  # the token never left in clear text


def test_connection_refused_names_host_port_and_reason(hx: Harness) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, err = hx.sync(f"http://127.0.0.1:{port}", "--no-auth", "--max-attempts", "1")
    hx.refused(code, err, 4,
               f"the API stayed unavailable after 1 attempt(s): GET {REPOS}?offset=0&limit=100:"
               f" cannot connect to 127.0.0.1:{port}: Connection refused")


def test_dns_failure_and_connect_timeout_are_worded_by_their_cause() -> None:
    # Built as requests raises them (no lookup leaves the machine in a test).
    url = "https://swr-api.cn-north-4.myhuaweicloud.com/v2/manage/dockerhub/repos"
    host = "swr-api.cn-north-4.myhuaweicloud.com"
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as gai:  # urllib3 raises it "from" the resolver's error
            raise urllib3.exceptions.NameResolutionError(host, None, gai) from gai  # type: ignore[arg-type]
    except urllib3.exceptions.NameResolutionError as dns:
        failure = failures.failure_from(requests.ConnectionError(
            urllib3.exceptions.MaxRetryError(None, url, dns)), url, 30)  # type: ignore[arg-type]
    assert isinstance(failure, failures.Unreachable)
    assert failure.reason == f"cannot connect to {host}:443: Name or service not known"
    slow = failures.failure_from(requests.exceptions.ConnectTimeout("x"), url, 30)
    assert isinstance(slow, failures.Unreachable)
    assert slow.reason == f"cannot connect to {host}:443: timed out after 30 s"


def test_bad_bounds_are_usage_errors(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    code, err = sync(capsys, "http://127.0.0.1:1", db, "--no-auth", "--deadline", "nan")
    assert (code, last_line(err)) == (2, "swr-etl: error: deadline must be a finite number, "
                                         "got nan")
    clean_env.setenv("SWR_ETL_DEADLINE", "soon")
    code, err = sync(capsys, "http://127.0.0.1:1", db, "--no-auth")
    assert (code, last_line(err)) == (2, "swr-etl: error: invalid value for deadline: 'soon'")
    assert not db.exists()


def test_a_whole_exchange_has_one_clock_even_across_redirect_hops(
        stubs: Callable[..., Stub]) -> None:
    # Each hop answers quickly but slowly enough that five of them exceed the budget.
    def slow_hop(h: StubHandler, seen: Seen) -> None:
        h.server.closing.wait(0.3)
        answer(h, 302, b"", (("Location", seen.target),))

    swr = stubs(slow_hop)
    session = BoundedSession(Limits(timeout=1.0))
    with pytest.raises(failures.TimedOut):
        transport.exchange(session, lambda u: session.prepare_request(requests.Request("GET", u)),
                           swr.url + "/x", limits=session.limits)
    assert len(swr.seen) in (3, 4)  # not six hops of 0.3 s each


@pytest.mark.parametrize("location,why", [
    ("http://[::1", "HTTP 302 redirect to an unreadable Location; not followed"),
    ("https://127.0.0.1:notaport/x", "HTTP 302 redirect to another server (127.0.0.1) not "
                                     "followed: credentials are sent only to the configured "
                                     "endpoint"),
    ("http://user:pw@127.0.0.1:{port}/x", "HTTP 302 redirect to another server (127.0.0.1:{port}) "
                                          "not followed: credentials are sent only to the "
                                          "configured endpoint"),
])
def test_odd_locations_are_refused_in_one_line(stubs: Callable[..., Stub], location: str,
                                               why: str) -> None:
    swr = stubs(lambda h, seen: answer(h, 302, b"", (("Location", location.format(
        port=h.server.port)),)))
    session = BoundedSession()
    with pytest.raises(failures.RedirectRefused) as info:
        transport.exchange(session, lambda u: session.prepare_request(requests.Request("GET", u)),
                           swr.url + "/x", limits=session.limits)
    assert info.value.reason == why.format(port=swr.port)
