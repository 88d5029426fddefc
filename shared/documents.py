"""The one way a store turns its entity (a dataclass) into a MongoDB document and back.

Fields are stored under their names (the entity's id as `_id`, a few under older names where
stored data already uses them). On the way back pydantic validates the document against the
entity, so stored types come back as the entity declares them (arrays as tuples or lists,
strings as enums, ISO strings as dates), keys the entity does not know (an outbox, the org's
bookkeeping) are left behind, and a field an older document lacks takes the entity's default
(None where the field may be None).
A new field is mapped the day it is added, in both directions, with nothing to forget.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from shared.mongo import Document, insert_unless_there
from shared.tenancy import CrossTenantCollection, Filter, TenantCollection

Entity = TypeVar("Entity")


def _storable(value: Any) -> Any:
    # BSON has a datetime and no date: a calendar date is kept as its ISO string.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


class Documents(Generic[Entity]):
    """`Documents(Goal)` maps a Goal to its document and back. `id_field` names the field kept
    as `_id` (None: the document's `_id` is the store's own key, not a field of the entity);
    `stored_as` maps a field to the older name stored documents already use; `older` gives the
    value of a field that documents written before it existed lack, where the entity itself
    has no default for it."""

    def __init__(
        self,
        entity: type[Entity],
        *,
        id_field: str | None = "id",
        stored_as: Mapping[str, str] | None = None,
        older: Mapping[str, Any] | None = None,
    ) -> None:
        self._adapter: TypeAdapter[Entity] = TypeAdapter(entity)
        names = [f.name for f in dataclasses.fields(entity)]  # type: ignore[arg-type]
        self._stored = {name: name for name in names} | dict(stored_as or {})
        if id_field is not None:
            self._stored[id_field] = "_id"
        self._fields = {stored: name for name, stored in self._stored.items()}
        hints = typing.get_type_hints(entity)
        may_be_none = {name: None for name in names if type(None) in typing.get_args(hints[name])}
        self._older = may_be_none | dict(older or {})

    def document(self, entity: Entity) -> Document:
        fields = self._adapter.dump_python(entity)
        return {self._stored[name]: _storable(value) for name, value in fields.items()}

    def entity(self, document: Mapping[str, Any]) -> Entity:
        fields = self._older | {
            name: document[stored] for stored, name in self._fields.items() if stored in document
        }
        return self._adapter.validate_python(fields)

    async def one(
        self, collection: TenantCollection | CrossTenantCollection, filter: Filter
    ) -> Entity | None:
        """The entity of the document `filter` finds in `collection`; None when there is none."""
        document = await collection.find_one(filter)
        return None if document is None else self.entity(document)

    async def insert_once(self, collection: TenantCollection, entity: Entity) -> Entity:
        """Insert `entity`, or answer the one already there with its `_id`: a create whose id comes
        from its Idempotency-Key (shared/ids.py `id_for_request`) meets its first try's."""
        there = await insert_unless_there(collection, self.document(entity))
        return entity if there is None else self.entity(there)

    def stored_name(self, field: str) -> str:
        """The document key a field is kept under, for queries and updates."""
        return self._stored[field]
