"""What the redirect learns from the other modules, off its hot path: a link by its code (shares,
on a cache miss) and, refreshed periodically, archived content and each org's fallback and
unique-click window (catalog) and advocates' tracking consent (advocates), so every replica sees
what any replica applied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog.service import CatalogService
from services.sharing.redirect.app import RedirectApp

# Refreshes re-read a little before the last change seen, so writes from replicas whose clocks
# lag a bit are not missed; applying a change twice is harmless.
REFRESH_OVERLAP = timedelta(seconds=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def refresh_state(redirect: RedirectApp, catalog: CatalogService, advocates: AdvocatesService) -> None:
    state = redirect.state
    contents, settings = await catalog.changed_since(
        (state.contents_seen_until or EPOCH) - REFRESH_OVERLAP,
        (state.settings_seen_until or EPOCH) - REFRESH_OVERLAP,
    )
    for content in contents:
        state.apply_content(content)
    for org_settings in settings:
        state.apply_settings(org_settings)
    # Read whole each time (a short list): an erased advocate leaves it at once, on every replica.
    state.untracked = await advocates.untracked()
