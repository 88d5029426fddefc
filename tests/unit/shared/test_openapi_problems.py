"""Every operation's OpenAPI document says which problem+json answers it may give, in the shape
the services really answer (a client generated from it must match the server)."""

from __future__ import annotations

import importlib
from typing import Any

import httpx
import jsonschema
import pytest

from services.sharing.shares.domain import ShareLimitReached
from shared.auth import issue_dev_token
from shared.errors import PROBLEM_JSON, PROBLEM_SCHEMA
from shared.settings import ChorusSettings

SERVICES = ("content", "sharing", "metrics", "recognition")
PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def operations(service: str) -> dict[str, dict[str, Any]]:
    spec = importlib.import_module(f"services.{service}.main").create_app().openapi()
    return {
        f"{method.upper()} {path}": operation
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    }


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_its_problem_answers(service: str) -> None:
    spec = importlib.import_module(f"services.{service}.main").create_app().openapi()
    assert spec["components"]["schemas"]["Problem"] == PROBLEM_SCHEMA
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for name, operation in operations(service).items():
        responses = operation["responses"]
        assert "503" in responses, name
        assert responses["503"]["headers"]["Retry-After"], name
        # Every /v1 operation authenticates, and says so: its 401 and 403 come with it.
        assert operation["security"] == [{"HTTPBearer": []}], name
        assert responses["401"]["headers"]["WWW-Authenticate"], name
        assert ("400" in responses) == ("413" in responses) == ("requestBody" in operation), name
        # Even one without parameters: it refuses an unknown query parameter (`?_=1`) with a 422.
        assert "422" in responses, name
        if "{" in name:
            assert "404" in responses, name
        if name.split()[0] in ("POST", "PUT", "PATCH", "DELETE"):
            assert "409" in responses, name
        for status, response in responses.items():
            if status[0] in "45":
                assert response["content"] == PROBLEM, f"{name} {status}"


def test_an_operation_documents_only_what_it_can_answer() -> None:
    content = operations("content")
    assert set(content["GET /v1/content"]["responses"]) == {"200", "401", "403", "422", "503"}
    assert set(content["POST /v1/content"]["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "409",
        "413",
        "422",
        "503",
    }
    assert "404" in content["GET /v1/content/{content_id}"]["responses"]
    sharing = operations("sharing")
    # No path parameter, but a lookup (the caller's enrolment; the content to share).
    assert "404" in sharing["GET /v1/advocates/me"]["responses"]
    assert "404" in sharing["POST /v1/shares"]["responses"]
    # A share past the daily limit is a 429 of its own problem type.
    limit = sharing["POST /v1/shares"]["responses"]["429"]
    assert limit["content"] == PROBLEM
    assert ShareLimitReached("").to_problem()["type"] in limit["description"]
    # An id in the body: a goal on a survey the organisation does not have.
    assert "404" in operations("metrics")["POST /v1/goals"]["responses"]
    # A create that takes an Idempotency-Key says its answer may be a replay.
    assert "Idempotent-Replayed" in sharing["POST /v1/shares"]["responses"]["201"]["headers"]
    # and that its 409, while the first request with the key is still running, says when to retry.
    assert "Retry-After" in sharing["POST /v1/shares"]["responses"]["409"]["headers"]
    assert "headers" not in sharing["PUT /v1/advocates/me"]["responses"]["409"]
    # A replacement that takes If-Match says it may refuse a stale one, and where the ETag it
    # takes comes from.
    assert "412" in content["PUT /v1/courses/{course_id}"]["responses"]
    assert "412" not in content["PATCH /v1/content/{content_id}"]["responses"]
    for read_or_replace in ("GET /v1/courses/{course_id}", "PUT /v1/courses/{course_id}"):
        assert "ETag" in content[read_or_replace]["responses"]["200"]["headers"]


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


async def test_a_405_names_every_method_of_the_path_and_a_body_that_is_not_text_a_400() -> None:
    from services.content.main import create_app

    settings = ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)
    token = issue_dev_token(settings, org="acme", sub="ed", roles=["editor"])
    transport = httpx.ASGITransport(app=create_app())  # no lifespan: refused before any I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        collection = await client.delete("/v1/content", headers={"Authorization": f"Bearer {token}"})
        item = await client.put("/v1/content/c1", headers={"Authorization": f"Bearer {token}"})
        garbled = await client.patch(
            "/v1/content/c1",
            content=b"\xff\xfe{",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    # GET and POST /v1/content are two routes: Starlette alone named only the first one's.
    assert (collection.status_code, collection.headers["allow"]) == (405, "GET, HEAD, POST")
    assert (item.status_code, item.headers["allow"]) == (405, "GET, HEAD, PATCH")
    assert (garbled.status_code, garbled.headers["content-type"]) == (400, PROBLEM_JSON)
    assert garbled.json()["errors"] == [{"field": "body", "message": "must be JSON in UTF-8"}]
