"""What the simulator puts on the wire: error body shapes, Content-Range, Retry-After, and the
request log record (with credentials masked).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

SECRET_HEADERS = {"x-auth-token", "authorization", "x-subject-token", "cookie",
                  "proxy-authorization"}
SECRET_WORDS = ("password", "secret", "token", "signature", "credential")
MASK = "***"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the simulator saw it. ``n`` counts repos requests only (0 otherwise)."""

    seq: int
    n: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None  # None: connection dropped without a response
    started: float
    finished: float
    request_id: str
    faults: tuple[str, ...] = ()


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header (or query) dict with every credential-bearing value replaced by ``***``."""
    out = {}
    for k, v in headers.items():
        low = k.lower()
        secret = low in SECRET_HEADERS or any(w in low for w in SECRET_WORDS)
        out[k] = MASK if secret else v
    return out


def error_body(shape: str, code: str, message: str, request_id: str) -> Any:
    """An error body in one of the documented shapes (docs/how-it-works/swr-api.md, "Error
    bodies")."""
    item = {"errorCode": code, "errorMessage": message}
    if shape == "list":
        return [item]
    if shape == "errors":
        return {"errors": [item]}
    if shape == "apig":
        return {"error_code": code, "error_msg": message, "request_id": request_id}
    return item


def content_range(shape: str, offset: int, count: int, total: int) -> str:
    # The middle number's meaning is disputed (docs/how-it-works/swr-api.md, "`Content-Range`"):
    # offset-count is what sibling APIs document; first-last is the HTTP reading (inclusive last
    # index).
    if shape == "first-last":
        return f"{offset}-{offset + count - 1}/{total}" if count else f"*/{total}"
    return f"{offset}-{count}/{total}"


def retry_after(value: str | int) -> str:
    text = str(value)
    if text.startswith("http-date:"):
        return formatdate(time.time() + float(text[len("http-date:"):]), usegmt=True)
    return text
