"""Kafka is touched here and nowhere else."""

from shared.messaging.consumer import Batch, ConsumerRunner, Delivered, Subscription
from shared.messaging.producer import EventProducer
from shared.messaging.topics import ensure_topics, skip_history

__all__ = [
    "Batch",
    "ConsumerRunner",
    "Delivered",
    "EventProducer",
    "Subscription",
    "ensure_topics",
    "skip_history",
]
