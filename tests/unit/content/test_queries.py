"""How library requests become MongoDB filters and cursors (pure parts of store and service)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.content.common import Viewer
from services.content.library.domain import Status
from services.content.library.store import ContentQuery, _content_clauses
from shared.errors import InvalidInput
from shared.pagination import decode_cursor, encode_cursor

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_audience_clauses_let_empty_lists_through_and_match_the_callers_claims() -> None:
    viewer = Viewer("ann", frozenset({"advocate"}), team="sales")
    clauses = _content_clauses(ContentQuery(audience_of=viewer, live_at=NOW))
    assert {"$or": [{"audience.teams": {"$size": 0}}, {"audience.teams": "sales"}]} in clauses
    assert {"audience.departments": {"$size": 0}} in clauses  # no claim: only items open to every department
    assert {"$or": [{"expires_at": None}, {"expires_at": {"$gt": NOW}}]} in clauses


def test_text_search_is_escaped_and_case_insensitive() -> None:
    clauses = _content_clauses(ContentQuery(status=Status.PUBLISHED, text="a.b*"))
    pattern = {"$regex": r"a\.b\*", "$options": "i"}
    assert {"$or": [{"title": pattern}, {"summary": pattern}]} in clauses


def test_cursors_round_trip_and_garbage_is_refused_naming_the_field() -> None:
    assert decode_cursor(encode_cursor("65a1b2")) == "65a1b2"
    assert decode_cursor(None) is None
    for bad in ("%%%", "", "!!"):
        with pytest.raises(InvalidInput) as exc:
            decode_cursor(bad)
        assert exc.value.errors[0]["field"] == "cursor"
