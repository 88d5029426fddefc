"""The projections' days in each organisation's time zone: a poll's tally, made by UTC quarter
hour in a worker process that knows no settings (domain.tally_events), folded into the days of
each organisation's zone by the projector, which reads the zones (ProjectionService.apply_tally).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from datetime import datetime

from services.metrics.projections.domain import NOTHING, DayTally, Effect, Run, Tally
from shared.clock import DEFAULT_TIME_ZONE, local_date


def slot_day(slot: str, zone: str) -> str:
    """The day a UTC quarter hour (`shared.clock.utc_slot`) falls on in the time zone `zone`."""
    return local_date(datetime.fromisoformat(slot), zone).isoformat()


def localized(tally: Tally, zones: Mapping[str, str]) -> Tally:
    """A tally by UTC quarter hour (`tally_events`) as a tally by day in each organisation's time
    zone (`zones`; UTC for one not in it): the quarter hours of one local day merged into one
    DayTally, each source's records kept in offset order, so each document gets one update."""
    groups: dict[tuple[str, str], list[DayTally]] = {}
    for part in tally.days.values():
        day = slot_day(part.day, zones.get(part.org, DEFAULT_TIME_ZONE))
        groups.setdefault((part.org, day), []).append(part)
    days: dict[tuple[str, str], DayTally] = {}
    for (org, day), parts in groups.items():
        if len(parts) == 1:  # the usual live poll: one quarter hour, taken as it is
            [part] = parts
            effects = [effect._replace(day=day) for effect in part.effects]
            days[(org, day)] = DayTally(org, day, effects, part.counts, part.runs)
            continue
        merged = DayTally(org, day)
        records: dict[str, list[tuple[int, int, str]]] = {}
        slots: dict[Effect, int] = {}  # the same effect in several quarter hours: counted once
        for part in parts:
            remap = []
            for effect, count in zip(part.effects, part.counts, strict=True):
                effect = effect._replace(day=day)
                index = slots.get(effect)
                if index is None:
                    index = slots[effect] = len(merged.effects)
                    merged.effects.append(effect)
                    merged.counts.append(0)
                merged.counts[index] += count
                remap.append(index)
            for source, run in part.runs.items():
                records.setdefault(source, []).extend(
                    zip(
                        run.offsets,
                        (NOTHING if i == NOTHING else remap[i] for i in run.effects),
                        run.event_ids,
                        strict=True,
                    )
                )
        for source, rows in records.items():
            rows.sort(key=lambda row: row[0])  # a source's offsets are distinct
            merged.runs[source] = Run(
                array("q", (r[0] for r in rows)), array("i", (r[1] for r in rows)), [r[2] for r in rows]
            )
        days[(org, day)] = merged
    return Tally(days, tally.last_share)
