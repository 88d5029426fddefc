"""The person vault (shared/vault.py) on the real store: one entry per person and organisation
however many processes meet them at once, organisations apart, and erasure by shredding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from shared.events.personal import is_pseudonym
from shared.mongo import create_client
from shared.settings import ChorusSettings
from shared.vault import Vault
from tests.helpers import new_org

pytestmark = pytest.mark.integration


@pytest.fixture
async def vaults(settings: ChorusSettings) -> AsyncIterator[list[Vault]]:
    """Three vaults, as three processes have (each its own connections), caching nothing."""
    uncached = settings.model_copy(update={"vault_cache_s": 1e-6})
    opened = [Vault(uncached) for _ in range(3)]
    yield opened
    for vault in opened:
        await vault.close()


async def test_processes_meeting_a_person_at_once_agree_on_one_entry(vaults: list[Vault]) -> None:
    org = new_org()
    found = await asyncio.gather(*(vault.people_of(org, {"ann@example.com", "bob"}) for vault in vaults))
    assert len({f["ann@example.com"].pseudonym for f in found}) == 1
    assert len({f["ann@example.com"].key for f in found}) == 1
    ann = found[0]["ann@example.com"]
    assert is_pseudonym(ann.pseudonym) and found[0]["bob"].pseudonym != ann.pseudonym
    assert await vaults[1].people(org, {ann.pseudonym}) == {ann.pseudonym: ann}


async def test_one_organisation_never_reads_anothers_people(vaults: list[Vault]) -> None:
    mine, theirs = new_org(), new_org()
    ann = (await vaults[0].people_of(mine, {"ann"}))["ann"]
    assert await vaults[1].people(theirs, {ann.pseudonym}) == {}
    # The same person in another organisation is another entry, with its own pseudonym and key.
    other = (await vaults[1].people_of(theirs, {"ann"}))["ann"]
    assert (other.pseudonym, other.key) != (ann.pseudonym, ann.key)


async def test_a_shredded_person_reads_as_gone_and_comes_back_as_someone_new(
    vaults: list[Vault], settings: ChorusSettings
) -> None:
    org, now = new_org(), datetime.now(UTC)
    ann = (await vaults[0].people_of(org, {"ann"}))["ann"]
    await vaults[0].shred_after(org, "ann", now + timedelta(hours=1))
    await vaults[0].shred_due()
    assert await vaults[1].people(org, {ann.pseudonym}) == {ann.pseudonym: ann}  # not yet due

    await vaults[0].shred_after(org, "ann", now)  # the earliest asked wins
    await vaults[0].shred_after(org, "ann", now + timedelta(hours=2))
    assert await vaults[1].people(org, {ann.pseudonym}) == {}  # due: gone before the sweep
    mongo = create_client(settings)
    try:
        entries = mongo[settings.vault_database_name()]["people"]
        assert await entries.count_documents({"org": org}) == 1
        await vaults[0].shred_due()
        assert await entries.count_documents({"org": org}) == 0
    finally:
        await mongo.close()
    again = (await vaults[2].people_of(org, {"ann"}))["ann"]
    assert again.pseudonym != ann.pseudonym and again.key != ann.key
    assert await vaults[2].people(org, {ann.pseudonym, again.pseudonym}) == {again.pseudonym: again}


async def test_someone_back_before_the_sweep_gets_a_new_entry_at_once(vaults: list[Vault]) -> None:
    org = new_org()
    ann = (await vaults[0].people_of(org, {"ann"}))["ann"]
    await vaults[0].shred_after(org, "ann", datetime.now(UTC))
    again = (await vaults[1].people_of(org, {"ann"}))["ann"]  # the due entry is not swept yet
    assert again.pseudonym != ann.pseudonym
    assert await vaults[2].people(org, {ann.pseudonym, again.pseudonym}) == {again.pseudonym: again}
