"""The four services in one process against the test stack, and a way to freeze a part of it.

A frozen process (SIGSTOP) keeps its sockets open and answers nothing: the hardest outage for a
client, which sees no error, only silence. Every freeze is undone (SIGCONT) however the test ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from devtools import local_stack
from services.content.main import create_app as content_app
from services.content.settings import ContentSettings
from services.metrics.handlers import ATTRIBUTION_GROUP
from services.metrics.handlers import GROUP as METRICS_GROUP
from services.metrics.main import create_app as metrics_app
from services.metrics.settings import MetricsSettings
from services.recognition.handlers import GROUP as RECOGNITION_GROUP
from services.recognition.main import create_app as recognition_app
from services.recognition.settings import RecognitionSettings
from services.sharing.main import create_app as sharing_app
from shared.events import TOPICS
from shared.messaging import skip_history
from shared.settings import ChorusSettings
from tests.helpers import bearer, running_app
from tests.integration.sharing.conftest import sharing_settings

SERVICES = ("content", "sharing", "metrics", "recognition")
GROUPS = ("content", "sharing", METRICS_GROUP, ATTRIBUTION_GROUP, "metrics-webhooks", RECOGNITION_GROUP)


@dataclass
class Chorus:
    settings: ChorusSettings
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]

    def headers(self, org: str, sub: str, *roles: str) -> dict[str, str]:
        return bearer(self.settings, org=org, sub=sub, roles=list(roles) or ["advocate"])


@pytest.fixture(scope="module")
async def chorus(settings: ChorusSettings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chorus]:
    prefix = f"{settings.consumer_group_prefix}-outages-{uuid.uuid4().hex[:6]}"
    for group in GROUPS:
        await skip_history(settings.kafka_bootstrap, f"{prefix}.{group}", [t.name for t in TOPICS])
    base = settings.model_copy(
        update={
            "consumer_group_prefix": prefix,
            "outbox_relay_interval_s": 0.2,
            # A frozen store answers a request with a 503 after this long.
            "mongo_request_timeout_s": 2.0,
        }
    )
    fields = base.model_dump()
    spool: Path = tmp_path_factory.mktemp("outages") / "clicks.sqlite3"
    apps = {
        "content": content_app(ContentSettings(**fields)),
        "sharing": sharing_app(sharing_settings(base, spool)),
        # A conversion waits for its click less than the request's deadline, as metrics requires.
        "metrics": metrics_app(MetricsSettings(**{**fields, "conversion_click_wait_s": 1.0})),
        "recognition": recognition_app(
            RecognitionSettings(
                **{**fields, "relay_every_s": 0.5, "relay_grace_s": 1.0, "webhook_every_s": 0.5}
            )
        ),
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(running_app(app)) for name, app in apps.items()}
        yield Chorus(base, apps, clients)


@contextlib.contextmanager
def frozen(stack: local_stack.StackConfig, part: str) -> Iterator[None]:
    """SIGSTOP the stack's `part` ("kafka", "secantusdb") and its process group; SIGCONT after."""
    [found] = [p for p in local_stack.status(stack) if p.name == part]
    assert found.pid is not None, f"{part} is not running in the test stack"
    os.killpg(found.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(found.pid, signal.SIGCONT)
