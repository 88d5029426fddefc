"""Ids from an Idempotency-Key: the same for a retry, another for the key's reuse a day later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.ids import KEY_LIFETIME, id_for_request

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Made:
    """What a store holds: when the entity with each id was made."""

    def __init__(self) -> None:
        self.at: dict[str, datetime] = {}

    async def made_at(self, entity_id: str) -> datetime | None:
        return self.at.get(entity_id)


async def test_without_a_key_every_request_gets_a_new_id() -> None:
    made = Made()
    ids = {await id_for_request("rdm_", None, ("org-1", "a"), made.made_at, NOW) for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("rdm_") and len(i) == 20 for i in ids)


async def test_a_retry_within_the_keys_lifetime_gets_the_first_tries_id() -> None:
    made = Made()
    first = await id_for_request("rdm_", "k", ("org-1", "a"), made.made_at, NOW)
    made.at[first] = NOW
    later = NOW + KEY_LIFETIME - timedelta(seconds=1)
    assert await id_for_request("rdm_", "k", ("org-1", "a"), made.made_at, later) == first
    # The key names a request within its scope only.
    assert await id_for_request("rdm_", "k", ("org-1", "b"), made.made_at, NOW) != first
    assert await id_for_request("rdm_", "k", ("org-2", "a"), made.made_at, NOW) != first


async def test_the_key_reused_after_its_lifetime_names_a_new_request_whose_retries_agree() -> None:
    made = Made()
    first = await id_for_request("kds_", "k", ("org-1", "g"), made.made_at, NOW)
    made.at[first] = NOW
    a_day_on = NOW + KEY_LIFETIME + timedelta(seconds=1)
    second = await id_for_request("kds_", "k", ("org-1", "g"), made.made_at, a_day_on)
    assert second != first
    made.at[second] = a_day_on
    # The new request's own retry finds its id, not the first one's.
    assert await id_for_request("kds_", "k", ("org-1", "g"), made.made_at, a_day_on) == second
    two_days_on = a_day_on + KEY_LIFETIME + timedelta(seconds=1)
    third = await id_for_request("kds_", "k", ("org-1", "g"), made.made_at, two_days_on)
    assert third not in (first, second)
