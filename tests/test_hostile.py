"""Hostile input, generated with hypothesis: never a traceback, never a lost row.

- arbitrary rows (wrong types, huge numbers, deep nesting, missing fields, enormous strings) fed
  to ``transform_rows``: every row is loaded, rejected, or dropped as a duplicate with an issue;
- arbitrary page bodies and ``Content-Range`` values served by a tiny stub server on 127.0.0.1
  to a whole ``run_sync``: it ends in a documented outcome (exit 0/6, or an ``EtlError`` with
  exit 4 or 7), and for a loaded run ``rows_seen = rows_loaded + rows_rejected + duplicates``;
- arbitrary ``Content-Range`` values for the parser alone;
- arbitrary config files through ``swr-etl sync --config``: documented exit codes only, one line.

Example counts stay modest (the whole module runs in well under a minute); the figures are
printed at the end.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.config.settings import Settings
from etl.errors import EtlError
from etl.extract.contentrange import parse_content_range
from etl.run.pipeline import run_sync
from etl.store.bind import bind_columns
from etl.store.schema import IMAGE_COLUMNS
from etl.transform.frames import DUPLICATE_ID, ISSUE_DTYPES, transform_columns, transform_rows
from tests.helpers import Seen, StubHandler, answer, cli, q, serving

FIGURES: Counter[str] = Counter()
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7}
FIELDS = ("id", "user", "name", "namespace", "description", "star_count", "pull_count",
          "collection_id", "last_updated", "total_range")
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]


def HYPO(examples: int) -> Any:  # noqa: N802 (reads like the decorator it returns)
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=HEALTH)

# ------------------------------------------------------------------------------- strategies

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["", " ", "42", " 7 ", "1e3", "12.0", "-0", "0x1F", "NaN",
                              "2017-10-16 21:33:44", "2017-09-11T03:00:02.542841141Z",
                              "9999-12-31 23:59:59", "0000-00-00 00:00:00", "\x00", "\ud800",
                              "x" * 100_000]))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested a few hundred levels deep (lists or objects)."""
    depth = draw(st.integers(1, 400))
    value: Any = draw(scalars)
    for _ in range(depth):
        value = [value] if draw(st.booleans()) else {"k": value}
    return value


field_values = st.one_of(scalars, json_values, deep())
plausible_ids = st.one_of(st.integers(1, 30), st.integers(-3, 2**64), st.just("17"),
                          st.just(True), st.just(2.0), st.just(None), st.text(max_size=4))


@st.composite
def rows(draw: st.DrawFn) -> Any:
    """A row: mostly an object with some of the documented fields, sometimes anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(json_values, deep()))
    present = draw(st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS)))
    row: dict[str, Any] = {}
    for name in present:
        row[name] = draw(plausible_ids if name == "id" else field_values)
    if draw(st.booleans()):
        row["id"] = draw(st.integers(1, 40))
    return row


row_lists = st.lists(rows(), max_size=25)

# ----------------------------------------------------------------------------- the transform


@HYPO(50)
@given(row_lists)
def test_transform_accounts_for_every_row(data: list[Any]) -> None:
    t = transform_rows(data, page_offsets=[0] * len(data), source_timezone="UTC")
    dups = int((t.quality_issues["problem"] == DUPLICATE_ID).sum())
    assert len(t.images) + len(t.rejects) + dups == len(data)
    assert t.images["id"].is_unique
    assert (t.images["id"] > 0).all()
    for col in ("star_count", "pull_count", "collection_id"):
        values = t.images[col].dropna()
        assert ((values >= 0) & (values <= 2**63 - 1)).all()
    # What a sync binds (the columns as they are) is what the frames hold, value for value.
    columns = transform_columns(data, page_offsets=[0] * len(data), source_timezone="UTC")
    for table, frame, names in ((columns.images, t.images, IMAGE_COLUMNS),
                                (columns.rejects, t.rejects, ("page_offset", "reason", "raw")),
                                (columns.quality_issues, t.quality_issues, tuple(ISSUE_DTYPES))):
        assert bind_columns(table, names) == bind_columns(frame, names)
        assert all(type(v) in (int, str, type(None)) for col in bind_columns(table, names)
                   for v in col)
    FIGURES["transform examples"] += 1
    FIGURES["transform rows"] += len(data)
    FIGURES["transform rows rejected"] += len(t.rejects)
    FIGURES["transform quality issues"] += len(t.quality_issues)


# ----------------------------------------------------------------------- the Content-Range parser

header_values = st.one_of(
    st.text(max_size=40),
    st.builds(lambda a, b, c, sep: f"{a}-{b}{sep}{c}", st.integers(-5, 10**20),
              st.integers(-5, 10**20), st.integers(-5, 10**20), st.sampled_from(["/", " / "])),
    st.builds(lambda unit, v: f"{unit} {v}", st.sampled_from(["items", "bytes", "x"]),
              st.from_regex(r"\*/[0-9]{1,25}", fullmatch=True)),
)


@HYPO(150)
@given(header_values)
def test_content_range_parser_never_raises(value: str) -> None:
    cr = parse_content_range(value)
    if cr is not None:
        assert cr.total >= 0 and (cr.offset is None or cr.offset >= 0)
    FIGURES["Content-Range values parsed"] += 1


# ------------------------------------------------------------------------ a whole run, via HTTP


# What the stub serves: ``PAGES[offset]`` = (status, body, headers); any other offset (or one that
# is not a number) gets an empty array.
PAGES: dict[int, tuple[int, bytes, dict[str, str]]] = {}


def pages_by_offset(h: StubHandler, seen: Seen) -> None:
    try:
        offset = int(seen.query().get("offset", "0"))
    except ValueError:
        offset = -1
    status, body, headers = PAGES.get(offset, (200, b"[]", {}))
    answer(h, status, body, (("Content-Type", "application/json"), *headers.items()))


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    with serving(pages_by_offset) as server:
        yield server.url


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


# A body: an array of rows (most often), anything else, or not JSON at all.
bodies = st.one_of(
    row_lists.map(encode), row_lists.map(encode), row_lists.map(encode),
    json_values.map(encode), deep().map(encode),
    st.binary(max_size=40),
    st.sampled_from([b"", b"[", b"null", b'{"errors": []}', b"[" * 5000 + b"]" * 5000,
                     b"[" * 100_000, b'[{"id": 1e999}]', b'[{"id": NaN}]', b"\xff\xfe[]"]),
)
# Header values must be sendable (latin-1, no line breaks): the rest is the parser's business.
sendable = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30)
ranges = st.one_of(st.none(), sendable, header_values.filter(
    lambda v: all(32 <= ord(c) <= 255 for c in v)))


def run_stats(db: Path) -> tuple[str, int, int, int, int]:
    ((status, seen, loaded, rejected, run_id),) = q(
        db, "SELECT status, rows_seen, rows_loaded, rows_rejected, run_id FROM runs "
            "ORDER BY run_id DESC LIMIT 1")
    ((dups,),) = q(db, "SELECT COUNT(*) FROM quality_issues WHERE run_id = ? AND problem = ?",
                   run_id, DUPLICATE_ID)
    assert q(db, "SELECT COUNT(*) FROM image_snapshots WHERE run_id = ?", run_id) == [(loaded,)]
    return status, seen, loaded, rejected, dups


@HYPO(60)
@given(first=bodies, rng=ranges, second=st.one_of(st.none(), bodies), status=st.sampled_from(
    [200, 200, 200, 200, 204, 206, 299]))
def test_whole_run_on_hostile_pages(stub: str, first: bytes, rng: str | None,
                                    second: bytes | None, status: int) -> None:
    headers = {} if rng is None else {"Content-Range": rng}
    pages = {0: (status, first, headers)}
    if second is not None:
        pages[len(first) % 7 + 1] = (200, second, {})
    PAGES.clear()
    PAGES.update(pages)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "swr.db"
        s = Settings(endpoint=stub, db=db, allow_anonymous=True, page_size=7, concurrency=2,
                     max_attempts=1, timeout=5, max_rescans=1, max_reject_ratio=0.8,
                     backoff_base=0.0, backoff_cap=0.0)
        try:
            result = run_sync(s, now="2026-11-21T03:00:00Z")
        except EtlError as exc:
            assert exc.exit_code in (4, 7), exc
            assert "\n" not in exc.message
            FIGURES[f"runs ending in exit {exc.exit_code}"] += 1
            assert q(db, "SELECT COUNT(*) FROM image_snapshots") == [(0,)]
            assert q(db, "SELECT status, error FROM runs") == [("failed", exc.message[:1000])]
            return
        assert result.exit_code in (0, 6)
        status_, seen, loaded, rejected, dups = run_stats(db)
        assert status_ == result.status
        assert seen == loaded + rejected + dups, (seen, loaded, rejected, dups)
        FIGURES[f"runs ending in exit {result.exit_code}"] += 1
        FIGURES["rows seen by runs"] += seen
        FIGURES["rows loaded"] += loaded
        FIGURES["rows rejected"] += rejected
        FIGURES["duplicate rows recorded as issues"] += dups


# --------------------------------------------------------------------------- config files

OPTION_KEYS = ["page-size", "page_size", "concurrency", "max-attempts", "timeout",
               "source-timezone", "format", "dry-run", "max-rescans", "max-reject-ratio",
               "keep-raw-runs", "retry-budget", "busy-timeout", "backoff_base", "backoff_cap",
               "namespace", "image-name", "now_override", "allow_anonymous", "bogus-key",
               "swr-etl", "sync", "other-table"]
toml_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), st.booleans(),
    st.text(max_size=15), st.sampled_from(["1", "0", "UTC", "Mars/Olympus", "csv", "xml",
                                           "2026-11-21T03:00:00Z", "yesterday"]))


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, int):
        return str(v)
    return json.dumps(v)  # a TOML basic string is a JSON string for these characters


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:  # anything at all
        return draw(st.text(max_size=60))
    lines = []
    for key in draw(st.lists(st.sampled_from(OPTION_KEYS), unique=True, max_size=5)):
        if key in ("swr-etl", "sync", "other-table"):
            lines.append(f"[{key}]")
            continue
        value = draw(st.one_of(toml_scalars, st.lists(toml_scalars, max_size=2)))
        rendered = ("[" + ", ".join(map(toml_value, value)) + "]" if isinstance(value, list)
                    else toml_value(value))
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


@HYPO(60)
@given(doc=toml_documents())
def test_arbitrary_config_files(stub: str, doc: str, capsys: pytest.CaptureFixture[str],
                                clean_env: pytest.MonkeyPatch) -> None:
    PAGES.clear()
    PAGES[0] = (200, encode([{"id": 1, "name": "nginx", "namespace": "library",
                              "pull_count": 5, "last_updated": "2026-11-01 00:00:00"}]),
                {"Content-Range": "0-1/1"})
    with tempfile.TemporaryDirectory() as d:
        clean_env.chdir(d)
        config = Path(d) / "swr-etl.toml"
        config.write_text(doc, encoding="utf-8", errors="surrogatepass")
        config.chmod(0o600)
        code, _, err = cli(["sync", "-q", "--config", str(config), "--no-auth", "--endpoint",
                            stub, "--db", str(Path(d) / "swr.db")], capsys)
    assert code in DOCUMENTED, err
    assert "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("swr-etl: error: "), err
    FIGURES[f"config files exiting {code}"] += 1


@pytest.fixture(scope="module", autouse=True)
def _print_figures(pytestconfig: pytest.Config) -> Iterator[None]:
    """After this module, print what the generators tried (a report, not a test)."""
    yield
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    if capture is not None and FIGURES:
        with capture.global_and_fixture_disabled():
            print("\nhostile input: " + ", ".join(
                f"{k}: {v}" for k, v in sorted(FIGURES.items())))
