"""An S3-compatible object store for the tests: moto in server mode, on 127.0.0.1.

moto answers the S3 REST API over real HTTP, so the code under test uses its ordinary clients
(pyarrow's S3 filesystem, s3fs, DuckDB, boto3) against ``endpoint_url``. The server runs in a
thread of the test process and keeps its objects in memory.

    server = S3Server().start()
    server.create_bucket("test-1")
    ...                                 # S3FileSystem(endpoint_override=server.endpoint_url)
    server.delete_bucket("test-1")
    server.close()
"""

from __future__ import annotations

import http.client
import itertools
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.services import ServiceFailed, ServiceUnavailable

REGION = "us-east-1"  # moto's default; buckets there need no LocationConstraint
# Fake and recognisable: a test can grep logs, databases and exports for them to prove that
# credentials never leak.
ACCESS_KEY_ID = "SWRETLTESTACCESSKEY1"
SECRET_ACCESS_KEY = "swr-etl-test-secret-key-never-logged"
START_TIMEOUT_S = 30.0
INSTALL_HINT = "pip install -e '.[test]' (or pip install 'moto[server]')"

# Variables through which a developer's real AWS setup could reach a test: a profile, a session
# token, an endpoint, config files. The bucket fixture removes them for the test's duration.
AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "SWR_ETL_S3_ENDPOINT",
)


class S3Server:
    """moto's S3 API on 127.0.0.1 and an ephemeral port."""

    def __init__(self) -> None:
        self.endpoint_url = ""
        self._server: Any = None

    def start(self) -> S3Server:
        """Start the server and return once it listens.

        Raises:
            ServiceUnavailable: moto (with its server extra) is not installed.
            ServiceFailed: it did not start within START_TIMEOUT_S.
        """
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ServiceUnavailable(f"moto's S3 server cannot be imported ({exc}): "
                                     f"{INSTALL_HINT}") from None
        # werkzeug logs every request at info level; in a test's captured log that is noise
        # among the tool's own records. Warnings and errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        # start() waits for its ready event with no timeout, and a bind error in its thread
        # would leave that wait hanging: run it in a helper thread and bound the wait here.
        errors: list[BaseException] = []

        def run() -> None:
            try:
                server.start()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        starter = threading.Thread(target=run, name="moto-start", daemon=True)
        starter.start()
        starter.join(START_TIMEOUT_S)
        if starter.is_alive() or errors:
            cause = f": {errors[0]!r}" if errors else f" within {START_TIMEOUT_S:g} s"
            raise ServiceFailed(f"moto's S3 server did not start{cause}")
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def close(self) -> None:
        """Shut the server down (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def client(self) -> Any:
        """A boto3 S3 client for the fixtures' own housekeeping, with the fake credentials
        passed explicitly (never read from the environment)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY_ID,
                            aws_secret_access_key=SECRET_ACCESS_KEY)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def delete_bucket(self, name: str) -> None:
        """Empty the bucket, then delete it; one already gone (a test removed it) is fine."""
        client = self.client()
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=name, Delete={"Objects": keys})
            client.delete_bucket(Bucket=name)
        except client.exceptions.NoSuchBucket:
            pass

    def buckets(self) -> set[str]:
        return {b["Name"] for b in self.client().list_buckets().get("Buckets", [])}


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the test server, and what a client needs to reach it."""

    endpoint_url: str
    name: str
    region: str = REGION
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY

    def uri(self, key: str = "") -> str:
        """``s3://<bucket>/<key>``."""
        return f"s3://{self.name}/{key.lstrip('/')}"

    @property
    def endpoint_host(self) -> str:
        """``127.0.0.1:PORT``: the endpoint without its scheme, as pyarrow's
        ``endpoint_override`` takes it (with ``scheme="http"``)."""
        return self.endpoint_url.split("://", 1)[1]

    def filesystem(self) -> Any:
        """pyarrow's S3 filesystem on this server; credentials come from the environment."""
        from pyarrow import fs

        return fs.S3FileSystem(endpoint_override=self.endpoint_host, scheme="http",
                               region=self.region)

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs ``storage_options`` for this server (pandas ``storage_options=``)."""
        return {"endpoint_url": self.endpoint_url, "key": self.access_key_id,
                "secret": self.secret_access_key}


_bucket_names = itertools.count(1)


def fake_aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and region for one test through ``monkeypatch`` (restored after it);
    nothing of the developer's own AWS setup stays visible, and no SDK asks the instance
    metadata service (a non-loopback address) for credentials or a region."""
    for name in AWS_VARIABLES_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    absent = tmp_path / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(absent / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(absent / "credentials"))


def bucket_for_test(server: S3Server, monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> Iterator[S3Bucket]:
    """The ``s3_bucket`` fixture's body: fake environment, a new bucket, removed afterwards."""
    fake_aws_environment(monkeypatch, tmp_path)
    name = f"test-{os.getpid()}-{next(_bucket_names)}"
    server.create_bucket(name)
    try:
        yield S3Bucket(endpoint_url=server.endpoint_url, name=name)
    finally:
        server.delete_bucket(name)


def start_server() -> S3Server:
    """Start the session's server (ServiceUnavailable / ServiceFailed as ``S3Server.start``)."""
    return S3Server().start()


# ------------------------------------------------------------------------- a front that fails


# An S3 error body as servers send it; the client reads the code and message from it.
_ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
              "<Message>{message}</Message><RequestId>swr-etl-test</RequestId></Error>")
# status -> (S3 error code, message) a failing front answers with
_ERRORS = {
    403: ("AccessDenied", "Access Denied"),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultyFront

    def log_message(self, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailer lines
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._body()
        status = self.server.verdict(self.command, self.path)
        if status is not None:
            code, message = _ERRORS[status]
            data = _ERROR_XML.format(code=code, message=message).encode()
            self._answer(status, [("Content-Type", "application/xml")], data)
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("transfer-encoding", "content-length", "connection")}
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            self._answer(resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in
                                       ("transfer-encoding", "content-length", "connection")],
                         data, length=resp.getheader("Content-Length"))
        finally:
            conn.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes,
                length: str | None = None) -> None:
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        # A HEAD answer carries the object's length but no body.
        self.send_header("Content-Length", length if self.command == "HEAD" and length
                         else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class FaultyFront(ThreadingHTTPServer):
    """A pass-through HTTP front on 127.0.0.1 for the S3 server, told when to fail: moto has no
    fault injection, and a store that fails part-way is what the export must survive.

        front = FaultyFront(server.endpoint_url)   # .endpoint_url: where clients connect
        front.fail_puts_after(2)                   # the 3rd PUT and every later one: HTTP 500
        front.refuse_everything(403)               # every request: 403 AccessDenied
    """

    daemon_threads = True

    def __init__(self, upstream_url: str) -> None:
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        self.upstream = upstream_url.split("://", 1)[1]
        self.lock = threading.Lock()
        self.requests: list[tuple[str, int | None]] = []  # (method, status forced or None)
        self._puts_allowed: int | None = None
        self._status: int | None = None
        self._fail_status = 500
        self._path_part = ""
        self._thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail_puts_after(self, count: int, status: int = 500, *, path_part: str = "") -> None:
        """Pass ``count`` more PUTs through, then answer every PUT with ``status``; with
        ``path_part``, only PUTs whose path holds it count and fail (a PUT uploads an object or
        a part of one, and copies one)."""
        with self.lock:
            self._puts_allowed, self._fail_status = count, status
            self._path_part = path_part

    def refuse_everything(self, status: int) -> None:
        with self.lock:
            self._status = status

    def verdict(self, method: str, path: str) -> int | None:
        """The status to answer this request with instead of passing it on, or None."""
        with self.lock:
            forced = self._status
            if (forced is None and method == "PUT" and self._puts_allowed is not None
                    and self._path_part in unquote(path)):
                if self._puts_allowed > 0:
                    self._puts_allowed -= 1
                else:
                    forced = self._fail_status
            self.requests.append((method, forced))
            return forced

    def close(self) -> None:
        self.shutdown()
        self.server_close()
