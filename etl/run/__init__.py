"""Running the job: one sync, dry run or replay (the run skeleton), and the hooks of an
unattended run (healthcheck pings, the metrics file, SIGTERM)."""

from etl.run.hooks import run_observed
from etl.run.pipeline import PageSource, replay_run, run_sync, scan_api
from etl.run.skeleton import SyncResult
from etl.run.stream import ChunkSizes, ProgressCallback

__all__ = ["ChunkSizes", "PageSource", "ProgressCallback", "SyncResult", "replay_run",
           "run_observed", "run_sync", "scan_api"]
