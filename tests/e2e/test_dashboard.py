"""The program dashboard in a real browser: Debian's Chromium, driven by Playwright (issue 17).

A small program is seeded through the public APIs only (advocates on two teams, one of them
opted out of public ranking; content; shares; people's and bots' clicks through the redirect; a
lead through the conversions API; a goal; an eNPS survey with answers). Once the projections
have caught up, the dashboard is opened through the local gateway, logged in with the gateway's
dev login, and, at a laptop's and a phone's viewport, the figures it shows and the data its charts
draw (funnel totals, the bot share, the time series by day and week, a goal's progress and
forecast, the leaderboard's rows and the team board, the survey's NPS) must equal what the APIs
answer, and nothing may be wider than the screen. A screenshot of each viewport is saved under
build/test-artifacts/dashboard/.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from devtools.gateway import create_gateway
from devtools.local_stack import DASHBOARD_DIR, npm_installed_marker
from shared.events.clicks import CLICK_ID_PARAM
from tests.e2e.conftest import RunningServices
from tests.helpers import bearer, eventually, http_server, new_org

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)
PREVIEW_UAS = ["facebookexternalhit/1.1", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"]
VIEWPORTS: dict[str, ViewportSize] = {
    "laptop": {"width": 1366, "height": 768},
    "phone": {"width": 390, "height": 844},
}
# Where the screenshots go: build/test-artifacts/ (ignored by git), or CHORUS_TEST_ARTIFACTS.
ARTIFACTS_ENV = "CHORUS_TEST_ARTIFACTS"
DEFAULT_ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"

# The program: advocate -> (team, network, audience, ranked publicly).
ADVOCATES = {
    "ann": ("sales", "linkedin", 800, True),
    "bob": ("sales", "x", 300, True),
    "cat": ("engineering", "linkedin", 500, False),
    "dan": ("engineering", "facebook", 200, True),
    "eve": ("engineering", "linkedin", 100, True),
}
# advocate, content index, people's clicks, preview clicks
SHARES = [("ann", 0, 3, 1), ("ann", 1, 2, 0), ("bob", 0, 1, 1), ("cat", 1, 4, 0)]
NPS_ANSWERS = {"ann": 10, "bob": 9, "cat": 7, "dan": 6, "eve": 10}


@dataclass(frozen=True)
class Program:
    org: str
    admin: dict[str, str]
    goal_id: str
    survey_id: str


async def call(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    headers: dict[str, str],
    *,
    body: object = None,
    params: dict[str, str] | None = None,
) -> Any:
    """A request's JSON answer, as a client should get it: again after a 503 (the database
    slow to answer on a busy machine) once its Retry-After has passed."""
    for _ in range(5):
        response = await http.request(method, url, headers=headers, json=body, params=params)
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    assert response.is_success, f"{method} {url}: {response.status_code} {response.text}"
    return response.json()


async def read(http: httpx.AsyncClient, url: str, headers: dict[str, str], **params: str) -> Any:
    return await call(http, "GET", url, headers, params=params)


async def wait_for(what: str, probe: Callable[[], Awaitable[Any]], expected: Any) -> None:
    """Poll `probe` until it answers `expected`; fail saying what it answered last. Generous:
    the projectors share two cores with everything else a test run does."""
    seen: Any = None

    async def matches() -> bool:
        nonlocal seen
        seen = await probe()
        return bool(seen == expected)

    try:
        await eventually(matches, timeout_s=90)
    except AssertionError:
        raise AssertionError(f"{what}: expected {expected!r}, last answer {seen!r}") from None


def report_window() -> dict[str, str]:
    """The dashboard's default range: the last 28 UTC days, today included."""
    today = datetime.now(UTC).date()
    return {"from": (today - timedelta(days=27)).isoformat(), "to": today.isoformat()}


def number(text: str) -> float:
    """A figure as the page shows it ("1,234", "12.5%") as a number."""
    return float(text.replace(",", "").replace("%", "").strip())


@pytest.fixture(scope="module")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK) or not npm_installed_marker(DASHBOARD_DIR).exists():
        pytest.fail(f"{CHROMIUM} or the dashboard's npm packages are missing: run `make deps`")
    return CHROMIUM


@pytest.fixture
def artifacts() -> Path:
    folder = Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_ARTIFACTS) / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.asynccontextmanager
async def gateway(services: RunningServices) -> AsyncIterator[str]:
    """The local gateway in front of the test's services: the dashboard, its dev login, /v1, /r."""
    app = create_gateway(service_urls=services.urls, settings=services.settings)
    async with http_server(app) as url:
        yield url


async def seed_program(http: httpx.AsyncClient, base: str, services: RunningServices) -> Program:
    """The program, created through the gateway's public APIs as its people would."""
    org = new_org()
    admin = bearer(services.settings, org=org, sub="pm", roles=["admin"])

    def member(name: str) -> dict[str, str]:
        return bearer(services.settings, org=org, sub=name, roles=["advocate"])

    async def ok(method: str, path: str, headers: dict[str, str], body: object = None) -> dict[str, Any]:
        # Creates carry an Idempotency-Key, so that sending one again after a 503 is safe.
        keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
        return dict(await call(http, method, f"{base}{path}", keyed, body=body))

    for name, (team, network, audience, ranked) in ADVOCATES.items():
        profile = {
            "display_name": name.capitalize(),
            "team": team,
            "networks": [{"network": network, "handle": name, "audience_size": audience}],
        }
        await ok("PUT", f"/v1/advocates/{name}", admin, profile)
        if not ranked:  # their own consent to withdraw: an admin's write leaves it as they set it
            await ok(
                "PUT", "/v1/advocates/me", member(name), {**profile, "consents": {"public_ranking": False}}
            )
    content_ids = []
    for content_type, title in (("article", "Our new office"), ("job_opening", "We are hiring engineers")):
        created = await ok(
            "POST",
            "/v1/content",
            admin,
            {"type": content_type, "title": title, "url": f"https://example.com/{content_type}"},
        )
        await ok("POST", f"/v1/content/{created['id']}/publish", admin)
        content_ids.append(str(created["id"]))

    async def may_share(name: str) -> bool:
        page = await read(http, f"{base}/v1/shareable", member(name))
        return set(content_ids) <= {item["content_id"] for item in page["items"]}

    for name in sorted({share[0] for share in SHARES}):
        await wait_for(f"{name} may share both items", functools.partial(may_share, name), True)

    click_ids: list[str] = []
    for name, content, people, previews in SHARES:
        network = ADVOCATES[name][1]
        share = await ok(
            "POST",
            "/v1/shares",
            member(name),
            {"content_id": content_ids[content], "network": network, "message": "Have a look"},
        )
        agents = [f"{BROWSER_UA} visitor/{i}" for i in range(people)] + PREVIEW_UAS[:previews]
        for agent in agents:
            # A client each: a visitor of their own, never carrying an advocate's cookie.
            async with httpx.AsyncClient(timeout=30) as visitor:
                clicked = await visitor.get(f"{base}/r/{share['code']}", headers={"User-Agent": agent})
            assert clicked.status_code == 302, clicked.text
            if agent.startswith(BROWSER_UA):
                click_ids.append(parse_qs(urlsplit(clicked.headers["location"]).query)[CLICK_ID_PARAM][0])

    goal = await ok(
        "POST",
        "/v1/goals",
        admin,
        {"name": "Clicks this month", "metric": "clicks", "target": 40, "horizon_months": 1},
    )
    survey = await ok(
        "POST",
        "/v1/surveys",
        admin,
        {
            "kind": "enps",
            "title": "Would you recommend working here?",
            "questions": [
                {"id": "recommend", "text": "How likely are you to recommend us?", "type": "nps"},
                {"id": "why", "text": "Why?", "type": "text"},
            ],
        },
    )
    for name, score in NPS_ANSWERS.items():
        await ok(
            "POST",
            f"/v1/surveys/{survey['survey_id']}/responses",
            member(name),
            {"answers": {"recommend": score, "why": f"{name} likes the people"}},
        )

    # The lead, once metrics has counted the clicks: attribution finds the click it names in
    # an index kept from the same topic (an unknown click would be kept unattributed).
    window = report_window()

    async def clicks_counted() -> tuple[int, ...]:
        totals = (await read(http, f"{base}/v1/funnel", admin, **window))["totals"]
        return tuple(totals[name] for name in ("clicks", "bot_clicks", "self_clicks"))

    previews = sum(share[3] for share in SHARES)
    await wait_for("metrics' clicks, bot clicks, self clicks", clicks_counted, (len(click_ids), previews, 0))
    lead = await ok(
        "POST", "/v1/conversions", admin, {"type": "lead", "click_id": click_ids[0], "customer_id": "crm-1"}
    )
    assert lead["attributed"] is True, lead
    sale = {"type": "sale", "click_id": click_ids[0], "customer_id": "crm-1", "order_id": "o-1"}
    await ok("POST", "/v1/conversions", admin, {**sale, "amount": "1234.50", "currency": "EUR"})
    return Program(org, admin, str(goal["goal_id"]), str(survey["survey_id"]))


async def settled(http: httpx.AsyncClient, base: str, program: Program, services: RunningServices) -> None:
    """Wait until metrics and recognition have counted everything seeded."""
    people = sum(s[2] for s in SHARES)
    previews = sum(s[3] for s in SHARES)
    window = report_window()

    async def metrics_counted() -> tuple[int, ...]:
        totals = (await read(http, f"{base}/v1/funnel", program.admin, **window))["totals"]
        return tuple(totals[name] for name in ("shares", "clicks", "bot_clicks", "leads", "sales"))

    await wait_for(
        "metrics' shares, clicks, bot clicks, leads, sales",
        metrics_counted,
        (len(SHARES), people, previews, 1, 1),
    )
    by_advocate = (await read(http, f"{base}/v1/funnel", program.admin, **window, group_by="advocate"))[
        "rows"
    ]

    counted = ("shares", "unique_clicks", "leads")

    async def recognition_counted() -> dict[str, tuple[int, ...]]:
        seen = {}
        for row in by_advocate:
            who = bearer(services.settings, org=program.org, sub=row["key"], roles=["advocate"])
            counters = (await read(http, f"{base}/v1/me/points", who))["counters"]
            seen[row["key"]] = tuple(counters.get(name, 0) for name in counted)
        return seen

    expected = {row["key"]: tuple(row[name] for name in counted) for row in by_advocate}
    await wait_for("recognition counting what metrics counted", recognition_counted, expected)


async def figures(page: Page, name: str) -> list[str]:
    return [text.strip() for text in await page.locator(f'[data-figure="{name}"]').all_inner_texts()]


async def check_dashboard(
    page: Page, http: httpx.AsyncClient, base: str, program: Program, screenshot: Path
) -> None:
    await page.goto(f"{base}/dashboard")
    await page.locator("#dev-login [name=org]").fill(program.org)
    await page.locator("#dev-login button[type=submit]").click()
    await expect(page.locator("body[data-loaded=true]")).to_be_attached(timeout=30_000)
    errors = await page.locator(".panel-error").all_inner_texts()
    assert errors == [], errors
    for chart in ("funnel", "timeseries", "clicks", "goal-0", "teams", "networks"):
        await expect(page.locator(f'canvas[data-chart="{chart}"][data-rendered=true]')).to_be_attached()

    window = report_window()
    funnel = await read(http, f"{base}/v1/funnel", program.admin, **window)
    totals = funnel["totals"]
    for name in ("shares", "reach", "clicks", "unique_clicks", "leads", "sales", "applications", "hires"):
        assert [number(t) for t in await figures(page, name)] == [totals[name]], name
    # Amounts as the other figures: digits grouped, and exact (the API sends them as strings).
    assert totals["revenue"] == {"EUR": "1234.50"}, totals  # the one sale seeded
    assert await figures(page, "revenue") == ["1,234.50 EUR"]
    assert await figures(page, "emv") == [f"{totals['emv']:,.2f} {funnel['emv']['currency']}"]
    all_clicks = totals["clicks"] + totals["self_clicks"] + totals["bot_clicks"]
    assert [number(t) for t in await figures(page, "bot_clicks")] == [totals["bot_clicks"]]
    assert number((await figures(page, "bot_share"))[0]) == pytest.approx(
        100 * totals["bot_clicks"] / all_clicks, abs=0.05
    )
    # The chart draws the same totals.
    drawn = await page.evaluate("window.chorusDashboard.charts.funnel.data.datasets[0].data")
    assert drawn == [totals[n] for n in ("reach", "clicks", "unique_clicks", "leads", "sales")]

    goal = await read(http, f"{base}/v1/goals/{program.goal_id}", program.admin)
    card = page.locator(f'[data-goal="{program.goal_id}"]')
    assert number(await card.locator('[data-figure="goal.value"]').inner_text()) == goal["value"]
    assert number(await card.locator('[data-figure="goal.target"]').inner_text()) == goal["target"]
    assert number(await card.locator('[data-figure="goal.progress"]').inner_text()) == pytest.approx(
        100 * goal["progress"], abs=0.05
    )
    forecast_line = await page.evaluate("window.chorusDashboard.charts['goal-0'].data.datasets[1].data")
    assert forecast_line[-1] == pytest.approx(goal["forecast"])

    # The time series by day, then by week, as /v1/timeseries gives them.
    for interval in ("day", "week"):
        await page.locator(f'[data-interval="{interval}"]').click()
        # The panel is busy from the click until its new chart is drawn.
        await expect(page.locator("#panel-timeseries[data-loaded=true]:not([aria-busy])")).to_be_attached()
        await expect(page.locator('canvas[data-chart="timeseries"][data-rendered=true]')).to_be_attached()
        series = await read(
            http, f"{base}/v1/timeseries", program.admin, **window, metric="clicks", interval=interval
        )
        drawn_series = await page.evaluate("window.chorusDashboard.charts.timeseries.data")
        assert drawn_series["labels"] == [p["period"] for p in series["points"]]
        clicks = next(d for d in drawn_series["datasets"] if d["label"] == "clicks")
        assert clicks["data"] == [p["value"] for p in series["points"]]

    board = await read(http, f"{base}/v1/leaderboard", program.admin, period="month", limit="10")
    first = board["items"][0]
    row = page.locator("#advocate-board tbody tr").first
    assert await row.get_attribute("data-advocate") == first["advocate_id"]
    assert number(await row.locator('[data-figure="board.rank"]').inner_text()) == first["rank"]
    assert number(await row.locator('[data-figure="board.points"]').inner_text()) == first["points"]
    shown = [
        await r.get_attribute("data-advocate") for r in await page.locator("#advocate-board tbody tr").all()
    ]
    assert shown == [item["advocate_id"] for item in board["items"]] and "cat" not in shown
    teams = (await read(http, f"{base}/v1/leaderboard", program.admin, period="month", scope="team"))["items"]
    drawn_teams = await page.evaluate("window.chorusDashboard.charts.teams.data")
    assert drawn_teams["labels"] == [t["team"] for t in teams]
    assert drawn_teams["datasets"][0]["data"] == [t["points_per_advocate"] for t in teams]

    results = await read(http, f"{base}/v1/surveys/{program.survey_id}/results", program.admin)
    survey = page.locator(f'[data-survey="{program.survey_id}"]')
    assert (
        number(await survey.locator('[data-figure="survey.responses"]').inner_text()) == results["responses"]
    )
    nps = next(q["nps"] for q in results["questions"] if q["id"] == "recommend")
    assert number(await survey.locator('[data-figure="survey.nps"]').inner_text()) == pytest.approx(
        nps, abs=0.5
    )

    # Nothing is wider than the screen: a phone scrolls down, never sideways.
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the viewport"
    await page.screenshot(path=str(screenshot), full_page=True)


@contextlib.asynccontextmanager
async def browser(executable: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


async def test_the_dashboard_shows_what_the_apis_answer_on_a_laptop_and_a_phone(
    services: RunningServices, chromium: str, artifacts: Path
) -> None:
    async with gateway(services) as base, httpx.AsyncClient(timeout=30) as http:
        program = await seed_program(http, base, services)
        await settled(http, base, program, services)
        async with browser(chromium) as launched:
            for name, viewport in VIEWPORTS.items():
                context = await launched.new_context(viewport=viewport, is_mobile=name == "phone")
                page = await context.new_page()
                await check_dashboard(page, http, base, program, artifacts / f"dashboard-{name}.png")
                await context.close()


async def test_the_dashboard_says_plainly_when_the_api_refuses_or_is_gone(
    services: RunningServices, chromium: str
) -> None:
    async with gateway(services) as base, browser(chromium) as launched:
        page = await launched.new_page()
        # A refused token: the login again, with the reason.
        await page.goto(f"{base}/dashboard/")
        await page.locator("#token-login [name=token]").fill("not-a-token")
        await page.locator("#token-login button[type=submit]").click()
        await expect(page.locator("#banner")).to_contain_text("401")
        await expect(page.locator("#login")).to_be_visible()
        # A role that may not read reports: each panel says so.
        advocate = bearer(services.settings, org=new_org(), sub="ann", roles=["advocate"])["Authorization"]
        await page.locator("#token-login [name=token]").fill(advocate.removeprefix("Bearer "))
        await page.locator("#token-login button[type=submit]").click()
        await expect(page.locator("#panel-funnel .panel-error")).to_contain_text("403")
        # The API gone: the network error, not a blank page.
        await page.route(re.compile(r".*/v1/.*"), lambda route: route.abort("connectionrefused"))
        await page.locator("#range button[type=submit]").click()
        await expect(page.locator("#panel-funnel .panel-error")).to_contain_text("could not be reached")
