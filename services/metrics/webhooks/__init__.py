"""Outbound webhooks for integrations that do not speak Kafka.

An organisation registers endpoints, each with the event types it wants. Every event of those
types on any Chorus topic becomes a delivery: a CloudEvent (structured JSON) POSTed to the
endpoint, signed with the endpoint's secret and retried with backoff by the engine (shared/webhooks/) until it
lands or runs out of attempts. A replay delivers a time range again, read back from Kafka.

service.py is longer than domain.py: the rules (URL check, signing, retries) are the engine's
(shared/webhooks/), and what is left here is I/O: an endpoint cache and range replays from Kafka.
"""
