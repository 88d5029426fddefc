"""The kudos lists page with a cursor, as every list does (shared/pagination.py): newest first,
ties broken by id, each kudos once, and a null next_cursor only on the last page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.recognition.engagement.domain import Kudos
from services.recognition.engagement.store import EngagementStore
from services.recognition.settings import RecognitionSettings
from shared.mongo import create_client
from shared.settings import ChorusSettings
from tests.helpers import new_org, openapi_errors
from tests.integration.recognition.conftest import body
from tests.integration.recognition.test_rewards import as_, give_points

pytestmark = pytest.mark.integration


async def walk(client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int) -> list[list[str]]:
    """The kudos ids of each page, following next_cursor until it is null."""
    pages: list[list[str]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        page = body(await client.get(path, headers=headers, params=params))
        assert openapi_errors("recognition", "KudosPage", page) == []
        pages.append([k["kudos_id"] for k in page["items"]])
        if page["next_cursor"] is None:
            return pages
        params["cursor"] = page["next_cursor"]


async def test_kudos_received_and_sent_are_walked_page_by_page_each_once(
    client: httpx.AsyncClient, settings: ChorusSettings, recognition_settings: RecognitionSettings
) -> None:
    org = new_org()
    await give_points(client, settings, org, "b", 7)  # from "peer-b", through the API
    # Three more given in one instant, written straight into the store: a page must break the tie.
    same_time = datetime.now(UTC).replace(microsecond=0)
    mongo = create_client(recognition_settings)
    try:
        store = EngagementStore(mongo[recognition_settings.database_name("recognition")])
        for n in range(3):
            tie = Kudos(f"kds-tie-{n}", "peer-b", "b", f"tie {n}", "2026-W50", same_time, scored=True)
            await store.insert_kudos(org, tie)
    finally:
        await mongo.close()
    b, peer = as_(settings, org, "b"), as_(settings, org, "peer-b")

    everything = body(await client.get("/v1/me/kudos", headers=b, params={"limit": 200}))
    assert everything["next_cursor"] is None
    newest_first = [k["kudos_id"] for k in everything["items"]]
    assert len(newest_first) == 10
    order = [(datetime.fromisoformat(k["created_at"]), k["kudos_id"]) for k in everything["items"]]
    assert order == sorted(order, key=lambda o: (-o[0].timestamp(), o[1]))  # ties by id

    received = await walk(client, "/v1/me/kudos", b, 3)
    assert [len(p) for p in received] == [3, 3, 3, 1]
    assert [k for p in received for k in p] == newest_first
    sent = await walk(client, "/v1/me/kudos/sent", peer, 3)
    assert [k for p in sent for k in p] == newest_first
    # A full last page: its cursor leads to an empty page, never to kudos again.
    assert await walk(client, "/v1/me/kudos", b, 5) == [newest_first[:5], newest_first[5:], []]
