"""Events an outbox relay published more than once (a resend after a crash, two replicas' relays
reading the same page): each counts at one record only, its first copy, however far apart the
copies land.

The stats documents' window of recent event ids catches only a copy that follows closely: in a
burst (a campaign's scheduled shares released at once) a stalled relay's copy can come after more
than the window's worth of newer events. So the store keeps, per event, the record (source and
offset) that first counted for it; every other record of that event counts nothing, in every
poll, replay and rebuild. A redelivery of that same record is still the first copy: the offset
watermarks decide whether it is applied again. Pure: the store reads and writes the records.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.metrics.projections.domain import NOTHING, Tally

Record = tuple[str, int]  # (source, offset)
EventKey = tuple[str, str]  # (organisation, event id)


def counted(tally: Tally) -> dict[EventKey, Record]:
    """Per event, the record that counts for it in this tally (a repeat within it counts nothing)."""
    found: dict[EventKey, Record] = {}
    for day in tally.days.values():
        for source, run in day.runs.items():
            for offset, index, event_id in zip(run.offsets, run.effects, run.event_ids, strict=True):
                if index != NOTHING:
                    found[(day.org, event_id)] = (source, offset)
    return found


def drop_copies(tally: Tally, first: Mapping[EventKey, Record]) -> None:
    """Make every record of an event whose first copy (`first`) is another record count nothing."""
    for day in tally.days.values():
        for source, run in day.runs.items():
            for i, (offset, event_id) in enumerate(zip(run.offsets, run.event_ids, strict=True)):
                index = run.effects[i]
                if index != NOTHING and first.get((day.org, event_id), (source, offset)) != (source, offset):
                    run.effects[i] = NOTHING
                    day.counts[index] -= 1
