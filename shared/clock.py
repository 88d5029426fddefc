"""The one clock: services take a `Clock` (default `utc_now`) so tests can set the time.

`utc_now` is at millisecond precision, as MongoDB stores datetimes: a value built in memory and
the same value read back from the store (an event the relay rebuilds, say) compare equal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    at = datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
