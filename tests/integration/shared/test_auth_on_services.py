"""Running services (real Kafka and SecantusDB behind them) refuse bad credentials with problem+json."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest
from fastapi import FastAPI

from services.content.main import create_app as content_app
from services.metrics.main import create_app as metrics_app
from services.recognition.main import create_app as recognition_app
from services.sharing.main import create_app as sharing_app
from shared.settings import ChorusSettings
from tests.helpers import new_org, running_app

pytestmark = pytest.mark.integration

# (app factory, a route every member may call)
SERVICES: list[tuple[str, Callable[..., FastAPI], str]] = [
    ("content", content_app, "/v1/content"),
    ("sharing", sharing_app, "/v1/shareable"),
]


def token(settings: ChorusSettings, *, secret: str | None = None, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "ann",
        "org": "acme",
        "roles": ["advocate"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return jwt.encode(claims, secret or settings.jwt_secret, algorithm="HS256")


@pytest.mark.parametrize(("name", "factory", "path"), SERVICES, ids=[s[0] for s in SERVICES])
async def test_bad_credentials_are_refused_with_a_problem(
    settings: ChorusSettings, name: str, factory: Callable[..., FastAPI], path: str
) -> None:
    org = new_org()
    app_settings = type(factory().state.settings)(**settings.model_dump())
    async with running_app(factory(app_settings)) as client:
        valid = token(settings, org=org)
        assert (await client.get(path, headers={"Authorization": f"Bearer {valid}"})).status_code == 200
        cases = {
            "missing": ({}, 401),
            "malformed": ({"Authorization": "Bearer abc.def"}, 401),
            "not bearer": ({"Authorization": f"Token {valid}"}, 401),
            "expired": (
                {"Authorization": f"Bearer {token(settings, org=org, exp=int(time.time()) - 120)}"},
                401,
            ),
            "wrongly signed": (
                {"Authorization": f"Bearer {token(settings, org=org, secret='x' * 48)}"},
                401,
            ),
            "other tenant": ({"Authorization": f"Bearer {valid}", "X-Chorus-Org": new_org()}, 403),
        }
        for case, (headers, status) in cases.items():
            response = await client.get(path, headers=headers)
            assert response.status_code == status, f"{name}, {case}: {response.status_code} {response.text}"
            assert response.headers["content-type"] == "application/problem+json", case
            assert response.json()["status"] == status, case


# (service, app factory, a request only an admin or an API key holding its scope may make)
KEY_OPERATIONS: list[tuple[str, Callable[..., FastAPI], str, str, dict[str, object] | None]] = [
    ("metrics", metrics_app, "POST", "/v1/conversions", {"type": "lead", "customer_id": "c-1"}),
    ("sharing", sharing_app, "GET", "/scim/v2/Users", None),
    ("recognition", recognition_app, "POST", "/v1/redemptions/rdm_0000000000000000/fulfil", None),
]


@pytest.mark.parametrize(
    ("name", "factory", "method", "path", "json"), KEY_OPERATIONS, ids=[o[0] for o in KEY_OPERATIONS]
)
async def test_a_token_naming_the_api_keys_role_is_no_api_key(
    settings: ChorusSettings,
    name: str,
    factory: Callable[..., FastAPI],
    method: str,
    path: str,
    json: dict[str, object] | None,
) -> None:
    """`integration` is what an API key acts as. A person's token whose roles say it (an identity
    provider's group of that name) is refused, not taken for a key holding every scope."""
    org = new_org()
    app_settings = type(factory().state.settings)(**settings.model_dump())
    async with running_app(factory(app_settings)) as client:
        claimed = {"Authorization": f"Bearer {token(settings, org=org, roles=['advocate', 'integration'])}"}
        response = await client.request(method, path, headers=claimed, json=json)
        assert response.status_code == 403, f"{name}: {response.status_code} {response.text}"
