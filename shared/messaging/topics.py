"""Creating the catalog's topics (idempotent), starting a new consumer group at their end, and
starting a client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, TopicAlreadyExistsError, UnknownMemberIdError

from shared.events.topics import topic_configs


async def start_client(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Start `client`, or stop it and raise: a start that failed (the broker unreachable) leaves
    connections and tasks open, which only `stop` closes."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


async def ensure_topics(
    bootstrap: str, security: Mapping[str, Any] | None = None
) -> list[tuple[str, int, dict[str, str]]]:
    """Create every topic of the catalog that does not exist yet; return the catalog.
    `security`: the caller's `kafka_security` options (none: the local plain listener)."""
    wanted = topic_configs()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="chorus-topics", **(security or {}))
    try:
        await admin.start()  # in the try: a failed start leaves a connection to close
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


def partitions_of(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`, as a consumer started subscribed to them has learnt them.
    A topic it knows no partition of is an error: a range or a commit that silently left it out
    would look complete."""
    tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    missing = [t for t in topics if t not in {tp.topic for tp in tps}]
    if missing:
        raise RuntimeError(f"no partitions known for {missing}")
    return tps


async def skip_history(bootstrap: str, group_id: str, topics: list[str], wait_s: float = 60) -> None:
    """Commit the current end of `topics` for a consumer group that has no commit there yet.

    A new group starts at the earliest offset (as a service must, to build its projections), so
    on a broker holding other runs' events it would first work through all of them. Tests and
    benchmarks that start a service on such a broker skip that history (rebuild and replay tests
    still read from offset 0). The catalog's topics are created first: on a fresh broker no
    service has yet.

    The commit is made from outside the group, which the broker refuses while the group has
    members. A loaded test run once found the previous test's service still a member there (it
    stays until its session expires), so the commit is tried again for `wait_s` before failing.
    """
    await ensure_topics(bootstrap)
    probe = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await start_client(probe)  # subscribing is how a consumer learns the topics' partitions
    try:
        tps = partitions_of(probe, topics)
    finally:
        await probe.stop()
    group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await start_client(group)
    try:
        group.assign(tps)
        end = await group.end_offsets(tps)
        deadline = time.monotonic() + wait_s
        while True:
            missing = {tp: end[tp] for tp in tps if await group.committed(tp) is None}
            if not missing:
                return
            try:
                await group.commit(missing)
                return
            except (CommitFailedError, UnknownMemberIdError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)
    finally:
        await group.stop()
