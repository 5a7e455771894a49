# Names vulture cannot see being used (`vulture` in .ci/run reads etl and this file; pyproject.toml
# [tool.vulture]). Every entry says who uses it. Anything else vulture reports is dead: delete it.
# This file is never imported: a name mentioned here counts as used.
from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# click registers the commands through their decorators; nothing calls them by name.
sync_cmd, replay_cmd, export_cmd, report_cmd, runs_cmd, status_cmd, demo_cmd, simulate_cmd

# http.server and requests call these hooks and read these attributes of our subclasses.
_.do_GET, _.do_POST, _.do_PUT, _.do_DELETE, _.log_message, _.version_string
protocol_version, disable_nagle_algorithm, _.close_connection, _.daemon_threads
explain  # BaseHTTPRequestHandler.send_error's parameter, kept in the override's signature
_.trust_env  # read by requests.Session (off: no ~/.netrc credentials)
_.resolve_redirects  # requests.Session calls it; ours follows nothing (etl.extract.transport)
req  # requests' resolve_redirects(resp, req, ...) parameter, kept in the override's signature

# Fields of result and stats dataclasses: read through dataclasses.asdict()/vars() by the run
# ledger and returned to library users.
retry_causes, rescans, duration_s, _.retry_causes, _.rescans, _.duration_s
middle  # ContentRange.middle: kept for diagnostics (its meaning is disputed, never trusted)

# Counters and facts the tests observe: how often the planner re-planned, the retry policy met
# an outage, the limiter paused; the table of primary keys the schema tests check the DDL against;
# the vocabulary of runs.proof.
_.replans, _.outages, _.pauses
PRIMARY_KEYS, PROOFS

# The simulator's API for the tests, the demo and the benchmarks.
_.advance, _.set_today, _.cpu_seconds, _.repos_requests, _.clear_requests, _.set_scenario
_.listing_at

# tqdm reads monitor_interval from our subclass; prometheus_client calls a collector's collect().
monitor_interval  # etl.cli.progress
_.collect  # etl.run.metrics._RunCollector

# pyarrow's writers call tell() on the Python file object they write through.
_.tell  # etl.publish.storage.HashingSink

# SourceFigures fields are read by name from the per-source metrics table (SOURCE_METRICS).
_.rows_loaded  # etl.run.metrics.SourceFigures

# The PostgreSQL destination's seam, built ahead of its callers (docs/development/postgres.md,
# "What is left"): the Loader takes PgRunLock for a postgresql:// --db. Tests use both today;
# delete these lines when the commands call them.
dialect_for, PgRunLock

# LoadRun.write_chunk is the library's one-call chunk write (docs/ARCHITECTURE.md, "The library");
# the pipeline calls its three steps itself, so that the merge runs on its writer thread.
_.write_chunk  # etl.store.load.LoadRun

# The import system calls find_spec on every finder in sys.meta_path.
_.find_spec  # etl.store.schema._NoPandasHere
