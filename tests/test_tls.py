"""TLS: certificate verification is on by default and nothing turns it off silently.

A local HTTPS server on 127.0.0.1 presents a self-signed certificate generated at test time with
``openssl req -x509``. A sync against it fails with one line and exit 4; ``--ca-bundle`` with that
certificate (or the standard ``REQUESTS_CA_BUNDLE`` variable, which requests honours) makes it
succeed; empty ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` values, a ``verify`` key in the config
file, or a missing bundle file never disable verification.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROWS, cli, listing, q, serving


@pytest.fixture(scope="module")
def https_url(cert: tuple[Path, Path]) -> Iterator[str]:
    """The official image list (two rows) over HTTPS with the self-signed certificate."""
    crt, key = cert
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    with serving(listing(ROWS), context=ctx) as server:
        yield server.url


def sync(url: str, db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code, _, err = cli(["sync", "-q", "--no-auth", "--endpoint", url, "--db", str(db),
                        "--max-attempts", "2", "--timeout", "5", *extra], capsys)
    return code, err


def last_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines, "no error message at all"
    assert "Traceback" not in err, err
    return lines[-1]


def images(db: Path) -> list[tuple[Any, ...]]:
    return q(db, "SELECT id, name FROM images ORDER BY id")


def runs(db: Path) -> list[tuple[Any, ...]]:
    return q(db, "SELECT status, error FROM runs ORDER BY run_id")


def test_self_signed_certificate_is_refused_by_default(
        https_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    code, err = sync(https_url, db, capsys)
    assert code == 4, err
    line = last_line(err)
    assert line == (f"swr-etl: error: TLS verification failed for {https_url}: SSLError "
                    "(check --ca-bundle)")
    assert images(db) == []
    assert runs(db) == [("failed", f"TLS verification failed for {https_url}: SSLError "
                                   "(check --ca-bundle)")]


def test_ca_bundle_with_the_certificate_makes_it_succeed(
        https_url: str, cert: tuple[Path, Path], tmp_path: Path,
        clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    code, err = sync(https_url, db, capsys, "--ca-bundle", str(cert[0]))
    assert (code, err) == (0, "")
    assert images(db) == [(11, "nginx"), (12, "redis")]
    assert runs(db) == [("success", None)]


def test_ca_bundle_from_the_config_file(
        https_url: str, cert: tuple[Path, Path], tmp_path: Path,
        clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    config = tmp_path / "swr-etl.toml"
    config.write_text(f'ca-bundle = "{cert[0]}"\n')
    code, err = sync(https_url, db, capsys, "--config", str(config))
    assert (code, err) == (0, "")
    assert images(db) == [(11, "nginx"), (12, "redis")]


def test_requests_ca_bundle_env_is_honoured_as_a_trust_store(
        https_url: str, cert: tuple[Path, Path], tmp_path: Path,
        clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # requests' trust_env reads REQUESTS_CA_BUNDLE: it swaps the CA store, verification stays on.
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    db = tmp_path / "swr.db"
    code, err = sync(https_url, db, capsys)
    assert (code, err) == (0, "")
    assert images(db) == [(11, "nginx"), (12, "redis")]


@pytest.mark.parametrize("env", [
    {"REQUESTS_CA_BUNDLE": ""},
    {"CURL_CA_BUNDLE": ""},
    {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""},
    {"PYTHONHTTPSVERIFY": "0"},
    {"SSL_CERT_FILE": "/dev/null"},
])
def test_environment_tricks_do_not_disable_verification(
        https_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], env: dict[str, str]) -> None:
    for key, value in env.items():
        clean_env.setenv(key, value)
    db = tmp_path / "swr.db"
    code, err = sync(https_url, db, capsys)
    assert code == 4, err
    assert "TLS verification failed" in last_line(err)
    assert images(db) == []


@pytest.mark.parametrize("key", ["insecure", "ssl-verify", "no-verify", "tls-verify"])
def test_no_config_key_turns_verification_off(
        https_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str) -> None:
    config = tmp_path / "swr-etl.toml"
    config.write_text(f"{key} = false\n")
    code, err = sync(https_url, tmp_path / "swr.db", capsys, "--config", str(config))
    assert code == 2, err
    assert last_line(err) == f"swr-etl: error: unknown setting in config file: {key}"
    assert not (tmp_path / "swr.db").exists()


@pytest.mark.parametrize("flag", ["--insecure", "--no-verify"])
def test_no_flag_turns_verification_off(
        https_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], flag: str) -> None:
    code, err = sync(https_url, tmp_path / "swr.db", capsys, flag)
    assert code == 2, err
    assert f"No such option '{flag}'" in last_line(err)


@pytest.mark.parametrize("args,message", [
    (["--verify"], "Option '--verify' requires an argument."),
    (["--verify", "false"], "Invalid value for '--verify': 'false' is not one of 'auto', 'ids', "
                            "'full'."),
    (["--verify", "0"], "Invalid value for '--verify': '0' is not one of 'auto', 'ids', 'full'."),
    (["--config", "CONFIG"], "verify must be one of auto, ids, full (the completeness proof; "
                             "TLS is always verified), got 'False'"),
])
def test_verify_is_the_completeness_proof_and_never_turns_tls_off(
        https_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    # --verify / `verify =` choose how a scan is proven complete (auto, ids, full); nothing
    # that reads like "verify off" is accepted.
    config = tmp_path / "swr-etl.toml"
    config.write_text("verify = false\n")
    code, err = sync(https_url, tmp_path / "swr.db", capsys,
                     *[str(config) if a == "CONFIG" else a for a in args])
    assert code == 2, err
    assert last_line(err) == f"swr-etl: error: {message}"
    assert not (tmp_path / "swr.db").exists()


@pytest.mark.parametrize("via", ["flag", "env"])
def test_a_missing_ca_bundle_is_a_usage_error_not_a_silent_fallback(
        https_url: str, tmp_path: Path, clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], via: str) -> None:
    missing = tmp_path / "nope.pem"
    if via == "env":
        clean_env.setenv("REQUESTS_CA_BUNDLE", str(missing))
        code, err = sync(https_url, tmp_path / "swr.db", capsys)
    else:
        code, err = sync(https_url, tmp_path / "swr.db", capsys, "--ca-bundle", str(missing))
    assert code == 2, err
    line = last_line(err)
    assert line.startswith("swr-etl: error: ")
    assert str(missing) in line
    assert "Could not find a suitable TLS CA certificate bundle" in line
    if via == "flag":  # checked before anything is opened: no database, no run recorded
        assert not (tmp_path / "swr.db").exists()
    else:
        assert images(tmp_path / "swr.db") == []


def test_the_code_never_disables_verification() -> None:
    root = Path(__file__).resolve().parents[1] / "etl"
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|"
                         r"disable_warnings|_create_unverified_context")
    offenders = [f"{p.relative_to(root.parent)}:{n}: {line.strip()}"
                 for p in sorted(root.rglob("*.py"))
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []
