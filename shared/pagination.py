"""Cursor pagination, the same everywhere: `?cursor=<next_cursor>&limit=N` -> `{items, next_cursor}`.

A cursor is opaque to clients: here, the last item's sort key, base64url-encoded (or, for an
order over several keys, their JSON: `encode_keys`). A cursor that does not decode is a 422
naming the `cursor` parameter, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BeforeValidator, Field

from shared.errors import InvalidInput
from shared.schemas import ResponseBody

Item = TypeVar("Item")


class Page(ResponseBody, Generic[Item]):
    """A page of a list: `class SharePage(Page[ShareOut]): pass` names it in the OpenAPI document."""

    items: list[Item]
    next_cursor: str | None = Field(None, description="the cursor of the next page; null on the last")


Cursor = Annotated[
    str | None, Query(min_length=1, max_length=500, description="next_cursor of the previous page")
]


def _whole_number(value: Any) -> Any:
    # pydantic's lax int takes " 8" and "\r8" from a query string; the document says integer.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number")
    return value


# A route gives its own default (`limit: Limit = 50`); every list takes up to 200 a page.
Limit = Annotated[int, Query(ge=1, le=200, description="page size"), BeforeValidator(_whole_number)]


def encode_cursor(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        decoded = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded:
        raise InvalidInput.field("cursor", "is not a cursor this API returned")
    return decoded


def encode_keys(values: dict[str, Any]) -> str:
    """A cursor over several sort keys (a time and an id, say): their JSON, encoded as above."""
    return encode_cursor(json.dumps(values, default=str))


def decode_keys(cursor: str | None) -> dict[str, Any] | None:
    text = decode_cursor(cursor)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput.field("cursor", "is not a cursor this API returned")
    return value


def encode_time_id(at: datetime, id: str) -> str:
    """A cursor after an item of a newest-first list: its time and, for ties, its id."""
    return encode_keys({"t": at.isoformat(), "id": id})


def decode_time_id(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_keys(cursor)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value["t"]), str(value["id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput.field("cursor", "is not a cursor this API returned") from exc
