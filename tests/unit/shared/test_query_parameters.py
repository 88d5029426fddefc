"""A query parameter an operation does not take is refused (shared/query_parameters.py): a
misspelt filter must not be answered as if no filter had been asked."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.routing import APIRoute

from shared.auth import issue_dev_token
from shared.errors import PROBLEM_JSON
from shared.query_parameters import ProtocolRoute, query_parameters
from shared.settings import ChorusSettings

SETTINGS = ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)
SERVICES = ("content", "sharing", "metrics", "recognition")


def app_of(service: str) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.main").create_app()
    return app


def routes_of(service: str) -> Iterator[APIRoute]:
    """Every route a module of the service declares."""
    package = importlib.import_module(f"services.{service}")
    for module in pkgutil.walk_packages(package.__path__, f"services.{service}."):
        for router in vars(importlib.import_module(module.name)).values():
            if isinstance(router, APIRouter):
                yield from (route for route in router.routes if isinstance(route, APIRoute))


async def get(
    app: FastAPI, url: str, params: dict[str, str] | list[tuple[str, str]], role: str | None = "admin"
) -> httpx.Response:
    """A GET as a caller of `role` (None: anonymous)."""
    headers = {}
    if role is not None:
        token = issue_dev_token(SETTINGS, org="acme", sub="ann", roles=[role])
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=app)  # no lifespan: a refused request does no I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(url, params=params, headers=headers)


@pytest.mark.parametrize("service", SERVICES)
def test_an_operation_takes_the_query_parameters_its_document_lists(service: str) -> None:
    """What is refused is read from the route, what a client knows from the document: they must
    be the same names, or a documented parameter would be refused."""
    document = app_of(service).openapi()
    checked = 0
    for route in routes_of(service):
        for method in route.methods:
            if not route.include_in_schema or route.path_format not in document["paths"]:
                continue  # the webhooks' routes, documented apart and never served
            operation = document["paths"][route.path_format][method.lower()]
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert set(query_parameters(route.dependant)) == documented, f"{method} {route.path_format}"
            checked += 1
    assert checked > 10


async def test_a_misspelt_filter_is_refused_naming_it_and_what_the_operation_takes() -> None:
    app = app_of("metrics")
    app.state.service = None  # never reached
    params = {"from": "2026-12-01", "to": "2026-12-31", "teams": "sales"}
    answer = await get(app, "/v1/funnel", params)
    assert (answer.status_code, answer.headers["content-type"]) == (422, PROBLEM_JSON), answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "teams"
    assert "it takes advocate, content, from, group_by, network, tag, team, to" in error["message"]


@pytest.mark.parametrize(("role", "status"), [(None, 401), ("advocate", 403)])
async def test_a_caller_who_may_not_call_the_operation_hears_that_first(
    role: str | None, status: int
) -> None:
    """As for FastAPI's own 422s: an expired token must be a 401, which a client answers by
    signing in again, not a 422 that it shows as its own mistake."""
    app = app_of("metrics")
    app.state.service = None  # never reached
    answer = await get(app, "/v1/funnel", {"from": "2026-12-01", "to": "2026-12-31", "teams": "s"}, role)
    assert answer.status_code == status, answer.text


async def test_an_operation_without_query_parameters_refuses_any() -> None:
    app = app_of("sharing")
    app.state.advocates = None  # never reached
    answer = await get(app, "/v1/advocates/me", {"fields": "all", "_": "1"})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["fields", "_"]
    assert "it takes none" in answer.json()["errors"][0]["message"]


async def test_a_scim_client_may_send_what_scim_defines_and_this_server_does_not_implement() -> None:
    assert any(isinstance(route, ProtocolRoute) for route in routes_of("sharing"))
    app = app_of("sharing")
    app.state.runtime = SimpleNamespace(db=None)
    answer = await get(app, "/scim/v2/ServiceProviderConfig", {"sortBy": "userName"})
    assert answer.status_code == 200, answer.text


# A search takes an empty text as no search; every other text parameter names something.
SEARCHES = {"q"}


def refuses_empty(pattern: str | None) -> bool:
    return pattern is not None and re.search(pattern, "") is None


@pytest.mark.parametrize("service", SERVICES)
def test_a_text_parameter_is_never_empty(service: str) -> None:
    """`?team=` from a cleared form field filtered on the empty team, and answered zeros for the
    whole organisation, or was ignored, by endpoint; it is a 422 everywhere."""
    document = app_of(service).openapi()
    may_be_empty = sorted(
        f"{method.upper()} {path} {parameter['name']}"
        for path, operations in document["paths"].items()
        if not path.startswith("/scim/")  # SCIM's parameters are its protocol's
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and parameter["name"] not in SEARCHES
        for schema in parameter["schema"].get("anyOf", [parameter["schema"]])
        if schema.get("type") == "string"
        and not ({"enum", "format", "minLength"} & schema.keys() or refuses_empty(schema.get("pattern")))
    )
    assert may_be_empty == []


async def test_an_empty_filter_is_refused() -> None:
    app = app_of("metrics")
    app.state.service = None  # never reached
    answer = await get(app, "/v1/funnel", {"from": "2026-12-01", "to": "2026-12-31", "team": ""})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["team"]


async def test_a_single_value_given_twice_is_refused() -> None:
    """FastAPI keeps the last: `?team=sales&team=eng` from a multiple choice was eng's funnel."""
    app = app_of("metrics")
    app.state.service = None  # never reached
    query = [("from", "2026-12-01"), ("to", "2026-12-31"), ("team", "sales"), ("team", "eng")]
    answer = await get(app, "/v1/funnel", query)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert (error["field"], error["message"]) == ("team", "is given 2 times; it takes one value")


def test_a_list_parameter_may_be_given_more_than_once() -> None:
    async def route(
        tags: Annotated[list[str] | None, Query()] = None, team: Annotated[str | None, Query()] = None
    ) -> None: ...

    app = FastAPI()
    app.get("/")(route)
    [found] = [r for r in app.routes if isinstance(r, APIRoute) and r.path == "/"]
    assert query_parameters(found.dependant) == {"tags": True, "team": False}
