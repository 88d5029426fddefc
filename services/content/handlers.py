"""What the content service consumes: shares (to count them per item), advocates' audience
attributes (the library's audience checks read sharing's profile) and erasures."""

from __future__ import annotations

from services.content.audience.service import AudienceService
from services.content.library.service import LibraryService
from services.content.program.service import ProgramService
from services.content.training.service import TrainingService
from shared.events import Event
from shared.events.advocates import AdvocateEnrolled, AdvocateErased, AdvocateUpdated
from shared.events.shares import ShareMade
from shared.messaging import Subscription


def build_subscription(
    library: LibraryService, training: TrainingService, program: ProgramService, audiences: AudienceService
) -> Subscription:
    subscription = Subscription(group="content")

    @subscription.on(AdvocateEnrolled)
    async def advocate_enrolled(event: Event[AdvocateEnrolled]) -> None:
        await audiences.project(event.tenant, event.data)

    @subscription.on(AdvocateUpdated)
    async def advocate_updated(event: Event[AdvocateUpdated]) -> None:
        await audiences.project(event.tenant, event.data)

    @subscription.on(ShareMade)
    async def share_made(event: Event[ShareMade]) -> None:
        await library.count_share(event.tenant, event.data.content_id, event.id)

    @subscription.on(AdvocateErased)
    async def advocate_erased(event: Event[AdvocateErased]) -> None:
        # Training records and unpublished submissions go; published authorship stays, anonymised,
        # and so does what they did as staff (idempotent all).
        await training.erase_advocate(event.tenant, event.data.advocate_id)
        await library.erase_author(event.tenant, event.data.advocate_id)
        await program.erase_editor(event.tenant, event.data.advocate_id)
        await audiences.erase(event.tenant, event.data.advocate_id)

    return subscription
