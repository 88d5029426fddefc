"""The consumer map is read from the subscriptions: what each group receives, and how."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import consumers
from devtools.consumers import Delivery, Reading, consumer_groups
from devtools.contracts import check_contracts, write_contracts
from shared.events import REGISTRY
from shared.events.clicks import CountedClick
from shared.events.shares import ShareMade
from shared.events.topics import CLICKS, SHARES
from shared.messaging import Subscription
from shared.settings import ChorusSettings


async def _ignore(*args: object) -> None:
    return None


def test_one_at_a_time_handlers_receive_their_types_and_batches_the_whole_topic() -> None:
    subscription = Subscription(group="g")
    subscription.on(ShareMade)(_ignore)
    subscription.on_batch(CLICKS, read_as=(CountedClick,))(_ignore)

    assert consumers._readings(subscription) == (
        Reading(CLICKS.name, Delivery.BATCH, ("chorus.click.recorded",), ("CountedClick",)),
        Reading(SHARES.name, Delivery.EVENT, ("chorus.share.made",), ()),
    )


def test_a_view_is_listed_only_on_a_topic_whose_types_it_reads() -> None:
    subscription = Subscription(group="g")
    subscription.on_batch(SHARES, read_as=(CountedClick,))(_ignore)

    (reading,) = consumers._readings(subscription)
    assert reading.read_as == ()


def test_a_builder_that_uses_its_service_while_building_fails_loudly() -> None:
    stand_in = consumers._Unwired(ChorusSettings.model_construct())

    with pytest.raises(AttributeError, match=r"service\.store while building"):
        stand_in.store  # noqa: B018 - the attribute access is the test


def test_every_service_group_is_found_and_the_webhooks_group_receives_every_offered_type() -> None:
    groups = {group.group: group for group in consumer_groups()}

    assert {group.service for group in groups.values()} == {"content", "sharing", "metrics", "recognition"}
    webhooks = groups["chorus.metrics-webhooks"]
    received = {event_type for reading in webhooks.readings for event_type in reading.event_types}
    internal = {name for name, registration in REGISTRY.items() if registration.topic.internal}
    assert internal == {"chorus.api_key.issued", "chorus.api_key.revoked"}
    assert received == set(REGISTRY) - internal


def test_a_stale_consumer_map_fails_the_contract_check(tmp_path: Path) -> None:
    write_contracts(tmp_path)
    assert check_contracts(tmp_path) == []

    consumers_md = tmp_path / "consumers.md"
    consumers_md.write_text(consumers_md.read_text().replace("chorus.metrics-attribution", "chorus.gone"))
    assert check_contracts(tmp_path) == [
        "consumers.md: not up to date with the registry or the subscriptions; run `chorus schemas`"
    ]
