"""Scenarios: how the simulated endpoint behaves (auth mode, paging quirks, faults, drift).

A ``Scenario`` is a dataclass; ``Scenario.load(path)`` reads the same keys from a JSON or TOML
file (see docs/ARCHITECTURE.md, "Simulator"). Invalid values raise ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

AUTH_MODES = ("open", "token", "iam", "aksk")
CONTENT_RANGE_SHAPES = ("offset-count", "first-last", "none")
ERROR_SHAPES = ("list", "errors", "top", "apig")
FAULT_KINDS = ("status", "drop", "truncate", "no-header", "delay", "expire-token")
DRIFT_KINDS = ("insert_front", "delete", "reorder", "bump", "replace", "move")
DELETE_WHERE = ("random", "front", "end")
TIMESTAMP_FORMATS = ("swr", "iso")

# Default error code per status for `status` faults (docs/how-it-works/swr-api.md, "Which
# answers are worth another attempt").
DEFAULT_CODES = {
    400: "SVCSTG.SWR.4000014", 401: "SVCSTG.SWR.4010000", 403: "SVCSTG.SWR.4031032",
    404: "SVCSTG.SWR.4040083", 409: "SVCSTG.SWR.4090023", 429: "APIG.0308",
}


def _match_fields(kind: str, at: int | None, every: int | None, times: float | None) -> float:
    """Validate ``at``/``every``/``times``; return the effective ``times``."""
    if (at is None) == (every is None):
        raise ConfigError(f"{kind}: give exactly one of 'at' or 'every'")
    if at is not None and (not isinstance(at, int) or at < 1):
        raise ConfigError(f"{kind}: 'at' must be an integer >= 1, got {at!r}")
    if every is not None and (not isinstance(every, int) or every < 1):
        raise ConfigError(f"{kind}: 'every' must be an integer >= 1, got {every!r}")
    if times is None:
        return 1 if at is not None else math.inf
    if times < 1:
        raise ConfigError(f"{kind}: 'times' must be >= 1, got {times!r}")
    return times


def _triggers(at: int | None, every: int | None, times: float | None, n: int, hits: int) -> bool:
    """Faults and drift alike: from request ``at`` on, or every ``every``-th, ``times`` times."""
    if hits >= (times or 0):
        return False
    if at is not None:
        return n >= at
    return every is not None and n % every == 0


@dataclass
class Fault:
    """A fault on repos requests number ``at``.. (``times`` of them) or every ``every``-th, or
    on every repos request inside a time window (``at``/``from_s`` + ``for_s`` seconds)."""

    kind: str
    at: int | None = None
    every: int | None = None
    times: float | None = None
    status: int = 503
    code: str | None = None
    shape: str | None = None  # list | errors | top | apig (default: apig for APIG.* codes)
    message: str | None = None
    retry_after: str | int | None = None  # seconds, or "http-date:+N"
    delay_ms: int = 0
    # Time-based faults (an outage of N seconds rather than N requests), on the simulator's
    # clock (``Simulator.clock``: tests may ``advance`` it instead of sleeping). ``from_s``:
    # seconds after the scenario's first repos request; ``for_s``: how long the fault lasts
    # from ``at`` or ``from_s`` (every repos request inside the window is hit).
    from_s: float | None = None
    for_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, "
                              f"not {self.kind!r}")
        self._check_timing()
        if not 100 <= int(self.status) <= 599:
            raise ConfigError(f"fault status must be 100..599, got {self.status!r}")
        if self.code is None:
            self.code = DEFAULT_CODES.get(self.status, f"SVCSTG.SWR.{self.status}0000")
        if self.shape is None:
            self.shape = "apig" if self.code.startswith("APIG") else "list"
        if self.shape not in ERROR_SHAPES:
            raise ConfigError(f"fault shape must be one of {', '.join(ERROR_SHAPES)}, "
                              f"not {self.shape!r}")
        if self.message is None:
            self.message = f"simulated fault: HTTP {self.status}"
        if self.retry_after is not None:
            ra = str(self.retry_after)
            tail = ra[len("http-date:"):] if ra.startswith("http-date:") else ra
            try:
                float(tail)
            except ValueError:
                raise ConfigError(f"retry_after must be seconds or 'http-date:+N', "
                                  f"not {ra!r}") from None
        if self.kind == "delay" and self.delay_ms <= 0:
            raise ConfigError("a delay fault needs delay_ms > 0")

    def _check_timing(self) -> None:
        what = f"fault {self.kind}"
        starts = [k for k in ("at", "every", "from_s") if getattr(self, k) is not None]
        if len(starts) != 1:
            raise ConfigError(f"{what}: give exactly one of 'at', 'every' or 'from_s'")
        for key, least in (("from_s", ">= 0"), ("for_s", "> 0")):
            value = getattr(self, key)
            if value is None:
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or value < 0 or (key == "for_s"
                                                                         and value == 0):
                raise ConfigError(f"{what}: '{key}' must be a number of seconds {least}, "
                                  f"got {value!r}")
        if self.for_s is not None and self.every is not None:
            raise ConfigError(f"{what}: 'for_s' goes with 'at' or 'from_s', not 'every'")
        # A window hits every request inside it unless ``times`` says otherwise; without one,
        # ``from_s`` hits ``times`` requests (default 1) from then on, as ``at`` does.
        times = self.times
        if times is None and self.for_s is not None:
            times = math.inf
        self.times = _match_fields(what, 1 if self.from_s is not None else self.at, self.every,
                                   times)

    def matches(self, n: int, hits: int, elapsed: float = 0.0,
                opened: float | None = None) -> bool:
        """Does repos request number ``n`` trigger this fault, given ``hits`` so far?

        ``elapsed``: seconds on the simulator's clock since the scenario's first repos request;
        ``opened``: ``elapsed`` when an ``at`` + ``for_s`` fault first hit (None before).
        """
        if self.from_s is None and self.for_s is None:
            return _triggers(self.at, self.every, self.times, n, hits)
        if hits >= (self.times or 0):
            return False
        if self.from_s is not None:
            start = float(self.from_s)
        elif self.at is not None and n >= self.at:
            start = elapsed if opened is None else opened
        else:
            return False
        end = start + self.for_s if self.for_s is not None else math.inf
        return start <= elapsed < end


@dataclass
class Drift:
    """A change to the dataset just before repos request ``at`` (or every ``every``-th).

    ``replace`` and ``move`` keep the total: ``replace`` deletes ``count`` images (``where``, or
    from index ``position``) and inserts as many new ones at index ``to`` (default 0, the
    front); ``move`` takes ``count`` images from index ``position`` (default random) to index
    ``to`` (default random), e.g. from one page to another. Indexes past the end are clipped.
    """

    kind: str
    at: int | None = None
    every: int | None = None
    times: float | None = None
    count: int = 1
    where: str = "random"  # delete and replace: random | front | end
    position: int | None = None  # delete, replace, move: the first index affected
    to: int | None = None  # replace, move: the index the images land at

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ConfigError(f"drift kind must be one of {', '.join(DRIFT_KINDS)}, "
                              f"not {self.kind!r}")
        self.times = _match_fields(f"drift {self.kind}", self.at, self.every, self.times)
        if self.where not in DELETE_WHERE:
            raise ConfigError(f"drift where must be random, front or end, not {self.where!r}")
        for key in ("position", "to"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ConfigError(f"drift {self.kind}: '{key}' must be an integer >= 0, "
                                  f"got {value!r}")

    def matches(self, n: int, hits: int) -> bool:
        """Does repos request number ``n`` trigger this drift, given ``hits`` so far?"""
        return _triggers(self.at, self.every, self.times, n, hits)


@dataclass
class Scenario:
    """Everything that shapes the simulator's behaviour; defaults are a well-behaved endpoint."""

    auth: str = "open"
    tokens: list[str] = field(default_factory=list)
    token_ttl: float = 86_400
    iam_users: list[dict[str, str]] = field(default_factory=list)
    aksk: dict[str, str] = field(default_factory=dict)
    content_range: str = "offset-count"
    max_page_size: int = 1000
    ignore_offset: bool = False
    latency_ms: float = 0
    timestamp_format: str = "swr"  # swr ("2017-10-16 21:33:44") | iso ("...T21:33:44.5Z")
    iso_digits: int = 9            # fraction digits with timestamp_format = "iso": 0/3/5/6/9
    error_shape: str = "top"       # body shape of the built-in 400/401/404 errors
    faults: list[Fault] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faults = [f if isinstance(f, Fault) else _build(Fault, f, "faults")
                       for f in self.faults]
        self.drift = [d if isinstance(d, Drift) else _build(Drift, d, "drift")
                      for d in self.drift]
        checks = [("auth", AUTH_MODES), ("content_range", CONTENT_RANGE_SHAPES),
                  ("timestamp_format", TIMESTAMP_FORMATS), ("error_shape", ERROR_SHAPES)]
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"scenario {name} must be one of {', '.join(allowed)}, "
                                  f"not {getattr(self, name)!r}")
        if self.iso_digits not in (0, 3, 5, 6, 9):
            raise ConfigError(f"scenario iso_digits must be 0, 3, 5, 6 or 9, "
                              f"not {self.iso_digits!r}")
        if not isinstance(self.max_page_size, int) or self.max_page_size < 1:
            raise ConfigError(f"scenario max_page_size must be >= 1, not {self.max_page_size!r}")
        for user in self.iam_users:
            if not {"domain", "name", "password"} <= set(user):
                raise ConfigError("each iam_users entry needs domain, name and password")

    @property
    def render_format(self) -> str:
        """The dataset's timestamp format key for this scenario."""
        return "swr" if self.timestamp_format == "swr" else f"iso{self.iso_digits}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build from plain data (JSON/TOML keys); unknown keys are an error."""
        return _build(cls, data, "scenario")

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read a JSON (``.json``) or TOML (anything else) scenario file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
        except OSError as exc:
            raise ConfigError(f"cannot read scenario file {p}: {exc.strerror}") from exc
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"scenario file {p} is not valid: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"scenario file {p} must hold an object/table at the top level")
        return cls.from_dict(data)

    @classmethod
    def coerce(cls, value: Scenario | Mapping[str, Any] | str | Path | None) -> Scenario:
        """Accept a Scenario, a dict, a file path or None (the default scenario)."""
        if value is None:
            return cls()
        if isinstance(value, Scenario):
            return value
        if isinstance(value, (str, Path)):
            return cls.load(value)
        return cls.from_dict(value)


def _build(cls: Any, data: Any, what: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what}: expected a table/object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{what}: {exc}") from exc
