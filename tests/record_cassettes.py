"""Record the vcrpy cassettes under ``cassettes/`` from the simulated endpoint (run once, commit).

    python -m tests.record_cassettes          # rewrites every cassette

Each cassette holds the request/response shapes of one situation: a multi-page scan, a filtered
scan, and one final error per error body shape. Credentials are filtered out before anything is
written (``filter_headers``); ``tests/test_cassettes.py`` replays them with ``record_mode="none"``
and checks that no cassette holds a credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import vcr

from etl.config.settings import Settings
from etl.errors import EtlError
from etl.extract.scan import make_session, scan_official_images
from etl.simulator import Simulator

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
# A fixed, recognisable token so tests can prove it never reached a cassette.
RECORDING_TOKEN = "REC-TOKEN-must-never-appear-in-a-cassette"
FILTERED_HEADERS = ["X-Auth-Token", "Authorization", "X-Subject-Token", "X-Sdk-Date"]
NAMESPACE = "library"

# name -> (simulator scenario extras, settings extras)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "multi_page_scan": ({}, {}),
    "filtered_scan": ({}, {"namespace": NAMESPACE}),
    "error_list_400": ({"faults": [{"kind": "status", "status": 400, "every": 1,
                                    "code": "SVCSTG.SWR.4000014", "shape": "list",
                                    "message": "Invalid parameter"}]}, {}),
    "error_errors_401": ({"faults": [{"kind": "status", "status": 401, "every": 1,
                                      "code": "SVCSTG.SWR.4010000", "shape": "errors",
                                      "message": "Authentication failed"}]}, {}),
    "error_top_404": ({"faults": [{"kind": "status", "status": 404, "every": 1,
                                   "code": "SVCSTG.SWR.4040083", "shape": "top",
                                   "message": "The URL does not exist"}]}, {}),
    "error_apig_403": ({"faults": [{"kind": "status", "status": 403, "every": 1,
                                    "code": "APIG.0302", "shape": "apig",
                                    "message": "The IAM user is forbidden"}]}, {}),
}


class _Token(requests.auth.AuthBase):
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["X-Auth-Token"] = RECORDING_TOKEN
        return r


def recorder() -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="all",
        filter_headers=FILTERED_HEADERS,
        decode_compressed_response=True,
    )


def record(name: str) -> Path:
    scenario_extra, settings_extra = CASES[name]
    scenario = {"auth": "token", "tokens": [RECORDING_TOKEN], **scenario_extra}
    with Simulator(images=120, seed=42, scenario=scenario) as sim:
        settings = Settings(endpoint=sim.url, page_size=50, concurrency=1, max_attempts=1,
                            **settings_extra)
        path = CASSETTES / f"{name}.yaml"
        path.unlink(missing_ok=True)
        session = make_session(settings)
        with recorder().use_cassette(path.name):
            try:
                for _ in scan_official_images(session, settings, auth=_Token()):
                    pass
            except EtlError:
                pass  # the error cases end in the final error they record
        session.close()
    return path


def main() -> int:
    CASSETTES.mkdir(exist_ok=True)
    for name in CASES:
        print(record(name).relative_to(CASSETTES.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
