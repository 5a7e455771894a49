"""etl.extract.auth: token, IAM password login, AK/SK signing.

Two layers: a tiny capture server on 127.0.0.1 (to see exactly what goes on the wire and to script
IAM answers), and the built-in simulator, which verifies each auth mode for real.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from etl.config.settings import MISSING_CREDENTIALS, Credentials, Settings
from etl.errors import AuthError, ConfigError, UpstreamError
from etl.extract.auth import (
    AKSK_INSTALL_HINT,
    AkSkAuth,
    IamPasswordAuth,
    TokenAuth,
    build_auth,
    iam_tokens_url,
)
from tests.helpers import FakeClock, Seen, Stub, StubHandler, answer

AK, SK = "AKTESTMARKER0001", "SKTESTMARKER0001secret"
PASSWORD = "PW-TEST-MARKER-1"


# ------------------------------------------------------------------------------ capture server


@dataclass
class CaptureServer:
    """A loopback stub that records every request (``requests``: ``Seen``, whose ``target`` is
    the raw request target exactly as sent) and answers IAM logins from a script."""

    stub: Stub
    # scripted (status, headers, body) answers for IAM logins, consumed in order (the last one
    # repeats); every other path answers 200 with an empty listing
    answers: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.stub.url

    @property
    def requests(self) -> list[Seen]:
        return self.stub.seen

    def reply(self, h: StubHandler, seen: Seen) -> None:
        with self.lock:
            if not seen.target.startswith("/v3/auth/tokens"):
                status, headers, payload = 200, {}, []
            elif len(self.answers) > 1:
                status, headers, payload = self.answers.pop(0)
            else:
                status, headers, payload = self.answers[0]
        answer(h, status, json.dumps(payload).encode(),
               (*headers.items(), ("Content-Type", "application/json")))


@pytest.fixture
def capture(stubs: Callable[..., Stub]) -> CaptureServer:
    server = CaptureServer(stubs(lambda h, seen: server.reply(h, seen)))
    return server


def password_creds(iam: str | None) -> Credentials:
    return Credentials(kind="password", username="etl-reader", password=PASSWORD,
                       domain_name="acme", iam_endpoint=iam)


def iam_ok(token: str, lifetime_s: float | None = 86400.0) -> tuple[int, dict[str, str], Any]:
    issued = datetime(2026, 11, 27, 3, 0, 0, tzinfo=timezone.utc)
    tok: dict[str, Any] = {"methods": ["password"],
                           "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    if lifetime_s is not None:
        expires = issued + timedelta(seconds=lifetime_s)
        tok["expires_at"] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return 201, {"X-Subject-Token": token}, {"token": tok}


# ---------------------------------------------------------------------------------- build_auth


def test_build_auth_chooses_by_credential_kind() -> None:
    session = requests.Session()
    token = Settings(credentials=Credentials(kind="token", token="tok-123456"))
    assert isinstance(build_auth(token, session), TokenAuth)
    aksk = Settings(credentials=Credentials(kind="aksk", ak=AK, sk=SK))
    assert isinstance(build_auth(aksk, session), AkSkAuth)
    pw = build_auth(Settings(region="ap-southeast-1", credentials=password_creds(None)), session)
    assert isinstance(pw, IamPasswordAuth)
    # iam base defaults to the region's IAM endpoint
    assert pw.url == "https://iam.ap-southeast-1.myhuaweicloud.com/v3/auth/tokens"
    assert build_auth(Settings(allow_anonymous=True), session) is None


def test_no_credentials_is_a_config_error_listing_the_three_options() -> None:
    with pytest.raises(ConfigError) as exc:
        build_auth(Settings(), requests.Session())
    assert exc.value.exit_code == 2
    assert str(exc.value) == MISSING_CREDENTIALS


@pytest.mark.usefixtures("clean_env")
def test_missing_credentials_through_the_cli_exits_2(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Any) -> None:
    from etl.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["sync", "--db", str(tmp_path / "swr.db")])
    assert exc.value.code == 2
    assert capsys.readouterr().err == f"swr-etl: error: {MISSING_CREDENTIALS}\n"
    assert not (tmp_path / "swr.db").exists()


@pytest.mark.parametrize("base", [
    "https://iam.cn-north-4.myhuaweicloud.com",
    "https://iam.cn-north-4.myhuaweicloud.com/",
    "https://iam.cn-north-4.myhuaweicloud.com/v3",
    "https://iam.cn-north-4.myhuaweicloud.com/v3/",
])
def test_iam_base_accepts_a_trailing_v3(base: str) -> None:
    assert iam_tokens_url(base) == "https://iam.cn-north-4.myhuaweicloud.com/v3/auth/tokens"


def test_missing_vendor_sdk_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("huaweicloudsdkcore")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("huaweicloudsdkcore", "huaweicloudsdkcore.signer",
                 "huaweicloudsdkcore.signer.signer", "huaweicloudsdkcore.auth",
                 "huaweicloudsdkcore.auth.credentials", "huaweicloudsdkcore.sdk_request"):
        monkeypatch.setitem(sys.modules, name, None)
    settings = Settings(credentials=Credentials(kind="aksk", ak=AK, sk=SK))
    with pytest.raises(ConfigError) as exc:
        build_auth(settings, requests.Session())
    assert exc.value.exit_code == 2
    assert str(exc.value) == (
        "AK/SK signing (HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK) needs the optional package "
        "huaweicloudsdkcore: install swr-etl with its [aksk] extra "
        "(from a checkout: pip install -e '.[aksk]')"
    ) == AKSK_INSTALL_HINT


def test_missing_vendor_sdk_through_the_cli_exits_2(clean_env: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Any) -> None:
    from etl.cli.app import main

    clean_env.setenv("HUAWEICLOUD_SDK_AK", AK)
    clean_env.setenv("HUAWEICLOUD_SDK_SK", SK)
    for name in [m for m in sys.modules if m.startswith("huaweicloudsdkcore")]:
        clean_env.setitem(sys.modules, name, None)
    clean_env.setitem(sys.modules, "huaweicloudsdkcore", None)
    with pytest.raises(SystemExit) as exc:  # fails before any request: the endpoint is unused
        main(["sync", "--db", str(tmp_path / "swr.db"), "--endpoint", "http://127.0.0.1:9"])
    assert exc.value.code == 2
    # (the pipeline records the failed run first and logs it at info; the last line is the error)
    assert capsys.readouterr().err.splitlines()[-1] == f"swr-etl: error: {AKSK_INSTALL_HINT}"


def test_reprs_never_show_secrets() -> None:
    creds = [Credentials(kind="token", token="SECRET-TOKEN-REPR"),
             Credentials(kind="aksk", ak=AK, sk=SK, project_id="p1"),
             password_creds("http://127.0.0.1:1")]
    session = requests.Session()
    for c in creds:
        s = Settings(credentials=c)
        auth = build_auth(s, session)
        for text in (repr(s), str(s), repr(c), repr(auth)):
            for secret in ("SECRET-TOKEN-REPR", AK, SK, PASSWORD):
                assert secret not in text, text


# ------------------------------------------------------------------------------ token on wire


def test_token_auth_sends_x_auth_token(capture: CaptureServer) -> None:
    r = requests.get(capture.url + "/v2/manage/dockerhub/repos", params={"limit": 5},
                     auth=TokenAuth("tok-abcdef"), timeout=5)
    assert r.status_code == 200
    assert capture.requests[0].headers["X-Auth-Token"] == "tok-abcdef"


# ------------------------------------------------------------------------------- AK/SK on wire


def _recompute(method: str, target: str, headers: dict[str, str], body: bytes, sk: str) -> str:
    """An independent SDK-HMAC-SHA256 verifier (vendor algorithm) over what was on the wire."""
    auth = headers["Authorization"]
    assert auth.startswith("SDK-HMAC-SHA256 ")
    parts = dict(p.strip().split("=", 1) for p in auth[len("SDK-HMAC-SHA256 "):].split(","))
    signed = parts["SignedHeaders"].split(";")
    path, _, query = target.partition("?")
    from urllib.parse import quote

    canon_uri = "/".join(quote(s, safe="~") for s in unquote(path).split("/"))
    canon_uri += "" if canon_uri.endswith("/") else "/"
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    canon_headers = "".join(f"{h}:{lower[h]}\n" for h in signed)
    canonical = "\n".join([method, canon_uri, query, canon_headers, ";".join(signed),
                           hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["SDK-HMAC-SHA256", headers["X-Sdk-Date"],
                     hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()


def test_aksk_signed_uri_is_what_goes_on_the_wire(capture: CaptureServer) -> None:
    when = datetime(2026, 11, 27, 3, 4, 5, tzinfo=timezone.utc)
    auth = AkSkAuth(AK, SK, project_id="proj-1", clock=lambda: when)
    params = {"offset": 0, "limit": 100, "namespace": "a b", "image_name": "x/y~z+é"}
    r = requests.get(capture.url + "/v2/manage/dockerhub/repos", params=params, auth=auth,
                     timeout=5)
    assert r.status_code == 200
    got = capture.requests[0]
    # the canonical query: sorted keys, quote(safe='~'): %20 for space, %2F, %2B, UTF-8 escapes
    assert got.target == ("/v2/manage/dockerhub/repos?image_name=x%2Fy~z%2B%C3%A9&limit=100"
                        "&namespace=a%20b&offset=0")
    assert got.headers["X-Sdk-Date"] == "20261127T030405Z"
    assert got.headers["X-Project-Id"] == "proj-1"
    assert got.headers["Host"] == capture.url.removeprefix("http://")
    assert got.headers["Authorization"] == (
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-project-id;x-sdk-date, "
        f"Signature={_recompute('GET', got.target, got.headers, got.body, SK)}"
    )


def test_aksk_signs_again_on_every_attempt(capture: CaptureServer) -> None:
    times = iter([datetime(2026, 11, 27, 3, 0, 0, tzinfo=timezone.utc),
                  datetime(2026, 11, 27, 3, 0, 1, tzinfo=timezone.utc)])
    auth = AkSkAuth(AK, SK, clock=lambda: next(times))
    session = requests.Session()
    req = requests.Request("GET", capture.url + "/v2/manage/dockerhub/repos",
                           params={"offset": 0, "limit": 10}, auth=auth)
    for _ in range(2):  # what the extractor does per attempt: a new prepared request
        session.send(session.prepare_request(req), timeout=5)
    first, second = capture.requests
    assert (first.headers["X-Sdk-Date"], second.headers["X-Sdk-Date"]) == (
        "20261127T030000Z", "20261127T030001Z")
    assert first.headers["Authorization"] != second.headers["Authorization"]
    for got in (first, second):
        assert got.headers["Authorization"].endswith(
            "Signature=" + _recompute("GET", got.target, got.headers, got.body, SK))


# --------------------------------------------------------------------------------- IAM on wire


def test_iam_login_request_shape_and_token_use(capture: CaptureServer) -> None:
    capture.answers = [iam_ok("iam-token-1")]
    session = requests.Session()
    auth = IamPasswordAuth(session, iam_base=capture.url + "/v3", credentials=password_creds(None),
                           project_name="cn-north-4")
    session.get(capture.url + "/v2/manage/dockerhub/repos", auth=auth, timeout=5)
    session.get(capture.url + "/v2/manage/dockerhub/repos", auth=auth, timeout=5)
    login, first, second = capture.requests
    assert (login.method, login.target) == ("POST", "/v3/auth/tokens?nocatalog=true")
    assert "X-Auth-Token" not in login.headers
    assert json.loads(login.body) == {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "etl-reader", "password": PASSWORD, "domain": {"name": "acme"}}}},
        "scope": {"project": {"name": "cn-north-4"}},
    }}
    assert first.headers["X-Auth-Token"] == second.headers["X-Auth-Token"] == "iam-token-1"
    assert auth.generation == 1  # the token is cached, not fetched per request


def test_iam_token_refreshed_proactively_before_expiry(capture: CaptureServer) -> None:
    clock = FakeClock(1000.0)
    capture.answers = [iam_ok("tok-A", lifetime_s=3600), iam_ok("tok-B", lifetime_s=None)]
    session = requests.Session()
    auth = IamPasswordAuth(session, iam_base=capture.url, credentials=password_creds(None),
                           project_name="cn-north-4", clock=clock)
    url = capture.url + "/v2/manage/dockerhub/repos"
    session.get(url, auth=auth, timeout=5)        # login A at t=1000, lives 3600 s
    clock.now = 1000 + 3600 - 301                    # just before the 5-minute margin
    session.get(url, auth=auth, timeout=5)
    clock.now = 1000 + 3600 - 299                    # inside the margin: log in again
    session.get(url, auth=auth, timeout=5)
    clock.now += 86400 - 301                         # tok-B had no expires_at: 24 h assumed
    session.get(url, auth=auth, timeout=5)
    sent = [(c.method, c.headers.get("X-Auth-Token")) for c in capture.requests]
    assert sent == [("POST", None), ("GET", "tok-A"), ("GET", "tok-A"),
                    ("POST", None), ("GET", "tok-B"), ("GET", "tok-B")]


def test_iam_refresh_is_one_login_for_many_workers(capture: CaptureServer) -> None:
    capture.answers = [iam_ok("tok-1"), iam_ok("tok-2"), iam_ok("tok-3")]
    session = requests.Session()
    auth = IamPasswordAuth(session, iam_base=capture.url, credentials=password_creds(None),
                           project_name="cn-north-4")
    barrier = threading.Barrier(8)
    results: list[tuple[bool, str]] = []

    def worker() -> None:
        # each worker prepared a request with the (now revoked) first token, then got a 401
        r = requests.Request("GET", capture.url + "/x", auth=auth).prepare()
        barrier.wait(timeout=10)
        ok = auth.refresh()
        again = requests.Request("GET", capture.url + "/x", auth=auth).prepare()
        results.append((ok, str(again.headers["X-Auth-Token"])))
        assert r.headers["X-Auth-Token"] == "tok-1"

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert results == [(True, "tok-2")] * 8
    assert [c.target for c in capture.requests] == ["/v3/auth/tokens?nocatalog=true"] * 2
    assert auth.generation == 2


def test_iam_wrong_password_is_auth_error_after_one_request(capture: CaptureServer) -> None:
    capture.answers = [(401, {"X-Request-Id": "req-42"},
                        {"error": {"code": 401, "title": "Unauthorized",
                                   "message": "The username or password is wrong."}})]
    session = requests.Session()
    auth = IamPasswordAuth(session, iam_base=capture.url, credentials=password_creds(None),
                           project_name="cn-north-4")
    with pytest.raises(AuthError) as exc:
        session.get(capture.url + "/v2/manage/dockerhub/repos", auth=auth, timeout=5)
    assert exc.value.exit_code == 3
    assert str(exc.value) == (
        "IAM refused the login (HTTP 401) for credentials from "
        "HUAWEICLOUD_USERNAME/HUAWEICLOUD_PASSWORD/HUAWEICLOUD_DOMAIN_NAME: "
        "401: The username or password is wrong. (request id req-42)"
    )
    assert len(capture.requests) == 1


def test_iam_unavailable_is_upstream_error_not_retried(capture: CaptureServer) -> None:
    capture.answers = [(503, {}, {"error_code": "APIG.0201", "error_msg": "Backend unavailable"})]
    session = requests.Session()
    auth = IamPasswordAuth(session, iam_base=capture.url, credentials=password_creds(None),
                           project_name="cn-north-4")
    with pytest.raises(UpstreamError) as exc:
        requests.Request("GET", capture.url + "/x", auth=auth).prepare()
    assert exc.value.exit_code == 4
    assert str(exc.value) == (f"IAM login at {capture.url}/v3/auth/tokens failed (HTTP 503): "
                              "APIG.0201: Backend unavailable")
    assert len(capture.requests) == 1


def test_iam_error_without_a_known_shape_shows_the_start_of_the_body(
        capture: CaptureServer) -> None:
    # The one error-body parser (etl.extract.retry.parse_error_body) finds no code or message here.
    capture.answers = [(502, {"X-Request-Id": "gw-7"}, "<html>Bad Gateway</html>")]
    auth = IamPasswordAuth(requests.Session(), iam_base=capture.url,
                           credentials=password_creds(None), project_name="cn-north-4")
    with pytest.raises(UpstreamError) as exc:
        requests.Request("GET", capture.url + "/x", auth=auth).prepare()
    assert str(exc.value) == (f'IAM login at {capture.url}/v3/auth/tokens failed (HTTP 502): '
                              '"<html>Bad Gateway</html>" (request id gw-7)')


def test_iam_connection_refused_is_upstream_error() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    auth = IamPasswordAuth(requests.Session(), iam_base=f"http://127.0.0.1:{port}",
                           credentials=password_creds(None), project_name="cn-north-4",
                           timeout=5)
    with pytest.raises(UpstreamError) as exc:
        requests.Request("GET", "http://127.0.0.1:1/x", auth=auth).prepare()
    assert str(exc.value) == (
        f"IAM login at http://127.0.0.1:{port}/v3/auth/tokens failed: cannot connect to "
        f"127.0.0.1:{port}: Connection refused "
        "(credentials from HUAWEICLOUD_USERNAME/HUAWEICLOUD_PASSWORD/HUAWEICLOUD_DOMAIN_NAME)"
    )


# ------------------------------------------------------------------ against the simulator (real)

SIM_TOKEN = "SIM-TOKEN-0123456789"
SIM_USER = {"domain": "acme", "name": "etl-reader", "password": PASSWORD}
REPOS = "/v2/manage/dockerhub/repos"
IAM_PATH = "/v3/auth/tokens"


def _simulator() -> Any:
    try:
        from etl.simulator import Simulator
    except ImportError as exc:
        pytest.skip(f"etl.simulator.Simulator is not importable yet ({exc})")
    return Simulator


def _sim_scenario(mode: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "token": {"auth": "token", "tokens": [SIM_TOKEN]},
        "aksk": {"auth": "aksk", "aksk": {AK: SK}},
        "password": {"auth": "iam", "iam_users": [SIM_USER]},
    }[mode]
    return {**base, **extra}


def _sim_creds(mode: str, iam: str, *, wrong: bool = False) -> Credentials:
    bad = "-WRONG" if wrong else ""
    if mode == "token":
        return Credentials(kind="token", token=SIM_TOKEN + bad)
    if mode == "aksk":
        return Credentials(kind="aksk", ak=AK, sk=SK + bad)
    return Credentials(kind="password", username="etl-reader", password=PASSWORD + bad,
                       domain_name="acme", iam_endpoint=iam)


@dataclass
class ScanResult:
    rows: list[Any] = field(default_factory=list)  # the last pass's rows
    stats: Any = None
    responses: int = 0  # responses the client received (IAM logins included)


def _scan_all(settings: Settings, result: ScanResult, auth: Any = "build") -> ScanResult:
    """Run a whole scan like the pipeline does, filling ``result`` (also when it raises)."""
    from etl.extract.scan import make_session, scan_official_images

    session = make_session(settings)

    def count(r: requests.Response, *args: Any, **kwargs: Any) -> None:
        result.responses += 1

    session.hooks["response"].append(count)
    if auth == "build":
        auth = build_auth(settings, session)
    scan = scan_official_images(session, settings, auth=auth, sleep=lambda s: None)
    passes: dict[int, list[Any]] = {}
    for page in scan:
        passes.setdefault(page.pass_no, []).extend(page.rows)
    result.rows = passes[max(passes)] if passes else []
    result.stats = scan.stats
    return result


def _settled(sim: Any, n: int) -> list[Any]:
    """The simulator logs a request just after answering it: wait (bounded) for ``n`` records."""
    import time

    deadline = time.monotonic() + 5
    while len(sim.requests) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    return list(sim.requests)


def _ids(rows: list[Any]) -> list[Any]:
    return [r["id"] for r in rows]


@pytest.mark.parametrize("mode", ["token", "aksk", "password"])
def test_each_mode_scans_the_simulator_completely(mode: str) -> None:
    Simulator = _simulator()
    with Simulator(images=45, seed=3, scenario=_sim_scenario(mode)) as sim:
        settings = Settings(endpoint=sim.url, page_size=10, concurrency=2,
                            credentials=_sim_creds(mode, sim.url))
        res = _scan_all(settings, ScanResult())
        assert res.stats.complete is True
        assert _ids(res.rows) == _ids(sim.listing())
        log = _settled(sim, res.responses)
        assert len(log) == res.responses
        repos = [r for r in log if r.path == REPOS]
        assert {r.status for r in repos} == {200}
        logins = [r for r in log if r.path == IAM_PATH]
        assert len(logins) == (1 if mode == "password" else 0)


@pytest.mark.parametrize("mode", ["token", "aksk", "password"])
def test_wrong_credentials_exit_3_after_at_most_two_requests(mode: str) -> None:
    Simulator = _simulator()
    with Simulator(images=45, seed=3, scenario=_sim_scenario(mode)) as sim:
        settings = Settings(endpoint=sim.url, page_size=10, concurrency=2,
                            credentials=_sim_creds(mode, sim.url, wrong=True))
        res = ScanResult()
        with pytest.raises(AuthError) as exc:
            _scan_all(settings, res)
        assert exc.value.exit_code == 3
        log = _settled(sim, res.responses)
        assert len(log) == res.responses
        assert 1 <= len(log) <= 2, [(r.method, r.path, r.status) for r in log]
        assert {r.status for r in log} == {401}
        for secret in (SK, PASSWORD, SIM_TOKEN):
            assert secret not in str(exc.value)
        if mode == "password":
            assert str(exc.value).startswith(
                "IAM refused the login (HTTP 401) for credentials from "
                "HUAWEICLOUD_USERNAME/HUAWEICLOUD_PASSWORD/HUAWEICLOUD_DOMAIN_NAME: ")


def test_iam_token_expiring_mid_scan_is_refreshed_exactly_once() -> None:
    Simulator = _simulator()
    scen = _sim_scenario("password", faults=[{"at": 3, "kind": "expire-token"}])
    with Simulator(images=45, seed=3, scenario=scen) as sim:
        settings = Settings(endpoint=sim.url, page_size=10, concurrency=2,
                            credentials=_sim_creds("password", sim.url))
        res = _scan_all(settings, ScanResult())
        assert res.stats.complete is True
        assert _ids(res.rows) == _ids(sim.listing())
        log = _settled(sim, res.responses)
        logins = [r for r in log if r.path == IAM_PATH]
        assert [r.status for r in logins] == [201, 201]  # the first login and ONE refresh
        repos = [r for r in log if r.path == REPOS]
        assert [r.status for r in repos].count(401) >= 1
        assert [r.status for r in repos].count(200) == len(repos) - [
            r.status for r in repos].count(401)


def test_aksk_retry_after_503_is_signed_again_and_accepted() -> None:
    Simulator = _simulator()
    ticks = iter(range(10_000))
    start = datetime.now(timezone.utc)
    signer = AkSkAuth(AK, SK, clock=lambda: start + timedelta(seconds=next(ticks)))
    sent: list[str] = []  # the simulator's log masks Authorization; keep what we sent

    def auth(r: requests.PreparedRequest) -> requests.PreparedRequest:
        r = signer(r)
        sent.append(str(r.headers["Authorization"]))
        return r

    scen = _sim_scenario("aksk", faults=[{"at": 1, "kind": "status", "status": 503,
                                          "code": "SVCSTG.SWR.5000001"}])
    with Simulator(images=8, seed=3, scenario=scen) as sim:
        settings = Settings(endpoint=sim.url, page_size=10, concurrency=1,
                            credentials=_sim_creds("aksk", sim.url))
        res = _scan_all(settings, ScanResult(), auth=auth)
        assert _ids(res.rows) == _ids(sim.listing())
        first, second = [r for r in _settled(sim, res.responses) if r.path == REPOS][:2]
        assert (first.status, second.status) == (503, 200)
        assert first.headers["X-Sdk-Date"] != second.headers["X-Sdk-Date"]
        assert first.headers["Authorization"] == "***"  # masked in the simulator's log
        assert len(sent) == 2 and sent[0] != sent[1]
        assert sent[1].startswith(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, ")


def test_iam_outage_during_a_scan_is_exit_4_and_the_login_is_not_retried(
        capture: CaptureServer) -> None:
    """The login runs while the extractor prepares a request; its failure is final (no retry)."""
    Simulator = _simulator()
    capture.answers = [(503, {}, {"error_code": "APIG.0201", "error_msg": "Backend unavailable"})]
    with Simulator(images=20, seed=3, scenario=_sim_scenario("password")) as sim:
        creds = _sim_creds("password", capture.url)  # IAM is the (failing) capture server
        settings = Settings(endpoint=sim.url, page_size=10, max_attempts=5,
                            credentials=creds)
        res = ScanResult()
        with pytest.raises(UpstreamError) as exc:
            _scan_all(settings, res)
        assert exc.value.exit_code == 4
        assert str(exc.value) == (f"IAM login at {capture.url}/v3/auth/tokens failed "
                                  "(HTTP 503): APIG.0201: Backend unavailable")
        assert [(c.method, c.target) for c in capture.requests] == [
            ("POST", IAM_PATH + "?nocatalog=true")]
        assert sim.requests == []  # nothing was sent to SWR without a token
