"""swr-etl: mirror Huawei Cloud SWR's official container image list into SQLite.

The library's front door, one name per stage::

    from etl import Settings, run_sync
    result = run_sync(Settings(region="cn-north-4", db="swr.db"))

``Settings`` (what a run does), ``run_sync`` (one sync; ``pages=`` hands it pages instead of the
API), ``scan_official_images`` (extract), ``transform_rows`` (transform), ``Loader`` (the
one-transaction load), ``export_snapshots`` and ``build_report`` (publish).

Names load on first use (PEP 562, through lazy_loader): ``import etl`` alone imports none of
them, so ``swr-etl --help`` and commands that only read the database do not pay for pandas,
pyarrow or requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__version__ = "0.1.0"

if TYPE_CHECKING:  # the same names, for type checkers (``name as name``: re-exported)
    from etl.config.settings import Settings as Settings
    from etl.extract.scan import scan_official_images as scan_official_images
    from etl.publish.export import export_snapshots as export_snapshots
    from etl.publish.report import build_report as build_report
    from etl.run.pipeline import run_sync as run_sync
    from etl.store.load import Loader as Loader
    from etl.transform.frames import transform_rows as transform_rows

# module -> the public names it defines (each imported when it is first asked for)
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "config.settings": ["Settings"],
    "run.pipeline": ["run_sync"],
    "extract.scan": ["scan_official_images"],
    "transform.frames": ["transform_rows"],
    "store.load": ["Loader"],
    "publish.export": ["export_snapshots"],
    "publish.report": ["build_report"],
})
