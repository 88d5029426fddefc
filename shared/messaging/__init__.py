"""Kafka is touched here and nowhere else."""

from shared.messaging.batch import Batch, Delivered
from shared.messaging.consumer import ConsumerRunner, Subscription
from shared.messaging.producer import EventProducer
from shared.messaging.security import kafka_security
from shared.messaging.topics import ensure_topics, skip_history

__all__ = [
    "Batch",
    "ConsumerRunner",
    "Delivered",
    "EventProducer",
    "Subscription",
    "ensure_topics",
    "kafka_security",
    "skip_history",
]
