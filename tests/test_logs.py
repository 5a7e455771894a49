"""Logging: JSON lines with the run id, control-free text lines, masking everywhere, -v/-q."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import etl.logs
from etl.logs import current_run_id, register_secrets, setup_logging

SECRET = "sk-Zq9\"x\\TOPSECRET"  # quote and backslash: JSON escapes them
TOKEN = "MIIEtoken0123456789"


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    secrets = set(etl.logs._SECRETS)
    token = current_run_id.set(None)
    for name in list(logging.root.manager.loggerDict):  # levels other tests may have left
        if name.startswith(("etl.", "urllib3")):
            logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    current_run_id.reset(token)
    etl.logs._SECRETS.clear()
    etl.logs._SECRETS.update(secrets)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_json_lines_parse_and_carry_the_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt="json")
    log = logging.getLogger("etl.pipeline")
    current_run_id.set(41)
    log.info("page fetched", extra={"event": "page", "offset": 100, "rows": 100})

    def worker() -> None:  # threads start with an empty context; the run id still applies
        logging.getLogger("etl.extract").warning("retrying %s", "page 2", extra={"attempt": 2})

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    records = [json.loads(line) for line in lines(capsys)]
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r.pop("timestamp"))
    assert records == [
        {"level": "info", "run_id": 41, "event": "page", "message": "page fetched",
         "logger": "etl.pipeline", "offset": 100, "rows": 100},
        {"level": "warning", "run_id": 41, "event": "extract", "message": "retrying page 2",
         "logger": "etl.extract", "attempt": 2},
    ]


def test_text_lines_have_no_control_characters(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()
    current_run_id.set(3)
    hostile = "evil\x1b[2J\rname\nnext\tcol\x00\x9b31m\x7f"
    logging.getLogger("etl.transform").warning("bad description %s", hostile,
                                               extra={"raw": hostile, "note": "two words"})
    (line,) = lines(capsys)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line)
    escaped = r"evil\x1b[2J\rname\nnext\tcol\x00\x9b31m\x7f"
    assert line.endswith(
        f"WARNING [run 3] bad description {escaped} raw={escaped} note=\"two words\"")


def test_json_lines_escape_c1_controls(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt="json")
    logging.getLogger("etl.x").info("a\x9bb\x1bc")
    (line,) = lines(capsys)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", line)
    assert json.loads(line)["message"] == "a\x9bb\x1bc"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_masking_of_args_and_extra_fields(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    register_secrets([SECRET, TOKEN, None, "ab"])
    setup_logging(verbose=1, fmt=fmt)
    log = logging.getLogger("etl.auth")
    log.debug("sending %s with %r", TOKEN, {"sk": SECRET},
              extra={"header": f"X-Auth-Token: {TOKEN}", "creds": {"sk": SECRET, "n": [TOKEN]}})
    try:
        raise ValueError(f"signature over {SECRET} rejected")
    except ValueError:
        log.error("signing failed", exc_info=True)
    err = capsys.readouterr().err
    assert TOKEN not in err and "TOPSECRET" not in err
    assert err.count("***") >= 5
    if fmt == "json":
        first, second = (json.loads(x) for x in err.splitlines())
        assert first["message"] == "sending *** with {'sk': '***'}"
        assert first["header"] == "X-Auth-Token: ***"
        assert first["creds"] == {"sk": "***", "n": ["***"]}
        assert second["exception"] == "ValueError: signature over *** rejected"


def test_quiet_shows_only_errors_and_verbose_shows_debug(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    log = logging.getLogger("etl.extract")
    setup_logging(quiet=True)
    log.info("summary")
    log.warning("retry")
    log.error("failed")
    assert [line.split(" ", 2)[1] for line in lines(capsys)] == ["ERROR"]
    setup_logging(verbose=1)
    log.debug("page 1")
    log.info("summary")
    assert [line.split()[1] for line in lines(capsys)] == ["DEBUG", "INFO"]
    setup_logging()
    log.debug("page 1")
    log.info("summary")
    assert [line.split()[1] for line in lines(capsys)] == ["INFO"]


def test_library_warnings_use_the_same_format(capsys: pytest.CaptureFixture[str]) -> None:
    register_secrets([TOKEN])
    setup_logging(fmt="json")
    logging.getLogger("urllib3.connectionpool").warning("Retrying after %s", TOKEN)
    logging.getLogger("urllib3.connectionpool").info("not shown without -vv")
    (line,) = lines(capsys)
    assert json.loads(line)["message"] == "Retrying after ***"
    assert json.loads(line)["logger"] == "urllib3.connectionpool"


def test_setup_twice_keeps_one_handler() -> None:
    setup_logging()
    setup_logging(fmt="json")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_swr_etl_handler", False)]
    assert len(ours) == 1
    assert isinstance(ours[0].formatter, etl.logs.JsonFormatter)


def test_cli_error_traceback_stays_out_of_json_lines() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "etl", "status", "--db", "/nonexistent/swr.db", "--log-format",
         "json", "-v"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    # The final error is itself one JSON object (the contract's json mode), with no trace.
    (line,) = out.stderr.splitlines()
    record = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record.pop("timestamp"))
    assert record == {
        "level": "error", "run_id": None, "event": "error", "logger": "etl.cli", "exit_code": 2,
        "message": "database not found: /nonexistent/swr.db "
                   "(run `swr-etl sync --db /nonexistent/swr.db` first)"}


@pytest.mark.parametrize("verbose", [0, 1])
def test_tracebacks_only_with_verbose(verbose: int, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(verbose=verbose)
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("etl.load").error("load failed", exc_info=True)
    out = lines(capsys)
    if verbose:
        assert out[0].endswith("ERROR   load failed")
        assert out[1] == "    Traceback (most recent call last):"
        assert out[-1] == "    KeyError: 'missing'"
    else:
        assert out == [out[0]]
        assert out[0].endswith("ERROR   load failed (KeyError: 'missing')")


HOSTILE = """
import logging
from etl.logs import register_secrets, setup_logging
register_secrets([TOKEN])
setup_logging(fmt=FMT)
deep = []
cur = deep
for _ in range(5000):
    nxt = []
    cur.append(nxt)
    cur = nxt
log = logging.getLogger("etl.transform")
log.warning("row %s", deep, extra={"raw": deep})          # deeper than the recursion limit
log.warning("count %d", "not a number")                   # malformed call
log.warning("body %s", "x" * 9995 + TOKEN + "y" * 50)     # clipped after masking
print("survived")
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_hostile_values_never_break_a_log_call(fmt: str) -> None:
    # In a subprocess: pytest's own log capture re-raises formatting errors by design.
    code = f"TOKEN = {TOKEN!r}\nFMT = {fmt!r}\n" + HOSTILE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "survived\n"
    err = out.stderr.splitlines()
    assert len(err) == 3, out.stderr[:2000]
    assert TOKEN[:6] not in out.stderr
    if fmt == "json":
        first, second, third = (json.loads(x) for x in err)
        assert first["message"] == "row %s (unformattable log arguments)"
        raw = json.dumps(first["raw"])  # kept as lists to a bounded depth, then one string
        assert raw.startswith("[" * 15) and "<unprintable list>" in raw and len(raw) < 100
        assert second["message"] == "count %d (unformattable log arguments)"
        assert third["message"] == "body " + "x" * 9995 + "… (10053 chars)"
    else:
        assert err[0].endswith("row %s (unformattable log arguments) "
                               'raw="[[[[[[[[[[[[[[[[\\"<unprintable list>\\"]]]]]]]]]]]]]]]]"')
