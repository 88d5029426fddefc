"""The one way to publish events: an idempotent aiokafka producer with acks=all.

Every event is sealed on its way out (shared/vault.py): the people it names go on the topic as
pseudonyms, what is about them encrypted under their own key."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from opentelemetry import context as otel_context
from opentelemetry.trace import Link

from shared.events.envelope import AnyEvent
from shared.messaging.security import kafka_security
from shared.messaging.topics import start_client
from shared.messaging.tracing import Headers, produce_span
from shared.settings import ChorusSettings
from shared.vault import Vault

# The largest record the producer sends, as aiokafka measures it (its max_request_size, here its
# default): the dead-letter path keeps to it (shared/messaging/consumer.py `_fitting_dead_letter`).
MAX_RECORD_BYTES = 1_048_576
# Events sent between two turns of the event loop: each send is tens of microseconds (a span, a
# serialisation, a partitioner), so a list of hundreds would hold the loop for milliseconds.
SENDS_PER_TURN = 25


def event_headers(event: AnyEvent) -> Headers:
    return ce_headers(event.type, event.id, event.tenant)


def ce_headers(event_type: str, event_id: str, tenant: str) -> Headers:
    # CloudEvents Kafka binding names; they let a consumer route without parsing the value.
    return [
        ("ce_type", event_type.encode()),
        ("ce_id", event_id.encode()),
        ("ce_tenant", tenant.encode()),
        ("content-type", b"application/cloudevents+json"),
    ]


class Outgoing(NamedTuple):
    """An event to send, the trace context to send it in, and spans to link to."""

    event: AnyEvent
    parent: otel_context.Context | None = None
    links: Sequence[Link] = ()


class EventProducer:
    def __init__(
        self, settings: ChorusSettings, *, client_id: str | None = None, vault: Vault | None = None
    ) -> None:
        """`vault`: the service's (shared with its consumers); none: the producer opens its own."""
        self._settings = settings
        self._client_id = client_id or settings.service_name
        self._producer: AIOKafkaProducer | None = None
        self._own_vault = vault is None
        self.vault = vault or Vault(settings)

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            # Every caller sends a whole step (a relay's page of events) and then waits for it:
            # its sends fill the batches before the sender runs, so lingering only delays the
            # acknowledgement (5 ms a step was a third of the click relay's drain time).
            linger_ms=0,
            request_timeout_ms=15000,
            max_request_size=MAX_RECORD_BYTES,
            **kafka_security(self._settings),
        )
        await start_client(producer)
        self._producer = producer

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._own_vault:
            await self.vault.close()

    @property
    def client(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the producer is not started")
        return self._producer

    async def publish(
        self, event: AnyEvent, *, parent: otel_context.Context | None = None, links: Sequence[Link] = ()
    ) -> None:
        """Send one event and wait until the broker has it (all in-sync replicas).

        `parent` continues another trace (e.g. the share's, kept with it); `links` point at
        related spans that are not the parent (e.g. the request that caused this event).
        """
        await self.publish_many([event], parent=parent, links=links)

    async def publish_many(
        self,
        events: Sequence[AnyEvent],
        *,
        parent: otel_context.Context | None = None,
        links: Sequence[Link] = (),
    ) -> None:
        """Send events and wait for all of them; per-key order is kept by Kafka's partitioning."""
        await self.publish_each([Outgoing(event, parent, links) for event in events])

    async def publish_each(self, items: Sequence[Outgoing]) -> None:
        """Send events, each in its own trace context, in this order; wait for all of them."""
        futures = []
        sealed = await self.vault.seal([item.event for item in items])
        for sent, ((event, parent, links), on_topic) in enumerate(zip(items, sealed, strict=True)):
            if sent and sent % SENDS_PER_TURN == 0:
                await asyncio.sleep(0)  # a long list must not hold the loop (a server's requests)
            headers = event_headers(event)
            # The span tells of the event as the service knows it: traces are operational data,
            # kept for the tracing backend's retention, not forever like the topics.
            with produce_span(event, headers, parent, links):
                futures.append(
                    await self.client.send(
                        event.topic.name, on_topic.to_json_bytes(), key=on_topic.record_key(), headers=headers
                    )
                )
        await asyncio.gather(*futures)

    async def send_raw(self, topic: str, value: bytes | None, key: bytes | None, headers: Headers) -> None:
        """For the dead-letter path, which forwards records as they came."""
        await self.client.send_and_wait(topic, value, key=key, headers=headers)
