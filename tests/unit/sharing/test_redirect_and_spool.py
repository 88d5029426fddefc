"""The redirect's hot path and the click spool, without the stack (a dict stands in for MongoDB)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.metrics import CallbackOptions

from services.sharing.redirect import spool as spool_module
from services.sharing.redirect.app import RedirectApp
from services.sharing.redirect.spool import ClickRelay, ClickSpool, click_event
from services.sharing.settings import SharingSettings
from services.sharing.shares.domain import Share
from shared.auth import TokenVerifier
from shared.events.clicks import ClickRecorded

SHARE = Share(
    id="s1",
    org="org-1",
    advocate_id="a1",
    content_id="c1",
    network="linkedin",
    message="",
    code="Code1234567",
    short_url="https://go.example/r/Code1234567",
    target_url="https://example.com/p?utm_source=linkedin&utm_content=s1#top",
    status="sent",
    send_at=None,
    scheduled_at=None,
    shared_at=None,
    created_at=datetime(2026, 5, 4, tzinfo=UTC),
    event_id="e1",
    trace={},
    team="sales",
    tags=("launch",),
)


async def redirect_app(tmp_path: Path, shares: dict[str, Share]) -> tuple[RedirectApp, ClickSpool]:
    settings = SharingSettings(telemetry_enabled=False, otlp_endpoint=None)
    app = RedirectApp(settings)
    spool = ClickSpool(str(tmp_path / "spool.sqlite3"))
    await spool.open()

    async def load(code: str) -> Share | None:
        return shares.get(code)

    app.attach(load, spool, TokenVerifier(settings))
    return app, spool


async def get(app: RedirectApp, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://link") as client:
        return await client.get(path, headers=headers)


async def test_a_known_code_redirects_to_its_target_with_a_click_id(tmp_path: Path) -> None:
    app, spool = await redirect_app(tmp_path, {"Code1234567": SHARE})
    response = await get(
        app, "/r/Code1234567", **{"user-agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0"}
    )
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("https://example.com/p?utm_source=linkedin&utm_content=s1&chorus_cid=")
    assert location.endswith("#top")
    [record] = spool._buffer
    assert (
        location == f"https://example.com/p?utm_source=linkedin&utm_content=s1&chorus_cid={record['id']}#top"
    )
    assert "192.0.2.1" not in str(record)
    event = click_event(record)
    assert isinstance(event.data, ClickRecorded)
    assert (event.data.share_id, event.data.bot, event.data.unique, event.tenant) == (
        "s1",
        False,
        True,
        "org-1",
    )
    await spool.close()


CHROME = "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0"
LINKEDIN_PREVIEW = "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"


@pytest.mark.parametrize(
    ("headers", "flag"),
    [
        ({"sec-purpose": "prefetch;prerender"}, "prefetch"),
        ({"purpose": "prefetch"}, "prefetch"),
        ({"x-moz": "prefetch"}, "prefetch"),
        ({"x-purpose": "preview"}, "preview"),
        (
            {
                "user-agent": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)"
            },
            "crawler user agent",
        ),
    ],
)
async def test_prefetches_and_previews_are_flagged_with_their_reason_and_leave_the_visitor_unseen(
    tmp_path: Path, headers: dict[str, str], flag: str
) -> None:
    app, spool = await redirect_app(tmp_path, {"Code1234567": SHARE})
    flagged = await get(app, "/r/Code1234567", **{"user-agent": CHROME, **headers})
    assert flagged.status_code == 302  # still redirected: a preview may be followed
    person = await get(app, "/r/Code1234567", **{"user-agent": CHROME})
    first, then = (click_event(record).data for record in spool._buffer)
    assert isinstance(first, ClickRecorded) and isinstance(then, ClickRecorded)
    assert (first.bot, first.flag, first.unique) == (True, flag, False)
    if "user-agent" not in headers:  # the same visitor (same address and browser) comes next: unique
        assert (then.bot, then.flag, then.unique) == (False, None, True)
    assert person.status_code == 302
    await spool.close()


async def test_a_head_request_is_flagged(tmp_path: Path) -> None:
    app, spool = await redirect_app(tmp_path, {"Code1234567": SHARE})
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://link") as client:
        assert (await client.head("/r/Code1234567", headers={"user-agent": CHROME})).status_code == 302
    [record] = spool._buffer
    assert (click_event(record).data.bot, click_event(record).data.flag) == (True, "HEAD request")  # type: ignore[attr-defined]
    await spool.close()


async def test_unknown_codes_get_a_404_page_and_never_a_redirect(tmp_path: Path) -> None:
    app, spool = await redirect_app(tmp_path, {"Code1234567": SHARE})
    for path in ("/r/Nope1234567", "/r/", "/r/https://evil.example", "/r//evil.example", "/r/Code1234567/x"):
        response = await get(app, path)
        assert response.status_code == 404, path
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
    assert spool.buffered == 0
    await spool.close()


async def test_a_cached_link_is_served_without_asking_the_store_again(tmp_path: Path) -> None:
    calls: list[str] = []
    shares = {"Code1234567": SHARE}
    app, spool = await redirect_app(tmp_path, shares)

    async def counting_load(code: str) -> Share | None:
        calls.append(code)
        return shares.get(code)

    app.attach(counting_load, spool, TokenVerifier(app.settings))
    for _ in range(5):
        assert (await get(app, "/r/Code1234567")).status_code == 302
    assert calls == ["Code1234567"]
    await spool.close()


async def test_the_spool_keeps_clicks_across_a_restart_until_deleted(tmp_path: Path) -> None:
    path = str(tmp_path / "spool.sqlite3")
    spool = ClickSpool(path)
    await spool.open()
    records: list[dict[str, Any]] = [{"id": f"k{i}", "n": i} for i in range(5)]
    for record in records:
        spool.append(record)
    assert await spool.flush() == 5
    await spool.close()

    reopened = ClickSpool(path)
    await reopened.open()
    rows = await reopened.read(3)
    assert [r for _, r in rows] == records[:3]
    await reopened.delete([seq for seq, _ in rows[:2]])
    assert [r["id"] for _, r in await reopened.read(10)] == ["k2", "k3", "k4"]
    assert await reopened.count() == 3
    await reopened.close()


async def test_the_spool_reads_rows_an_earlier_version_wrote_as_text(tmp_path: Path) -> None:
    # A replica upgraded with clicks still in its spool file sends them like any others.
    path = tmp_path / "spool.sqlite3"
    spool = ClickSpool(str(path))
    await spool.open()
    with contextlib.closing(sqlite3.connect(path)) as earlier:
        earlier.execute("INSERT INTO clicks (body) VALUES (?)", ('{"id":"old","time":1765000000.25}',))
        earlier.commit()
    spool.append({"id": "new", "time": 1765000001.5})
    await spool.flush()
    assert [r for _, r in await spool.read(10)] == [
        {"id": "old", "time": 1765000000.25},
        {"id": "new", "time": 1765000001.5},
    ]
    await spool.close()


async def test_a_flush_writes_a_statement_per_step_not_per_click(tmp_path: Path) -> None:
    # sqlite3 lets go of the GIL for each statement, and taking it back from a busy event loop
    # is slow: a statement per click let the buffer grow faster than it was written.
    spool = ClickSpool(str(tmp_path / "spool.sqlite3"))
    await spool.open()
    clicks = [{"id": f"k{i}"} for i in range(2 * spool_module.FLUSH_STEP + 1)]
    for click in clicks:
        spool.append(click)
    statements: list[str] = []
    assert spool._conn is not None
    spool._conn.set_trace_callback(statements.append)
    await spool.flush()
    spool._conn.set_trace_callback(None)
    assert sum(s.startswith("INSERT") for s in statements) == 3
    assert [r for _, r in await spool.read(len(clicks))] == clicks
    await spool.close()


async def test_a_large_flush_lets_requests_in_between_its_steps_and_keeps_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = ClickSpool(str(tmp_path / "spool.sqlite3"))
    await spool.open()
    clicks = [f"k{i}" for i in range(5 * spool_module.FLUSH_STEP)]
    for click in clicks:
        spool.append({"id": click})
    buffered_when_written: list[int] = []
    run = spool._run

    async def run_noting_the_buffer(fn: Any, *args: Any) -> Any:
        if fn == spool._insert:
            buffered_when_written.append(spool.buffered)
        return await run(fn, *args)

    monkeypatch.setattr(spool, "_run", run_noting_the_buffer)

    async def a_request_meanwhile() -> None:
        await asyncio.sleep(0)
        spool.append({"id": "late"})  # what the redirect does while the flush is under way

    request = asyncio.create_task(a_request_meanwhile())
    assert await spool.flush() == len(clicks)
    await request
    # The request came in before the batch went to the disk: the loop turned while it was
    # being serialised, rather than waiting for all of it.
    assert buffered_when_written == [1]
    assert await spool.flush() == 1
    assert [r["id"] for _, r in await spool.read(len(clicks) + 10)] == [*clicks, "late"]
    await spool.close()


def backlog_gauge() -> list[float]:
    """What the `chorus.click_spool.backlog` gauge would report at a scrape now."""
    return [o.value for o in spool_module._observe_backlog(CallbackOptions())]


async def test_the_backlog_gauge_counts_clicks_committed_and_not_yet_acknowledged(tmp_path: Path) -> None:
    settings = SharingSettings(telemetry_enabled=False, otlp_endpoint=None)
    spool = ClickSpool(str(tmp_path / "spool.sqlite3"))
    relay = ClickRelay(settings, spool, flush_interval_s=60, batch=10)
    before = backlog_gauge()  # relays an earlier test failed to stop, if any
    others = sum(before)
    await relay.start(flush=False, drain=False)  # no loops: this test drives each step
    assert backlog_gauge() == before  # nothing counted yet: no value rather than a made-up zero
    for i in range(4):
        spool.append({"id": f"k{i}"})
    assert await relay.measure_backlog() == 0  # buffered in memory is not in the file yet
    await spool.flush()
    assert await relay.measure_backlog() == 4
    assert backlog_gauge() == [others + 4]
    rows = await spool.read(10)
    await spool.delete([seq for seq, _ in rows[:3]])  # what Kafka acknowledged
    await relay.measure_backlog()
    assert backlog_gauge() == [others + 1]
    await relay.stop()
    assert backlog_gauge() == before  # a stopped relay reports nothing


async def test_the_buffered_gauge_counts_clicks_taken_and_not_yet_in_the_file(tmp_path: Path) -> None:
    def buffered_gauge() -> list[float]:
        return [o.value for o in spool_module._observe_buffered(CallbackOptions())]

    before = buffered_gauge()  # spools other tests left open, if any
    spool = ClickSpool(str(tmp_path / "spool.sqlite3"))
    await spool.open()
    others = sum(before)
    assert buffered_gauge() == [others]
    for i in range(3):
        spool.append({"id": f"k{i}"})
    assert buffered_gauge() == [others + 3]  # what a crash now would lose
    await spool.flush()
    assert buffered_gauge() == [others]
    await spool.close()
    assert buffered_gauge() == before  # a closed spool reports nothing


async def test_a_flushing_relay_keeps_the_backlog_gauge_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "BACKLOG_EVERY_S", 0.01)
    settings = SharingSettings(telemetry_enabled=False, otlp_endpoint=None)
    spool = ClickSpool(str(tmp_path / "spool.sqlite3"))
    relay = ClickRelay(settings, spool, flush_interval_s=0.01, batch=10)
    others = sum(backlog_gauge())  # relays an earlier test failed to stop, if any
    # Flush only, as the service does when a relay process drains: nothing leaves the file.
    await relay.start(flush=True, drain=False)
    for i in range(3):
        spool.append({"id": f"k{i}"})
    for _ in range(500):
        if backlog_gauge() == [others + 3]:
            break
        await asyncio.sleep(0.01)
    assert backlog_gauge() == [others + 3]
    await relay.stop()
