"""The simulated SWR endpoint: a real HTTP server on 127.0.0.1 for the demo, tests and benchmarks.

``Simulator`` serves ``GET /v2/manage/dockerhub/repos`` (and IAM's ``POST /v3/auth/tokens`` in
``iam`` mode) over a deterministic ``Dataset``, shaped by a ``Scenario`` (auth mode, faults,
drift). ``serve`` runs one in the foreground for ``swr-etl simulate``.
"""

from etl.simulator.dataset import Dataset, DayReport
from etl.simulator.foreground import serve
from etl.simulator.render import RenderedPage
from etl.simulator.scenario import Drift, Fault, Scenario
from etl.simulator.server import Simulator
from etl.simulator.wire import RequestRecord

__all__ = ["Dataset", "DayReport", "Drift", "Fault", "RenderedPage", "RequestRecord", "Scenario",
           "Simulator", "serve"]
