"""The local gateway sends every public path of every service to that service."""

from __future__ import annotations

import importlib

import pytest
from starlette.routing import Route

from devtools.gateway import owner_of
from shared.serve import SERVICE_PORTS

OPERATIONS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


@pytest.mark.parametrize("service", sorted(SERVICE_PORTS))
def test_every_route_of_a_service_is_routed_to_it(service: str) -> None:
    app = importlib.import_module(f"services.{service}.main").create_app()
    paths = set(app.openapi()["paths"]) | {r.path for r in app.routes if isinstance(r, Route)}
    paths -= OPERATIONS
    assert paths, f"{service} has no routes"
    misrouted = {path: owner_of(path.replace("{", "x").replace("}", "x")) for path in paths}
    assert {p: o for p, o in misrouted.items() if o != service} == {}


def test_the_public_redirect_goes_to_sharing() -> None:
    assert owner_of("/r/AbC123") == "sharing"
