"""The --config TOML file: precedence flags > env > file > defaults; private files for secrets."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from etl.cli.app import main
from etl.config import Credentials, Settings, build_settings
from etl.config.file import load_config_file, logging_options, without_logging_options
from etl.config.urls import _host_problem
from etl.errors import ConfigError
from etl.store.schema import MIGRATIONS
from tests.helpers import fresh_python

CONFIG = """
# swr-etl settings
region = "ap-southeast-1"
db = "/srv/from-file.db"
page-size = 500
timeout = 12.5
max_attempts = 3
source-timezone = "Asia/Shanghai"
metrics-file = "/var/lib/node_exporter/textfile/swr_etl.prom"
"""


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path / "c.toml", CONFIG, 0o644))
    s = build_settings({}, {}, cfg)
    assert (s.region, s.endpoint, s.db, s.page_size, s.timeout, s.max_attempts) == (
        "ap-southeast-1", "https://swr-api.ap-southeast-1.myhuaweicloud.com",
        Path("/srv/from-file.db"), 500, 12.5, 3)
    assert s.source_timezone == "Asia/Shanghai"
    assert s.metrics_file == Path("/var/lib/node_exporter/textfile/swr_etl.prom")
    assert (s.concurrency, s.format, s.healthcheck_url) == (4, "parquet", None)  # defaults


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path / "c.toml", CONFIG))
    env = {"SWR_ETL_DB": "/srv/from-env.db", "SWR_REGION": "cn-east-3"}
    s = build_settings({"page_size": 50}, env, cfg)
    assert (s.db, s.region, s.endpoint, s.page_size, s.timeout) == (
        Path("/srv/from-env.db"), "cn-east-3", "https://swr-api.cn-east-3.myhuaweicloud.com",
        50, 12.5)
    s = build_settings({"db": "/srv/from-flag.db", "region": "cn-south-1", "timeout": 2.0},
                       env, cfg)
    assert (s.db, s.region, s.timeout, s.page_size) == (
        Path("/srv/from-flag.db"), "cn-south-1", 2.0, 500)


def test_table_form_is_accepted(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path / "c.toml", '[swr-etl]\npage_size = 200\n'))
    assert build_settings({}, {}, cfg).page_size == 200


def make_db(path: Path, run_id: int) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[1])
    conn.execute("INSERT INTO runs (run_id, started_at, status) VALUES (?, "
                 "'2026-11-27T03:00:00Z', 'running')", (run_id,))
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("use_env,use_flag,expected", [
    (False, False, 1), (True, False, 2), (True, True, 3), (False, True, 3)])
def test_cli_precedence_for_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], use_env: bool,
                                         use_flag: bool, expected: int) -> None:
    dbs = [make_db(tmp_path / f"{n}.db", n) for n in (1, 2, 3)]
    cfg = write(tmp_path / "c.toml", f'db = "{dbs[0]}"\n')
    monkeypatch.delenv("SWR_ETL_DB", raising=False)
    monkeypatch.delenv("SWR_ETL_CONFIG", raising=False)
    if use_env:
        monkeypatch.setenv("SWR_ETL_DB", str(dbs[1]))
    args = ["runs", "--json", "--config", str(cfg)] + (["--db", str(dbs[2])] if use_flag else [])
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    assert f'"run_id": {expected},' in capsys.readouterr().out


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = make_db(tmp_path / "x.db", 9)
    monkeypatch.delenv("SWR_ETL_DB", raising=False)
    monkeypatch.setenv("SWR_ETL_CONFIG", str(write(tmp_path / "c.toml", f'db = "{db}"\n')))
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--json"])
    assert exc.value.code == 0
    assert '"run_id": 9,' in capsys.readouterr().out


SECRET_CONFIG = 'HUAWEICLOUD_SDK_AK = "AKEXAMPLE123"\nhuaweicloud_sdk_sk = "SKEXAMPLE-s3cr3t"\n'


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_refuses_secrets_in_a_file_others_can_read(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "c.toml", SECRET_CONFIG, mode)
    with pytest.raises(ConfigError) as exc:
        load_config_file(path)
    assert exc.value.exit_code == 2
    assert str(exc.value) == (
        f"config file {path} holds credentials (HUAWEICLOUD_SDK_AK, huaweicloud_sdk_sk) but is "
        f"accessible by group/others (mode {mode:04o}): run `chmod 600 {path}` or move the "
        "credentials to the environment")
    assert "s3cr3t" not in str(exc.value) and "AKEXAMPLE" not in str(exc.value)


def test_secrets_in_a_table_are_checked_too(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[swr-etl]\nSWR_AUTH_TOKEN = "tok-123456"\n', 0o644)
    with pytest.raises(ConfigError, match=r"holds credentials \(SWR_AUTH_TOKEN\)"):
        load_config_file(path)


def test_private_file_may_hold_secrets(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path / "c.toml", SECRET_CONFIG, 0o600))
    s = build_settings({}, {}, cfg, need_credentials=True)
    assert (s.credentials.kind, s.credentials.ak, s.credentials.sk) == (
        "aksk", "AKEXAMPLE123", "SKEXAMPLE-s3cr3t")
    # The environment still beats the file for credentials.
    s = build_settings({}, {"SWR_AUTH_TOKEN": "env-token"}, cfg)
    assert (s.credentials.kind, s.credentials.token) == ("token", "env-token")


def test_world_readable_file_without_secrets_is_fine(tmp_path: Path) -> None:
    assert load_config_file(write(tmp_path / "c.toml", "page-size = 10\n", 0o644)) == {
        "page-size": 10}


def test_cli_refuses_world_readable_secrets(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "c.toml", SECRET_CONFIG, 0o644)
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--config", str(path), "--db", str(tmp_path / "x.db")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"swr-etl: error: config file {path} holds credentials")
    assert f"chmod 600 {path}" in err and "s3cr3t" not in err


@pytest.mark.parametrize("text,message", [
    ("page_sise = 5\n", "unknown setting in config file: page_sise"),
    ("[export]\nout = 'x'\n", "unknown table [export] in config file {path} "
                              "(use top-level keys or a [swr-etl] table)"),
    ("page-size = \n", "invalid TOML in config file {path}: Invalid value (at line 1, column 13)"),
    ("page-size = 'many'\n", "invalid value for page-size: 'many'"),
    ("page-size = 5000\n", "page-size must be 1..1000, got 5000"),
])
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as exc:
        build_settings({}, {}, load_config_file(path))
    assert str(exc.value) == message.format(path=path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.toml$"):
        load_config_file(tmp_path / "nope.toml")


def test_every_settings_field_can_come_from_the_file(tmp_path: Path) -> None:
    """Each option the file may hold reaches Settings (booleans, paths, numbers, strings)."""
    text = "\n".join([
        'endpoint = "http://127.0.0.1:8080/"', 'namespace = "library"', 'image-name = "nginx"',
        "concurrency = 2", 'export-dir = "/tmp/out"', 'format = "csv"',
        'healthcheck-url = "https://hc-ping.com/uuid"', "dry-run = true", "max-rescans = 1",
        "max-rps = 20", "max-reject-ratio = 0.1", "keep-raw-runs = 3", "retry-budget = 9",
        "busy-timeout = 4", 'ca-bundle = "/etc/ssl/ca.pem"', "no-auth = true"])
    s = build_settings({}, {}, load_config_file(write(tmp_path / "c.toml", text)))
    assert s == Settings(
        endpoint="http://127.0.0.1:8080", namespace="library", image_name="nginx",
        concurrency=2, export_dir=Path("/tmp/out"), format="csv",
        healthcheck_url="https://hc-ping.com/uuid", dry_run=True, max_rescans=1, max_rps=20.0,
        max_reject_ratio=0.1, keep_raw_runs=3, retry_budget=9, busy_timeout=4.0,
        ca_bundle=Path("/etc/ssl/ca.pem"), allow_anonymous=True)


def our_handler() -> logging.Handler:
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_swr_etl_handler", 0)]
    return handler


@pytest.mark.parametrize("flags,formatter,level", [
    ([], "JsonFormatter", logging.ERROR),
    (["--log-format", "text", "-v"], "TextFormatter", logging.DEBUG),
])
def test_logging_options_from_the_file_yield_to_flags(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], formatter: str,
        level: int) -> None:
    db = make_db(tmp_path / "x.db", 1)
    cfg = write(tmp_path / "c.toml", f'log-format = "json"\nquiet = true\ndb = "{db}"\n')
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--config", str(cfg), *flags])
    assert exc.value.code == 0
    handler = our_handler()
    assert type(handler.formatter).__name__ == formatter
    assert handler.level == level


@pytest.mark.parametrize("text,message", [
    ('log-format = "xml"\n', "log-format must be text or json, got 'xml'"),
    ("quiet = 1\n", "quiet must be true or false, got 1"),
    ("verbose = -1\n", "verbose must be true, false or a level >= 0, got -1"),
])
def test_bad_logging_options(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        logging_options(load_config_file(write(tmp_path / "c.toml", text)))
    assert str(exc.value) == message


def test_logging_keys_do_not_reach_settings(tmp_path: Path) -> None:
    cfg = load_config_file(write(tmp_path / "c.toml", 'verbose = 2\nlog_format = "json"\n'
                                                      "page-size = 7\n"))
    assert logging_options(cfg) == {"verbose": 2, "log_format": "json"}
    assert build_settings({}, {}, without_logging_options(cfg)).page_size == 7


# ------------------------------------------------------------ Settings checks and derives itself


@pytest.mark.parametrize("region,endpoint", [
    ("cn-north-4", "https://swr-api.cn-north-4.myhuaweicloud.com"),
    ("ap-southeast-1", "https://swr-api.ap-southeast-1.myhuaweicloud.com"),
    ("eu-west-101", "https://swr-api.eu-west-101.myhuaweicloud.eu"),
])
def test_settings_derive_the_endpoint_from_the_region(region: str, endpoint: str) -> None:
    assert Settings(region=region).endpoint == endpoint
    # A derived endpoint follows a new region; an explicit one stays as given.
    assert Settings().replace(region=region).endpoint == endpoint
    explicit = Settings(endpoint="http://127.0.0.1:8080/", region="cn-north-4")
    assert explicit.endpoint == "http://127.0.0.1:8080"
    assert explicit.replace(region=region).endpoint == "http://127.0.0.1:8080"


@pytest.mark.parametrize("values,param,message", [
    ({"page_size": 0}, "page_size", "page_size must be 1..1000, got 0"),
    ({"page_size": 1001}, "page_size", "page_size must be 1..1000, got 1001"),
    ({"page_size": "100"}, "page_size", "page_size must be an integer, got '100'"),
    ({"page_size": True}, "page_size", "page_size must be an integer, got True"),
    ({"concurrency": 17}, "concurrency", "concurrency must be 1..16, got 17"),
    ({"max_attempts": 1001}, "max_attempts", "max_attempts must be 1..1000, got 1001"),
    ({"timeout": float("nan")}, "timeout", "timeout must be a finite number, got nan"),
    ({"timeout": 1e20}, "timeout", "timeout must be 0.001..86400, got 1e+20"),
    ({"max_rps": float("inf")}, "max_rps", "max_rps must be a finite number, got inf"),
    ({"max_reject_ratio": 1.5}, "max_reject_ratio", "max_reject_ratio must be 0.0..1.0, got 1.5"),
    ({"backoff_cap": -1.0}, "backoff_cap", "backoff_cap must be 0.0..9223372036854775807, "
                                           "got -1.0"),
    ({"format": "xlsx"}, "format", "format must be csv or parquet, got 'xlsx'"),
    ({"verify": "off"}, "verify", "verify must be one of auto, ids, full (the completeness "
                                  "proof; TLS is always verified), got 'off'"),
    ({"source_timezone": "Mars/Olympus"}, "source_timezone", "unknown time zone: 'Mars/Olympus'"),
    ({"endpoint": "ftp://swr.example.com"}, "endpoint",
     "endpoint must be an http(s) URL, got 'ftp://swr.example.com'"),
    ({"endpoint": ""}, "endpoint", "endpoint must be an http(s) URL, got ''"),
    ({"endpoint": "https://user:s3cr3t@swr.example.com"}, "endpoint",
     "endpoint must not contain a user name or password (https://***@swr.example.com): give "
     "credentials in the environment (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK, ...)"),
    ({"healthcheck_url": "https://user:s3cr3t@hc.example/ping"}, "healthcheck_url",
     "healthcheck_url must not contain a user name or password (https://***@hc.example/ping): "
     "give credentials in the environment (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK, ...)"),
    ({"db": 5}, "db", "db must be a path, got 5"),
    ({"dry_run": "yes"}, "dry_run", "dry_run must be true or false, got 'yes'"),
    ({"credentials": "token"}, "credentials", "credentials must be Credentials, got 'token'"),
])
def test_settings_refuse_bad_values_naming_the_parameter(values: dict[str, object], param: str,
                                                         message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings(**values)  # type: ignore[arg-type]
    assert (str(exc.value), exc.value.param, exc.value.exit_code) == (message, param, 2)
    assert "s3cr3t" not in str(exc.value)


def test_settings_keep_values_in_their_types() -> None:
    s = Settings(timeout=10, db="x.db", max_rps=5)  # type: ignore[arg-type]
    assert (s.timeout, type(s.timeout), s.db, s.max_rps, type(s.max_rps)) == (
        10.0, float, Path("x.db"), 5.0, float)
    with pytest.raises(ConfigError, match="^page_size must be 1..1000, got 0$"):
        Settings().replace(page_size=0)


@pytest.mark.parametrize("host,problem", [
    ("swr-api.cn-north-4.myhuaweicloud.com", None),
    ("swr.example.com.", None),  # a trailing dot: the root, no empty label
    ("a" * 63 + ".example.com", None),
    ("a" * 64 + ".example.com", "has an empty or over-long label"),
    ("example." + "a" * 64, "has an empty or over-long label"),
    ("swr..example.com", "has an empty or over-long label"),
    (".example.com", "has an empty or over-long label"),
    ("swr-.example.com", "is not a valid name"),
    ("münchen.example", None),  # internationalised: checked as sent (xn--mnchen-3ya)
    ("münchen..example", "has an empty or over-long label"),
])
def test_endpoint_host_names(host: str, problem: str | None) -> None:
    url = f"https://{host}/"
    if problem is None:
        assert Settings(endpoint=url).endpoint == url.rstrip("/")
        return
    with pytest.raises(ConfigError) as exc:
        Settings(endpoint=url)
    assert str(exc.value) == f"endpoint is not a valid URL: {url!r} (host name {host!r} {problem})"


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab-_", max_size=66), min_size=1, max_size=4))
def test_an_ascii_host_has_a_bad_label_exactly_when_the_idna_codec_says_so(
        labels: list[str]) -> None:
    """An ASCII name is checked without the idna codec (importing it is most commands' only
    use of it), by the codec's own rule for such names."""
    host = ".".join(labels)
    try:
        host.encode("idna")
        codec_refuses = False
    except UnicodeError:
        codec_refuses = True
    problem = _host_problem(host) if host else None
    assert (problem is not None and "empty or over-long label" in problem) == codec_refuses


def test_an_ascii_endpoint_is_checked_without_the_idna_codec() -> None:
    out = fresh_python("import sys\n"
                       "from etl.config import Settings\n"
                       "Settings(endpoint='https://swr.example.com', region='cn-north-4')\n"
                       "print('encodings.idna' in sys.modules)\n"
                       "Settings(endpoint='https://m\\u00fcnchen.example')\n"
                       "print('encodings.idna' in sys.modules)\n")
    assert out.stdout.split() == ["False", "True"], out.stderr


@pytest.mark.parametrize("values,message", [
    ({"kind": "magic"}, "kind must be one of none, token, aksk, password, got 'magic'"),
    ({"kind": "password", "iam_endpoint": "https://u:p4ss@iam.example"},
     "iam_endpoint must not contain a user name or password (https://***@iam.example): give "
     "credentials in the environment (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK, ...)"),
])
def test_credentials_check_themselves(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Credentials(**values)
    assert str(exc.value) == message


@pytest.mark.parametrize("flags,env,message", [
    ({"page_size": 0}, {}, "page-size must be 1..1000, got 0"),
    ({"max_reject_ratio": 2.0}, {}, "max-reject-ratio must be 0.0..1.0, got 2.0"),
    ({"healthcheck_url": "https://u:pw@hc.example"}, {},
     "healthcheck-url must not contain a user name or password (https://***@hc.example): give "
     "credentials in the environment (SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK/SK, ...)"),
    ({}, {"SWR_ENDPOINT": "gopher://swr.example"},
     "endpoint must be an http(s) URL, got 'gopher://swr.example'"),
    ({}, {"SWR_ETL_DEADLINE": "soon"}, "invalid value for deadline: 'soon'"),
])
def test_build_settings_names_options_as_users_write_them(
        flags: dict[str, object], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_settings(flags, env, {})
    assert str(exc.value) == message


def test_renaming_touches_only_the_parameter() -> None:
    error = ConfigError("timeout must be 0.001..86400, got 1e+20 (timeout)", param="timeout")
    assert str(error.renamed("--timeout")) == (
        "--timeout must be 0.001..86400, got 1e+20 (timeout)")
    assert error.renamed("--timeout").param == "--timeout"
    plain = ConfigError("no credentials")
    assert plain.renamed("anything") is plain


@pytest.mark.parametrize("command,shown,code", [
    (["runs", "--json"], '"run_id": 4,', 0),
    # quiet: the probe answers with its exit code only (8: no successful run in that database)
    (["status"], "", 8),
])
def test_the_config_file_is_read_once_per_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: list[str], shown: str, code: int) -> None:
    import etl.config.file

    db = make_db(tmp_path / "x.db", 4)
    cfg = write(tmp_path / "c.toml", f'quiet = true\ndb = "{db}"\n')
    reads: list[Path] = []
    real = etl.config.file.load_config_file

    def counted(path: Path) -> dict[str, object]:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(etl.config.file, "load_config_file", counted)
    monkeypatch.delenv("SWR_ETL_DB", raising=False)
    with pytest.raises(SystemExit) as exc:
        main([*command, "--config", str(cfg)])
    assert reads == [cfg]
    # Both halves of the file were used: the database from it, and quiet logging.
    out = capsys.readouterr().out
    assert (exc.value.code, shown in out, bool(out)) == (code, True, bool(shown))
    assert our_handler().level == logging.ERROR


@pytest.mark.parametrize("given", ["flag", "env"])
def test_a_folder_for_the_database_is_refused_from_flag_or_env(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        given: str) -> None:
    monkeypatch.setenv("SWR_ETL_DB", str(tmp_path))
    args = ["runs", "--db", str(tmp_path)] if given == "flag" else ["runs"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert (exc.value.code, capsys.readouterr().err) == (
        2, f"swr-etl: error: Invalid value for '--db': File '{tmp_path}' is a directory.\n")


def test_a_urls_port_is_its_own_else_its_schemes_default() -> None:
    from etl.config.regions import source_name
    from etl.config.urls import port_of
    from etl.extract.failures import origin, server_of

    assert [port_of(u) for u in ("https://h", "HTTP://h/x", "http://h:8080", "https://h:80",
                                 "ftp://h")] == [443, 80, 8080, 80, None]
    with pytest.raises(ValueError):
        port_of("http://h:99999")
    # The source's name, the origin in messages and the server of a budget say the same port.
    for url, shown in (("http://Example.org", "example.org:80"),
                       ("https://example.org/v2", "example.org:443"),
                       ("https://[::1]:9000", "[::1]:9000")):
        assert source_name(url) == origin(url) == shown
        assert server_of(url)[1] == shown
    assert origin("http://h:99999") == "h"  # an unreadable port is left out of a message
