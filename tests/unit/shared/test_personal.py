"""Sealing and revealing the personal data of events (shared/events/personal.py), without a
vault: people are made here, as the vault would make them."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.events import REGISTRY, Event, decode
from shared.events.advocates import AdvocateEnrolled
from shared.events.clicks import ClickRecorded, CountedClick
from shared.events.content import ContentPublished
from shared.events.conversions import Credit, LeadCaptured
from shared.events.personal import (
    is_pseudonym,
    new_person,
    personal_fields,
    pseudonyms_in,
    reveal_event,
    seal_event,
    subs_in,
)
from shared.events.recognition import RewardGranted

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ANN = new_person("acme", "ann@acme.example")
BOB = new_person("acme", "bob@acme.example")
BY_SUB = {ANN.sub: ANN, BOB.sub: BOB}
BY_PSEUDONYM = {ANN.pseudonym: ANN, BOB.pseudonym: BOB}


def on_topic(event: Event) -> bytes:  # type: ignore[type-arg]
    return seal_event(event, BY_SUB).to_json_bytes()


def test_a_profile_on_the_topic_names_nobody_and_reads_back_whole() -> None:
    event = Event.create(
        AdvocateEnrolled(
            advocate_id=ANN.sub,
            team="Zeppelin Crew",
            department="Airships",
            location="Lakehurst",
            display_name="Ann Example",
        ),
        tenant="acme",
        source="test",
    )
    sealed = seal_event(event, BY_SUB)
    raw = sealed.to_json_bytes()
    for personal in (b"ann@acme", b"Zeppelin", b"Airships", b"Lakehurst", b"Ann Example"):
        assert personal not in raw
    assert sealed.record_key() == ANN.pseudonym.encode()
    assert sealed.data.team is not None and sealed.data.team.startswith(f"enc:v1:{ANN.pseudonym}:")

    decoded = decode(raw)
    assert pseudonyms_in(decoded.data) == {ANN.pseudonym}
    assert reveal_event(decoded, BY_PSEUDONYM) == event


def test_equal_values_seal_alike_under_one_key_and_differently_under_anothers() -> None:
    ann = seal_event(Event.create(ClickRecorded(**click(ANN.sub)), tenant="acme", source="t"), BY_SUB)
    again = seal_event(Event.create(ClickRecorded(**click(ANN.sub)), tenant="acme", source="t"), BY_SUB)
    bob = seal_event(Event.create(ClickRecorded(**click(BOB.sub)), tenant="acme", source="t"), BY_SUB)
    assert ann.data.team == again.data.team
    assert ann.data.team != bob.data.team


def test_after_erasure_a_person_stays_a_pseudonym_and_what_is_about_them_reads_as_null() -> None:
    raw = on_topic(Event.create(ClickRecorded(**click(ANN.sub)), tenant="acme", source="t"))
    # Ann's entry is gone (shredded): only Bob is known.
    revealed = reveal_event(decode(raw, read_as=(CountedClick,)), {BOB.pseudonym: BOB})
    assert revealed.data.advocate_id == ANN.pseudonym and is_pseudonym(revealed.data.advocate_id)
    assert revealed.data.team is None


def test_a_required_text_of_an_erased_author_reads_as_empty() -> None:
    event = Event.create(
        ContentPublished(
            content_id="c1",
            content_type="article",
            title="My own words",
            url="https://acme.example/a",
            author_advocate_id=ANN.sub,
            published_by=BOB.sub,
        ),
        tenant="acme",
        source="t",
    )
    raw = on_topic(event)
    assert b"My own words" not in raw and b"bob@acme" not in raw
    revealed = reveal_event(decode(raw), {BOB.pseudonym: BOB})
    assert revealed.data.title == "" and revealed.data.author_advocate_id == ANN.pseudonym
    assert revealed.data.published_by == BOB.sub


def test_content_without_an_author_keeps_its_words_in_the_clear() -> None:
    event = Event.create(
        ContentPublished(
            content_id="c1",
            content_type="article",
            title="Our launch",
            url="https://acme.example/a",
            published_by=BOB.sub,
        ),
        tenant="acme",
        source="t",
    )
    assert b"Our launch" in on_topic(event)


def test_credits_and_the_subject_are_sealed_too() -> None:
    lead = Event.create(
        LeadCaptured(
            conversion_id="v1",
            key="s1",
            customer_id="cust",
            attributed=True,
            share_id="s1",
            advocate_id=ANN.sub,
            team="Zeppelin Crew",
            converted_at=AT,
            credits=[
                Credit(advocate_id=ANN.sub, share_id="s1", last_touch=1, linear=0.5),
                Credit(advocate_id=BOB.sub, share_id="s2", last_touch=0, linear=0.5),
            ],
        ),
        tenant="acme",
        source="t",
    )
    raw = on_topic(lead)
    assert b"@acme.example" not in raw and b"Zeppelin" not in raw
    assert reveal_event(decode(raw), BY_PSEUDONYM) == lead

    points = Event.create(
        RewardGranted(
            entry_id="e1",
            advocate_id=ANN.sub,
            points=5,
            reason="share",
            source_event_id="x",
            source_event_type="chorus.share.made",
            granted_at=AT,
        ),
        tenant="acme",
        source="t",
        subject=ANN.sub,
    )
    sealed = seal_event(points, BY_SUB)
    assert sealed.subject == ANN.pseudonym
    assert reveal_event(decode(sealed.to_json_bytes()), BY_PSEUDONYM).subject == ANN.sub


def test_a_value_sealed_under_another_persons_key_does_not_open() -> None:
    raw = on_topic(Event.create(ClickRecorded(**click(ANN.sub)), tenant="acme", source="t"))
    forged = raw.replace(ANN.pseudonym.encode(), BOB.pseudonym.encode())
    revealed = reveal_event(decode(forged), BY_PSEUDONYM)
    assert revealed.data.advocate_id == BOB.sub and revealed.data.team is None


def test_events_from_before_sealing_read_as_they_are() -> None:
    event = Event.create(ClickRecorded(**click(ANN.sub)), tenant="acme", source="t")
    assert reveal_event(decode(event.to_json_bytes()), BY_PSEUDONYM) == event


def test_every_event_that_names_an_advocate_marks_them() -> None:
    """A new event type with an advocate_id that forgets the mark would put ids on a topic."""
    for registration in REGISTRY.values():
        marked = {name for name, _ in personal_fields(registration.model)}
        for name in registration.model.model_fields:
            if name.endswith("advocate_id") or name in ("published_by", "requested_by"):
                assert name in marked, f"{registration.event_type}.{name} is not marked personal"
        if "team" in registration.model.model_fields and "advocate_id" in registration.model.model_fields:
            assert "team" in marked, registration.event_type
    assert subs_in(AdvocateEnrolled(advocate_id="x")) == {"x"}


def click(advocate: str) -> dict[str, object]:
    return {
        "click_id": "c" * 16,
        "share_id": "s1",
        "advocate_id": advocate,
        "content_id": "c1",
        "network": "linkedin",
        "clicked_at": AT,
        "team": "Zeppelin Crew",
    }
