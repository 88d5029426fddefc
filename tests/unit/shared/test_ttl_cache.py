from __future__ import annotations

import pytest

from shared.ttl_cache import TtlCache


class Loads:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> int:
        self.count += 1
        return self.count


async def test_a_value_is_kept_for_its_seconds_then_loaded_again() -> None:
    now = [100.0]
    cache: TtlCache[str, int] = TtlCache(2.0, clock=lambda: now[0])
    load = Loads()
    assert await cache.get("acme", load) == 1
    now[0] = 101.9
    assert await cache.get("acme", load) == 1
    assert load.count == 1
    now[0] = 102.0
    assert await cache.get("acme", load) == 2


async def test_keys_are_kept_apart_and_a_forgotten_key_loads_again() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0, clock=lambda: 0.0)
    acme, globex = Loads(), Loads()
    assert (await cache.get("acme", acme), await cache.get("globex", globex)) == (1, 1)
    cache.forget("acme")
    cache.forget("initech")  # never kept: nothing to do
    assert (await cache.get("acme", acme), await cache.get("globex", globex)) == (2, 1)


async def test_a_failed_load_keeps_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0, clock=lambda: 0.0)

    async def failing() -> int:
        raise ConnectionError("the store did not answer")

    with pytest.raises(ConnectionError):
        await cache.get("acme", failing)
    assert await cache.get("acme", Loads()) == 1


async def test_many_keys_load_only_those_not_fresh_and_keep_them() -> None:
    now = [0.0]
    cache: TtlCache[str, str] = TtlCache(2.0, clock=lambda: now[0])
    loaded: list[str] = []

    async def zone(org: str) -> str:
        loaded.append(org)
        return f"{org}-{loaded.count(org)}"  # which load of this organisation gave it

    assert await cache.get_many(["acme", "globex", "acme"], zone) == {"acme": "acme-1", "globex": "globex-1"}
    assert sorted(loaded) == ["acme", "globex"]  # each once, though asked twice
    assert await cache.get_many(["acme", "globex"], zone) == {"acme": "acme-1", "globex": "globex-1"}
    assert len(loaded) == 2  # both fresh: read as kept
    now[0] = 1.0
    cache.forget("globex")
    assert await cache.get_many(["acme", "globex"], zone) == {"acme": "acme-1", "globex": "globex-2"}
    assert await cache.get("globex", lambda: zone("globex")) == "globex-2"  # kept by get_many
    now[0] = 2.0  # acme's seconds are up; globex's (kept at 1.0) are not
    assert await cache.get_many(["acme", "globex"], zone) == {"acme": "acme-2", "globex": "globex-2"}
    assert loaded[2:] == ["globex", "acme"]
