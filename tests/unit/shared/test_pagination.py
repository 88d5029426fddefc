"""Every list pages the same way: `?cursor=&limit=`, a page of 1 to 200 items (shared/pagination.py;
the cursor's own tests are in tests/unit/content/test_queries.py)."""

from __future__ import annotations

import importlib

import httpx
import pytest

from shared.auth import issue_dev_token
from shared.errors import PROBLEM_JSON
from shared.settings import ChorusSettings

SERVICES = ("content", "sharing", "metrics", "recognition")


@pytest.mark.parametrize("service", SERVICES)
def test_every_paged_list_takes_a_page_size_from_1_to_200(service: str) -> None:
    spec = importlib.import_module(f"services.{service}.main").create_app().openapi()
    paged = 0
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
            if "cursor" not in parameters:
                continue
            paged += 1
            limit = parameters["limit"]["schema"]
            assert (limit["minimum"], limit["maximum"]) == (1, 200), f"{method.upper()} {path}"
    assert paged, service


async def test_a_page_size_out_of_range_is_a_422_naming_limit() -> None:
    from services.content.main import create_app

    settings = ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)
    token = issue_dev_token(settings, org="acme", sub="ed", roles=["editor"])
    app = create_app()
    app.state.library = None  # never reached: the page size is refused first
    transport = httpx.ASGITransport(app=app)  # no lifespan: refused before any I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for limit in ("0", "201", "ten", "\r8", " 8", "+8", "8.0", "\u0668"):
            refused = await client.get(
                "/v1/content", params={"limit": limit}, headers={"Authorization": f"Bearer {token}"}
            )
            assert (refused.status_code, refused.headers["content-type"]) == (422, PROBLEM_JSON), limit
            assert [e["field"] for e in refused.json()["errors"]] == ["limit"], limit
