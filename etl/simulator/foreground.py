"""``swr-etl simulate``: run a simulator in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from etl.simulator.handler import IAM_PATH, REPOS_PATH
from etl.simulator.scenario import Scenario
from etl.simulator.server import Simulator


def serve(host: str = "127.0.0.1", port: int = 8080, images: int = 180, seed: int = 42,
          scenario: Scenario | Mapping[str, Any] | str | Path | None = None) -> None:
    """Run a simulator in the foreground until Ctrl-C; prints the URL and how to authenticate."""
    sim = Simulator(images, seed, scenario, host=host, port=port, prerender=images > 200_000)
    sim.start()
    sc = sim.scenario
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    say(f"swr-etl simulator: {len(sim.dataset)} images (seed {seed}) at {sim.url}")
    say(f"  try: curl -si '{sim.url}{REPOS_PATH}?offset=0&limit=5'")
    if sc.auth == "open":
        say(f"  auth: open; sync with: swr-etl sync --endpoint {sim.url} --no-auth")
    elif sc.auth == "token":
        token = sc.tokens[0] if sc.tokens else sim.issue_token()
        say(f"  auth: token; send X-Auth-Token, e.g. export SWR_AUTH_TOKEN={token}")
    elif sc.auth == "iam":
        users = ", ".join(f"{u['name']}@{u['domain']}" for u in sc.iam_users) or "(none)"
        say(f"  auth: iam; POST {sim.url}{IAM_PATH} (HUAWEICLOUD_IAM_ENDPOINT={sim.url}); "
            f"users: {users}; passwords as in the scenario file")
    else:
        aks = ", ".join(sc.aksk) or "(none)"
        say(f"  auth: aksk (SDK-HMAC-SHA256); access keys: {aks}; secret keys as in the "
            f"scenario file")
    say("  Ctrl-C to stop")
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. from a process supervisor) stops as cleanly as Ctrl-C.
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("swr-etl simulator: stopped")
    finally:
        sim.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
