"""Tallying a poll's raw records (what a tallied consumer's worker process runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from shared.events import Event
from shared.events.training import PolicyAcknowledged
from shared.messaging import Delivered
from shared.messaging.offload import RawPartition, TallyRequest, tally_poll


def acks_of(topic: str, items: Iterator[Delivered]) -> list[tuple[str, str, int, int]]:
    return [(topic, d.event.data.advocate_id, d.partition, d.offset) for d in items]


def ack(advocate: str) -> Event[PolicyAcknowledged]:
    return Event.create(PolicyAcknowledged(advocate_id=advocate, policy_version=1), tenant="org", source="/t")


def test_a_poll_is_decoded_in_order_with_invalid_and_unknown_records_left_out() -> None:
    ann, bob = ack("ann"), ack("bob")
    unknown = json.dumps({**json.loads(ann.to_json_bytes()), "type": "chorus.thing.invented"}).encode()
    parts = [
        RawPartition(0, [7, 8], [ann.to_json_bytes(), b"{not json"], [b"chorus.policy.acknowledged", None]),
        RawPartition(2, [3, 4], [unknown, bob.to_json_bytes()], [None, None]),
    ]
    tallied = tally_poll(TallyRequest(acks_of, "chorus.training", parts))
    assert tallied.tally == [("chorus.training", "ann", 0, 7), ("chorus.training", "bob", 2, 4)]
    assert tallied.skipped == {1, 2}
    assert set(tallied.invalid) == {1} and "not JSON" in tallied.invalid[1]
    assert tallied.span_attributes is None


def test_a_traced_poll_says_what_each_tallied_records_span_should_carry() -> None:
    event = ack("ann")
    parts = [RawPartition(0, [1], [event.to_json_bytes()], [None])]
    tallied = tally_poll(TallyRequest(acks_of, "chorus.training", parts, describe=True))
    assert tallied.span_attributes == [
        {
            "messaging.message.id": event.id,
            "cloudevents.event_type": "chorus.policy.acknowledged",
            "chorus.organisation": "org",
            "chorus.advocate": "ann",
        }
    ]


def test_a_poll_with_no_event_of_ours_has_no_tally() -> None:
    parts = [RawPartition(0, [1], [None], [None])]
    tallied = tally_poll(TallyRequest(acks_of, "chorus.training", parts))
    assert tallied.tally is None and tallied.invalid == {0: "the record has no value"}
