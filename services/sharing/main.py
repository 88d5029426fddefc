"""The sharing service's app. Nothing connects at import: see shared/app.py for the lifespan.

The public redirect `GET /r/{code}` is a raw ASGI app (redirect/app.py) dispatched in front of the
FastAPI middleware stack, so neither FastAPI nor its instrumentation runs on that hot path
(FastAPI costs about 3x a bare route there; see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.sharing.advocates import api as advocates_api
from services.sharing.advocates import store as advocates_store
from services.sharing.advocates.service import AdvocatesService
from services.sharing.catalog import store as catalog_store
from services.sharing.catalog.service import CatalogService
from services.sharing.directory import api as directory_api
from services.sharing.directory import schemas as directory_schemas
from services.sharing.directory import store as directory_store
from services.sharing.directory.service import DirectoryService
from services.sharing.erasure import api as erasure_api
from services.sharing.erasure import store as erasure_store
from services.sharing.erasure.service import ErasureService
from services.sharing.handlers import build_subscription
from services.sharing.redirect import store as redirect_store
from services.sharing.redirect.app import RedirectApp
from services.sharing.redirect.domain import SecondsClock
from services.sharing.redirect.relay_process import RELAY_SETTINGS_ENV
from services.sharing.redirect.service import refresh_state
from services.sharing.redirect.spool import ClickRelay, ClickSpool
from services.sharing.redirect.store import SeenVisitorsStore
from services.sharing.settings import SERVICE, SharingSettings
from services.sharing.shares import api as shares_api
from services.sharing.shares import store as shares_store
from services.sharing.shares.service import SharesService
from shared.api_keys import KnownKeys
from shared.app import Periodic, Runtime, Wiring, create_service_app, readiness
from shared.liveness import tasks_ended
from shared.settings import ChorusSettings

# The version of this API's OpenAPI document: raised with every release of it (a minor for
# something new, a patch for wording; docs/openapi/README.md, "Versions").
API_VERSION = "1.8.0"

INDEXES = [
    *advocates_store.INDEXES,
    *catalog_store.INDEXES,
    *shares_store.INDEXES,
    *erasure_store.INDEXES,
    *redirect_store.INDEXES,
    *directory_store.INDEXES,
]
# Collections whose documents may carry an outbox (shared/outbox.py).
OUTBOX_COLLECTIONS = (
    *advocates_store.OUTBOX_COLLECTIONS,
    *shares_store.OUTBOX_COLLECTIONS,
    *erasure_store.OUTBOX_COLLECTIONS,
)

DESCRIPTION = (
    "Advocates, shares and tracked links. The public redirect `GET /r/{code}` (302 to the share's "
    "target with a click id; 404 page for an unknown code) is served outside this API."
)


# The sharing-redirect workload's readiness probe (deploy/k8s/base/sharing-redirect.yaml), answered
# beside the redirect, outside the API.
REDIRECT_READY_PATH = "/readyz/redirect"


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
        elif scope["type"] == "http" and scope["path"] == REDIRECT_READY_PATH:
            await (await self.redirect_readiness())(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def redirect_readiness(self) -> Response:
        """The redirect workload's readiness: /readyz without MongoDB, and the spool taking
        clicks. Through a MongoDB outage the redirect answers from its link cache and spools
        the clicks, so it stays ready; a code not cached meanwhile gets its own 503 page."""
        relay: ClickRelay | None = getattr(self.state, "relay", None)
        spool = "starting" if relay is None else (relay.flush_error or "ok")
        return await readiness(self, mongodb=False, checks={"click_spool": spool})


def mount_redirect(app: FastAPI, redirect: RedirectApp) -> SharingApp:
    # create_service_app builds a plain FastAPI; give that same object the dispatching class.
    app.__class__ = SharingApp
    assert isinstance(app, SharingApp)
    app.redirect = redirect
    return app


def create_app(settings: ChorusSettings | None = None, *, clock: SecondsClock | None = None) -> FastAPI:
    """`clock` (seconds since the epoch) drives the redirect's time, for tests of the click window."""
    sharing_settings = (
        settings
        if isinstance(settings, SharingSettings)
        else SharingSettings(**(settings or ChorusSettings()).model_dump())
    )
    redirect = RedirectApp(sharing_settings, clock=clock)

    async def wire(runtime: Runtime) -> Wiring:
        catalog = CatalogService(catalog_store.CatalogStore(runtime.db))
        advocates = AdvocatesService(advocates_store.AdvocatesStore(runtime.db), runtime.outbox, catalog)
        shares = SharesService(
            sharing_settings, shares_store.SharesStore(runtime.db), runtime.outbox, advocates, catalog
        )
        directory = DirectoryService(directory_store.DirectoryStore(runtime.db), advocates, shares, catalog)
        erasure = ErasureService(
            erasure_store.ErasureStore(runtime.db),
            runtime.outbox,
            advocates,
            shares,
            catalog,
            directory=directory,
            forget_links=redirect.forget,
            vault=runtime.vault,
            grace=timedelta(seconds=sharing_settings.erasure_grace_s),
        )
        directory.erase_leaver = erasure.erase_leaver
        api_keys = KnownKeys(runtime.db)
        relay = ClickRelay(
            sharing_settings,
            ClickSpool(sharing_settings.click_spool_path),
            seen=SeenVisitorsStore(runtime.db),
            flush_interval_s=sharing_settings.click_flush_interval_s,
            batch=sharing_settings.click_drain_batch,
        )
        relay_process: asyncio.subprocess.Process | None = None
        if sharing_settings.click_relay_process:
            await relay.start(flush=True, drain=False)
            relay_process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.sharing.redirect.relay_process",
                env={**os.environ, RELAY_SETTINGS_ENV: sharing_settings.model_dump_json()},
            )
        else:
            await relay.start()

        async def refresh_redirect_state() -> None:
            await refresh_state(redirect, catalog, advocates, shares)

        await refresh_redirect_state()
        redirect.attach(shares.by_code, relay.spool, app.state.token_verifier)
        app.state.relay = relay
        app.state.relay_process = relay_process
        app.state.redirect = redirect

        def click_relay_ended() -> dict[str, str]:
            """The click relay's loops in this process, and its own process, that ended for good."""
            ended = tasks_ended("click relay", relay.tasks)
            if relay_process is not None and relay_process.returncode is not None:
                # Its log says why (a loop that ended for good makes it exit 1); -9: killed.
                ended["click relay process"] = f"exited with status {relay_process.returncode}"
            return ended

        async def stop() -> None:
            redirect.detach()
            try:
                await relay.stop()  # flushes what the redirect buffered
            finally:  # also when the shutdown budget runs out: never leave the relay orphaned
                if relay_process is not None:
                    if relay_process.returncode is None:  # not gone already (/healthz said so)
                        relay_process.terminate()
                    await relay_process.wait()

        return Wiring(
            service=shares,
            state={"advocates": advocates, "shares": shares, "erasure": erasure, "directory": directory},
            subscriptions=[build_subscription(advocates, catalog, erasure, api_keys)],
            api_key_resolver=api_keys.resolver(),
            periodic=[
                Periodic("send-due-shares", sharing_settings.scheduled_share_interval_s, shares.send_due),
                Periodic(
                    "finish-directory-syncs",
                    sharing_settings.directory_sync_interval_s,
                    directory.finish_syncs,
                ),
                Periodic(
                    "shred-erased-people", sharing_settings.vault_shred_interval_s, runtime.vault.shred_due
                ),
                Periodic(
                    "refresh-redirect-state",
                    sharing_settings.redirect_state_refresh_s,
                    refresh_redirect_state,
                ),
            ],
            on_stop=[stop],
            liveness=[click_relay_ended],
        )

    app = create_service_app(
        name=SERVICE,
        settings=sharing_settings,
        version=API_VERSION,
        routers=[advocates_api.router, erasure_api.router, shares_api.router, directory_api.router],
        indexes=INDEXES,
        wire=wire,
        outbox_collections=OUTBOX_COLLECTIONS,
        migrations=catalog_store.MIGRATIONS,
        description=DESCRIPTION,
        schemas=directory_schemas.COMPONENTS,
    )
    return mount_redirect(app, redirect)
