"""The one rule for source time zones by name (standard library only, imported lazily).

The settings check ``--source-timezone`` with it (``etl.config.settings.known_zone``) and the
transform reads wall-clock times with it (``etl.transform.timestamps.zone_named``), so a name one
accepts the other can read. "UTC" needs no zone at all: wall-clock times in UTC are UTC already,
so neither ``zoneinfo`` (~4 ms to import with the ``sysconfig`` it reads its search path from)
nor a time zone database is needed for it (Windows without the ``tzdata`` package has none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


def zone_of(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or None for "UTC".

    Raises:
        ValueError: no zone has that name (each caller words the error for its user).
    """
    if name == "UTC":
        return None
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
