"""The outbox's pure parts: records, the writes that queue them, and the relay's send order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace

from shared.events import Event, decode
from shared.events.advocates import AdvocateErased
from shared.events.recognition import RewardRedeemed
from shared.mongo import Document
from shared.outbox import (
    OUTBOX,
    OUTBOX_SINCE,
    Due,
    Page,
    due,
    outgoing,
    pending,
    queue,
    sent_by_document,
    with_outbox,
)

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(advocate_id: str = "a1") -> Event[Any]:
    return Event.create(
        AdvocateErased(advocate_id=advocate_id, requested_by="admin"), tenant="org1", source="/test"
    )


def record(event_id: str, seconds: float) -> Document:
    return {"id": event_id, "at": at(seconds)}


def doc(doc_id: str, *records: Document) -> Document:
    first = min((r["at"] for r in records), default=T0)
    return {"_id": doc_id, "org": "org1", OUTBOX: list(records), OUTBOX_SINCE: first}


def ids(items: list[Due]) -> list[str]:
    return [item.record["id"] for item in items]


def test_a_record_keeps_the_event_its_id_and_the_trace_it_is_given() -> None:
    sent = Event.create(
        RewardRedeemed(redemption_id="r1", advocate_id="a1", reward_id="w1", points=10, status="approved"),
        tenant="org1",
        source="/test",
        event_id="stable-id",
    )
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    written = pending(sent, trace=carrier, link={"traceparent": "x"}, at=at(3))
    assert written["id"] == "stable-id"
    assert written["at"] == at(3)
    assert (written["trace"], written["link"]) == (carrier, {"traceparent": "x"})
    assert decode(written["event"].encode()) == sent


def test_records_taken_at_now_keep_the_order_they_were_written_in_at_mongodb_s_precision() -> None:
    written = [pending(event()) for _ in range(50)]  # many within one millisecond
    times = [w["at"] for w in written]
    assert all(t.microsecond % 1000 == 0 for t in times)
    assert times == sorted(set(times))  # strictly increasing
    assert written[0]["link"] == {}


def test_a_new_document_carries_its_records_and_the_time_of_the_oldest() -> None:
    records = [record("e2", 5), record("e1", 2)]
    assert with_outbox({"_id": "d"}, records) == {"_id": "d", OUTBOX: records, OUTBOX_SINCE: at(2)}
    assert with_outbox({"_id": "d"}, []) == {"_id": "d"}  # nothing pending: not on the relay's list


def test_an_update_queues_its_records_beside_what_it_changes() -> None:
    update = queue({"$set": {"status": "sent"}}, [record("e1", 1), record("e2", 2)])
    assert update == {
        "$set": {"status": "sent"},
        "$push": {OUTBOX: {"$each": [record("e1", 1), record("e2", 2)]}},
        # An earlier pending event keeps the document's place on the list.
        "$min": {OUTBOX_SINCE: at(1)},
    }
    assert queue({"$set": {"x": 1}}, []) == {"$set": {"x": 1}}


def test_events_of_several_documents_and_collections_leave_in_the_order_written() -> None:
    pages = [
        Page("advocates", [doc("a", record("a1", 1), record("a3", 3)), doc("b", record("b2", 2))], True),
        Page("erasures", [doc("c", record("c4", 4)), doc("d", record("d0", 0))], True),
    ]
    assert ids(due(pages)) == ["d0", "a1", "b2", "a3", "c4"]


def test_a_document_s_own_order_holds_even_against_the_clock() -> None:
    # Two writers with skewed clocks queued in one document: the array's order is the truth.
    pages = [Page("shares", [doc("s", record("first", 5), record("second", 4))], True)]
    assert ids(due(pages)) == ["first", "second"]


def test_nothing_written_after_the_first_unread_document_leaves() -> None:
    # A full page: documents beyond it became pending at or after the last one read (t=3), so
    # events written from then on could be overtaken by theirs, and wait for the next pass.
    full = Page("ledger", [doc("a", record("a1", 1), record("a5", 5)), doc("b", record("b3", 3))], False)
    complete = Page("awards", [doc("c", record("c2", 2), record("c4", 4))], True)
    assert ids(due([full, complete])) == ["a1", "c2"]


def test_a_page_of_documents_pending_since_one_moment_still_moves_on() -> None:
    docs = [doc("a", record("a1", 7), record("a2", 8)), doc("b", record("b1", 7))]
    full = Page("ledger", docs, complete=False)
    # Nothing is earlier than the horizon (t=7): the earliest document's queue leaves alone.
    assert ids(due([full])) == ["a1", "a2"]


def test_documents_with_nothing_pending_give_nothing_to_send() -> None:
    assert due([Page("content", [doc("empty")], True)]) == []
    assert due([]) == []


def test_what_was_sent_is_pulled_per_document() -> None:
    items = due(
        [
            Page("advocates", [doc("a", record("a1", 1), record("a3", 3))], True),
            Page("shares", [doc("a", record("s2", 2))], True),
        ]
    )
    assert sent_by_document(items) == {
        ("advocates", "a", "org1"): ["a1", "a3"],
        ("shares", "a", "org1"): ["s2"],
    }


def test_an_event_is_sent_as_a_child_of_the_trace_it_was_written_in_with_its_link() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    linked = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    sent = event()
    record = pending(sent, trace={"traceparent": parent}, link={"traceparent": linked})
    out = outgoing(Due("erasures", "d", "org1", record))
    assert out.event == sent
    assert out.parent is not None
    assert f"{trace.get_current_span(out.parent).get_span_context().trace_id:032x}" == parent.split("-")[1]
    assert [f"{link.context.trace_id:032x}" for link in out.links] == [linked.split("-")[1]]
    # Written outside any trace, nothing to link: a new trace, no links.
    bare = outgoing(Due("erasures", "d", "org1", pending(sent, trace={})))
    assert not trace.get_current_span(bare.parent).get_span_context().is_valid
    assert bare.links == []
