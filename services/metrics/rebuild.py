"""Replay the topics from offset 0 into a fresh projection, then swap it in.

`python -m services.metrics.rebuild` (in the image, as a Job: docs/runbook.md), or
`chorus rebuild metrics` locally.

The replay folds the same batches through the same `ProjectionService.project` as the live
consumer, into a new `stats_g<n>` collection. Then it catches up with what arrived meanwhile, and
hands over: it holds the live projector (which writes the old generation until then), replays
what is left, points readers and the live projector at the new generation, and drops the old one.
It reads Kafka with `TopicRange` (no group, no commits): it is a tool beside the service, and it
must not move the service's committed offsets.

Why the hold: a document's watermark is the highest offset it has applied per partition, which
skips what lies below only if every offset below was applied, in order. Until the swap only the
rebuild writes the new generation; when the projector goes on there, the rebuild has applied
every record the projector had applied before (the held pass reads to ends taken while nothing
was written), so the projector's watermarks in the new generation skip exactly the overlap. Had
the projector written there before the rebuild was done, a document's watermark would have
moved past records the rebuild had not replayed yet, and the rebuild would have skipped them.
The held pass covers only what arrived during the pass before it: the live counters wait a few
seconds. A hold ends by itself after HOLD_S (the rebuild died); a held pass that takes half of it
is let go and the handover done again.

Every event is counted on its day in its organisation's time zone as set when the rebuild runs:
after an organisation changes its zone, this is the one command that puts its history on the
days of the new zone (the live projector counts new events in the new zone from the change on).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase

from services.metrics.handlers import PROJECTED_AS
from services.metrics.org_settings.service import OrgSettingsService
from services.metrics.org_settings.store import OrgSettingsStore
from services.metrics.projections.service import ProjectionService
from services.metrics.projections.store import STATS_CACHE_S, ProjectionStore, stats_indexes
from services.metrics.settings import MetricsSettings
from shared.clock import utc_now
from shared.messaging.replay import TopicRange
from shared.messaging.security import kafka_security
from shared.mongo import Document, create_client, ensure_indexes
from shared.vault import Vault

Progress = Callable[[int, int], None]  # (events replayed, events to replay)
# The longest the live projector waits for a rebuild's handover.
HOLD_S = 120.0


@dataclass(frozen=True)
class RebuildResult:
    old_collection: str
    new_collection: str
    events: int


async def _replay(
    settings: MetricsSettings,
    service: ProjectionService,
    vault: Vault,
    collection: str,
    progress: Progress,
    after: TopicRange | None = None,
) -> tuple[TopicRange, int]:
    """Apply every record up to the current end of each partition (from offset 0, or where
    `after` ended); return the range read and how many events were applied."""
    topics = [t.name for t in settings.projected_topics()]
    records = TopicRange(
        settings.kafka_bootstrap,
        topics,
        after=after.end if after is not None else None,
        client_id="chorus-metrics-rebuild",
        security=kafka_security(settings),
        # People come back as the live consumer sees them; the erased stay pseudonyms.
        vault=vault,
    )
    done = 0
    async for batch in records.batches(read_as=PROJECTED_AS):
        await service.project(collection, batch)
        done += len(batch.items)
        progress(done, records.total)
    progress(records.total, records.total)  # undecodable records count for nothing, but were read
    return records, done


def projection_service(settings: MetricsSettings, db: AsyncDatabase[Document]) -> ProjectionService:
    return ProjectionService(
        settings, ProjectionStore(db), OrgSettingsService(settings, OrgSettingsStore(db))
    )


async def replay(settings: MetricsSettings, collection: str, progress: Progress) -> int:
    """Replay the topics from offset 0 into `collection` (as it is: watermarks make this a no-op
    on a projection that has already seen everything)."""
    mongo = create_client(settings, service=True)
    db = mongo[settings.database_name("metrics")]
    service = projection_service(settings, db)
    try:
        return (await _replay(settings, service, Vault(settings, client=mongo), collection, progress))[1]
    finally:
        await mongo.close()


async def rebuild(settings: MetricsSettings, progress: Progress) -> RebuildResult:
    settings.service_name = "metrics-rebuild"
    mongo = create_client(settings, service=True)
    db = mongo[settings.database_name("metrics")]
    service = projection_service(settings, db)
    vault = Vault(settings, client=mongo)
    try:
        new = await service.new_generation()
        await ensure_indexes(db, stats_indexes(new))
        read, done = await _replay(settings, service, vault, new, progress)

        async def catch_up() -> None:
            nonlocal read, done
            so_far = done
            read, more = await _replay(
                settings, service, vault, new, lambda d, t: progress(so_far + d, so_far + t), after=read
            )
            done += more

        old: str | None = None
        while old is None:
            await catch_up()  # what arrived during the pass before, the projector running
            held = utc_now()
            await service.hold_live(held + timedelta(seconds=HOLD_S))
            try:
                # Every projector has read the hold, and finished the write it had begun before.
                await asyncio.sleep(2 * STATS_CACHE_S)
                await catch_up()
                # The projector's clock may differ from ours: swap well before the hold ends there.
                if utc_now() < held + timedelta(seconds=HOLD_S / 2):
                    old = await service.swap_in(new)
            finally:
                if old is None:  # too late (or failed): the projector goes on in the old generation
                    await service.hold_live(None)
        # Readers that read the old generation a moment ago are done with it by then.
        await asyncio.sleep(2 * STATS_CACHE_S)
        await service.forget_erased(new)
        if old != new:
            await service.drop_generation(old)
        return RebuildResult(old, new, done)
    finally:
        await mongo.close()


def progress_bar(done: int, total: int) -> None:
    width = 40
    filled = width * done // total if total else width
    percent = 100 * done // total if total else 100
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {percent:3d}% {done}/{total} events")
    sys.stderr.flush()


def main() -> int:
    result = asyncio.run(rebuild(MetricsSettings(), progress_bar))
    sys.stderr.write("\n")
    print(f"rebuilt {result.new_collection} from {result.events} events; dropped {result.old_collection}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
