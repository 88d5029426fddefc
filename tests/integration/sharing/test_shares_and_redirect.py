"""Shares and the tracked-link redirect on the real broker and SecantusDB."""

from __future__ import annotations

import asyncio
import time as real_time
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.sharing.advocates.store import ADVOCATES, UNTRACKED
from services.sharing.redirect.app import RedirectApp
from services.sharing.redirect.domain import Seen
from services.sharing.redirect.service import refresh_state
from services.sharing.redirect.spool import ClickRelay, ClickSpool
from services.sharing.redirect.store import SEEN, NewVisitor, SeenVisitorsStore
from services.sharing.shares.store import SHARES, SharesStore, due_filter
from shared import idempotency
from shared.auth import TokenVerifier
from shared.events import Event, EventData
from shared.events.advocates import AdvocateProfile
from shared.events.clicks import CLICK_ID_PARAM, ClickRecorded
from shared.events.content import ContentArchived
from shared.events.shares import ShareMade
from tests.helpers import eventually, new_org, tampered, tap
from tests.integration.query_plans import plan_stages, uses_an_index
from tests.integration.sharing.conftest import PUBLIC_BASE_URL, Sharing

pytestmark = pytest.mark.integration

BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
LINKEDIN_UA = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"
SLACK_UA = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


async def visit(
    sharing: Sharing,
    code: str,
    headers: dict[str, Any] | None = None,
    query: str = "",
    ip: str = "203.0.113.7",
    via: RedirectApp | None = None,
) -> httpx.Response:
    """A visitor with no cookies of ours (a fresh client), as on the open web; through the app's
    redirect, or `via` another replica's."""
    transport = httpx.ASGITransport(app=via or sharing.app, client=(ip, 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as visitor:
        return await visitor.get(f"/r/{code}{query}", headers=headers or {})


async def make_share(sharing: Sharing, org: str, sub: str, **body: Any) -> dict[str, Any]:
    content_id = body.pop("content_id", None) or await sharing.publish_content(org)
    await sharing.wait_shareable(org, sub, content_id)
    payload = {"content_id": content_id, "network": "linkedin", "message": "Proud of this launch", **body}
    response = await sharing.client.post("/v1/shares", json=payload, headers=sharing.headers(org, sub))
    assert response.status_code == 201, response.text
    share: dict[str, Any] = response.json()
    return share


def clicks_of(share_id: str) -> Any:
    return lambda e: e.type == "chorus.click.recorded" and e.data.share_id == share_id


async def test_published_content_becomes_shareable_and_archived_content_leaves(sharing: Sharing) -> None:
    org = new_org()
    content_id = await sharing.publish_content(org)
    await sharing.wait_shareable(org, "adv-1", content_id)
    await sharing.publish(org, ContentArchived(content_id=content_id, reason="manual"))
    await sharing.wait_shareable(org, "adv-1", content_id, present=False)


async def test_a_share_has_a_short_url_a_target_with_utm_and_announces_itself(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    async with tap(sharing.settings, "chorus.shares") as shares:
        share = await make_share(sharing, org, "adv-1")
        [made] = await shares.collect(lambda e: e.tenant == org, count=1)
    assert share["short_url"] == f"{PUBLIC_BASE_URL}/r/{share['code']}"
    assert len(share["code"]) >= 11
    target = urlsplit(share["target_url"])
    query = parse_qs(target.query)
    assert (target.netloc, target.path, target.fragment) == ("www.example.com", "/blog/new-product", "top")
    assert query["utm_source"] == ["linkedin"]
    assert query["utm_medium"] == ["employee_advocacy"]
    assert query["utm_content"] == [share["id"]]
    assert query["utm_campaign"] == ["our-new-product"]
    assert query["ref"] == ["site"]
    assert share["status"] == "sent"
    data = made.data
    assert isinstance(data, ShareMade)
    assert (data.share_id, data.advocate_id, data.code, data.audience_size) == (
        share["id"],
        "adv-1",
        share["code"],
        500,
    )
    assert data.team == "sales"
    assert data.content_type == "article"  # metrics needs it to credit job applications


async def test_redirect_sends_visitors_on_with_a_click_id_and_flags_each_kind_of_click(
    sharing: Sharing,
) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    code = share["code"]
    browser = {"User-Agent": BROWSER_UA, "Referer": "https://www.linkedin.com/feed/", "CF-IPCountry": "fr"}
    async with tap(sharing.settings, "chorus.clicks") as clicks:
        first = await visit(sharing, code, browser)
        linkedin = await visit(sharing, code, {"User-Agent": LINKEDIN_UA})
        slack = await visit(sharing, code, {"User-Agent": SLACK_UA})
        repeat = await visit(sharing, code, browser)
        sharing.clock.offset_s = 25 * 3600  # beyond the 24 h window
        try:
            after_window = await visit(sharing, code, browser)
        finally:
            sharing.clock.offset_s = 0
        own = await visit(
            sharing, code, {"User-Agent": BROWSER_UA, **sharing.headers(org, "adv-1")}, ip="198.51.100.9"
        )
        responses = [first, linkedin, slack, repeat, after_window, own]
        events = await clicks.collect(clicks_of(share["id"]), count=len(responses), settle_s=0.5)

    assert [r.status_code for r in responses] == [302] * 6
    by_click: dict[str, Event[EventData]] = {
        e.data.click_id: e for e in events if isinstance(e.data, ClickRecorded)
    }
    assert len(by_click) == len(events) == 6
    flags = []
    for response in responses:
        location = urlsplit(response.headers["location"])
        query = parse_qs(location.query)
        assert query["utm_medium"] == ["employee_advocacy"] and query["utm_content"] == [share["id"]]
        assert location.fragment == "top"
        [click_id] = query[CLICK_ID_PARAM]
        click = by_click[click_id].data
        assert isinstance(click, ClickRecorded)
        assert (click.share_id, click.advocate_id, click.network) == (share["id"], "adv-1", "linkedin")
        assert click.content_type == "article"
        assert by_click[click_id].tenant == org
        flags.append((click.bot, click.flag, click.unique, click.self_click))
    assert flags == [
        (False, None, True, False),  # a browser, first time
        # LinkedIn's and Slack's preview fetchers: flagged, and never a visitor seen (#15)
        (True, "crawler user agent", False, False),
        (True, "crawler user agent", False, False),
        (False, None, False, False),  # the same browser again inside the window
        (False, None, True, False),  # the same browser after the window
        (False, None, True, True),  # the advocate themself
    ]
    first_click = by_click[parse_qs(urlsplit(first.headers["location"]).query)[CLICK_ID_PARAM][0]].data
    assert isinstance(first_click, ClickRecorded)
    assert first_click.visitor_hash and "203.0.113.7" not in first_click.model_dump_json()
    assert (first_click.device, first_click.browser) == ("desktop", "chrome")
    assert (first_click.referrer_host, first_click.country) == ("www.linkedin.com", "FR")
    assert first_click.tags == ["launch"] and first_click.team == "sales"


async def test_the_advocates_cookie_marks_their_own_clicks(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    listing = await sharing.client.get("/v1/shares", headers=sharing.headers(org, "adv-1"))
    cookie = listing.headers["set-cookie"].split(";")[0]
    async with tap(sharing.settings, "chorus.clicks") as clicks:
        await visit(sharing, share["code"], {"User-Agent": BROWSER_UA, "Cookie": cookie})
        await visit(sharing, share["code"], {"User-Agent": BROWSER_UA, "Cookie": tampered(cookie)})
        events = await clicks.collect(clicks_of(share["id"]), count=2)
    assert sorted(e.data.self_click for e in events if isinstance(e.data, ClickRecorded)) == [False, True]


async def test_a_cookie_or_token_that_is_not_ours_is_a_visitors_click_whatever_its_bytes(
    sharing: Sharing,
) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    name = sharing.settings.advocate_cookie_name
    # Headers are bytes; the redirect reads them as latin-1, so any byte can reach the checks.
    odd: list[dict[str, Any]] = [
        {"Cookie": f"{name}=abc.\xe9\xe9".encode("latin-1")},
        {"Cookie": f"{name}=\xff.{'0' * 32}".encode("latin-1")},
        {"Authorization": "Bearer \xe9.\xe9.\xe9".encode("latin-1")},
    ]
    async with tap(sharing.settings, "chorus.clicks") as clicks:
        answers = [await visit(sharing, share["code"], {"User-Agent": BROWSER_UA, **h}) for h in odd]
        events = await clicks.collect(clicks_of(share["id"]), count=len(odd))
    assert [a.status_code for a in answers] == [302] * len(odd)
    assert [e.data.self_click for e in events if isinstance(e.data, ClickRecorded)] == [False] * len(odd)


async def test_do_not_track_and_no_track_parameter_leave_no_visitor_hash(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    async with tap(sharing.settings, "chorus.clicks") as clicks:
        dnt = await visit(sharing, share["code"], {"User-Agent": BROWSER_UA, "DNT": "1"})
        param = await visit(sharing, share["code"], {"User-Agent": BROWSER_UA}, query="?notrack=1")
        events = await clicks.collect(clicks_of(share["id"]), count=2)
    assert dnt.status_code == param.status_code == 302
    assert [e.data.visitor_hash for e in events if isinstance(e.data, ClickRecorded)] == [None, None]


async def test_an_unknown_code_is_a_404_page_and_records_nothing(sharing: Sharing) -> None:
    response = await visit(sharing, "NoSuchCode123", {"User-Agent": BROWSER_UA})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert (await visit(sharing, "../../etc", {})).status_code == 404


async def test_a_link_to_archived_content_goes_to_the_fallback_and_is_still_recorded(
    sharing: Sharing,
) -> None:
    org = new_org()
    await sharing.set_settings(org, fallback_url="https://www.example.com/more")
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    assert (await visit(sharing, share["code"], {"User-Agent": BROWSER_UA})).status_code == 302  # warm
    await sharing.publish(org, ContentArchived(content_id=share["content_id"], reason="expired"))

    async def redirected_to_fallback() -> bool:
        response = await visit(sharing, share["code"], {"User-Agent": BROWSER_UA})
        return response.headers.get("location") == "https://www.example.com/more"

    async with tap(sharing.settings, "chorus.clicks") as clicks:
        await eventually(redirected_to_fallback)
        [click] = await clicks.collect(lambda e: clicks_of(share["id"])(e) and e.data.fallback, count=1)
    assert click.data.share_id == share["id"]


async def test_a_scheduled_share_goes_out_when_due(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    when = datetime.now(UTC) + timedelta(seconds=2)
    async with tap(sharing.settings, "chorus.shares") as shares:
        share = await make_share(sharing, org, "adv-1", scheduled_at=when.isoformat())
        assert share["status"] == "pending"
        assert await shares.collect(lambda e: e.tenant == org, count=1, timeout_s=1.0) == []
        [made] = await shares.collect(lambda e: e.tenant == org, count=1, timeout_s=10)
    assert made.data.share_id == share["id"]

    async def marked_sent() -> bool:
        listing = await sharing.client.get("/v1/shares", headers=sharing.headers(org, "adv-1"))
        return bool(listing.json()["items"][0]["status"] == "sent")

    await eventually(marked_sent)


async def test_the_due_share_job_finds_pending_shares_through_an_index(sharing: Sharing) -> None:
    shares = sharing.app.state.runtime.db[SHARES]
    explain = await shares.find(due_filter(datetime.now(UTC))).explain()
    assert uses_an_index(explain), plan_stages(explain)


async def test_the_redirect_reads_who_withdrew_consent_through_an_index(sharing: Sharing) -> None:
    advocates = sharing.app.state.runtime.db[ADVOCATES]
    explain = await advocates.find(UNTRACKED, {"org": 1, "advocate_id": 1}).explain()
    assert uses_an_index(explain), plan_stages(explain)


async def test_an_idempotency_key_replays_the_first_share(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    content_id = await sharing.publish_content(org)
    await sharing.wait_shareable(org, "adv-1", content_id)
    body = {"content_id": content_id, "network": "x", "message": "Look at this"}
    headers = {**sharing.headers(org, "adv-1"), "Idempotency-Key": "k-1"}
    first = await sharing.client.post("/v1/shares", json=body, headers=headers)
    second = await sharing.client.post("/v1/shares", json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert second.headers.get("idempotent-replayed") == "true"
    listing = await sharing.client.get("/v1/shares", headers=sharing.headers(org, "adv-1"))
    assert len(listing.json()["items"]) == 1

    # The first answer lost (MongoDB failed over after the share was written, before its answer
    # was stored): the key is freed for the retry, which finds the share instead of making another.
    keys = sharing.app.state.runtime.db[idempotency.COLLECTION]
    assert (await keys.delete_many({"org": org})).deleted_count == 1
    retried = await sharing.client.post("/v1/shares", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert (retried.json()["id"], retried.json()["code"]) == (first.json()["id"], first.json()["code"])
    listing = await sharing.client.get("/v1/shares", headers=sharing.headers(org, "adv-1"))
    assert len(listing.json()["items"]) == 1


async def test_another_organisation_sees_neither_advocates_nor_shares(sharing: Sharing) -> None:
    org, other = new_org(), new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    admin_other = sharing.headers(other, "boss", ["admin"])
    assert (await sharing.client.get("/v1/advocates", headers=admin_other)).json()["items"] == []
    assert (await sharing.client.get("/v1/shares", headers=admin_other)).json()["items"] == []
    assert (await sharing.client.delete("/v1/advocates/adv-1", headers=admin_other)).status_code == 404
    assert (
        await sharing.client.get("/v1/advocates/me", headers=sharing.headers(other, "adv-1"))
    ).status_code == 404
    admin = sharing.headers(org, "boss", ["admin"])
    assert [a["id"] for a in (await sharing.client.get("/v1/advocates", headers=admin)).json()["items"]] == [
        "adv-1"
    ]
    assert [s["id"] for s in (await sharing.client.get("/v1/shares", headers=admin)).json()["items"]] == [
        share["id"]
    ]
    # Content published for one organisation cannot be shared from another.
    response = await sharing.client.post(
        "/v1/shares",
        json={"content_id": share["content_id"], "network": "linkedin", "message": "hi"},
        headers=sharing.headers(other, "adv-1"),
    )
    assert response.status_code in (403, 404)


async def test_lists_are_paginated_with_a_cursor(sharing: Sharing) -> None:
    org = new_org()
    admin = sharing.headers(org, "boss", ["admin"])
    for i in range(3):
        await sharing.enrol(org, f"adv-{i}")
    page1 = (await sharing.client.get("/v1/advocates?limit=2", headers=admin)).json()
    page2 = (
        await sharing.client.get(f"/v1/advocates?limit=2&cursor={page1['next_cursor']}", headers=admin)
    ).json()
    assert [a["id"] for a in page1["items"] + page2["items"]] == ["adv-0", "adv-1", "adv-2"]
    assert page2["next_cursor"] is None


async def test_a_click_continues_the_trace_of_its_share_and_links_the_visitors_request(
    sharing: Sharing,
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("telemetry is not set up in this process")
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    stored = await sharing.app.state.runtime.db["shares"].find_one({"_id": share["id"], "org": org})
    share_trace_id = int(stored["trace"]["traceparent"].split("-")[1], 16)
    async with tap(sharing.settings, "chorus.clicks") as clicks:
        await visit(sharing, share["code"], {"User-Agent": BROWSER_UA})
        await clicks.collect(clicks_of(share["id"]), count=1)

    def of_share(span: Any) -> bool:
        return bool(span.attributes.get("chorus.share_id") == share["id"])

    [recorded] = [s for s in spans.get_finished_spans() if s.name == "record clicks" and of_share(s)]
    assert recorded.context.trace_id == share_trace_id
    [send] = [
        s
        for s in spans.get_finished_spans()
        if s.name == "send chorus.clicks" and s.parent and s.parent.span_id == recorded.context.span_id
    ]
    assert send.context.trace_id == share_trace_id
    [request] = [
        s for s in spans.get_finished_spans() if s.context.span_id == recorded.links[0].context.span_id
    ]
    assert request.name == "GET /r/{code}" and request.context.trace_id != share_trace_id


def _redirect_count(metrics_text: str, outcome: str, bot: str) -> float:
    for line in metrics_text.splitlines():
        if (
            line.startswith("chorus_redirect_requests_total{")
            and f'outcome="{outcome}"' in line
            and f'bot="{bot}"' in line.lower()
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_redirects_are_counted_by_outcome_on_the_metrics_endpoint(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "ada")
    share = await make_share(sharing, org, "ada")
    before = (await sharing.client.get("/metrics")).text
    browser = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0"}
    for _ in range(3):
        assert (await sharing.client.get(f"/r/{share['code']}", headers=browser)).status_code == 302
    slack = {"User-Agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"}
    assert (await sharing.client.get(f"/r/{share['code']}", headers=slack)).status_code == 302
    assert (await sharing.client.get("/r/no-such-code")).status_code == 404
    after = (await sharing.client.get("/metrics")).text
    for outcome, bot, added in [
        ("redirected", "false", 3),
        ("redirected", "true", 1),
        ("not_found", "false", 1),
    ]:
        assert _redirect_count(after, outcome, bot) - _redirect_count(before, outcome, bot) == added


async def test_clicks_follow_the_advocates_tracking_consent_within_seconds(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    visitors = iter(range(1, 250))

    async with tap(sharing.settings, "chorus.clicks") as clicks:

        async def next_click_tracked() -> bool:
            ip = f"198.51.100.{next(visitors)}"
            await visit(sharing, share["code"], {"User-Agent": BROWSER_UA}, ip=ip)
            [event] = await clicks.collect(clicks_of(share["id"]), count=1)
            assert isinstance(event.data, ClickRecorded)
            return event.data.tracked

        async def until_clicks_are(tracked: bool) -> None:
            for _ in range(20):  # a click every 0.25 s: 5 s at most
                if await next_click_tracked() is tracked:
                    return
                await asyncio.sleep(0.25)
            raise AssertionError(f"clicks were not tracked={tracked} 5 s after the consent changed")

        assert await next_click_tracked()
        await sharing.enrol(org, "adv-1", consents={"tracking": False, "public_ranking": True})
        await until_clicks_are(False)
        await sharing.enrol(org, "adv-1", consents={"tracking": True, "public_ranking": True})
        await until_clicks_are(True)

    # Erased, the advocate leaves the redirect's memory too, on every replica's next refresh.
    await sharing.enrol(org, "adv-1", consents={"tracking": False, "public_ranking": True})
    await eventually(lambda: (org, "adv-1") in sharing.app.redirect.state.untracked)
    erased = await sharing.client.delete(
        "/v1/advocates/adv-1", headers=sharing.headers(org, "boss", ["admin"])
    )
    assert erased.status_code in (200, 202, 204), erased.text
    await eventually(lambda: (org, "adv-1") not in sharing.app.redirect.state.untracked)


async def test_an_admin_neither_gives_back_a_consent_the_advocate_withdrew_nor_shows_their_name(
    sharing: Sharing,
) -> None:
    org = new_org()
    admin = sharing.headers(org, "boss", ["admin"])
    withdrawn = {"tracking": False, "public_ranking": False}
    given = {"tracking": True, "public_ranking": True}
    profile = {"display_name": "Ada Lovelace", "team": "sales"}

    async def admin_writes(**fields: Any) -> dict[str, Any]:
        response = await sharing.client.put("/v1/advocates/ada", json={**profile, **fields}, headers=admin)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async with tap(sharing.settings, "chorus.advocates") as advocates:
        # Someone new starts with the defaults, whatever the admin says of their choices.
        enrolled = await admin_writes(consents=withdrawn, name_visible=True)
        assert (enrolled["consents"], enrolled["name_visible"]) == (given, None)
        # The advocate withdraws both consents and hides their name; the admin then writes their
        # profile without those, and with them given back.
        await sharing.enrol(org, "ada", consents=withdrawn, name_visible=False)
        for fields in ({}, {"consents": given, "name_visible": True}):
            written = await admin_writes(**fields, location="paris")
            assert (written["consents"], written["name_visible"], written["location"]) == (
                withdrawn,
                False,
                "paris",
            )
        own = await sharing.client.get("/v1/advocates/me", headers=sharing.headers(org, "ada"))
        assert (own.json()["consents"], own.json()["name_visible"]) == (withdrawn, False)
        events = await advocates.collect(lambda e: e.tenant == org, count=4)

    # What metrics and recognition read of them says so too.
    assert [e.type for e in events] == ["chorus.advocate.enrolled"] + ["chorus.advocate.updated"] * 3
    profiles = [e.data for e in events if isinstance(e.data, AdvocateProfile)]
    assert [(p.tracking_consent, p.public_ranking_consent, p.display_name) for p in profiles] == [
        (True, True, None),
        *[(False, False, None)] * 3,
    ]
    assert (org, "ada") in await sharing.app.state.advocates.untracked()


async def test_an_advocate_who_leaves_a_choice_out_of_their_profile_keeps_it_as_it_was(
    sharing: Sharing,
) -> None:
    org = new_org()
    await sharing.set_settings(org, names_visible_by_default=True)
    me = sharing.headers(org, "ada")
    profile = {"display_name": "Ada Lovelace", "team": "sales"}

    async def write_mine(**fields: Any) -> tuple[dict[str, bool], bool | None]:
        response = await sharing.client.put("/v1/advocates/me", json={**profile, **fields}, headers=me)
        assert response.status_code == 200, response.text
        return response.json()["consents"], response.json()["name_visible"]

    async def read_mine() -> tuple[dict[str, bool], bool | None]:
        response = await sharing.client.get("/v1/advocates/me", headers=me)
        assert response.status_code == 200, response.text
        return response.json()["consents"], response.json()["name_visible"]

    async with tap(sharing.settings, "chorus.advocates") as advocates:
        # Someone new: what they leave out is the default (given; their name as the organisation
        # says). They withdraw public ranking, then hide their name.
        assert await write_mine(consents={"public_ranking": False}) == (
            {"tracking": True, "public_ranking": False},
            None,
        )
        assert await write_mine(name_visible=False) == ({"tracking": True, "public_ranking": False}, False)
        # They leave their consents out, then give only tracking's: nothing they withdrew comes back.
        assert await write_mine(location="paris") == ({"tracking": True, "public_ranking": False}, False)
        assert await write_mine(consents={"tracking": False}) == (
            {"tracking": False, "public_ranking": False},
            False,
        )
        assert await read_mine() == ({"tracking": False, "public_ranking": False}, False)
        # What they state is applied as given: null follows the organisation's default again.
        assert await write_mine(consents={"tracking": None, "public_ranking": True}, name_visible=None) == (
            {"tracking": False, "public_ranking": True},
            None,
        )
        assert await read_mine() == ({"tracking": False, "public_ranking": True}, None)
        events = await advocates.collect(lambda e: e.tenant == org, count=5)

    # What metrics and recognition read of them says so too.
    assert [e.type for e in events] == ["chorus.advocate.enrolled"] + ["chorus.advocate.updated"] * 4
    profiles = [e.data for e in events if isinstance(e.data, AdvocateProfile)]
    assert [(p.tracking_consent, p.public_ranking_consent, p.display_name) for p in profiles] == [
        (True, False, "Ada Lovelace"),
        (True, False, None),
        (True, False, None),
        (False, False, None),
        (False, True, "Ada Lovelace"),
    ]
    assert (org, "ada") in await sharing.app.state.advocates.untracked()


async def test_a_visitor_at_2359_and_0001_inside_a_48h_window_is_unique_once(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    await sharing.set_settings(org, unique_click_window_hours=48)

    async def window_known() -> bool:
        return sharing.app.redirect.state.window_s.get(org) == 48 * 3600

    await eventually(window_known)
    browser = {"User-Agent": BROWSER_UA}
    midnight = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(), tzinfo=UTC)
    visits = []
    async with tap(sharing.settings, "chorus.clicks") as clicks:
        try:
            # 23:59, 00:01 (the visitor hash's daily salt changes between them), then 49 h later.
            for at in (
                midnight - timedelta(minutes=1),
                midnight + timedelta(minutes=1),
                midnight + timedelta(hours=49),
            ):
                sharing.clock.offset_s = at.timestamp() - real_time.time()
                visits.append(await visit(sharing, share["code"], browser, ip="198.51.100.77"))
        finally:
            sharing.clock.offset_s = 0
        events = await clicks.collect(clicks_of(share["id"]), count=3)
    assert [r.status_code for r in visits] == [302] * 3
    by_time = sorted(
        (e.data for e in events if isinstance(e.data, ClickRecorded)), key=lambda c: c.clicked_at
    )
    assert [c.unique for c in by_time] == [True, False, True]
    assert by_time[0].visitor_hash != by_time[1].visitor_hash  # the events still carry a daily hash


async def test_replicas_agree_on_a_visitor_and_a_restarted_redirect_still_knows_them(
    sharing: Sharing, tmp_path: Path
) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    db = sharing.app.state.runtime.db
    # A second replica, or the first one restarted: a redirect with nothing in memory, its own
    # spool and relay, and the service's database.
    replica = RedirectApp(sharing.settings)
    relay = ClickRelay(
        sharing.settings,
        ClickSpool(str(tmp_path / "replica.sqlite3")),
        seen=SeenVisitorsStore(db),
        flush_interval_s=0.01,
        batch=20,
    )
    await relay.start()
    replica.attach(SharesStore(db).by_code, relay.spool, TokenVerifier(sharing.settings))
    browser = {"User-Agent": BROWSER_UA}
    try:
        async with tap(sharing.settings, "chorus.clicks") as clicks:
            first = await visit(sharing, share["code"], browser, ip="198.51.100.88")
            transport = httpx.ASGITransport(app=replica, client=("198.51.100.88", 51000))
            async with httpx.AsyncClient(transport=transport, base_url="http://replica") as visitor:
                again = await visitor.get(f"/r/{share['code']}", headers=browser)
            events = await clicks.collect(clicks_of(share["id"]), count=2)
    finally:
        await relay.stop()
    assert (first.status_code, again.status_code) == (302, 302)
    # One of the two is the visitor's unique click: whichever relay recorded the visitor first.
    assert sorted(e.data.unique for e in events if isinstance(e.data, ClickRecorded)) == [False, True]


def redirect_replica(sharing: Sharing, spool: ClickSpool) -> RedirectApp:
    """Another replica's redirect (a sharing-redirect pod) on the service's database: it took
    none of the requests, nor reads the events, that change a link."""
    replica = RedirectApp(sharing.settings)
    db = sharing.app.state.runtime.db
    replica.attach(SharesStore(db).by_code, spool, TokenVerifier(sharing.settings))
    return replica


async def refresh_replica(sharing: Sharing, replica: RedirectApp) -> None:
    """The replica's periodic refresh of what it holds (main.py, refresh-redirect-state)."""
    services = sharing.app.state
    await refresh_state(replica, services.shares.catalog, services.advocates, services.shares)


async def test_an_erased_advocates_links_leave_every_replicas_cache_on_its_next_refresh(
    sharing: Sharing, tmp_path: Path
) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    relay = ClickRelay(
        sharing.settings,
        ClickSpool(str(tmp_path / "replica.sqlite3")),
        seen=SeenVisitorsStore(sharing.app.state.runtime.db),
        flush_interval_s=0.01,
        batch=20,
    )
    await relay.start()
    replica = redirect_replica(sharing, relay.spool)
    browser = {"User-Agent": BROWSER_UA}
    try:
        async with tap(sharing.settings, "chorus.clicks") as clicks:
            before = await visit(sharing, share["code"], browser, via=replica)  # now in its cache
            erased = await sharing.client.delete("/v1/advocates/adv-1", headers=sharing.headers(org, "adv-1"))
            assert erased.status_code == 204, erased.text
            await refresh_replica(sharing, replica)
            after = await visit(sharing, share["code"], browser, via=replica)
            events = await clicks.collect(clicks_of(share["id"]), count=2)
    finally:
        await relay.stop()
    assert (before.status_code, after.status_code) == (302, 302)  # the link keeps working
    by_click = {e.data.click_id: e.data for e in events if isinstance(e.data, ClickRecorded)}

    def click_of(response: httpx.Response) -> ClickRecorded:
        return by_click[parse_qs(urlsplit(response.headers["location"]).query)[CLICK_ID_PARAM][0]]

    assert click_of(before).advocate_id == "adv-1"
    # Not ten minutes more of clicks naming the person erased: their anonymous id, as in the store.
    assert click_of(after).advocate_id.startswith("erased-") and click_of(after).team is None


async def test_a_cancelled_shares_link_leads_to_the_fallback_and_credits_nobody_on_every_replica(
    sharing: Sharing, tmp_path: Path
) -> None:
    org = new_org()
    await sharing.set_settings(org, fallback_url="https://www.example.com/more")
    await sharing.enrol(org, "adv-1")
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    share = await make_share(sharing, org, "adv-1", scheduled_at=later)
    spool = ClickSpool(str(tmp_path / "replica.sqlite3"))
    await spool.open()
    replica = redirect_replica(sharing, spool)
    browser = {"User-Agent": BROWSER_UA}
    try:
        await refresh_replica(sharing, replica)
        # Scheduled, not out yet: its link already leads to the content (and is now cached).
        pending = await visit(sharing, share["code"], browser, via=replica)
        assert await sharing.app.state.shares.cancel_scheduled(org, "adv-1") == 1  # as a leaver's are
        await refresh_replica(sharing, replica)
        cancelled = await visit(sharing, share["code"], browser, via=replica)
        buffered = spool.buffered
    finally:
        await spool.close()
    assert pending.status_code == 302
    assert urlsplit(pending.headers["location"]).path == "/blog/new-product"
    # It never went out: its visitors go on to the organisation's page, and no click credits anyone.
    assert cancelled.status_code == 302
    assert cancelled.headers["location"] == "https://www.example.com/more"
    assert buffered == 1  # the click on the pending link alone


async def test_new_visitors_are_kept_in_one_write_and_one_another_relay_kept_stays_its(
    sharing: Sharing,
) -> None:
    store = SeenVisitorsStore(sharing.app.state.runtime.db)
    acme, globex = new_org(), new_org()
    now = real_time.time()  # the windows end in the future: the TTL index leaves them be
    # Another relay kept this visitor first, with its own click.
    assert await store.record_first(acme, f"{acme}-s1|v1", Seen(now, "theirs"), 3600, None)
    ours = [
        NewVisitor(acme, f"{acme}-s1|v1", Seen(now + 1, "ours-1"), 3600),
        NewVisitor(acme, f"{acme}-s1|v2", Seen(now + 2, "ours-2"), 3600),
        NewVisitor(globex, f"{globex}-s9|v1", Seen(now + 3, "ours-3"), 7200),
    ]
    kept = await store.record_new(ours)
    assert kept == {f"{acme}-s1|v2", f"{globex}-s9|v1"}
    assert await store.seen([v.seen_id for v in ours]) == {
        f"{acme}-s1|v1": Seen(now, "theirs"),
        f"{acme}-s1|v2": Seen(now + 2, "ours-2"),
        f"{globex}-s9|v1": Seen(now + 3, "ours-3"),
    }
    stored = await sharing.app.state.runtime.db[SEEN].find_one({"_id": f"{globex}-s9|v1", "org": globex})
    assert stored is not None
    assert stored["expire_at"].timestamp() == pytest.approx(now + 3 + 7200, abs=0.001)
    assert await store.record_new(ours) == set()  # sent again after a failure: nothing new
    # The same visitor twice in one write is kept once, and said kept.
    twice = NewVisitor(acme, f"{acme}-s2|v1", Seen(now + 4, "ours-4"), 3600)
    assert await store.record_new([twice, twice]) == {twice.seen_id}
    assert await store.seen([twice.seen_id]) == {twice.seen_id: Seen(now + 4, "ours-4")}


async def test_a_client_past_the_redirect_limit_gets_a_429_and_records_nothing(
    sharing: Sharing, tmp_path: Path
) -> None:
    org = new_org()
    await sharing.enrol(org, "adv-1")
    share = await make_share(sharing, org, "adv-1")
    limited = sharing.settings.model_copy(update={"rate_limits_per_minute": {"redirect": 3}})
    redirect = RedirectApp(limited, clock=lambda: 1_800_000_010.0)  # 50 s left in its minute
    spool = ClickSpool(str(tmp_path / "limited.sqlite3"))
    await spool.open()
    redirect.attach(SharesStore(sharing.app.state.runtime.db).by_code, spool, TokenVerifier(limited))

    async def get(ip: str, code: str = share["code"]) -> httpx.Response:
        transport = httpx.ASGITransport(app=redirect, client=(ip, 51000))
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as visitor:
            return await visitor.get(f"/r/{code}", headers={"User-Agent": BROWSER_UA})

    try:
        answers = [await get("198.51.100.9") for _ in range(3)]
        answers.append(await get("198.51.100.9", "no-such-code"))  # walking codes counts too
        other = await get("198.51.100.10")
        buffered = spool.buffered
    finally:
        await spool.close()
    assert [a.status_code for a in answers] == [302, 302, 302, 429]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "50"
    assert refused.json()["status"] == 429 and refused.json()["type"].endswith("/too-many-requests")
    assert other.status_code == 302  # another address is not held back
    assert buffered == 4  # the three redirects and the other address's: the refused one recorded nothing
