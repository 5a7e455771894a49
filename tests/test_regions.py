"""Several regions scanned for real, from loopback simulators and stubs: a region failing,
throttled or drifting on its own while the others load, and credentials never crossing to
another source's host."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etl.cli.app import main
from etl.config.settings import Settings
from etl.config.sources import Source
from etl.run.pipeline import run_sync
from etl.simulator.regions import Regions
from tests.helpers import Stub, listing, q, rows
from tests.test_extract import HEAVY, imported_by, max_overlap

T0 = "2026-11-20T03:00:00Z"
NAMES = ("ap-southeast-1", "cn-north-4", "eu-west-101")


def settings_for(regions: Regions, db: Path, **kw: Any) -> Settings:
    values: dict[str, Any] = {"max_attempts": 3, "backoff_base": 0.01, "backoff_cap": 0.05, **kw}
    return Settings(sources=regions.sources(), db=db, allow_anonymous=True, **values)


def test_regions_share_a_catalogue_with_their_own_counts() -> None:
    with Regions(NAMES, images=30) as regions:
        listed = {name: {r["id"]: r for r in regions[name].listing()} for name in NAMES}
    assert set(listed["cn-north-4"]) == set(listed["eu-west-101"])
    some = sorted(listed["cn-north-4"])[5]
    assert {listed[n][some]["name"] for n in NAMES} == {listed["cn-north-4"][some]["name"]}
    assert len({listed[n][some]["pull_count"] for n in NAMES}) == 3


def test_a_retired_region_fails_alone(tmp_path: Path) -> None:
    scenarios = {"eu-west-101": {"faults": [{"kind": "status", "status": 404, "at": 1}]}}
    with Regions(NAMES, images=30, scenarios=scenarios) as regions:
        result = run_sync(settings_for(regions, tmp_path / "swr.db"), now=T0)
    assert (result.status, result.exit_code) == ("partial", 4)
    assert [(r.source, r.status, r.rows) for r in result.sources] == [
        ("ap-southeast-1", "success", 30), ("cn-north-4", "success", 30),
        ("eu-west-101", "failed", 0)]
    assert q(tmp_path / "swr.db", "SELECT source, COUNT(*) FROM images GROUP BY source") == [
        ("ap-southeast-1", 30), ("cn-north-4", 30)]
    (error,), = q(tmp_path / "swr.db", "SELECT error FROM run_sources WHERE source = ?",
                  "eu-west-101")
    assert "404" in error


def test_a_throttled_region_does_not_hold_the_others_back(tmp_path: Path) -> None:
    # eu-west-101 answers its first request with 429 and Retry-After: 1. The pause is that
    # region's own (its Limiter): the other regions' scans go on and finish inside it.
    throttle = {"faults": [{"kind": "status", "status": 429, "at": 1, "times": 1,
                            "retry_after": 1}]}
    with Regions(NAMES, images=250, scenarios={"eu-west-101": throttle}) as regions:
        result = run_sync(settings_for(regions, tmp_path / "swr.db", max_attempts=None),
                          now=T0)
        logs = {name: regions[name].repos_requests() for name in NAMES}
    assert (result.status, result.exit_code) == ("success", 0)
    throttled = logs["eu-west-101"]
    assert throttled[0].status == 429
    retried = min(r.started for r in throttled[1:])
    for name in ("ap-southeast-1", "cn-north-4"):
        assert len(logs[name]) >= 3  # pages and the proof
        assert max(r.finished for r in logs[name]) < retried, name
    assert q(tmp_path / "swr.db", "SELECT source, retries FROM run_sources ORDER BY source"
             ) == [("ap-southeast-1", 0), ("cn-north-4", 0), ("eu-west-101", 1)]


def test_a_drifting_region_proves_and_rescans_on_its_own(tmp_path: Path) -> None:
    # Rows inserted at the front of eu-west-101 while it is read: its pass cannot be proven,
    # it rescans (its own rescans); the other regions load on their first pass.
    drift = {"drift": [{"kind": "insert_front", "at": 2, "count": 3, "times": 1}]}
    with Regions(NAMES, images=250, scenarios={"eu-west-101": drift}) as regions:
        result = run_sync(settings_for(regions, tmp_path / "swr.db"), now=T0)
        final = {r["id"] for r in regions["eu-west-101"].listing()}
    assert (result.status, result.exit_code) == ("success", 0)
    assert q(tmp_path / "swr.db", "SELECT source, rescans, complete, rows_loaded FROM run_sources"
             " ORDER BY source") == [("ap-southeast-1", 0, 1, 250), ("cn-north-4", 0, 1, 250),
                                     ("eu-west-101", 1, 1, 253)]
    assert {i for (i,) in q(tmp_path / "swr.db",
                            "SELECT id FROM images WHERE source = 'eu-west-101'")} == final


def test_credentials_never_reach_another_sources_host(
        tmp_path: Path, stubs: Callable[..., Stub], clean_env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = (stubs(listing(rows(range(1, 4)))) for _ in range(3))
    config = tmp_path / "c.toml"
    config.write_text(f'[[sources]]\nname = "a"\nendpoint = "{a.url}"\ntoken_env = "TOKEN_A"\n'
                      f'[[sources]]\nname = "b"\nendpoint = "{b.url}"\ntoken_env = "TOKEN_B"\n'
                      f'[[sources]]\nname = "c"\nendpoint = "{c.url}"\n')
    clean_env.setenv("TOKEN_A", "secret-of-a")
    clean_env.setenv("TOKEN_B", "secret-of-b")
    clean_env.setenv("SWR_AUTH_TOKEN", "the-default-secret")
    with pytest.raises(SystemExit) as done:
        main(["sync", "--config", str(config), "--db", str(tmp_path / "swr.db")])
    assert done.value.code == 0, capsys.readouterr().err
    tokens = {name: {s.headers.get("X-Auth-Token") for s in stub.seen}
              for name, stub in (("a", a), ("b", b), ("c", c))}
    assert tokens == {"a": {"secret-of-a"}, "b": {"secret-of-b"}, "c": {"the-default-secret"}}
    assert all(len(stub.seen) >= 1 for stub in (a, b, c))
    out = capsys.readouterr()
    assert "secret" not in out.out + out.err
    assert q(tmp_path / "swr.db", "SELECT source, status FROM run_sources ORDER BY source") == [
        ("a", "success"), ("b", "success"), ("c", "success")]
    assert q(tmp_path / "swr.db", "SELECT endpoint FROM runs") == [(f"{a.url},{b.url},{c.url}",)]


def test_runs_and_status_show_each_source(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "swr.db"
    scenarios = {"eu-west-101": {"faults": [{"kind": "status", "status": 404, "at": 1}]}}
    with Regions(NAMES, images=20, scenarios=scenarios) as regions:
        run_sync(settings_for(regions, db))
    with pytest.raises(SystemExit) as done:
        main(["status", "--db", str(db)])
    out = capsys.readouterr().out
    assert done.value.code == 8
    assert "status:       STALE: eu-west-101: last success older than 26 h or none" in out
    assert "source eu-west-101: never succeeded" in out
    assert "source cn-north-4: last success " in out
    with pytest.raises(SystemExit):
        main(["runs", "--db", str(db), "--json"])
    (run,) = json.loads(capsys.readouterr().out)
    assert [(s["source"], s["status"], s["exit_code"]) for s in run["sources"]] == [
        ("ap-southeast-1", "success", 0), ("cn-north-4", "success", 0),
        ("eu-west-101", "failed", 4)]
    with pytest.raises(SystemExit):
        main(["runs", "--db", str(db)])
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in table[2:5]] == [
        ["ap-southeast-1", "success"], ["cn-north-4", "success"], ["eu-west-101", "failed"]]


def test_one_named_source_keeps_its_history_across_endpoints(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    for n in range(2):
        with Regions(["cn-north-4"], images=10) as regions:
            (src,) = regions.sources()
            run_sync(Settings(sources=(Source("home", src.endpoint, "cn-north-4"),), db=db,
                              allow_anonymous=True), now=f"2026-11-2{n}T03:00:00Z")
    assert q(db, "SELECT DISTINCT source FROM images") == [("home",)]
    assert q(db, "SELECT COUNT(*) FROM images WHERE removed_at IS NULL") == [(10,)]


def test_totals_sum_each_image_over_its_regions(tmp_path: Path) -> None:
    db = tmp_path / "swr.db"
    with Regions(NAMES, images=12) as regions:
        for day in range(3):
            if day:
                regions.advance_day()
            run_sync(settings_for(regions, db), now=f"2026-11-2{day}T03:00:00Z")
    per_source = q(db, "SELECT namespace, name, source, pull_count, pull_delta FROM top_movers_7d"
                       " WHERE anomaly IS NULL")
    totals = {(ns, n): row for ns, n, *row in q(
        db, "SELECT namespace, name, sources, pull_count, pull_delta, rank, top_source, "
            "top_source_delta FROM top_movers_total_7d WHERE anomaly IS NULL")}
    assert totals
    by_image: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
    for ns, n, source, count, delta in per_source:
        by_image.setdefault((ns, n), []).append((source, count, delta))
    for key, (sources, count, delta, _rank, top, top_delta) in totals.items():
        shares = by_image[key]
        assert (sources, count, delta) == (len(shares), sum(c for _s, c, _d in shares),
                                           sum(d for _s, _c, d in shares)), key
        best = max(shares, key=lambda s: (s[2], [-ord(ch) for ch in s[0]]))
        assert (top, top_delta) == (best[0], best[2]), key
    ranked = sorted(totals.values(), key=lambda r: r[3])
    assert [r[2] for r in ranked] == sorted((r[2] for r in ranked), reverse=True)
    assert q(db, "SELECT SUM(pull_count) FROM image_totals") == q(
        db, "SELECT SUM(pull_count) FROM latest_images")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four nightly runs of three regions."""
    db = tmp_path_factory.mktemp("regions") / "swr.db"
    with Regions(NAMES, images=15) as regions:
        for day in range(4):
            if day:
                regions.advance_day()
            run_sync(settings_for(regions, db), now=f"2026-11-2{day}T03:00:00Z")
    return db


def test_report_covers_every_region_and_narrows_to_some(
        history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["report", "--db", str(history), "--out", str(tmp_path / "all.json"),
              "--days", "7", "--top", "50"])
    assert done.value.code == 0
    every = json.loads((tmp_path / "all.json").read_text())
    assert every["sources"] == list(NAMES)
    assert [every["totals"]["images"], every["totals"]["pull_count"]] == list(q(
        history, "SELECT COUNT(*), SUM(pull_count) FROM image_snapshots WHERE run_id = 4")[0])
    # the breakdown: each image's total and its regions' shares, as the view has them
    view = q(history, "SELECT namespace, name, pull_delta, top_source FROM top_movers_total_7d"
                      " WHERE rank IS NOT NULL ORDER BY rank")
    assert [(m["namespace"], m["name"], m["pull_delta"], m["top_source"])
            for m in every["regions"]] == view
    first = every["regions"][0]
    assert sum(p["pull_delta"] for p in first["by_source"]) == first["pull_delta"]
    assert {p["source"] for p in first["by_source"]} == set(NAMES)

    for args, want in ((["--source", "eu-west-101"], ["eu-west-101"]),
                       (["--source", "cn-north-4", "--source", "ap-southeast-1"],
                        ["ap-southeast-1", "cn-north-4"])):
        with pytest.raises(SystemExit) as done:
            main(["report", "--db", str(history), "--out", str(tmp_path / "some.json"),
                  "--days", "7", *args])
        assert done.value.code == 0
        some = json.loads((tmp_path / "some.json").read_text())
        assert some["sources"] == want
        marks = ", ".join("?" * len(want))
        assert some["totals"]["pull_count"] == q(
            history, "SELECT SUM(pull_count) FROM image_snapshots WHERE run_id = 4"
                     f" AND source IN ({marks})", *want)[0][0]
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["report", "--db", str(history), "--out", str(tmp_path / "x.json"),
              "--source", "mars-1"])
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "swr-etl: error: no source 'mars-1' in the database (its sources: ap-southeast-1, "
        "cn-north-4, eu-west-101)")


def test_html_and_markdown_reports_show_the_region_breakdown(history: Path,
                                                             tmp_path: Path) -> None:
    from etl.publish.report import write_report

    page = write_report(history, tmp_path / "r.html", days=7).read_text()
    assert 'id="regions"' in page and page.count('class="stack"') == 10
    for name, colour in zip(NAMES, ("#2563eb", "#db2777", "#059669"), strict=True):
        assert f'<i style="background:{colour}"></i>{name}</span>' in page
    md = write_report(history, tmp_path / "r.md", days=7).read_text()
    assert "## Regions: where the growth comes from" in md
    one = write_report(history, tmp_path / "one.html", days=7, sources=["cn-north-4"])
    assert 'id="regions"' not in one.read_text()  # one region: nothing to break down


def test_metrics_per_source_and_one_healthcheck_ping_pair_per_run(
        tmp_path: Path, stubs: Callable[..., Stub]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from etl.run.hooks import run_observed
    from tests.helpers import answer

    pings = stubs(lambda h, seen: answer(h, 200, b"OK"))
    scenarios = {"eu-west-101": {"faults": [{"kind": "status", "status": 401, "at": 1}]}}
    with Regions(NAMES, images=20, scenarios=scenarios) as regions:
        settings = settings_for(regions, tmp_path / "swr.db", metrics_file=tmp_path / "m.prom",
                                healthcheck_url=f"{pings.url}/ping/x")
        result = run_observed(settings, lambda: run_sync(settings))
    assert result.exit_code == 3
    assert pings.paths() == ["/ping/x/start", "/ping/x/3"]  # once per run, not per source
    samples = {(s.name, s.labels.get("source")): s.value
               for fam in text_string_to_metric_families((tmp_path / "m.prom").read_text())
               for s in fam.samples}
    assert samples[("swr_etl_last_run_status", None)] == 3
    assert {k[1]: v for k, v in samples.items() if k[0] == "swr_etl_source_last_run_status"} \
        == {"ap-southeast-1": 0, "cn-north-4": 0, "eu-west-101": 3}
    assert {k[1]: v for k, v in samples.items() if k[0] == "swr_etl_source_images"} == {
        "ap-southeast-1": 20, "cn-north-4": 20}
    assert ("swr_etl_source_last_success_timestamp_seconds", "eu-west-101") not in samples
    assert samples[("swr_etl_source_last_run_requests", "eu-west-101")] == 1


def test_the_export_of_several_regions_reads_whole_in_every_reader(history: Path,
                                                                   tmp_path: Path) -> None:
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    from etl.publish.export import export_snapshots

    out = tmp_path / "out"
    written = export_snapshots(history, out, fmt="parquet", all_dates=True)
    assert len(written) == 4 * len(NAMES)
    assert {p.parent.parent.name for p in written} == {f"source={n}" for n in NAMES}
    want = sorted(q(history, "SELECT source, snapshot_date, COUNT(*), SUM(pull_count) "
                             "FROM image_snapshots GROUP BY 1, 2"))
    frame = pd.read_parquet(out)  # the folder, no arguments
    readers = {
        "pandas": [(str(s), str(d), int(n), int(p)) for (s, d), (n, p) in frame.groupby(
            ["source", "snapshot_date"], observed=True).pull_count.agg(["count", "sum"])
            .iterrows()],
        "pyarrow.dataset": sorted(
            (str(s), str(d), int(n), int(p)) for (s, d), (n, p) in ds.dataset(
                out, partitioning=ds.HivePartitioning.discover(infer_dictionary=True)).to_table()
            .to_pandas().groupby(["source", "snapshot_date"], observed=True)
            .pull_count.agg(["count", "sum"]).iterrows()),
        "duckdb": sorted((s, str(d), n, int(p)) for s, d, n, p in duckdb.sql(
            f"SELECT source, snapshot_date, count(*), sum(pull_count) FROM read_parquet("
            f"'{out}/**/*.parquet', hive_partitioning = true) GROUP BY ALL").fetchall()),
        "polars": sorted((s, str(d), n, p) for s, d, n, p in pl.scan_parquet(
            f"{out}/**/*.parquet", hive_partitioning=True).group_by(
            ["source", "snapshot_date"]).agg(pl.len(), pl.col("pull_count").sum())
            .collect().iter_rows()),
    }
    for name, got in readers.items():
        assert sorted(got) == want, name


def test_an_unknown_region_is_read_with_a_warning_naming_it(
        clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A typo in a region name is named before the first request, not found only as a DNS
    failure after the retry window; a known region and an explicit endpoint get no warning."""
    for region, warned in (("cn-nort-4", True), ("cn-north-4", False)):
        caplog.clear()
        with pytest.raises(SystemExit) as exc:  # a bad --ca-bundle: exit 2 before any request
            main(["sync", "--no-auth", "--region", region, "--db", str(tmp_path / "swr.db"),
                  "--ca-bundle", str(tmp_path / "missing.pem")])
        assert exc.value.code == 2
        found = [r.getMessage() for r in caplog.records
                 if "not one swr-etl knows" in r.getMessage()]
        assert found == ([f"region '{region}' is not one swr-etl knows (a typo? "
                          "docs/operators/sources.md lists them); reading "
                          f"https://swr-api.{region}.myhuaweicloud.com"] if warned else [])


def test_the_run_deadline_ends_a_region_in_outage_and_spares_the_others(tmp_path: Path) -> None:
    """--deadline bounds the whole run of several sources: a region whose API stays down is cut
    off by it (exit 4, the deadline named) while the regions that answer load."""
    outage = {"faults": [{"kind": "status", "status": 503, "at": 1, "for_s": 600}]}
    with Regions(NAMES, images=30, scenarios={"cn-north-4": outage}) as regions:
        result = run_sync(settings_for(regions, tmp_path / "swr.db", max_attempts=None,
                                       retry_window=600, backoff_base=0.2, backoff_cap=0.5,
                                       deadline=2.0), now=T0)
    assert (result.status, result.exit_code) == ("partial", 4)
    assert [(r.source, r.status) for r in result.sources] == [
        ("ap-southeast-1", "success"), ("cn-north-4", "failed"), ("eu-west-101", "success")]
    (error,), = q(tmp_path / "swr.db", "SELECT error FROM run_sources WHERE source = ?",
                  "cn-north-4")
    assert "--deadline 2 s" in error, error
    assert q(tmp_path / "swr.db", "SELECT source, COUNT(*) FROM images GROUP BY source") == [
        ("ap-southeast-1", 30), ("eu-west-101", 30)]


def test_each_server_has_its_own_budget_of_requests_in_flight(tmp_path: Path) -> None:
    """--concurrency bounds the requests in flight to each server. Each region's simulator is a
    server of its own: none sees more than 2 at once, and the three together see more (one
    budget for the whole run would have held them to 2 in all)."""
    slow = {n: {"latency_ms": 40} for n in NAMES}
    with Regions(NAMES, images=400, scenarios=slow) as regions:
        result = run_sync(settings_for(regions, tmp_path / "swr.db", concurrency=2,
                                       page_size=50), now=T0)
        logs = {name: regions[name].repos_requests() for name in NAMES}
    assert (result.status, result.exit_code) == ("success", 0)
    assert {name: max_overlap(log) <= 2 for name, log in logs.items()} == dict.fromkeys(
        NAMES, True)
    assert max_overlap([r for log in logs.values() for r in log]) >= 3


def test_sources_on_one_server_share_its_budget(tmp_path: Path) -> None:
    """Two accounts read from the same region's API (one server, written two ways) share one
    budget: the server never sees more than --concurrency requests at once."""
    with Regions(("cn-north-4",), images=400,
                 scenarios={"cn-north-4": {"latency_ms": 40}}) as regions:
        sim = regions["cn-north-4"]
        port = sim.url.rsplit(":", 1)[1]
        sources = (Source("account-a", sim.url, "cn-north-4"),
                   Source("account-b", f"HTTP://127.0.0.1:{port}/", "cn-north-4"))
        result = run_sync(Settings(sources=sources, db=tmp_path / "swr.db", allow_anonymous=True,
                                   concurrency=2, page_size=50), now=T0)
        log = sim.repos_requests()
    assert (result.status, result.exit_code) == ("success", 0)
    assert [(r.source, r.rows) for r in result.sources] == [("account-a", 400),
                                                            ("account-b", 400)]
    assert max_overlap(log) == 2


def test_a_run_of_several_sources_imports_the_http_client_only_to_read_the_api() -> None:
    """The per-server budgets and the run's deadline are made for a read of the API, where
    they are imported; a library caller handing in pages for several sources loads no HTTP
    client (nor the transform's libraries before a load needs them)."""
    loaded = imported_by("-c", "import etl.run.sources")
    assert "etl.run.sources" in loaded  # the listing is real
    assert {m for m in loaded if m.split(".")[0] in HEAVY} == set()
