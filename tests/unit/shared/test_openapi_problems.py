"""Every operation's OpenAPI document says which problem+json answers it may give, in the shape
the services really answer (a client generated from it must match the server)."""

from __future__ import annotations

import importlib

import httpx
import jsonschema
import pytest

from shared.auth import issue_dev_token
from shared.errors import PROBLEM_JSON, PROBLEM_SCHEMA
from shared.settings import ChorusSettings

SERVICES = ("content", "sharing", "metrics", "recognition")
PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_its_problem_answers(service: str) -> None:
    spec = importlib.import_module(f"services.{service}.main").create_app().openapi()
    assert spec["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    ]
    assert operations
    for path, method, operation in operations:
        expected = {"401", "403", "422", "503"}
        expected |= {"404"} if "{" in path else set()
        expected |= {"409"} if method in ("post", "put", "patch", "delete") else set()
        responses = operation["responses"]
        assert expected <= set(responses), f"{method} {path}"
        for status in expected:
            assert responses[status]["content"] == PROBLEM, f"{method} {path} {status}"


async def test_a_documented_422_is_what_the_service_answers() -> None:
    from services.content.main import create_app

    settings = ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)
    app = create_app()
    app.state.library = None  # never reached: the body is refused first
    token = issue_dev_token(settings, org="acme", sub="ed", roles=["editor"])
    transport = httpx.ASGITransport(app=app)  # no lifespan: bad input is refused before any I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        refused = await client.patch(
            "/v1/content/c1",
            json={"type": "podcast", "tags": "not-a-list", "unknown": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM_JSON
    jsonschema.validate(refused.json(), PROBLEM_SCHEMA)
    assert {e["field"] for e in refused.json()["errors"]} >= {"type", "tags", "unknown"}
