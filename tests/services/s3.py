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

import itertools
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
