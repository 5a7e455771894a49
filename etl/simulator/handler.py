"""The simulator's HTTP side: one handler answering the repos and IAM paths as SWR would, with
the scenario's faults, its auth checks and the API's parameter rules.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from etl.simulator.auth import Refusal
from etl.simulator.scenario import Fault, Scenario
from etl.simulator.wire import RequestRecord, content_range, error_body, mask_headers, retry_after

if TYPE_CHECKING:
    from etl.simulator.server import Simulator

REPOS_PATH = "/v2/manage/dockerhub/repos"
IAM_PATH = "/v3/auth/tokens"
# Sibling SWR list calls document limit default 100, maximum 1000 (docs/how-it-works/swr-api.md,
# "The call").
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class _Outcome:
    """What the handler decided to send."""

    status: int | None
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    truncate: bool = False


def _int_param(query: dict[str, str], name: str, default: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return None


class Handler(BaseHTTPRequestHandler):
    """Answers one connection's requests for ``sim`` (set on a subclass per simulator)."""

    protocol_version = "HTTP/1.1"  # keep-alive: a scan reuses one connection
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds ~40 ms
    # to every response.
    disable_nagle_algorithm = True
    server_version = "swr-simulator"
    timeout = 60  # an idle keep-alive connection's thread ends after this
    sim: Simulator

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the request log replaces stderr access lines

    def handle_one_request(self) -> None:
        cpu0 = time.thread_time()
        try:
            super().handle_one_request()
        finally:
            self.sim._count_cpu(time.thread_time() - cpu0)

    def setup(self) -> None:
        super().setup()
        self.sim._track(self.connection)

    def finish(self) -> None:
        self.sim._untrack(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, unsupported method) as JSON with a request id,
        like every other response."""
        rid = uuid.uuid4().hex
        body = json.dumps(error_body("top", f"SVCSTG.SWR.{code}0000",
                                     message or self.responses.get(code, ("error",))[0],
                                     rid)).encode()
        self.close_connection = True
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", rid)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _handle(self, method: str) -> None:
        sim = self.sim
        started = time.time()
        seq = sim._next_seq()
        rid = uuid.uuid4().hex
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "Content-Length is not an integer")
            return
        body = self.rfile.read(length) if length > 0 else b""
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        scenario = sim.scenario
        if scenario.latency_ms > 0:
            time.sleep(scenario.latency_ms / 1000)
        n = 0
        fault_kinds: tuple[str, ...] = ()
        path = parts.path.rstrip("/") or "/"
        if method == "GET" and path == REPOS_PATH:
            n, faults, scenario = sim._next_repos_request()
            fault_kinds = tuple(f.kind for f in faults)
            out = self._repos(scenario, faults, query, parts, body, rid)
        elif method == "POST" and path == IAM_PATH and scenario.auth == "iam":
            status, extra, obj = sim.auth.iam_login(body)
            out = _Outcome(status, json.dumps(obj).encode(), tuple(extra.items()))
        else:
            out = self._error(scenario.error_shape, 404, "SVCSTG.SWR.4040083",
                              f"The URL {parts.path} does not exist", rid)
        # Logged before the response goes out, so a client that has its answer sees the record.
        headers = {k: v for k, v in self.headers.items()}
        sim._record(RequestRecord(seq, n, method, parts.path, mask_headers(query),
                                  mask_headers(headers),
                                  out.status, started, time.time(), rid, fault_kinds))
        self._send(out, rid)

    def _error(self, shape: str, status: int, code: str, message: str, rid: str,
               extra: tuple[tuple[str, str], ...] = ()) -> _Outcome:
        body = json.dumps(error_body(shape, code, message, rid), ensure_ascii=False).encode()
        return _Outcome(status, body, extra)

    def _repos(self, sc: Scenario, faults: list[Fault], query: dict[str, str], parts: Any,
               body: bytes, rid: str) -> _Outcome:
        sim = self.sim
        no_header = truncate = False
        for f in faults:
            if f.kind == "expire-token":
                sim.auth.expire_all()
            elif f.kind == "delay":
                time.sleep(f.delay_ms / 1000)
            elif f.kind == "no-header":
                no_header = True
            elif f.kind == "truncate":
                truncate = True
        for f in faults:
            if f.kind == "drop":
                return _Outcome(None)
            if f.kind == "status":
                extra: tuple[tuple[str, str], ...] = ()
                if f.retry_after is not None:
                    extra = (("Retry-After", retry_after(f.retry_after)),)
                return self._error(f.shape or "list", f.status, f.code or "", f.message or "",
                                   rid, extra)
        raw_path = parts.path + ("?" + parts.query if parts.query else "")
        received = _Caseless({k: v for k, v in self.headers.items()})
        refusal: Refusal | None = sim.auth.check("GET", raw_path, received, body)
        if refusal is not None:
            return self._error(refusal.shape, refusal.status, refusal.code, refusal.message, rid)
        offset = _int_param(query, "offset", 0)
        limit = _int_param(query, "limit", DEFAULT_LIMIT)
        if offset is None or offset < 0:
            return self._error(sc.error_shape, 400, "SVCSTG.SWR.4000014",
                               f"Invalid parameter: offset must be a non-negative integer, "
                               f"got {query.get('offset')!r}", rid)
        if limit is None:
            return self._error(sc.error_shape, 400, "SVCSTG.SWR.4000014",
                               f"Invalid parameter: limit must be an integer, "
                               f"got {query.get('limit')!r}", rid)
        if not 1 <= limit <= MAX_LIMIT:
            return self._error(sc.error_shape, 400, "SVCSTG.SWR.4000056",
                               f"Invalid page size: limit must be 1..{MAX_LIMIT}, got {limit}", rid)
        if sc.ignore_offset:
            offset = 0
        page = sim.dataset.page(offset, min(limit, sc.max_page_size),
                                query.get("namespace") or None, query.get("image_name") or None,
                                sc.render_format)
        headers: list[tuple[str, str]] = []
        if sc.content_range != "none" and not no_header:
            headers.append(("Content-Range", content_range(sc.content_range, offset, page.count,
                                                            page.total)))
        return _Outcome(200, page.body, tuple(headers), truncate)

    def _send(self, out: _Outcome, rid: str) -> None:
        if out.status is None:  # drop: close the connection without a response
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(out.status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(out.body)))
        self.send_header("X-Request-Id", rid)
        for k, v in out.headers:
            self.send_header(k, v)
        if out.truncate:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            if out.truncate:
                self.wfile.write(out.body[: len(out.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.wfile.write(out.body)
        except OSError:
            self.close_connection = True


class _Caseless(dict[str, str]):
    """Header lookup by any case (the auth checks ask for canonical names)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in headers.items()})

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)
