"""Transform: raw SWR rows -> typed frames of images, rejects and quality issues (pure).

``transform_rows(rows, page_offsets=..., source_timezone=...)`` returns a ``Transformed``
(``images``, ``rejects``, ``quality_issues``) whose columns and dtypes are ``IMAGE_DTYPES``,
``REJECT_DTYPES`` and ``ISSUE_DTYPES``, as pandas frames. A sync uses
``etl.transform.frames.transform_columns``: the same tables as lists of bindable values,
without pandas.

Names load on first use: importing ``etl.transform`` alone imports neither pandas nor pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:  # the same names, for type checkers (``name as name``: re-exported)
    from etl.transform.frames import IMAGE_DTYPES as IMAGE_DTYPES
    from etl.transform.frames import ISSUE_DTYPES as ISSUE_DTYPES
    from etl.transform.frames import REJECT_DTYPES as REJECT_DTYPES
    from etl.transform.frames import Transformed as Transformed
    from etl.transform.frames import transform_rows as transform_rows

# imported from etl.transform.frames when first asked for
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "frames": ["IMAGE_DTYPES", "ISSUE_DTYPES", "REJECT_DTYPES", "Transformed", "transform_rows"],
})
