"""Creating the catalog's topics (idempotent)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events.topics import topic_configs


async def ensure_topics(bootstrap: str) -> list[tuple[str, int, dict[str, str]]]:
    """Create every topic of the catalog that does not exist yet; return the catalog."""
    wanted = topic_configs()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="chorus-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication_factor=1, topic_configs=configs)
            for name, partitions, configs in wanted
            if name not in existing
        ]
        if missing:
            # Another service may create the same topic at the same moment.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
    return wanted
