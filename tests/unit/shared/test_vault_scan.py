"""Finding the people a poll names from its raw records (shared/vault.py), for the tally workers.
The vault's store is replaced by a dictionary: only the scanning is under test here."""

from __future__ import annotations

import json

from shared.events.personal import Person, new_person
from shared.settings import ChorusSettings
from shared.vault import Vault

ANN, BOB, EVE = new_person("acme", "ann"), new_person("acme", "bob"), new_person("globex", "eve")


class ScanOnly(Vault):
    async def people(self, org: str, pseudonyms: set[str]) -> dict[str, Person]:
        self.asked.append((org, pseudonyms))
        return {p.pseudonym: p for p in (ANN, BOB, EVE) if p.org == org and p.pseudonym in pseudonyms}

    asked: list[tuple[str, set[str]]]


def record(tenant: str, advocate: str, *, spaced: bool = False) -> bytes:
    envelope = {"type": "chorus.click.recorded", "tenant": tenant, "data": {"advocate_id": advocate}}
    return json.dumps(envelope).encode() if spaced else json.dumps(envelope, separators=(",", ":")).encode()


async def test_each_organisation_of_a_poll_answers_for_its_own_people_whatever_the_json_spacing() -> None:
    vault = ScanOnly(ChorusSettings())
    vault.asked = []
    poll = [
        record("acme", ANN.pseudonym),
        record("acme", BOB.pseudonym, spaced=True),
        None,
        record("globex", EVE.pseudonym, spaced=True),
        record("acme", "not-a-pseudonym"),
    ]
    found = await vault.people_in_records(poll)
    assert found == {"acme": {ANN.pseudonym: ANN, BOB.pseudonym: BOB}, "globex": {EVE.pseudonym: EVE}}
    assert {org for org, _ in vault.asked} == {"acme", "globex"}


async def test_a_poll_without_pseudonyms_asks_nothing() -> None:
    vault = ScanOnly(ChorusSettings())
    vault.asked = []
    assert await vault.people_in_records([record("acme", "ann"), None]) == {}
    assert vault.asked == []
