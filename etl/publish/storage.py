"""Where an export is written: a local folder or a bucket of S3-compatible object storage.

The export (etl.publish.export) decides what goes where -- the partition layout, the manifest,
the order -- once; a ``Store`` only knows how to put whole files under names like
``snapshot_date=2026-11-30/images.parquet``, read one back, list a folder and delete a file.

Either store replaces a file so that a reader sees the old version or the new one, never half:

* ``LocalStore``: a hidden temp file in the same folder, renamed over the old one (etl.atomic).
* ``BucketStore``: pyarrow's S3 filesystem. An upload that fails or is interrupted can still
  leave an object (pyarrow completes a multipart upload when its stream is closed, even after an
  error), so the bytes go to a temp key in ``_swr-etl-tmp/`` below the prefix first; only when
  that object has every byte is it copied over the final key (one server-side CopyObject, which
  is atomic) and the temp key deleted. Dataset readers (pyarrow, pandas, DuckDB's and polars'
  globs, Spark, Trino) skip names starting with ``_``, so what a killed export leaves there is
  never read as data. Nothing is ever deleted inside a partition folder: pyarrow leaves an empty
  "folder" object where it deletes one, and pandas reading through s3fs takes such an object for
  a broken data file. So a partition keeps its format in a bucket (see ``prepare``).

Credentials for a bucket come only from the AWS SDK's own chain (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, profiles): never from a URL or a setting.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from etl.atomic import atomic_file
from etl.config.urls import S3_CREDENTIAL_VARS, S3_SCHEME, check_s3_url, split_s3_url
from etl.errors import ConfigError

if TYPE_CHECKING:
    from etl.config.settings import Settings

# Below the prefix, where uploads wait to be copied over their final names; readers skip it.
TEMP_FOLDER = "_swr-etl-tmp"
DEFAULT_S3_ATTEMPTS = 3  # the AWS SDKs' standard retry mode: 3 attempts per request
# Huawei Cloud OBS endpoints name their region: https://obs.<region>.myhuaweicloud.com
_OBS_HOST = re.compile(r"obs\.([a-z0-9-]+)\.(?:myhuaweicloud|huaweicloud)\.[a-z.]+")

# What the AWS error code in a failure means to an operator (facts as data). Anything else is
# said as the store said it.
_AWS_MEANINGS = {
    "NO_SUCH_BUCKET": "the bucket does not exist",
    "ACCESS_DENIED": f"access denied: check {S3_CREDENTIAL_VARS} and the bucket's policy",
    "INVALID_ACCESS_KEY_ID": f"the access key id was refused: check {S3_CREDENTIAL_VARS}",
    "SIGNATURE_DOES_NOT_MATCH": f"the request signature was refused: check {S3_CREDENTIAL_VARS}",
    "EXPIRED_TOKEN": "the session token (AWS_SESSION_TOKEN) has expired",
    "NETWORK_CONNECTION": "the object store could not be reached",
}
_AWS_CODE = re.compile(r"AWS Error ([A-Z_]+) ")


@dataclass(frozen=True)
class S3Options:
    """How to reach the object store: ``endpoint`` (an http(s) base URL; None: AWS S3),
    ``region`` (None: from an OBS endpoint's host name, else the AWS SDK's own default),
    ``timeout`` (seconds to connect, and of no progress on a request) and ``attempts`` per
    request."""

    endpoint: str | None = None
    region: str | None = None
    timeout: float = 30.0
    attempts: int = DEFAULT_S3_ATTEMPTS

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Options:
        """The run's bounds apply to the store too: ``--timeout``, and ``--max-attempts`` when
        given."""
        return cls(endpoint=settings.s3_endpoint, region=settings.s3_region,
                   timeout=settings.timeout,
                   attempts=settings.max_attempts or DEFAULT_S3_ATTEMPTS)

    def filesystem(self) -> Any:
        """pyarrow's ``S3FileSystem`` for these options."""
        from pyarrow import fs

        kw: dict[str, Any] = {}
        region = self.region
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            kw.update(endpoint_override=parts.netloc, scheme=parts.scheme)
            obs = _OBS_HOST.fullmatch(parts.hostname or "")
            region = region or (obs.group(1) if obs else None)
        return fs.S3FileSystem(
            region=region, connect_timeout=self.timeout, request_timeout=self.timeout,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=self.attempts), **kw)


class HashingSink:
    """A binary file-like object that passes writes on and keeps their SHA-256 and length, so a
    file's manifest entry needs no second read (of a local file, or of an object)."""

    def __init__(self, sink: Any) -> None:
        self.sink, self.size, self._hash = sink, 0, hashlib.sha256()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self.size += len(view)
        self.sink.write(view)
        return len(view)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.sink.flush()

    @property
    def closed(self) -> bool:
        return bool(self.sink.closed)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class Store(Protocol):
    """A destination of exports; ``name``s are relative, ``/``-separated."""

    url: str  # the destination as users name it: a folder or s3://bucket/prefix

    def locate(self, name: str) -> Path | str:
        """A file's full name as users see it."""

    def prepare(self, names: list[str]) -> None:
        """Refuse a destination (or one of the files ``names``) that cannot be written, before
        anything is."""

    def read_text(self, name: str) -> str | None:
        """The file's text, or None if there is none."""

    def replace(self, name: str) -> Any:
        """A context manager yielding a ``HashingSink``; the file appears whole when the block
        ends normally, and not at all (the old one stays) when it raises."""

    def listing(self, folder: str) -> list[str]:
        """Names of the files in ``folder`` (none if it does not exist)."""

    def remove(self, name: str) -> None:
        """Delete a file; one already gone is fine."""

    def failure(self, exc: OSError) -> ConfigError:
        """The one line saying an operation on this destination failed."""


class LocalStore:
    """A local folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def locate(self, name: str) -> Path:
        return self.root / name

    def prepare(self, names: list[str]) -> None:
        for name in names:  # all refused before any is written
            self.check_folder(name.rpartition("/")[0])
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create export folder {self.root}: {exc}") from exc

    def check_folder(self, folder: str) -> Path:
        """``root/folder``, refused when something planted a symlink there: writing through it,
        and dropping the partition's stale files, would touch the link's target.

        Raises:
            ConfigError: the folder, or a folder above it below the root, is a symbolic link
                (nothing is written or deleted).
        """
        path = self.root
        for part in Path(folder).parts:  # source=… and snapshot_date=… alike
            path = path / part
            if path.is_symlink():
                raise ConfigError(f"export folder {path} is a symbolic link; refusing to write "
                                  "through it (nothing was written or deleted; remove the link)")
        return self.root / folder

    def read_text(self, name: str) -> str | None:
        path = self.root / name
        return path.read_text(encoding="utf-8") if path.exists() else None

    @contextmanager
    def replace(self, name: str) -> Iterator[HashingSink]:
        final = self.root / name
        final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(final) as f:
            yield HashingSink(f)

    def listing(self, folder: str) -> list[str]:
        path = self.check_folder(folder)
        return [p.name for p in path.iterdir()] if path.is_dir() else []

    def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def failure(self, exc: OSError) -> ConfigError:
        return ConfigError(f"cannot write export to {self.root}: {exc}")


class BucketStore:
    """``s3://bucket/prefix`` through pyarrow's S3 filesystem."""

    def __init__(self, url: str, options: S3Options) -> None:
        self.url = url
        self.bucket, self.prefix = split_s3_url(url)
        self.options = options
        self.fs = options.filesystem()

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.bucket, self.prefix, name) if p)

    def locate(self, name: str) -> str:
        return f"{self.url}/{name}"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except ConfigError:
            raise
        except OSError as exc:
            raise self.failure(exc) from exc

    def prepare(self, names: list[str]) -> None:
        from pyarrow import fs

        with self._translated():
            info = self.fs.get_file_info(self.bucket)
        if info.type == fs.FileType.NotFound:
            raise ConfigError(f"cannot write export to {self.url} at {self.where()}: bucket "
                              f"{self.bucket!r} does not exist")
        for name in names:
            folder, _, base = name.rpartition("/")
            other = [n for n in self.listing(folder) if n != base and n.startswith("images.")]
            if other:
                raise ConfigError(
                    f"{self.locate(folder)} holds {other[0]}: a partition in a bucket keeps its "
                    "format (deleting the old file would leave an empty folder object that "
                    "pandas reading through s3fs trips over); export to another prefix, or "
                    "delete the partition first (nothing was written)")

    def where(self) -> str:
        """The endpoint, for messages."""
        return self.options.endpoint or "AWS S3"

    def read_text(self, name: str) -> str | None:
        with self._translated():
            try:
                with self.fs.open_input_stream(self._key(name)) as f:
                    data: bytes = f.read()
            except FileNotFoundError:
                return None
        return data.decode("utf-8")

    @contextmanager
    def replace(self, name: str) -> Iterator[HashingSink]:
        temp = f"{TEMP_FOLDER}/{uuid.uuid4().hex[:12]}.{name.replace('/', '.')}"
        with self._translated():
            stream = self.fs.open_output_stream(self._key(temp))
            try:
                sink = HashingSink(stream)
                yield sink
                stream.close()  # the upload completes here, or raises
                self._check_size(temp, sink.size)
                self.fs.copy_file(self._key(temp), self._key(name))
            finally:
                with suppress(OSError):
                    stream.close()  # after a failure: whatever it uploads is deleted next
                with suppress(OSError):
                    self.fs.delete_file(self._key(temp))

    def _check_size(self, temp: str, size: int) -> None:
        stored = self.fs.get_file_info(self._key(temp)).size
        if stored != size:
            raise OSError(f"the store holds {stored} bytes of {size} written to {temp}")

    def listing(self, folder: str) -> list[str]:
        from pyarrow import fs

        with self._translated():
            infos = self.fs.get_file_info(fs.FileSelector(self._key(folder),
                                                          allow_not_found=True))
        return [info.base_name for info in infos if info.type == fs.FileType.File]

    def remove(self, name: str) -> None:
        with self._translated(), suppress(FileNotFoundError):
            self.fs.delete_file(self._key(name))

    def failure(self, exc: OSError) -> ConfigError:
        detail = " ".join(str(exc).split())  # one line, whatever the SDK's message held
        code = _AWS_CODE.search(detail)
        meaning = _AWS_MEANINGS.get(code.group(1)) if code else None
        said = f"{meaning} ({detail})" if meaning else detail
        return ConfigError(f"cannot write export to {self.url} at {self.where()}: {said}")


def open_store(out: Path | str, s3: S3Options | None = None) -> Store:
    """The store for ``out``: a folder, or an ``s3://`` URL (checked here too, for library
    callers).

    Raises:
        ConfigError: an invalid ``s3://`` URL.
    """
    if isinstance(out, str) and out.lower().startswith(f"{S3_SCHEME}:"):
        return BucketStore(check_s3_url("out", out), s3 or S3Options())
    return LocalStore(Path(out))
