"""Personal data in events, and how it travels on the topics (docs/erasure.md).

An event model marks its personal fields with `Annotated[..., PERSON]` (the field is a person's
id: an identity provider's `sub`, often an e-mail address) or `Annotated[..., Personal(of=f)]`
(the field says something about the person whose id is field `f`: team, location, their own
text). On a topic:

- a person's id is replaced by that person's pseudonym (`psn_` and 26 random characters), and a
  record key that is a person's id becomes the pseudonym too, so a person's events keep their
  order;
- a field about a person is `enc:v1:<pseudonym>:<ciphertext>`: AES-SIV under that person's own
  data key, with the pseudonym as associated data. AES-SIV is deterministic (equal values give
  equal ciphertexts under one key), which lets a decryption be cached, and still authenticated.

The vault (shared/vault.py) keeps each person's pseudonym and key; erasure deletes them, and
with them every way back from the topics to the person. These functions are the pure part:
`seal` an event with the people it names, `reveal` it with the people its pseudonyms name (a
pseudonym missing from them, because the person was erased, stays a pseudonym, and a field about
them becomes null, or empty where the field is required).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue

PSEUDONYM_PREFIX = "psn_"
PSEUDONYM = re.compile(r"psn_[a-z2-7]{26}")
SEALED_PREFIX = "enc:v1:"
# Where a sealed value names its pseudonym (enc:v1:<pseudonym>:<ciphertext>).
_PSEUDONYM_AT = slice(len(SEALED_PREFIX), len(SEALED_PREFIX) + len(PSEUDONYM_PREFIX) + 26)
KEY_BYTES = 64  # AES-SIV with two 256-bit keys

M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=BaseModel)  # an Event (shared/events/envelope.py imports this module)


@dataclass(frozen=True)
class Personal:
    """Marks a personal field: `of` names the field holding the id of the person it is about;
    none: the field is itself a person's id."""

    of: str | None = None

    def __get_pydantic_json_schema__(self, core: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The event contract says how the field travels (docs/erasure.md)."""
        schema = handler(core)
        if self.of is None:
            schema["x-chorus-personal"] = "pseudonym"
            note = "A person's id: on the topic, their pseudonym (psn_...), which erasure unlinks."
        else:
            schema["x-chorus-personal"] = f"sealed:{self.of}"
            note = (
                f"About the person in `{self.of}`: on the topic, enc:v1:<pseudonym>:<ciphertext>,"
                " unreadable once they are erased."
            )
        schema["description"] = f"{schema['description']} {note}" if "description" in schema else note
        return schema


PERSON = Personal()


@dataclass(frozen=True)
class Person:
    """One person of one organisation, as the vault keeps them."""

    pseudonym: str
    org: str
    sub: str
    key: bytes


def new_person(org: str, sub: str) -> Person:
    pseudonym = PSEUDONYM_PREFIX + base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()
    return Person(pseudonym, org, sub, os.urandom(KEY_BYTES))


def is_pseudonym(value: str) -> bool:
    return PSEUDONYM.fullmatch(value) is not None


@dataclass(frozen=True)
class Plan:
    """Where a model keeps personal data."""

    ids: tuple[str, ...] = ()
    about: tuple[tuple[str, str], ...] = ()  # (field, the field with the person's id)
    nested: tuple[str, ...] = ()  # lists of models that have personal fields
    required: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.ids or self.about or self.nested)


@functools.cache
def plan(model: type[BaseModel]) -> Plan:
    ids: list[str] = []
    about: list[tuple[str, str]] = []
    nested: list[str] = []
    for name, field in model.model_fields.items():
        marks = [m for m in field.metadata if isinstance(m, Personal)]
        if marks and marks[0].of is None:
            ids.append(name)
        elif marks:
            about.append((name, marks[0].of or ""))
        elif (item := _list_item(field.annotation)) is not None and plan(item):
            nested.append(name)
    required = frozenset(name for name, _ in about if model.model_fields[name].is_required())
    return Plan(tuple(ids), tuple(about), tuple(nested), required)


def _list_item(annotation: Any) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is not list:
        return None
    (item,) = typing.get_args(annotation)
    return item if isinstance(item, type) and issubclass(item, BaseModel) else None


# --- what an event names -----------------------------------------------------------------------


def subs_in(data: BaseModel) -> set[str]:
    """The ids of the people `data` names in the clear (to seal it)."""
    found: set[str] = set()
    p = plan(type(data))
    for name in p.ids:
        value = getattr(data, name)
        if value and not is_pseudonym(value):
            found.add(value)
    for name in p.nested:
        for item in getattr(data, name):
            found |= subs_in(item)
    return found


def pseudonyms_in(data: BaseModel) -> set[str]:
    """The pseudonyms `data` carries (to reveal it)."""
    found: set[str] = set()
    p = plan(type(data))
    for name in p.ids:
        value = getattr(data, name)
        if value and is_pseudonym(value):
            found.add(value)
    for name, _ in p.about:
        value = getattr(data, name)
        if isinstance(value, str) and value.startswith(SEALED_PREFIX):
            found.add(value[_PSEUDONYM_AT])
    for name in p.nested:
        for item in getattr(data, name):
            found |= pseudonyms_in(item)
    return found


# --- sealing and revealing ---------------------------------------------------------------------


def seal(data: M, people: Mapping[str, Person]) -> M:
    """`data` as it goes on a topic: ids replaced by pseudonyms, what is about a person encrypted
    under their key. `people` holds everyone `subs_in(data)` names."""
    p = plan(type(data))
    if not p:
        return data
    update: dict[str, Any] = {}
    for name, owner in p.about:
        value, person_id = getattr(data, name), getattr(data, owner)
        if isinstance(value, str) and value and person_id and not value.startswith(SEALED_PREFIX):
            person = people.get(person_id)
            if person is not None:
                update[name] = seal_value(person, value)
    for name in p.ids:
        value = getattr(data, name)
        if value and value in people:
            update[name] = people[value].pseudonym
    for name in p.nested:
        update[name] = [seal(item, people) for item in getattr(data, name)]
    return data.model_copy(update=update) if update else data


def reveal(data: M, people: Mapping[str, Person]) -> M:
    """`data` as a consumer reads it: pseudonyms of the people in `people` back to their ids, and
    what is about them decrypted. A pseudonym not in `people` (erased) stays as it is, and what
    is about that person reads as null (empty where required). Values not sealed (events from
    before sealing) are left as they are.

    `data` must be freshly decoded and not yet shared: it is changed in place, which costs a
    fraction of a copy (the metrics projector reveals every click)."""
    p = plan(type(data))
    if not p:
        return data
    fields = data.__dict__
    for name in p.ids:
        value = fields[name]
        if value and (person := people.get(value)) is not None:
            fields[name] = person.sub
    for name, _ in p.about:
        value = fields[name]
        if isinstance(value, str) and value.startswith(SEALED_PREFIX):
            fields[name] = _decrypt(people, value, "" if name in p.required else None)
    for name in p.nested:
        for item in fields[name]:
            reveal(item, people)
    return data


def seal_event(event: E, people: Mapping[str, Person]) -> E:
    """A whole event sealed (a copy): its data, and its CloudEvents `subject` when that is a
    person."""
    update: dict[str, Any] = {}
    data = seal(event.data, people)  # type: ignore[attr-defined]
    if data is not event.data:  # type: ignore[attr-defined]
        update["data"] = data
    subject = event.subject  # type: ignore[attr-defined]
    if subject is not None and subject in people:
        update["subject"] = people[subject].pseudonym
    return event.model_copy(update=update) if update else event


def reveal_event(event: E, people: Mapping[str, Person]) -> E:
    """A freshly decoded event revealed, in place (see `reveal`)."""
    reveal(event.data, people)  # type: ignore[attr-defined]
    subject = event.subject  # type: ignore[attr-defined]
    if subject is not None and (person := people.get(subject)) is not None:
        event.__dict__["subject"] = person.sub
    return event


def seal_value(person: Person, value: str) -> str:
    """`value` sealed under `person`'s key, as it stands on a topic."""
    ciphertext = AESSIV(person.key).encrypt(value.encode(), [person.pseudonym.encode()])
    return f"{SEALED_PREFIX}{person.pseudonym}:{base64.urlsafe_b64encode(ciphertext).decode().rstrip('=')}"


# Decrypted values by sealed value: AES-SIV is deterministic, so a team or a location comes back
# in many events. A sealed value names its pseudonym, and a pseudonym has had one key, ever; the
# person is looked up first, so a shredded person's values are never read from here.
_decrypted: dict[str, str] = {}
_DECRYPTED_MAX = 100_000


def _decrypt(people: Mapping[str, Person], sealed: str, erased: str | None) -> str | None:
    person = people.get(sealed[_PSEUDONYM_AT])
    if person is None:
        return erased
    cached = _decrypted.get(sealed)
    if cached is not None:
        return cached
    encoded = sealed[_PSEUDONYM_AT.stop + 1 :]
    try:
        ciphertext = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        value = AESSIV(person.key).decrypt(ciphertext, [person.pseudonym.encode()]).decode()
    except (InvalidTag, binascii.Error, ValueError):
        return erased  # not sealed under this person's key: unreadable, as if erased
    if len(_decrypted) >= _DECRYPTED_MAX:
        _decrypted.clear()
    _decrypted[sealed] = value
    return value


def personal_fields(model: type[BaseModel]) -> Iterator[tuple[str, Personal]]:
    """Each personal field of `model` (nested ones as `field[].name`), for the event contract."""
    p = plan(model)
    for name in p.ids:
        yield name, PERSON
    for name, owner in p.about:
        yield name, Personal(of=owner)
    for name in p.nested:
        item = _list_item(model.model_fields[name].annotation)
        assert item is not None
        for inner, mark in personal_fields(item):
            yield f"{name}[].{inner}", mark
