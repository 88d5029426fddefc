"""What the redirect learns from the other modules, off its hot path: a link by its code (shares,
on a cache miss) and, refreshed periodically, archived content and each org's fallback and
unique-click window (catalog), the links cancelled or whose advocate was erased (shares: dropped
from the link cache), and advocates' tracking consent (advocates), so every replica sees what any
replica applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog.service import CatalogService
from services.sharing.redirect.app import RedirectApp
from services.sharing.shares.service import SharesService

# Refreshes re-read a little before the last change seen, so writes from replicas whose clocks
# lag a bit are not missed; applying a change twice is harmless.
REFRESH_OVERLAP = timedelta(seconds=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def refresh_state(
    redirect: RedirectApp, catalog: CatalogService, advocates: AdvocatesService, shares: SharesService
) -> None:
    state = redirect.state
    contents, settings = await catalog.changed_since(
        (state.contents_seen_until or EPOCH) - REFRESH_OVERLAP,
        (state.settings_seen_until or EPOCH) - REFRESH_OVERLAP,
    )
    # A link changed before the oldest one cached is not in the cache as it was.
    links = await shares.links_changed_since(
        max((state.links_seen_until or EPOCH) - REFRESH_OVERLAP, redirect.cache_horizon())
    )
    # Read whole each time (a short list): an erased advocate leaves it at once, on every replica.
    untracked = await advocates.untracked()
    # Applied together, with no request between: an erased advocate leaves the consents as their
    # links leave the cache (a visit then reads the link again, under their anonymous id).
    for content in contents:
        state.apply_content(content)
    for org_settings in settings:
        state.apply_settings(org_settings)
    redirect.forget(link.code for link in links)
    for link in links:
        state.links_seen_until = max(state.links_seen_until or link.at, link.at)
    state.untracked = untracked
