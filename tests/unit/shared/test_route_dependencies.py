"""Every route's dependencies run on the event loop: FastAPI runs any other (a class, a plain
`def`) in its thread pool, a hop per request (shared/dependencies.py)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

import services
from shared.app import health_router
from shared.dependencies import on_loop


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from dependencies(sub)


def runs_in_thread_pool(call: Any) -> bool:
    # FastAPI's own test of whether it awaits a dependency or sends it to the thread pool.
    from fastapi.dependencies.models import _is_coroutine_callable

    return not _is_coroutine_callable(call)


def service_routes() -> Iterator[tuple[str, APIRoute]]:
    """Every route declared in a module of a service, and the health routes every app has."""
    routers = [("shared.app", health_router())]
    for module in pkgutil.walk_packages(services.__path__, "services."):
        found = vars(importlib.import_module(module.name)).values()
        routers += [(module.name, router) for router in found if isinstance(router, APIRouter)]
    for where, router in routers:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            yield where, route


def test_no_route_of_any_service_waits_on_the_thread_pool() -> None:
    routes = list(service_routes())
    assert len(routes) > 100  # the walk reaches every service's routes
    in_pool = sorted(
        f"{where} {sorted(route.methods)} {route.path}: {getattr(sub.call, '__qualname__', sub.call)}"
        for where, route in routes
        for sub in dependencies(route.dependant)
        if runs_in_thread_pool(sub.call)
    )
    assert in_pool == []


@dataclass(frozen=True)
class Window:
    """A query model, as routes declare them."""

    days: Annotated[int, Query(ge=1, le=90)] = 7
    label: Annotated[str | None, Query(alias="name", max_length=5)] = None


def window_app(dependency: Any) -> FastAPI:
    async def window(asked: Window) -> dict[str, Any]:
        return {"days": asked.days, "label": asked.label, "type": type(asked).__name__}

    # Set as an object: a string annotation naming `dependency` would not resolve outside here.
    window.__annotations__["asked"] = Annotated[Window, Depends(dependency)]
    app = FastAPI()
    app.get("/window")(window)
    return app


async def answer(app: FastAPI, params: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get("/window", params=params)


def test_a_class_built_on_the_loop_is_awaited_not_sent_to_the_pool() -> None:
    assert runs_in_thread_pool(Window)
    assert not runs_in_thread_pool(on_loop(Window))


@pytest.mark.parametrize(
    "params", [{}, {"days": "30", "name": "abc"}, {"days": "0"}, {"days": "x"}, {"name": "toolong"}]
)
async def test_a_class_built_on_the_loop_reads_and_refuses_the_query_as_depends_would(
    params: dict[str, str],
) -> None:
    as_before, on_the_loop = (
        await answer(window_app(Window), params),
        await answer(window_app(on_loop(Window)), params),
    )
    assert (on_the_loop.status_code, on_the_loop.json()) == (as_before.status_code, as_before.json())
    if as_before.status_code == 200:
        assert on_the_loop.json()["type"] == "Window"


def test_a_class_built_on_the_loop_is_documented_as_depends_would() -> None:
    def parameters(app: FastAPI) -> Any:
        return app.openapi()["paths"]["/window"]["get"]["parameters"]

    assert parameters(window_app(on_loop(Window))) == parameters(window_app(Window))
