"""The one clock: services take a `Clock` (default `utc_now`) so tests can set the time.

`utc_now` is at millisecond precision, as MongoDB stores datetimes: a value built in memory and
the same value read back from the store (an event the relay rebuilds, say) compare equal.

Times are kept in UTC; an organisation's IANA time zone (its settings' `time_zone`) says what
its days and hours are: `time_zone` reads the name, `local_date` the day a time falls on there.
The zone names are the `tzdata` package's (pinned by uv.lock), so that every machine accepts and
documents the same ones; their rules are the system's, or the package's where the system has
none (the image).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BeforeValidator

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


DEFAULT_TIME_ZONE = "UTC"


@lru_cache(maxsize=1)
def time_zone_names() -> tuple[str, ...]:
    """Every IANA time zone name, sorted: what `time_zone` accepts, for a request schema to list.
    From the tzdata package, not the machine's zone files: those may hold `localtime`, which
    names the server's own zone, whatever it is, and vary with the machine's release."""
    return tuple(sorted(files("tzdata").joinpath("zones").read_text().split()))


@lru_cache(maxsize=1024)
def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name` (e.g. America/Los_Angeles); ValueError if there is none."""
    try:
        if name not in time_zone_names():  # scanned once a name: the cache keeps what is found
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name that is a folder of the zone database (America), or unreadable.
        raise ValueError(f"{name!r} is not an IANA time zone, e.g. Europe/Paris") from None


def local_date(at: datetime, zone: str) -> date:
    """The day `at` falls on in the time zone `zone` (a time without a zone is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(time_zone(zone)).date()


SLOT_MINUTES = 15  # every IANA zone's offset from UTC is a multiple of it (since 1972)


def utc_slot(at: datetime) -> str:
    """The UTC quarter hour `at` falls in, e.g. '2026-11-02T08:15' (a time without a zone is UTC):
    whatever an organisation's zone, its days begin on one, so counts kept by quarter hour can be
    put on the days of any zone."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return f"{at:%Y-%m-%dT%H}:{at.minute - at.minute % SLOT_MINUTES:02d}"


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _written_as_a_time(value: Any) -> Any:
    # A date-time or date in OpenAPI is a string; pydantic would also take a number (as Unix
    # seconds), so `?since=0.5` meant 1970. Refused, as the document says.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be written in ISO 8601, e.g. 2026-01-31T09:00:00Z or 2026-01-31")
    return value


# Times and days taken from a request (a query parameter or a body field): ISO 8601 text only.
_TEXT = BeforeValidator(_written_as_a_time)
RequestTime = Annotated[datetime, _TEXT]
AwareRequestTime = Annotated[AwareDatetime, _TEXT]
RequestDay = Annotated[date, _TEXT]
