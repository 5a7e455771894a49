"""Credential checks of the simulated endpoint: tokens, IAM password login, AK/SK signatures.

AK/SK verification recomputes the ``SDK-HMAC-SHA256`` signature from the request as received
(method, canonical URI with a trailing slash, canonical query string, signed headers, body hash,
``X-Sdk-Date`` within 15 minutes) and locks an access key for 5 minutes after 5 consecutive
failures, as the real gateway does (docs/how-it-works/swr-api.md, "AK/SK signing").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote

from etl.simulator.scenario import Scenario

ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CLOCK_SKEW_S = 15 * 60
LOCK_AFTER = 5
LOCK_FOR_S = 5 * 60


class SimClock:
    """Wall-clock time plus an adjustable offset: tests jump forward (token expiry, AK locks)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused: HTTP status, error code, message, body shape."""

    status: int
    code: str
    message: str
    shape: str


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuthState:
    """Issued tokens, AK failure counters and locks. Thread-safe."""

    def __init__(self, scenario: Scenario, clock: SimClock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> expiry epoch (inf: never)
        self._failures: dict[str, int] = {}
        self._locked_until: dict[str, float] = {}
        self.scenario = scenario
        self.reset(scenario)

    def reset(self, scenario: Scenario) -> None:
        """Adopt a new scenario: its static tokens, fresh AK counters; issued tokens stay."""
        with self._lock:
            self.scenario = scenario
            for t in scenario.tokens:
                self._tokens[t] = float("inf")
            self._failures.clear()
            self._locked_until.clear()

    # ------------------------------------------------------------------------------ tokens

    def issue(self, ttl: float | None = None) -> tuple[str, float]:
        """A new valid token and its expiry epoch."""
        token = "MII" + secrets.token_urlsafe(48)
        expires = self.clock.now() + (self.scenario.token_ttl if ttl is None else ttl)
        with self._lock:
            self._tokens[token] = expires
        return token, expires

    def expire_all(self) -> None:
        """Every token known so far (issued or from the scenario) stops working now."""
        with self._lock:
            now = self.clock.now()
            for t in self._tokens:
                self._tokens[t] = min(self._tokens[t], now - 1)

    def token_ok(self, token: str | None) -> bool:
        with self._lock:
            expiry = self._tokens.get(token or "")
        return expiry is not None and self.clock.now() < expiry

    # ------------------------------------------------------------------------------ checks

    def check(self, method: str, raw_path: str, headers: Mapping[str, str],
              body: bytes) -> Refusal | None:
        """None when the request may proceed under the scenario's auth mode."""
        mode = self.scenario.auth
        if mode == "open":
            return None
        if mode in ("token", "iam"):
            token = headers.get("X-Auth-Token")
            if self.token_ok(token):
                return None
            why = "token missing" if not token else "token invalid or expired"
            return Refusal(401, "SVCSTG.SWR.4010000", f"Authenticate failed: {why}",
                           self.scenario.error_shape)
        return self._check_aksk(method, raw_path, headers, body)

    def _check_aksk(self, method: str, raw_path: str, headers: Mapping[str, str],
                    body: bytes) -> Refusal | None:
        parsed = _parse_authorization(headers.get("Authorization", ""))
        if parsed is None:
            return _apig("APIG.0301", "Incorrect IAM authentication information: "
                         "Authorization header missing or malformed")
        ak, signed, signature = parsed
        now = self.clock.now()
        with self._lock:
            if self._locked_until.get(ak, 0.0) > now:
                return _apig("APIG.0301", "Incorrect IAM authentication information: access key "
                             "locked for 5 minutes after 5 failed authentications")
        problem = self._signature_problem(ak, signed, signature, method, raw_path, headers, body,
                                          now)
        with self._lock:
            if problem is None:
                self._failures[ak] = 0
                return None
            self._failures[ak] = self._failures.get(ak, 0) + 1
            if self._failures[ak] >= LOCK_AFTER:
                self._failures[ak] = 0
                self._locked_until[ak] = now + LOCK_FOR_S
        return _apig("APIG.0301", f"Incorrect IAM authentication information: {problem}")

    def _signature_problem(self, ak: str, signed: list[str], signature: str, method: str,
                           raw_path: str, headers: Mapping[str, str], body: bytes,
                           now: float) -> str | None:
        sk = self.scenario.aksk.get(ak)
        if sk is None:
            return "unknown access key"
        sdk_date = headers.get("X-Sdk-Date", "")
        try:
            t = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            return "X-Sdk-Date missing or not YYYYMMDDTHHMMSSZ"
        if abs(t.timestamp() - now) > CLOCK_SKEW_S:
            return "X-Sdk-Date is more than 15 minutes away from server time"
        if "x-sdk-date" not in signed or "host" not in signed:
            return "SignedHeaders must include host and x-sdk-date"
        lower = {k.lower(): v for k, v in headers.items()}
        canon_headers = []
        for name in signed:
            if name not in lower:
                return f"signed header {name} is missing"
            canon_headers.append(f"{name}:{_header_text(lower[name]).strip()}")
        path, _, query = raw_path.partition("?")
        if not body:
            payload_hash = EMPTY_SHA256
        else:
            payload_hash = lower.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
        canonical = "\n".join([method.upper(), canonical_uri(path), canonical_query(query),
                               "\n".join(canon_headers) + "\n", ";".join(signed), payload_hash])
        to_sign = "\n".join([ALGORITHM, sdk_date,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        expected = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "signature does not match"
        return None

    # ------------------------------------------------------------------------------ IAM

    def iam_login(self, body: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
        """``POST /v3/auth/tokens``: (status, extra headers, JSON body)."""
        try:
            auth = json.loads(body or b"{}")["auth"]
            ident = auth["identity"]
            user = ident["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
            project = auth["scope"]["project"]
            if "password" not in ident["methods"] or not (project.get("name")
                                                           or project.get("id")):
                raise KeyError("scope")
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, {}, _keystone(400, "Bad Request", "The request body is invalid: expected "
                                      "a password identity and a project scope.")
        for u in self.scenario.iam_users:
            if (u["name"], u["domain"]) == (name, domain) and hmac.compare_digest(
                    str(u["password"]), str(password)):
                break
        else:
            return 401, {}, _keystone(401, "Unauthorized", "The username or password is wrong.")
        token, expires = self.issue()
        issued = self.clock.now()
        out: dict[str, object] = {"token": {
            "expires_at": iso_utc(expires), "issued_at": iso_utc(issued), "methods": ["password"],
            "user": {"name": name, "domain": {"name": domain}}, "project": dict(project)}}
        return 201, {"X-Subject-Token": token}, out


def _apig(code: str, message: str) -> Refusal:
    return Refusal(401, code, message, "apig")


def _keystone(status: int, title: str, message: str) -> dict[str, object]:
    return {"error": {"code": status, "title": title, "message": message}}


def _header_text(value: str) -> str:
    """http.server decodes header bytes as latin-1; signers sent UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    if not value.startswith(ALGORITHM + " "):
        return None
    parts = {}
    for item in value[len(ALGORITHM) + 1:].split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            parts[key] = val
    try:
        return parts["Access"], parts["SignedHeaders"].split(";"), parts["Signature"]
    except KeyError:
        return None


def _encode(s: str) -> str:
    return quote(s, safe="~")


def canonical_uri(path: str) -> str:
    """Each segment percent-encoded (RFC 3986 unreserved kept), always a trailing slash."""
    uri = "/".join(_encode(seg) for seg in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: str) -> str:
    """Pairs sorted by key then value, each side percent-encoded."""
    pairs = []
    for item in query.split("&"):
        if item:
            k, _, v = item.partition("=")
            pairs.append((unquote(k), unquote(v)))
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))
