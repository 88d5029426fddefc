"""Dimension values become field names of the stats documents: usable in paths, and reversible."""

from __future__ import annotations

import pytest

from services.metrics.projections.store import decode_key, encode_key


@pytest.mark.parametrize(
    "key", ["alice", "*", "", "a.b", "$tag", "50%", "%2E", "k", "x.$y%z", "日本", "a\0b", "%00", "\0"]
)
def test_dimension_values_round_trip_through_field_names_mongodb_takes(key: str) -> None:
    name = encode_key(key)
    assert "." not in name and not name.startswith("$") and "\0" not in name and name
    assert decode_key(name) == key


def test_distinct_values_get_distinct_field_names() -> None:
    keys = ["a.b", "a%2Eb", "a$b", "a%24b", "ab", "a\0b", "a%00b"]
    assert len({encode_key(k) for k in keys}) == len(keys)
