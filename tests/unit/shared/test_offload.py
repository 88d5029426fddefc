"""Tallying a poll's raw records (what a tallied consumer's worker process runs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.events import Event
from shared.events.personal import new_person, seal_event
from shared.events.training import PolicyAcknowledged
from shared.messaging import Delivered
from shared.messaging.batch import Reveal
from shared.messaging.offload import RawPartition, TallyRequest, TallyWorkers, tally_poll
from shared.messaging.tracing import may_be_recorded


def acks_of(topic: str, items: Iterator[Delivered], reveal: Reveal) -> list[tuple[str, str, int, int]]:
    return [(topic, reveal(d.event.tenant, d.event.data).advocate_id, d.partition, d.offset) for d in items]


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


def test_a_traced_poll_says_what_each_kept_span_should_carry_and_reveals_no_one_for_the_others() -> None:
    ann, bob = new_person("org", "ann"), new_person("org", "bob")
    events = [ack("ann"), ack("bob")]
    sealed = [seal_event(e, {p.sub: p}).to_json_bytes() for e, p in zip(events, (ann, bob), strict=True)]
    # ann's record continues a sampled trace; bob's span will not be kept (tracing on, traced).
    poll = [RawPartition(0, [1, 2], sealed, [None, None], traced=[True, False])]

    def offsets(topic: str, items: Iterator[Delivered], reveal: Reveal) -> list[int]:
        return [d.offset for d in items]  # a tally that names no one

    first = tally_poll(TallyRequest(offsets, "chorus.training", poll))
    assert first.unknown == {"org": {ann.pseudonym}}  # only ann's span asks who she is
    told = tally_poll(TallyRequest(offsets, "chorus.training", poll, people={"org": {ann.pseudonym: ann}}))
    assert told.tally == [1, 2]
    assert told.span_attributes == [
        {
            "messaging.message.id": events[0].id,
            "cloudevents.event_type": "chorus.policy.acknowledged",
            "chorus.organisation": "org",
            "chorus.advocate": "ann",
        },
        {},
    ]


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        ([], True),  # begins a trace: the sample ratio decides
        ([("ce_type", b"x"), ("traceparent", f"00-{'a' * 32}-{'b' * 16}-01".encode())], True),
        ([("traceparent", f"00-{'a' * 32}-{'b' * 16}-00".encode())], False),
        ([("traceparent", f"00-{'a' * 32}-{'b' * 16}-03".encode())], True),  # other flags too
        ([("traceparent", b"not a traceparent")], True),  # unreadable: begins a trace
        ([("traceparent", f"00-{'a' * 32}-{'b' * 16}-zz".encode())], True),
    ],
)
def test_a_records_span_may_be_kept_unless_its_trace_says_it_was_not_sampled(
    headers: list[tuple[str, bytes]], kept: bool
) -> None:
    assert may_be_recorded(headers) is kept


def test_a_poll_with_no_event_of_ours_has_no_tally() -> None:
    parts = [RawPartition(0, [1], [None], [None])]
    tallied = tally_poll(TallyRequest(acks_of, "chorus.training", parts))
    assert tallied.tally is None and tallied.invalid == {0: "the record has no value"}


async def test_a_record_tallied_alone_never_shares_the_workers_with_another_tally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The search for a record that kills its worker tallies each record alone: a good poll's
    tally never shares the pool with it, so the killer cannot take the good poll down too."""
    workers = TallyWorkers(processes=1)
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    release = {name: asyncio.Event() for name in ("poll-1", "single", "poll-2")}

    async def fake_tally(request: Any) -> Any:
        running.append(request)
        overlaps.append(tuple(running))
        await release[request].wait()
        running.remove(request)
        return request

    monkeypatch.setattr(workers, "_tally", fake_tally)
    first = asyncio.create_task(workers.tally("poll-1"))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    single = asyncio.create_task(workers.tally("single", alone=True))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    second = asyncio.create_task(workers.tally("poll-2"))  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.sleep(0)
    assert running == ["poll-1"]  # the lone record waits for the poll; the next poll waits for it
    release["poll-1"].set()
    await first
    for _ in range(5):
        await asyncio.sleep(0)
    assert running == ["single"]
    release["single"].set()
    release["poll-2"].set()
    await asyncio.gather(single, second)
    assert ("single",) in overlaps and all(len(o) == 1 for o in overlaps if "single" in o)


def test_a_worker_asks_for_the_people_it_does_not_know_and_reveals_them_once_told() -> None:
    ann, gone = new_person("org", "ann"), new_person("org", "gone")
    sealed = [seal_event(ack(p.sub), {p.sub: p}).to_json_bytes() for p in (ann, gone)]
    poll = [RawPartition(0, [1, 2], sealed, [None, None])]
    # Told of nobody yet: no tally, and which pseudonyms to look up.
    first = tally_poll(TallyRequest(acks_of, "chorus.training", poll))
    assert first.tally is None and first.unknown == {"org": {ann.pseudonym, gone.pseudonym}}
    # Told of ann, and that the other is no longer in the vault (erased): ids as consumers see them.
    told = TallyRequest(
        acks_of,
        "chorus.training",
        poll,
        people={"org": {ann.pseudonym: ann}},
        absent={"org": frozenset({gone.pseudonym})},
    )
    assert [a for _, a, _, _ in tally_poll(told).tally] == ["ann", gone.pseudonym]
    # Remembered for the next poll; fresh news is not asked about again.
    again = tally_poll(TallyRequest(acks_of, "chorus.training", poll))
    assert [a for _, a, _, _ in again.tally] == ["ann", gone.pseudonym]
    assert again.unknown == {} and again.stale == {}
    # Old news still reveals, and the tally names whom the runner must confirm before keeping it;
    # an erased person stays erased (a pseudonym is never given out again), so is never asked for.
    tally_poll(
        TallyRequest(acks_of, "chorus.training", poll, people={"org": {ann.pseudonym: ann}}, people_ttl_s=0)
    )
    old = tally_poll(TallyRequest(acks_of, "chorus.training", poll))
    assert [a for _, a, _, _ in old.tally] == ["ann", gone.pseudonym]
    assert old.unknown == {} and old.stale == {"org": {ann.pseudonym}}
