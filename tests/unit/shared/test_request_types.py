"""Requests are refused where their OpenAPI document says so: a number is not a date-time, a
boolean or a number written otherwise is not taken for one (pydantic alone would coerce them)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.auth import issue_dev_token
from shared.errors import PROBLEM_JSON
from shared.settings import ChorusSettings

SETTINGS = ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)


async def refused_fields(app: FastAPI, method: str, url: str, **kwargs: Any) -> set[str]:
    token = issue_dev_token(SETTINGS, org="acme", sub="ann", roles=["admin"])
    transport = httpx.ASGITransport(app=app)  # no lifespan: bad input is refused before any I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    assert (answer.status_code, answer.headers["content-type"]) == (422, PROBLEM_JSON), answer.text
    return {error["field"] for error in answer.json()["errors"]}


@pytest.mark.parametrize("since", ["0.5", "1700000000", " -3e2"])
async def test_a_time_in_a_query_is_iso_8601_text_not_a_number(since: str) -> None:
    from services.content.main import create_app

    app = create_app()
    app.state.library = None  # never reached
    assert await refused_fields(app, "GET", "/v1/content", params={"since": since}) == {"since"}


async def test_a_boolean_is_true_or_false_not_a_number() -> None:
    from services.sharing.main import create_app

    app = create_app()
    app.state.advocates = None  # never reached
    body = {"display_name": "Ann", "consents": {"tracking": 1, "public_ranking": 0}}
    assert await refused_fields(app, "PUT", "/v1/advocates/me", json=body) == {
        "consents.tracking",
        "consents.public_ranking",
    }


async def test_a_count_is_a_number_not_a_boolean() -> None:
    from services.recognition.main import create_app

    app = create_app()
    app.state.rules = None  # never reached
    body = {"rules": {"kudos_weekly_allowance": False, "points": {"lead": True}}, "expected_version": False}
    assert await refused_fields(app, "PUT", "/v1/rules", json=body) == {
        "rules.kudos_weekly_allowance",
        "rules.points.lead",
        "expected_version",
    }


async def test_a_time_or_a_day_in_a_body_or_query_is_text_too() -> None:
    from services.content.main import create_app as content_app
    from services.metrics.main import create_app as metrics_app

    content = content_app()
    content.state.library = None  # never reached
    content.state.runtime = SimpleNamespace(db=None)  # the Idempotency-Key's store, never reached
    body = {"type": "article", "title": "T", "url": "https://example.com/a", "expires_at": 1_900_000_000}
    assert await refused_fields(content, "POST", "/v1/content", json=body) == {"expires_at"}
    metrics = metrics_app()
    metrics.state.service = None  # never reached
    params = {"from": "20260101", "to": "2026-01-31"}
    assert await refused_fields(metrics, "GET", "/v1/funnel", params=params) == {"from"}
