import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from devtools.gateway import create_gateway, owner_of


def test_paths_route_to_their_owning_service() -> None:
    assert owner_of("/v1/content/abc/publish") == "content"
    assert owner_of("/r/Xy12") == "sharing"
    assert owner_of("/v1/me/points") == "recognition"
    assert owner_of("/v1/me/stats") == "metrics"
    assert owner_of("/v1/contents") is None  # a prefix must end at a path segment
    assert owner_of("/admin") is None


def test_an_empty_bearer_token_reaches_the_service_and_gets_its_401() -> None:
    received: list[str] = []

    async def service(request: Request) -> JSONResponse:
        received.append(request.headers["authorization"])
        return JSONResponse({"title": "Unauthorized", "status": 401}, status_code=401)

    upstream = Starlette(routes=[Route("/v1/leaderboard", service)])
    gateway = create_gateway(
        {"recognition": "http://recognition"}, transport=httpx.ASGITransport(app=upstream)
    )
    with TestClient(gateway) as client:
        response = client.get("/v1/leaderboard", headers={"Authorization": "Bearer "})
    assert response.status_code == 401 and received == ["Bearer"]


def test_a_cookie_one_caller_gets_is_never_sent_with_another_callers_requests() -> None:
    seen: list[str | None] = []

    async def service(request: Request) -> JSONResponse:
        seen.append(request.headers.get("cookie"))
        response = JSONResponse({})
        response.set_cookie("chorus_advocate", "ann")
        return response

    upstream = Starlette(routes=[Route("/v1/advocates/me", service), Route("/r/{code}", service)])
    gateway = create_gateway({"sharing": "http://sharing"}, transport=httpx.ASGITransport(app=upstream))
    with TestClient(gateway) as advocate, TestClient(gateway) as visitor:
        assert advocate.get("/v1/advocates/me").cookies.get("chorus_advocate") == "ann"
        visitor.get("/r/abc")
        advocate.get("/r/abc")
    assert seen == [None, None, "chorus_advocate=ann"]
