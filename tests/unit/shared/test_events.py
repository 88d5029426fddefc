"""The CloudEvents envelope and the registry: encode, decode, tolerate, refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from shared.events import REGISTRY, TOPICS, DecodeError, Event, UnknownEventType, decode
from shared.events.clicks import ClickRecorded, CountedClick
from shared.events.envelope import json_schema
from shared.events.shares import ShareMade


def a_click(**overrides: object) -> ClickRecorded:
    fields: dict[str, object] = {
        "click_id": "c1",
        "share_id": "s1",
        "advocate_id": "a1",
        "content_id": "k1",
        "network": "linkedin",
        "clicked_at": datetime(2026, 1, 2, tzinfo=UTC),
        "self": True,
    }
    fields.update(overrides)
    return ClickRecorded.model_validate(fields)


def a_share() -> ShareMade:
    return ShareMade(
        share_id="s",
        advocate_id="a",
        content_id="c",
        network="x",
        code="abc",
        short_url="http://x/r/abc",
        target_url="https://example.com/?utm_source=x",
        shared_at=datetime.now(UTC),
    )


def test_an_event_round_trips_through_its_wire_form() -> None:
    event = Event.create(a_click(), tenant="acme", source="/chorus/sharing")
    decoded = decode(event.to_json_bytes())
    assert decoded == event
    assert isinstance(decoded.data, ClickRecorded)
    assert decoded.data.self_click is True


def test_the_envelope_is_cloudevents_with_the_tenant_extension() -> None:
    raw = json.loads(Event.create(a_click(), tenant="acme", source="/chorus/sharing").to_json_bytes())
    assert raw["specversion"] == "1.0"
    assert raw["type"] == "chorus.click.recorded"
    assert raw["tenant"] == "acme"
    assert raw["schemaversion"] == "1"
    assert raw["data"]["self"] is True  # the wire name is "self", as the contract says


def test_the_record_key_is_the_registered_key_field() -> None:
    event = Event.create(a_click(share_id="share-42"), tenant="acme", source="/x")
    assert event.record_key() == b"share-42"
    assert event.topic.name == "chorus.clicks"


def test_unknown_fields_from_a_newer_producer_are_tolerated() -> None:
    raw = json.loads(Event.create(a_click(), tenant="acme", source="/x").to_json_bytes())
    raw["data"]["added_later"] = {"x": 1}
    raw["newextension"] = "v"
    assert decode(json.dumps(raw).encode()).data == a_click()


def test_an_event_read_as_a_view_carries_only_the_views_fields_with_the_same_values() -> None:
    click = a_click(team="sales", tags=["b", "a"], bot=True, unique=False)
    event = Event.create(click, tenant="acme", source="/x")
    viewed = decode(event.to_json_bytes(), "chorus.click.recorded", read_as=(CountedClick,))
    assert type(viewed.data) is CountedClick
    assert (viewed.id, viewed.type, viewed.tenant) == (event.id, event.type, event.tenant)
    assert viewed.data.model_dump() == {name: getattr(click, name) for name in CountedClick.model_fields}
    assert not hasattr(viewed.data, "click_id")


def test_a_view_is_used_only_for_the_events_it_is_a_view_of() -> None:
    share = Event.create(a_share(), tenant="acme", source="/x")
    assert type(decode(share.to_json_bytes(), read_as=(CountedClick,)).data) is ShareMade


def test_a_view_still_refuses_an_event_missing_a_field_it_reads() -> None:
    raw = json.loads(Event.create(a_click(), tenant="acme", source="/x").to_json_bytes())
    del raw["data"]["advocate_id"]
    with pytest.raises(DecodeError):
        decode(json.dumps(raw).encode(), read_as=(CountedClick,))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (None, DecodeError),
        (b"\xff\xfe", DecodeError),
        (b"[1, 2]", DecodeError),
        (b'{"type": "chorus.click.recorded", "data": {}}', DecodeError),
        (b'{"type": "chorus.future.thing", "data": {}}', UnknownEventType),
    ],
)
def test_bad_records_raise_decode_errors(value: bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode(value)


def test_every_event_type_names_a_catalog_topic_and_a_key_field() -> None:
    catalog = {t.name for t in TOPICS}
    for registration in REGISTRY.values():
        assert registration.topic.name in catalog
        assert registration.key_field in registration.model.model_fields
        assert registration.event_type.startswith("chorus.")


def test_events_validate_against_their_generated_json_schema() -> None:
    for data in (a_click(), a_share()):
        event = Event.create(data, tenant="acme", source="/x")
        jsonschema.validate(json.loads(event.to_json_bytes()), json_schema(event.type))


def test_the_json_schema_rejects_an_event_missing_a_required_field() -> None:
    raw = json.loads(Event.create(a_click(), tenant="acme", source="/x").to_json_bytes())
    del raw["data"]["share_id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, json_schema("chorus.click.recorded"))
