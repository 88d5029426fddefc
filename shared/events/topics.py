"""The topic catalog: every Kafka topic Chorus uses, in one place.

`chorus topics` creates these; services create them at start when CHORUS_CREATE_TOPICS is on
(local and tests); production declares the same list as Strimzi KafkaTopic resources (deploy/).
Business topics keep their events forever because metrics can rebuild its projections from
offset 0; dead-letter topics keep two weeks, long enough for someone to look. Each topic names
the service that writes it; who reads it comes from the services' subscriptions
(devtools/consumers.py).
"""

from __future__ import annotations

from dataclasses import dataclass

FOREVER = -1
DLQ_RETENTION_MS = 14 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    key: str  # what the record key is; it decides which events keep their relative order
    description: str
    retention_ms: int = FOREVER
    # The one service that writes it: the broker lets only that service's principal produce to
    # it (devtools/kafka_access.py: the local stack's ACLs and the Strimzi KafkaUsers). Empty
    # for topics outside the catalog (benchmarks).
    writer: str = ""
    # For Chorus's own services only: not offered to outbound webhooks nor to integrators.
    internal: bool = False

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


CONTENT = Topic(
    "chorus.content", 3, "content id", "content lifecycle and organisation settings", writer="content"
)
TRAINING = Topic(
    "chorus.training", 3, "advocate id", "courses completed and policies acknowledged", writer="content"
)
ADVOCATES = Topic(
    "chorus.advocates", 3, "advocate id", "enrolment, profile, consents and erasure", writer="sharing"
)
SHARES = Topic("chorus.shares", 6, "share id", "shares made by advocates", writer="sharing")
CLICKS = Topic("chorus.clicks", 12, "share id", "clicks on tracked links", writer="sharing")
CONVERSIONS = Topic(
    "chorus.conversions", 6, "share id", "leads and sales with their attribution", writer="metrics"
)
RECOGNITION = Topic(
    "chorus.recognition", 6, "advocate id", "points, badges and redemptions", writer="recognition"
)
# API keys are issued by metrics and accepted by every service that integrators call, each from
# its own projection of this topic.
ACCESS = Topic(
    "chorus.access",
    3,
    "API key id",
    "organisations' API keys issued and revoked (internal)",
    internal=True,
    writer="metrics",
)

TOPICS: tuple[Topic, ...] = (CONTENT, TRAINING, ADVOCATES, SHARES, CLICKS, CONVERSIONS, RECOGNITION, ACCESS)


def topic_configs() -> list[tuple[str, int, dict[str, str]]]:
    """(name, partitions, configs) for every topic and its dead-letter topic."""
    out: list[tuple[str, int, dict[str, str]]] = []
    for topic in TOPICS:
        out.append((topic.name, topic.partitions, {"retention.ms": str(topic.retention_ms)}))
        out.append((topic.dlq, 1, {"retention.ms": str(DLQ_RETENTION_MS)}))
    return out
