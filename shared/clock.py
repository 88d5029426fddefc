"""The one clock: services take a `Clock` (default `utc_now`) so tests can set the time.

`utc_now` is at millisecond precision, as MongoDB stores datetimes: a value built in memory and
the same value read back from the store (an event the relay rebuilds, say) compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


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
