"""One content app per test module (real Kafka and SecantusDB); each test works in its own org."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from services.content.main import create_app
from services.content.settings import ContentSettings
from shared.settings import ChorusSettings
from tests.helpers import running_app


@pytest.fixture(scope="module")
def content_settings(settings: ChorusSettings) -> ContentSettings:
    return ContentSettings(
        **{
            **settings.model_dump(),
            "content_sweep_interval_s": 0.3,
            "outbox_relay_interval_s": 0.5,
            "max_body_bytes": 64 * 1024,
        }
    )


@pytest.fixture(scope="module")
async def client(content_settings: ContentSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(create_app(settings=content_settings)) as http:
        yield http


class Users:
    """Tokens for the people of one organisation, with optional audience claims."""

    def __init__(self, settings: ChorusSettings, org: str) -> None:
        self.settings = settings
        self.org = org

    def headers(self, sub: str, *roles: str, **claims: str) -> dict[str, str]:
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": sub,
            "org": self.org,
            "roles": list(roles),
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": now,
            "exp": now + 3600,
            **claims,
        }
        return {"Authorization": f"Bearer {jwt.encode(payload, self.settings.jwt_secret, algorithm='HS256')}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("admin-1", "admin")

    @property
    def editor(self) -> dict[str, str]:
        return self.headers("editor-1", "editor")


def article(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "article",
        "title": "We opened a plant in Lyon",
        "url": "https://example.com/news/lyon",
        "summary": "Three hundred new jobs",
        "tags": ["news"],
        "language": "en",
        "suggested_posts": [
            {"network": "linkedin", "text": "Proud of our new plant in Lyon #employee"},
            {"network": "x", "language": "fr", "text": "Notre nouvelle usine à Lyon #employee"},
        ],
    }
    body.update(changes)
    return body
