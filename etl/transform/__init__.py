"""Transform: raw SWR rows -> typed frames of images, rejects and quality issues (pure).

``transform_rows(rows, page_offsets=..., source_timezone=...)`` returns a ``Transformed``
(``images``, ``rejects``, ``quality_issues``) whose columns and dtypes are ``IMAGE_DTYPES``,
``REJECT_DTYPES`` and ``ISSUE_DTYPES``.

Names load on first use: importing ``etl.transform`` alone imports neither pandas nor pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, for type checkers (``name as name``: re-exported)
    from etl.transform.frames import IMAGE_DTYPES as IMAGE_DTYPES
    from etl.transform.frames import ISSUE_DTYPES as ISSUE_DTYPES
    from etl.transform.frames import REJECT_DTYPES as REJECT_DTYPES
    from etl.transform.frames import Transformed as Transformed
    from etl.transform.frames import transform_rows as transform_rows

# public name -> the module that defines it (imported when the name is first asked for)
_HOMES = {
    "transform_rows": "etl.transform.frames",
    "Transformed": "etl.transform.frames",
    "IMAGE_DTYPES": "etl.transform.frames",
    "REJECT_DTYPES": "etl.transform.frames",
    "ISSUE_DTYPES": "etl.transform.frames",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
