"""Colleagues by name (issue 16): an advocate's name leaves sharing in their events only when
they let colleagues see it (their own choice, else their organisation's default), and the
colleague directory finds by name only those, in the caller's organisation only."""

from __future__ import annotations

from typing import Any

from services.sharing.advocates.service import AdvocatesService
from shared.events.advocates import AdvocateProfile
from tests.helpers import new_org, tap
from tests.integration.sharing.conftest import Sharing


def announced(events: list[Any], org: str) -> dict[str, tuple[str | None, str | None]]:
    """Each advocate's last announced (display_name, avatar_url) in `org`."""
    last: dict[str, tuple[str | None, str | None]] = {}
    for e in events:
        if e.tenant == org and isinstance(e.data, AdvocateProfile):
            last[e.data.advocate_id] = (e.data.display_name, e.data.avatar_url)
    return last


async def find(sharing: Sharing, org: str, sub: str, **params: Any) -> dict[str, Any]:
    response = await sharing.client.get("/v1/colleagues", headers=sharing.headers(org, sub), params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def names(page: dict[str, Any]) -> list[str]:
    return [c["display_name"] for c in page["items"]]


async def test_names_go_out_only_for_those_who_allow_it_by_default_or_by_choice(sharing: Sharing) -> None:
    org = new_org()
    avatar = "https://img.example.com/a.png"
    async with tap(sharing.settings, "chorus.advocates") as advocates:
        # The organisation's default (no setting yet): ids only.
        await sharing.enrol(org, "follows", display_name="Fay Follows", avatar_url=avatar)
        await sharing.enrol(org, "shows", display_name="Sam Shows", avatar_url=avatar, name_visible=True)
        await sharing.enrol(org, "hides", display_name="Hal Hides", avatar_url=avatar, name_visible=False)
        events = await advocates.collect(lambda e: e.tenant == org, count=3)
        assert announced(events, org) == {
            "follows": (None, None),
            "shows": ("Sam Shows", avatar),
            "hides": (None, None),
        }
        assert names(await find(sharing, org, "hides")) == ["Sam Shows"]

        # The organisation shows names by default: those who follow the default are announced
        # again with their name; those who chose are not announced again.
        await sharing.set_settings(org, names_visible_by_default=True)
        again = await advocates.collect(lambda e: e.tenant == org, count=1, settle_s=2.0)
        assert [e.data.advocate_id for e in again] == ["follows"]
        events += again
        assert announced(events, org) == {
            "follows": ("Fay Follows", avatar),
            "shows": ("Sam Shows", avatar),
            "hides": (None, None),
        }
        assert names(await find(sharing, org, "hides")) == ["Fay Follows", "Sam Shows"]

        # A personal choice both ways against the new default.
        me = await sharing.enrol(org, "follows", display_name="Fay Follows", name_visible=False)
        assert me["name_visible"] is False
        # Null, back to the default: shown (left out, their choice would stay as it is).
        await sharing.enrol(org, "hides", display_name="Hal Hides", name_visible=None)
        events += await advocates.collect(lambda e: e.tenant == org, count=2)
        assert announced(events, org) == {
            "follows": (None, None),
            "shows": ("Sam Shows", avatar),
            "hides": ("Hal Hides", None),
        }
    assert names(await find(sharing, org, "shows")) == ["Hal Hides", "Sam Shows"]


async def test_the_colleague_directory_finds_by_name_prefix_within_the_organisation(sharing: Sharing) -> None:
    org, other = new_org(), new_org()
    for org_id in (org, other):
        await sharing.set_settings(org_id, names_visible_by_default=True)
    await sharing.enrol(org, "ann", display_name="Ann Lee", team="sales")
    await sharing.enrol(org, "anna", display_name="anna Berg", team="support")
    await sharing.enrol(org, "andy", display_name="Andy Hidden", name_visible=False)
    await sharing.enrol(org, "bob", display_name="Bob Stone")
    await sharing.enrol(other, "anne", display_name="Anne Elsewhere")

    page = await find(sharing, org, "bob", q="AN")
    assert [(c["advocate_id"], c["display_name"], c["team"]) for c in page["items"]] == [
        ("ann", "Ann Lee", "sales"),
        ("anna", "anna Berg", "support"),
    ]
    # Another organisation's member sees only their own colleagues.
    assert names(await find(sharing, other, "anne", q="an")) == ["Anne Elsewhere"]
    assert names(await find(sharing, org, "bob", q="anne")) == []

    # Pages follow each other in name order.
    first = await find(sharing, org, "bob", limit=2)
    assert names(first) == ["Ann Lee", "anna Berg"] and first["next_cursor"]
    rest = await find(sharing, org, "bob", limit=2, cursor=first["next_cursor"])
    assert names(rest) == ["Bob Stone"] and rest["next_cursor"] is None

    bad = await sharing.client.get(
        "/v1/colleagues", headers=sharing.headers(org, "bob"), params={"cursor": "not-a-cursor"}
    )
    assert bad.status_code == 422 and "cursor" in bad.text


async def test_the_colleague_directory_needs_a_member_of_the_organisation(sharing: Sharing) -> None:
    response = await sharing.client.get("/v1/colleagues")
    assert response.status_code == 401


async def test_a_bad_avatar_url_is_refused_naming_the_field(sharing: Sharing) -> None:
    org = new_org()
    response = await sharing.client.put(
        "/v1/advocates/me",
        json={"display_name": "Ann", "avatar_url": "javascript:alert(1)"},
        headers=sharing.headers(org, "ann"),
    )
    assert response.status_code == 422 and "avatar_url" in response.text
    missing = await sharing.client.get("/v1/advocates/me", headers=sharing.headers(org, "ann"))
    assert missing.status_code == 404


async def test_a_reannouncement_never_overtakes_a_choice_made_while_it_ran(sharing: Sharing) -> None:
    org = new_org()
    service: AdvocatesService = sharing.app.state.advocates
    store = service.store
    read_page = store.following_default

    async def hide_and_withdraw() -> None:
        await sharing.enrol(org, "ida", display_name="Ida Hides", name_visible=False)
        await sharing.enrol(org, "tom", display_name="Tom Stays", consents={"tracking": False})

    async def page_then_changes(*args: Any) -> Any:
        # The organisation's page of advocates is read, then both change before it is announced.
        page = await read_page(*args)
        await hide_and_withdraw()
        return page

    async with tap(sharing.settings, "chorus.advocates") as advocates:
        await sharing.enrol(org, "ida", display_name="Ida Hides")
        await sharing.enrol(org, "tom", display_name="Tom Stays")
        store.following_default = page_then_changes
        try:
            await service.follow_names_default(org, True)
        finally:
            del store.following_default  # the class's own again
        events = await advocates.collect(lambda e: e.tenant == org, count=5, settle_s=2.0)
    last = {e.data.advocate_id: e.data for e in events if isinstance(e.data, AdvocateProfile)}
    # Ida hid her name: the re-announcement leaves her be. Tom still follows the default: he is
    # announced with his name and as he is now, without tracking consent.
    assert [e.data.advocate_id for e in events].count("ida") == 2
    assert last["ida"].display_name is None
    assert (last["tom"].display_name, last["tom"].tracking_consent) == ("Tom Stays", False)
    assert names(await find(sharing, org, "ida")) == ["Tom Stays"]


async def test_a_handle_stored_before_text_was_checked_is_answered_as_stored(sharing: Sharing) -> None:
    org = new_org()
    await sharing.enrol(org, "ann")
    # Stored before request text refused control characters (2026-12-07): the rule of a request
    # must not make the stored profile a 500.
    db = sharing.app.state.runtime.db
    legacy = {"$set": {"networks.0.handle": "ann\tlegacy"}}
    await db["advocates"].update_one({"_id": f"{org}:ann", "org": org}, legacy)
    mine = await sharing.client.get("/v1/advocates/me", headers=sharing.headers(org, "ann"))
    listed = await sharing.client.get("/v1/advocates", headers=sharing.headers(org, "boss", ["admin"]))
    assert mine.status_code == 200, mine.text
    assert mine.json()["networks"][0]["handle"] == "ann\tlegacy"
    assert listed.status_code == 200, listed.text
    assert [a["networks"][0]["handle"] for a in listed.json()["items"]] == ["ann\tlegacy"]
