"""Each service's Kafka principal and ACLs, read from the topic catalog and the subscriptions."""

from __future__ import annotations

from devtools.consumers import consumer_groups
from devtools.kafka_access import Acl, ServiceAccess, service_access, stale_access
from shared.events.topics import TOPICS


def _by_service() -> dict[str, ServiceAccess]:
    return {access.service: access for access in service_access()}


def _topics_with(access: ServiceAccess, operation: str) -> set[str]:
    return {acl.name for acl in access.acls if acl.resource == "topic" and operation in acl.operations}


def test_the_generated_acl_files_are_up_to_date() -> None:
    assert stale_access() == [], "run `chorus schemas`"


def test_every_topic_of_the_catalog_names_a_service_that_writes_it() -> None:
    services = _by_service()

    assert all(topic.writer in services for topic in TOPICS)


def test_a_service_writes_only_its_own_topics_and_the_dead_letters_of_what_it_reads() -> None:
    for service, access in _by_service().items():
        own = {t.name for t in TOPICS if t.writer == service}
        dead_letters = {f"{t}.dlq" for t in _topics_with(access, "Read")}

        assert _topics_with(access, "Write") == own | dead_letters, service


def test_content_may_not_write_sharings_topics() -> None:
    content = _by_service()["content"]

    assert "chorus.shares" not in _topics_with(content, "Write")
    assert "chorus.clicks" not in _topics_with(content, "Read")


def test_a_service_reads_what_its_groups_consume_through_its_own_groups_only() -> None:
    groups = consumer_groups()
    for service, access in _by_service().items():
        mine = [g for g in groups if g.service == service]

        assert _topics_with(access, "Read") == {r.topic for g in mine for r in g.readings}, service
        assert {acl for acl in access.acls if acl.resource == "group"} == {
            Acl("group", g.group, ("Read",)) for g in mine
        }
