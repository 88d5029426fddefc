"""The sharing service's app. Nothing connects at import: see shared/app.py for the lifespan.

The public redirect `GET /r/{code}` is a raw ASGI app (redirect.py) dispatched in front of the
FastAPI middleware stack, so neither FastAPI nor its instrumentation runs on that hot path
(FastAPI costs about 3x a bare route there; see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from services.sharing.api import router
from services.sharing.domain import Clock
from services.sharing.handlers import build_subscription
from services.sharing.redirect import RedirectApp
from services.sharing.service import SharingService
from services.sharing.settings import SharingSettings
from services.sharing.spool import RELAY_SETTINGS_ENV, ClickRelay, ClickSpool
from services.sharing.store import INDEXES, OUTBOX_COLLECTIONS, SharingStore
from shared.app import Periodic, Runtime, Wiring, create_service_app
from shared.settings import ChorusSettings

# Refreshes re-read a little before the last change seen, so writes from replicas whose clocks
# lag a bit are not missed; applying a document twice is harmless.
REFRESH_OVERLAP = timedelta(seconds=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DESCRIPTION = (
    "Advocates, shares and tracked links. The public redirect `GET /r/{code}` (302 to the share's "
    "target with a click id; 404 page for an unknown code) is served outside this API."
)


class SharingApp(FastAPI):
    """The FastAPI app, with /r/... answered before FastAPI itself runs.

    FastAPI's own request telemetry and the middleware stack wrap everything inside
    `FastAPI.__call__`, and they cost several times the redirect's own work; so the dispatch to
    the raw ASGI redirect happens here, in front of them.
    """

    redirect: RedirectApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/r/"):
            await self.redirect(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def mount_redirect(app: FastAPI, redirect: RedirectApp) -> SharingApp:
    # create_service_app builds a plain FastAPI; give that same object the dispatching class.
    app.__class__ = SharingApp
    assert isinstance(app, SharingApp)
    app.redirect = redirect
    return app


def create_app(settings: ChorusSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """`clock` (seconds since the epoch) drives the redirect's time, for tests of the click window."""
    sharing_settings = (
        settings
        if isinstance(settings, SharingSettings)
        else SharingSettings(**(settings or ChorusSettings()).model_dump())
    )
    redirect = RedirectApp(sharing_settings, clock=clock)

    async def wire(runtime: Runtime) -> Wiring:
        store = SharingStore(runtime.db)
        service = SharingService(
            sharing_settings,
            store,
            runtime.outbox,
            on_erased=lambda org, advocate_id, share_ids: redirect.forget(set(share_ids)),
        )
        relay = ClickRelay(
            sharing_settings,
            ClickSpool(sharing_settings.click_spool_path),
            flush_interval_s=sharing_settings.click_flush_interval_s,
            batch=sharing_settings.click_drain_batch,
        )
        relay_process: asyncio.subprocess.Process | None = None
        if sharing_settings.click_relay_process:
            await relay.start(flush=True, drain=False)
            relay_process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.sharing.spool",
                env={**os.environ, RELAY_SETTINGS_ENV: sharing_settings.model_dump_json()},
            )
        else:
            await relay.start()

        async def refresh_redirect_state() -> None:
            state = redirect.state
            since = (state.contents_seen_until or EPOCH) - REFRESH_OVERLAP
            for doc in await store.contents_changed_since(since):
                state.apply_content(doc)
                state.contents_seen_until = max(state.contents_seen_until or EPOCH, doc["updated_at"])
            since = (state.settings_seen_until or EPOCH) - REFRESH_OVERLAP
            for doc in await store.settings_changed_since(since):
                state.apply_settings(doc)
                state.settings_seen_until = max(state.settings_seen_until or EPOCH, doc["updated_at"])

        await refresh_redirect_state()
        redirect.attach(store.share_by_code, relay.spool, app.state.token_verifier)
        app.state.relay = relay
        app.state.redirect = redirect

        async def stop() -> None:
            redirect.detach()
            try:
                await relay.stop()  # flushes what the redirect buffered
            finally:  # also when the shutdown budget runs out: never leave the relay orphaned
                if relay_process is not None:
                    relay_process.terminate()
                    await relay_process.wait()

        return Wiring(
            service=service,
            subscriptions=[build_subscription(service)],
            periodic=[
                Periodic(
                    "send-due-shares", sharing_settings.scheduled_share_interval_s, service.send_due_shares
                ),
                Periodic(
                    "refresh-redirect-state",
                    sharing_settings.redirect_state_refresh_s,
                    refresh_redirect_state,
                ),
            ],
            on_stop=[stop],
        )

    app = create_service_app(
        name="sharing",
        settings=sharing_settings,
        routers=[router],
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        description=DESCRIPTION,
    )
    return mount_redirect(app, redirect)
