"""Every service refuses a request body over CHORUS_MAX_BODY_BYTES with a 413 problem before
any of it is parsed, whether the client declares its length or streams it in chunks; a body
within the limit reaches its route whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from fastapi import FastAPI

from services.content.main import create_app as content_app
from services.metrics.main import create_app as metrics_app
from services.recognition.main import create_app as recognition_app
from services.sharing.main import create_app as sharing_app
from shared.settings import ChorusSettings
from tests.helpers import bearer, new_org, running_app

pytestmark = pytest.mark.integration

LIMIT = 4096

# (service, app factory, a route that takes a body)
SERVICES: list[tuple[str, Callable[..., FastAPI], str, str]] = [
    ("content", content_app, "POST", "/v1/content"),
    ("sharing", sharing_app, "PUT", "/v1/advocates/me"),
    ("metrics", metrics_app, "POST", "/v1/goals"),
    ("recognition", recognition_app, "POST", "/v1/kudos"),
]


async def chunks(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(("name", "factory", "method", "path"), SERVICES, ids=[s[0] for s in SERVICES])
async def test_a_body_over_the_limit_is_refused_with_413_however_it_is_sent(
    settings: ChorusSettings, name: str, factory: Callable[..., FastAPI], method: str, path: str
) -> None:
    org = new_org()
    app_settings = type(factory().state.settings)(**settings.model_dump() | {"max_body_bytes": LIMIT})
    headers = bearer(settings, org=org, sub="ann", roles=["admin"]) | {"Content-Type": "application/json"}
    oversized = b'{"message": "' + b"a" * LIMIT + b'"}'
    async with running_app(factory(app_settings)) as client:
        declared = await client.request(method, path, content=oversized, headers=headers)
        streamed = await client.request(method, path, content=chunks(oversized), headers=headers)

        for how, response in {"declared": declared, "streamed": streamed}.items():
            assert response.status_code == 413, f"{name}, {how}: {response.status_code} {response.text}"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["errors"] == [
                {"field": "body", "message": f"must be at most {LIMIT} bytes"}
            ]


async def test_a_streamed_body_within_the_limit_reaches_the_route_whole(settings: ChorusSettings) -> None:
    org = new_org()
    app_settings = type(sharing_app().state.settings)(**settings.model_dump() | {"max_body_bytes": LIMIT})
    headers = bearer(settings, org=org, sub="ann", roles=["advocate"]) | {"Content-Type": "application/json"}
    # 3 KB of JSON (whitespace between the fields), sent in ten chunks.
    profile = b'{"display_name": "Ann Lee",' + b" " * 3000 + b'"team": "sales"}'
    async with running_app(sharing_app(app_settings)) as client:
        saved = await client.put("/v1/advocates/me", content=chunks(profile, 300), headers=headers)
        assert saved.status_code == 200, saved.text

        read = await client.get("/v1/advocates/me", headers=headers)
        assert (read.json()["display_name"], read.json()["team"]) == ("Ann Lee", "sales")
