"""The CORS policy comes from settings: allowed origins get the headers a browser needs, others
none; with no origins configured, no CORS headers at all (same origin only)."""

from __future__ import annotations

import httpx

from services.content.main import create_app
from services.content.settings import ContentSettings

APP_ORIGIN = "https://app.example.com"


async def preflight(settings: ContentSettings, origin: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: nothing connects
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.options(
            "/v1/content",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key, if-match, content-type",
            },
        )


async def test_an_allowed_origin_may_call_with_a_token_an_idempotency_key_and_if_match() -> None:
    settings = ContentSettings(telemetry_enabled=False, cors_allowed_origins=[APP_ORIGIN])
    response = await preflight(settings, APP_ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    allowed = response.headers["access-control-allow-headers"].lower()
    asked = {"authorization", "idempotency-key", "if-match", "content-type"}
    assert asked <= {h.strip() for h in allowed.split(",")}
    assert "access-control-allow-credentials" not in response.headers


async def test_an_allowed_origin_may_read_the_etag_it_sends_back_as_if_match() -> None:
    settings = ContentSettings(telemetry_enabled=False, cors_allowed_origins=[APP_ORIGIN])
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: the 401 needs nothing
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/v1/courses/c1", headers={"Origin": APP_ORIGIN})
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "etag" in {h.strip() for h in exposed.split(",")}


async def test_another_origin_gets_no_permission() -> None:
    settings = ContentSettings(telemetry_enabled=False, cors_allowed_origins=[APP_ORIGIN])
    response = await preflight(settings, "https://evil.example.net")
    assert "access-control-allow-origin" not in response.headers


async def test_without_configured_origins_there_is_no_cors_policy() -> None:
    response = await preflight(ContentSettings(telemetry_enabled=False), APP_ORIGIN)
    assert "access-control-allow-origin" not in response.headers
