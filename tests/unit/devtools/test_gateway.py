import asyncio
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from devtools.gateway import create_gateway, dashboard_routes, owner_of
from devtools.local_stack import npm_installed_marker
from shared.auth import TokenVerifier
from shared.settings import ChorusSettings


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


def test_a_path_reaches_the_service_encoded_as_the_caller_sent_it() -> None:
    received: list[tuple[str, str]] = []

    async def service(request: Request) -> JSONResponse:
        received.append((request.path_params["content_id"], request.url.query))
        return JSONResponse({"title": "Not found", "status": 404}, status_code=404)

    upstream = Starlette(routes=[Route("/v1/content/{content_id}", service)])
    gateway = create_gateway({"content": "http://content"}, transport=httpx.ASGITransport(app=upstream))
    with TestClient(gateway) as client:
        # Decoded, a NUL makes no URL: the gateway answered 500 instead of the service's 404.
        for encoded in ("%00", "caf%C3%A9"):
            assert client.get(f"/v1/content/{encoded}?x=%26").status_code == 404
    assert received == [("\x00", "x=%26"), ("café", "x=%26")]


def test_a_cookie_one_caller_gets_is_never_sent_with_another_callers_requests() -> None:
    seen: list[str | None] = []

    async def service(request: Request) -> JSONResponse:
        seen.append(request.headers.get("cookie"))
        response = JSONResponse({})
        response.set_cookie("chorus_advocate", "ann")
        response.set_cookie("chorus_seen", "1")  # two Set-Cookie lines: both must come through
        return response

    upstream = Starlette(routes=[Route("/v1/advocates/me", service), Route("/r/{code}", service)])
    gateway = create_gateway({"sharing": "http://sharing"}, transport=httpx.ASGITransport(app=upstream))
    with TestClient(gateway) as advocate, TestClient(gateway) as visitor:
        assert dict(advocate.get("/v1/advocates/me").cookies) == {
            "chorus_advocate": "ann",
            "chorus_seen": "1",
        }
        visitor.get("/r/abc")
        advocate.get("/r/abc")
    assert seen == [None, None, "chorus_advocate=ann; chorus_seen=1"]


def dashboard(folder: Path, settings: ChorusSettings) -> TestClient:
    return TestClient(Starlette(routes=dashboard_routes(settings, folder)), follow_redirects=False)


def test_the_dev_login_gives_a_token_the_services_accept_for_an_admin_of_the_org(tmp_path: Path) -> None:
    settings = ChorusSettings()
    with dashboard(tmp_path, settings) as client:
        login = client.post("/dev/login", json={"org": "acme", "name": "pat"})
    assert login.status_code == 200
    principal = asyncio.run(TokenVerifier(settings).verify(login.json()["token"]))
    assert (principal.org, principal.sub, principal.roles) == ("acme", "pat", frozenset({"admin"}))


def test_the_dev_login_refuses_an_org_it_cannot_put_in_a_token_and_says_why(tmp_path: Path) -> None:
    with dashboard(tmp_path, ChorusSettings()) as client:
        empty = client.post("/dev/login", json={"org": ""})
        odd = client.post("/dev/login", json={"org": "acme", "name": "a b"})
        not_json = client.post("/dev/login", content=b"org=acme")
    assert [r.status_code for r in (empty, odd, not_json)] == [400, 400, 400]
    assert empty.headers["content-type"] == "application/problem+json"
    assert empty.json()["detail"].startswith("org:") and odd.json()["detail"].startswith("name:")


def test_the_dashboard_is_served_with_a_dev_login_and_says_when_its_charts_are_not_installed(
    tmp_path: Path,
) -> None:
    (tmp_path / "index.html").write_text("<h1>dashboard</h1>")
    (tmp_path / "package-lock.json").write_text("{}")
    (tmp_path / "app.js").write_text("export {};")
    with dashboard(tmp_path, ChorusSettings()) as client:
        assert client.get("/dashboard").headers["location"] == "/dashboard/"
        missing = client.get("/dashboard/")
        assert missing.status_code == 503 and "make deps" in missing.text
        marker = npm_installed_marker(tmp_path)
        marker.parent.mkdir()
        marker.touch()
        assert client.get("/dashboard/").text == "<h1>dashboard</h1>"
        assert client.get("/dashboard/app.js").text == "export {};"
        assert client.get("/dashboard/config.json").json() == {"api_base": "", "dev_login": "/dev/login"}


def test_headers_reach_the_service_as_sent_bytes_past_ascii_and_repeats_too() -> None:
    received: list[list[tuple[bytes, bytes]]] = []

    async def service(request: Request) -> JSONResponse:
        received.append(
            [(k, v) for k, v in request.headers.raw if k in (b"referer", b"accept", b"x-forwarded-for")]
        )
        return JSONResponse({})

    upstream = Starlette(routes=[Route("/r/{code}", service)])
    gateway = create_gateway({"sharing": "http://sharing"}, transport=httpx.ASGITransport(app=upstream))
    with TestClient(gateway) as client:
        sent = [(b"referer", b"https://caf\xc3\xa9.example/"), (b"accept", b"text/html"), (b"accept", b"*/*")]
        sent.append((b"x-forwarded-for", b"203.0.113.9"))  # the gateway says who called, not the caller
        assert client.get("/r/abc", headers=sent).status_code == 200  # a 500 before
    assert received == [[*sent[:3], (b"x-forwarded-for", b"testclient")]]
