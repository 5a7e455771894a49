"""The library's front door: ``from etl import ...`` gives the real objects, loaded on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import etl
from etl.config.settings import Settings
from etl.extract.scan import scan_official_images
from etl.publish.export import export_snapshots
from etl.publish.report import build_report
from etl.run.pipeline import run_sync
from etl.store.load import Loader
from etl.transform.frames import transform_rows

FACADE = {"Settings": Settings, "run_sync": run_sync, "scan_official_images": scan_official_images,
          "transform_rows": transform_rows, "Loader": Loader, "export_snapshots": export_snapshots,
          "build_report": build_report}
HEAVY = ("pandas", "pyarrow", "numpy", "requests", "urllib3", "tenacity", "sqlite_utils",
         "matplotlib", "jinja2", "click")


def test_the_facade_names_are_the_real_objects() -> None:
    assert etl.__all__ == sorted(FACADE)
    for name, home in FACADE.items():
        assert getattr(etl, name) is home, name
    namespace: dict[str, object] = {}
    exec("from etl import " + ", ".join(FACADE), namespace)  # the documented spelling
    assert {name: namespace[name] for name in FACADE} == FACADE
    with pytest.raises(AttributeError, match="No etl attribute PageReader"):
        etl.PageReader  # noqa: B018 - internal names are not exported


def test_import_etl_loads_no_stage_and_no_heavy_library() -> None:
    code = ("import json, sys, etl\n"
            "print(json.dumps(sorted(m for m in sys.modules\n"
            f"                        if m.startswith('etl.') or m.split('.')[0] in {HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert json.loads(out) == []


def test_one_facade_name_loads_only_its_own_stage() -> None:
    code = ("import json, sys, etl\n"
            "etl.Loader\n"
            "print(json.dumps(sorted({m.split('.')[1] for m in sys.modules\n"
            "                         if m.startswith('etl.')})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    # the store and the foundations it stands on; no other stage
    assert set(json.loads(out)) <= {"store", "config", "errors", "logs", "integers", "zones",
                                    "atomic"}
    assert "store" in json.loads(out)
