"""One way to keep what was read from the store for a few seconds.

Some reads repeat on every event or request (an organisation's rules, its webhook endpoints, its
time zone): the answer is kept per key for `seconds`, so a change made through another replica
applies here within that time. The vault and the redirect keep their own caches: they load in
batches and remember what is missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._kept: dict[K, tuple[float, V]] = {}  # key -> (fresh until, value)

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The value kept for `key` while fresh; else `load()`'s, kept (nothing when it raises)."""
        kept = self._kept.get(key)
        if kept is not None and self._clock() < kept[0]:
            return kept[1]
        value = await load()
        self._kept[key] = (self._clock() + self.seconds, value)
        return value

    async def get_many(self, keys: Iterable[K], load: Callable[[K], Awaitable[V]]) -> dict[K, V]:
        """`get` of several keys, for a loop that asks on every pass (the projector's poll): the
        fresh ones are read as kept, with no task; only the others are loaded, together."""
        now, found, stale = self._clock(), {}, []
        for key in set(keys):
            kept = self._kept.get(key)
            if kept is not None and now < kept[0]:
                found[key] = kept[1]
            else:
                stale.append(key)
        if stale:
            values = await asyncio.gather(*(load(key) for key in stale))
            until = self._clock() + self.seconds
            for key, value in zip(stale, values, strict=True):
                self._kept[key] = (until, value)
                found[key] = value
        return found

    def forget(self, key: K) -> None:
        """The next `get` of `key` loads (after a change made here)."""
        self._kept.pop(key, None)
