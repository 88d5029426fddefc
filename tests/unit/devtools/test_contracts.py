"""The event-contract compatibility check. A consumer reads events both ways: new ones must be
what it understood (nothing removed, widened or no longer always given), and the retained ones a
replay reads must still be valid (nothing newly required or narrowed). Optional additions pass."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from devtools.contracts import check_contracts, compatibility_problems

REPO = Path(__file__).resolve().parents[3]


class Address(BaseModel):
    city: str


class V1(BaseModel):
    share_id: str
    clicks: int
    tags: list[str] = Field(default_factory=list)
    address: Address | None = None


class AddedOptional(V1):
    country: str | None = None


class Removed(BaseModel):
    share_id: str
    tags: list[str] = Field(default_factory=list)
    address: Address | None = None


class Renamed(BaseModel):
    share_id: str
    click_count: int
    tags: list[str] = Field(default_factory=list)
    address: Address | None = None


class TypeChanged(BaseModel):
    share_id: str
    clicks: str
    tags: list[str] = Field(default_factory=list)
    address: Address | None = None


class NewRequired(V1):
    network: str


class NestedAddress(BaseModel):
    town: str


class NestedRemoved(BaseModel):
    share_id: str
    clicks: int
    tags: list[str] = Field(default_factory=list)
    address: NestedAddress | None = None


class ItemsChanged(BaseModel):
    share_id: str
    clicks: int
    tags: list[int] = Field(default_factory=list)
    address: Address | None = None


class Widened(BaseModel):
    share_id: str
    clicks: int | None = None
    tags: list[str] = Field(default_factory=list)
    address: Address | None = None


def problems(new: type[BaseModel]) -> list[str]:
    return compatibility_problems(V1.model_json_schema(), new.model_json_schema())


def test_an_additive_optional_field_is_compatible() -> None:
    assert problems(AddedOptional) == []


def test_a_field_widened_or_no_longer_always_given_breaks() -> None:
    # A consumer that typed `clicks: int` and read it unguarded meets a null or nothing.
    assert problems(Widened) == [
        "clicks: no longer always given",
        "clicks: type widened from ['integer'] to ['integer', 'null']",
    ]


def test_a_narrowed_field_breaks_the_replay_of_retained_events() -> None:
    # Events written before the change carry a null, or no `clicks` at all.
    assert compatibility_problems(Widened.model_json_schema(), V1.model_json_schema()) == [
        "clicks: type narrowed from ['integer', 'null'] to ['integer']",
        "clicks: newly required",
    ]


def test_a_removed_field_breaks() -> None:
    assert problems(Removed) == ["clicks: removed"]


def test_a_renamed_field_breaks_as_a_removal_and_a_new_required_field() -> None:
    assert problems(Renamed) == ["clicks: removed", "click_count: newly required"]


def test_a_changed_type_breaks() -> None:
    assert problems(TypeChanged) == ["clicks: type changed from ['integer'] to ['string']"]


def test_a_new_required_field_breaks() -> None:
    # The events a topic retains from before do not have it.
    assert problems(NewRequired) == ["network: newly required"]


def test_changes_inside_nested_models_and_arrays_are_found() -> None:
    assert "address.city: removed" in problems(NestedRemoved)
    assert problems(ItemsChanged) == ["tags[]: type changed from ['string'] to ['integer']"]


def test_the_released_contracts_match_the_registry() -> None:
    # Fails when an event model changed without `chorus schemas`, or changed in a breaking way.
    assert check_contracts(REPO / "docs" / "events") == [], (
        "a breaking change needs a new schema version: docs/events/README.md"
    )


class Networks(BaseModel):
    network: Literal["linkedin", "x"]


class MoreNetworks(BaseModel):
    network: Literal["linkedin", "x", "bluesky"]


def test_an_enumeration_may_grow_but_not_shrink() -> None:
    # Consumers take an unknown value as an unknown field; a retained `x` event must still parse.
    assert compatibility_problems(Networks.model_json_schema(), MoreNetworks.model_json_schema()) == []
    assert compatibility_problems(MoreNetworks.model_json_schema(), Networks.model_json_schema()) == [
        "network: no longer accepts ['bluesky']"
    ]
