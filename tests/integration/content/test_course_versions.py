"""Two editors replacing one course: each answer carries the course's version as its ETag, and a
replacement sent with If-Match applies only to that version, so the editor who read an older one
gets a 412 instead of silently undoing the other's work. Without If-Match it replaces as before."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from services.content.settings import ContentSettings
from services.content.training.service import TrainingService
from tests.helpers import new_org
from tests.integration.content.conftest import Users

pytestmark = pytest.mark.integration


def course(title: str) -> dict[str, Any]:
    return {"title": title, "modules": [{"id": "m1", "title": "Why we share", "body": "Because it helps."}]}


async def stored(client: httpx.AsyncClient, users: Users, course_id: str) -> tuple[str, str]:
    """The stored course's title and ETag."""
    got = await client.get(f"/v1/courses/{course_id}", headers=users.editor)
    assert got.status_code == 200, got.text
    return got.json()["title"], got.headers["ETag"]


async def test_a_replacement_sent_with_the_version_it_read_applies_only_to_that_version(
    client: httpx.AsyncClient, content_settings: ContentSettings
) -> None:
    users = Users(content_settings, new_org())
    made = await client.post("/v1/courses", json=course("Draft"), headers=users.editor)
    assert made.status_code == 201, made.text
    course_id = made.json()["id"]
    _, read_by_both = await stored(client, users, course_id)

    first = await client.put(
        f"/v1/courses/{course_id}", json=course("Ann's"), headers={**users.editor, "If-Match": read_by_both}
    )
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] != read_by_both
    assert await stored(client, users, course_id) == ("Ann's", first.headers["ETag"])

    stale = await client.put(
        f"/v1/courses/{course_id}", json=course("Bob's"), headers={**users.editor, "If-Match": read_by_both}
    )
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    assert await stored(client, users, course_id) == ("Ann's", first.headers["ETag"])

    # Without If-Match, a replacement applies to whatever version is stored, as it always did.
    unconditional = await client.put(f"/v1/courses/{course_id}", json=course("Bob's"), headers=users.editor)
    assert unconditional.status_code == 200, unconditional.text
    assert unconditional.headers["ETag"] not in (read_by_both, first.headers["ETag"])
    assert await stored(client, users, course_id) == ("Bob's", unconditional.headers["ETag"])


@contextlib.contextmanager
def between_read_and_write(
    service: TrainingService, meanwhile: Callable[[], Awaitable[None]]
) -> Iterator[None]:
    """The training store's first read of a course returns what it read only after `meanwhile`
    ran: another editor's replacement lands between a replacement's read and its write."""
    store = service.store
    read = store.get_course
    raced = False

    async def get_course(org: str, course_id: str) -> Any:
        nonlocal raced
        found = await read(org, course_id)
        if not raced:
            raced = True
            await meanwhile()
        return found

    store.get_course = get_course  # type: ignore[method-assign]
    try:
        yield
    finally:
        del store.get_course  # the class's own again


async def test_a_replacement_whose_version_changed_after_its_check_is_refused_too(
    client: httpx.AsyncClient, content_settings: ContentSettings
) -> None:
    users = Users(content_settings, new_org())
    course_id = (await client.post("/v1/courses", json=course("Draft"), headers=users.editor)).json()["id"]
    _, read = await stored(client, users, course_id)

    async def another_editor_replaces() -> None:
        put = await client.put(f"/v1/courses/{course_id}", json=course("Ann's"), headers=users.editor)
        assert put.status_code == 200, put.text

    training: TrainingService = client._transport.app.state.training  # type: ignore[attr-defined]
    with between_read_and_write(training, another_editor_replaces):
        late = await client.put(
            f"/v1/courses/{course_id}", json=course("Bob's"), headers={**users.editor, "If-Match": read}
        )
    assert late.status_code == 412, late.text
    assert (await stored(client, users, course_id))[0] == "Ann's"
