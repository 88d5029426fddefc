"""A local single entry point: one port that routes /v1/... and /r/... to the owning service.

For development only (production uses an ingress with the same table, see deploy/k8s). It is a
small ASGI reverse proxy: the longest matching path prefix picks the service. It also serves the
program dashboard (dashboard/, with Chart.js from its node_modules) at /dashboard/ and, for it, a
dev login (`POST /dev/login`: a dev token for an admin of the organisation asked for), which no
production service has.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from devtools.local_stack import DASHBOARD_DIR, npm_installed_marker
from shared.auth import issue_dev_token
from shared.serve import SERVICE_PORTS
from shared.settings import ChorusSettings

GATEWAY_PORT = 8000


def gateway_port(environ: Mapping[str, str] | None = None) -> int:
    """The local gateway's port: CHORUS_GATEWAY_PORT, or 8000."""
    return int((os.environ if environ is None else environ).get("CHORUS_GATEWAY_PORT") or GATEWAY_PORT)


def local_service_ports(gateway: int) -> dict[str, int]:
    """Each service's port beside a gateway on `gateway`: the defaults, shifted with it, so a
    second local installation (a test's) moves all five ports with one variable."""
    return {name: port - GATEWAY_PORT + gateway for name, port in SERVICE_PORTS.items()}


# Path prefix -> owning service. The longest prefix wins (/v1/me/points before /v1/me).
ROUTES: dict[str, str] = {
    "/v1/content": "content",
    "/v1/courses": "content",
    "/v1/policy": "content",
    "/v1/settings": "content",
    "/v1/me/courses": "content",
    "/v1/advocates": "sharing",
    "/v1/shares": "sharing",
    "/v1/shareable": "sharing",
    "/v1/colleagues": "sharing",
    "/r/": "sharing",
    "/scim/": "sharing",  # the directory's SCIM 2.0 service provider (identity providers call it)
    "/v1/conversions": "metrics",
    "/v1/funnel": "metrics",
    "/v1/timeseries": "metrics",
    "/v1/me/stats": "metrics",
    "/v1/metrics": "metrics",
    "/v1/goals": "metrics",
    "/v1/surveys": "metrics",
    "/v1/api-keys": "metrics",
    "/v1/program": "metrics",
    "/v1/webhooks": "metrics",
    "/v1/leaderboard": "recognition",
    "/v1/me/points": "recognition",
    "/v1/me/badges": "recognition",
    "/v1/me/goals": "recognition",
    "/v1/badges": "recognition",
    "/v1/rules": "recognition",
    "/v1/rewards": "recognition",
    "/v1/redemptions": "recognition",
    "/v1/kudos": "recognition",
    "/v1/me/kudos": "recognition",
    "/v1/me/ledger": "recognition",
    "/v1/me/redemptions": "recognition",
    "/v1/ledger": "recognition",
    "/v1/corrections": "recognition",
    "/v1/webhooks/fulfilment": "recognition",
}

DEV_LOGIN_PATH = "/dev/login"
DEV_LOGIN_ROLES = ["admin"]
DEV_TOKEN_TTL_S = 12 * 3600
# An organisation id or a person's name as the dev login takes them: what a JWT claim may hold
# and a URL may carry without escaping.
DEV_LOGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEV_LOGIN_RULE = "1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit"

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}
# What the gateway writes itself: who called, on the way in; on the way out, the body httpx has
# decoded (so its content-encoding no longer holds), the date and the server.
NOT_FORWARDED = frozenset(HOP_BY_HOP | {"x-forwarded-for"})
NOT_RETURNED = frozenset(HOP_BY_HOP | {"content-encoding", "date", "server"})


def owner_of(path: str) -> str | None:
    matches = [prefix for prefix in ROUTES if path == prefix or path.startswith(prefix.rstrip("/") + "/")]
    return ROUTES[max(matches, key=len)] if matches else None


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def dashboard_routes(settings: ChorusSettings, dashboard_dir: Path = DASHBOARD_DIR) -> list[Route | Mount]:
    """The dashboard's static files, its local configuration and the dev login."""

    async def dashboard_index(request: Request) -> Response:
        # Without its chart library the page would load as a blank screen: say what to run.
        if not npm_installed_marker(dashboard_dir).exists():
            return HTMLResponse(
                "<!doctype html><title>Chorus dashboard</title><h1>The dashboard is not installed</h1>"
                "<p>Its chart library comes from npm: run <code>make deps</code> "
                "(<code>chorus stack install</code>), which <code>make run</code> does, then reload.</p>",
                status_code=503,
            )
        return FileResponse(dashboard_dir / "index.html", headers={"Cache-Control": "no-cache"})

    async def to_dashboard(request: Request) -> RedirectResponse:
        # The page's relative URLs (its modules, config.json) resolve against /dashboard/.
        return RedirectResponse("/dashboard/")

    async def dashboard_config(request: Request) -> JSONResponse:
        # Replaces dashboard/config.json (the production one, which has no dev login).
        return JSONResponse({"api_base": "", "dev_login": DEV_LOGIN_PATH})

    async def dev_login(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _problem(400, "Bad request", 'send JSON: {"org": "acme", "name": "alice"}')
        org, name = body.get("org"), body.get("name") or "dashboard"
        if not isinstance(org, str) or not DEV_LOGIN_NAME.match(org):
            return _problem(400, "Bad request", f"org: {DEV_LOGIN_RULE}")
        if not isinstance(name, str) or not DEV_LOGIN_NAME.match(name):
            return _problem(400, "Bad request", f"name: {DEV_LOGIN_RULE}")
        token = issue_dev_token(settings, org=org, sub=name, roles=DEV_LOGIN_ROLES, ttl_s=DEV_TOKEN_TTL_S)
        return JSONResponse(
            {"token": token, "org": org, "sub": name, "roles": DEV_LOGIN_ROLES, "expires_in": DEV_TOKEN_TTL_S}
        )

    return [
        Route("/dashboard", to_dashboard),
        Route("/dashboard/", dashboard_index),
        Route("/dashboard/config.json", dashboard_config),
        Route(DEV_LOGIN_PATH, dev_login, methods=["POST"]),
        Mount("/dashboard", StaticFiles(directory=dashboard_dir, check_dir=False)),
    ]


def create_gateway(
    service_urls: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    settings: ChorusSettings | None = None,
) -> Starlette:
    """`transport` replaces the network (tests reach services in process with ASGITransport);
    `settings` sign the dev login's tokens (default: from the environment, as the services')."""
    ports = local_service_ports(gateway_port())
    urls = service_urls or {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    client = httpx.AsyncClient(timeout=30.0, follow_redirects=False, transport=transport)
    # The client keeps no cookies: a cookie a service sets is the caller's (it reaches them in
    # the response), and a shared jar would send one caller's cookie (an advocate's, which makes
    # a click "self") with everyone else's requests.
    client.cookies.jar.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

    async def proxy(request: Request) -> Response:
        service = owner_of(request.url.path)
        if service is None:
            return JSONResponse(
                {
                    "title": "Not found",
                    "status": 404,
                    "detail": f"no service owns {request.url.path}",
                    "routes": sorted(ROUTES),
                },
                status_code=404,
                media_type="application/problem+json",
            )
        # The headers as they came, bytes and every repeat: decoded, a Referer with a byte past
        # ASCII failed here (500) before the service could judge it. Whitespace around a value is
        # not part of it (RFC 9110), and httpx refuses to send a value ending in a space:
        # "Authorization: Bearer " must reach the service (401), not fail here (502).
        headers = [
            (name, value.strip())
            for name, value in request.headers.raw
            if name.decode("latin-1").lower() not in NOT_FORWARDED
        ]
        headers.append((b"x-forwarded-for", (request.client.host if request.client else "").encode()))
        # The path as the caller encoded it, for the service to decode: decoded here, a %00 makes
        # no URL.
        path = request.scope.get("raw_path", request.url.path.encode()).decode("ascii")
        try:
            upstream = await client.request(
                request.method,
                urls[service] + path,
                params=request.url.query or None,
                headers=headers,
                content=await request.body(),
            )
        except httpx.TransportError as exc:
            return _problem(502, "Bad gateway", f"{service} is not reachable: {exc}")
        # The answer's headers likewise: two Set-Cookie lines are two cookies. httpx has decoded
        # the body, so its content-encoding no longer holds; this server writes its own date.
        response = Response(upstream.content, status_code=upstream.status_code)
        response.raw_headers += [
            (name, value)
            for name, value in upstream.headers.raw
            if name.decode("latin-1").lower() not in NOT_RETURNED
        ]
        return response

    async def index(request: Request) -> JSONResponse:
        body: dict[str, Any] = {
            "services": urls,
            "openapi": {s: f"{u}/openapi.json" for s, u in urls.items()},
            "dashboard": "/dashboard/",
        }
        return JSONResponse(body)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/", index),
            *dashboard_routes(settings or ChorusSettings()),
            Route("/{path:path}", proxy, methods=methods),
        ],
        lifespan=lifespan,
    )
