"""The event-contract compatibility check: breaking changes fail it, additive ones pass."""

from __future__ import annotations

from pathlib import Path

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


def test_making_a_required_field_optional_is_compatible() -> None:
    assert problems(Widened) == []


def test_a_removed_field_breaks() -> None:
    assert problems(Removed) == ["clicks: removed"]


def test_a_renamed_field_breaks_as_a_removal_and_a_new_required_field() -> None:
    assert problems(Renamed) == ["clicks: removed", "click_count: newly required"]


def test_a_changed_type_breaks() -> None:
    assert problems(TypeChanged) == ["clicks: type changed from ['integer'] to ['string']"]


def test_a_new_required_field_breaks() -> None:
    assert problems(NewRequired) == ["network: newly required"]


def test_changes_inside_nested_models_and_arrays_are_found() -> None:
    assert "address.city: removed" in problems(NestedRemoved)
    assert problems(ItemsChanged) == ["tags[]: type changed from ['string'] to ['integer']"]


def test_the_released_contracts_match_the_registry() -> None:
    # Fails when an event model changed without `chorus schemas`, or changed in a breaking way.
    assert check_contracts(REPO / "docs" / "events") == []
