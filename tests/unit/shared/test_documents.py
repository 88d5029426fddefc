"""The entity <-> document mapping every store uses (shared/documents.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import bson
import pytest
from pydantic import ValidationError

from shared.documents import Documents


class Colour(enum.StrEnum):
    RED = "red"


@dataclass(frozen=True)
class Part:
    name: str
    count: int


@dataclass(frozen=True)
class Thing:
    id: str
    colour: Colour
    starts_on: date
    at: datetime
    tags: tuple[str, ...]
    parts: list[Part]
    self_made: bool
    note: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


THINGS = Documents(Thing, stored_as={"self_made": "self"}, older={"self_made": False})
THING = Thing(
    id="t1",
    colour=Colour.RED,
    starts_on=date(2026, 12, 5),
    at=datetime(2026, 12, 5, 9, 30, tzinfo=UTC),
    tags=("a", "b"),
    parts=[Part("p", 2)],
    self_made=True,
)


def test_a_document_is_what_bson_stores_and_comes_back_as_the_same_entity() -> None:
    document = THINGS.document(THING)

    assert document["_id"] == "t1" and "id" not in document
    assert document["self"] is True and "self_made" not in document
    assert document["starts_on"] == "2026-12-05"  # BSON has no date
    assert document["parts"] == [{"name": "p", "count": 2}]
    stored = bson.decode(bson.encode(document), codec_options=bson.CodecOptions(tz_aware=True))
    assert THINGS.entity(stored) == THING


def test_keys_the_entity_does_not_know_are_left_behind() -> None:
    stored = THINGS.document(THING) | {"org": "acme", "outbox": [{"id": "e1"}]}

    assert THINGS.entity(stored) == THING


def test_an_older_document_takes_the_defaults_of_the_fields_it_lacks() -> None:
    older = THINGS.document(THING)
    del older["self"], older["note"], older["extra"]

    entity = THINGS.entity(older)

    assert entity.self_made is False and entity.note is None and entity.extra == {}


def test_a_document_missing_a_field_without_a_default_is_refused_not_guessed() -> None:
    broken = THINGS.document(THING)
    del broken["colour"]

    with pytest.raises(ValidationError):
        THINGS.entity(broken)


def test_a_document_key_without_an_id_field_is_the_stores_own() -> None:
    parts = Documents(Part, id_field=None)

    assert parts.document(Part("p", 1)) == {"name": "p", "count": 1}
    assert parts.entity({"_id": "x", "name": "p", "count": 1}) == Part("p", 1)
    assert THINGS.stored_name("self_made") == "self" and THINGS.stored_name("id") == "_id"


def test_an_older_document_lacking_a_field_that_may_be_none_reads_it_as_none() -> None:
    @dataclass(frozen=True)
    class Later:
        id: str
        sent_at: datetime | None

    assert Documents(Later).entity({"_id": "l1"}) == Later("l1", None)
