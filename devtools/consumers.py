"""Who consumes what: every consumer group of every service, and the event types it receives.

Read from the subscriptions the services build, never written by hand: every function of a
`services/**/handlers.py` module that returns a `Subscription` is called, with a stand-in for the
service object its handlers close over (building a subscription only registers handlers). So
the published map (docs/events/consumers.md, and the AsyncAPI document's operations) follows the
code; `chorus schemas` writes it and tests/unit/devtools/test_contracts.py fails when it is stale.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from types import ModuleType

import services
from shared.events.envelope import REGISTRY
from shared.messaging import Subscription
from shared.settings import ChorusSettings


class Delivery(Enum):
    """How a group's handlers receive a topic, in the consumer runner's order of precedence."""

    TALLY = "tally"  # on_tally: a worker process folds each poll, the handler writes the result
    BATCH = "batch"  # on_batch: every event of the poll on that topic, in one call
    EVENT = "event"  # on(Model): one event at a time, only the types with a handler


@dataclass(frozen=True)
class Reading:
    """One group's reading of one topic."""

    topic: str
    delivery: Delivery
    # Batch and tally handlers get every type on the topic (and may skip some); `on` handlers
    # get only their own.
    event_types: tuple[str, ...]
    read_as: tuple[str, ...]  # the views a busy topic is decoded as (e.g. CountedClick)


@dataclass(frozen=True)
class ConsumerGroup:
    service: str
    group: str  # the Kafka group id under the default CHORUS_CONSUMER_GROUP_PREFIX
    built_by: str  # module:function that builds the subscription
    readings: tuple[Reading, ...]


def _group_prefix() -> str:
    prefix: str = ChorusSettings.model_fields["consumer_group_prefix"].default
    return prefix


def _handler_modules() -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(services.__path__, prefix="services.")
        if info.name.rsplit(".", 1)[-1] == "handlers"
    ]
    return [importlib.import_module(name) for name in sorted(names)]


def _service_settings(service: str) -> ChorusSettings:
    """The service's own settings at their defaults (no environment: the map is the same everywhere)."""
    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, ChorusSettings)
        and value.__module__ == module.__name__
    ]
    settings: ChorusSettings = (classes[0] if len(classes) == 1 else ChorusSettings).model_construct()
    return settings


class _Unwired:
    """Stands for the service object a builder closes over. Handlers call it later, so a builder
    reads at most its settings; anything else is a builder doing work while building."""

    def __init__(self, settings: ChorusSettings) -> None:
        self.settings = settings

    def __getattr__(self, name: str) -> object:
        raise AttributeError(f"a subscription builder used service.{name} while building the subscription")


def _readings(subscription: Subscription) -> tuple[Reading, ...]:
    on_topic: dict[str, list[str]] = {}
    for registration in REGISTRY.values():
        on_topic.setdefault(registration.topic.name, []).append(registration.event_type)
    handled: dict[str, list[str]] = {}
    for event_type, handled_topic in subscription.handler_topics.items():
        handled.setdefault(handled_topic.name, []).append(event_type)
    readings = []
    for topic in subscription.topics:
        if topic in subscription.tallied or topic in subscription.batch_handlers:
            delivery = Delivery.TALLY if topic in subscription.tallied else Delivery.BATCH
            types = on_topic.get(topic, [])
        else:
            delivery, types = Delivery.EVENT, handled[topic]
        # A view applies to the types whose model derives from it (shared.events.decode).
        views = tuple(
            view.__name__
            for view in subscription.read_as.get(topic, ())
            if any(issubclass(REGISTRY[event_type].model, view) for event_type in types)
        )
        readings.append(Reading(topic, delivery, tuple(sorted(types)), views))
    return tuple(readings)


def consumer_groups() -> list[ConsumerGroup]:
    """Every consumer group the services' handlers.py modules build, sorted by group."""
    groups = []
    for module in _handler_modules():
        service = module.__name__.split(".")[1]
        for name, function in vars(module).items():
            if not (inspect.isfunction(function) and function.__module__ == module.__name__):
                continue
            if function.__annotations__.get("return") not in ("Subscription", Subscription):
                continue
            stand_in = _Unwired(_service_settings(service))
            subscription = function(*[stand_in] * len(inspect.signature(function).parameters))
            groups.append(
                ConsumerGroup(
                    service=service,
                    group=f"{_group_prefix()}.{subscription.group}",
                    built_by=f"{module.__name__}:{name}",
                    readings=_readings(subscription),
                )
            )
    return sorted(groups, key=lambda group: group.group)


DELIVERY_TEXT = {
    Delivery.TALLY: "tally (a worker folds each poll)",
    Delivery.BATCH: "batch (every event of the poll)",
    Delivery.EVENT: "one event at a time",
}


def consumers_markdown(groups: Sequence[ConsumerGroup]) -> str:
    """docs/events/consumers.md: by group, then by event type."""
    lines = [
        "# Who consumes what",
        "",
        "Generated by `chorus schemas` (`make contracts`) from the subscriptions the services build in",
        "their `handlers.py` (`devtools/consumers.py`); never edit it by hand.",
        "`tests/unit/devtools/test_contracts.py` fails when it is stale. The AsyncAPI document",
        "(`asyncapi.json`) carries the same map as one `receive` operation per group and topic, with",
        "the group id in its Kafka binding.",
        "",
        f"Group ids are `CHORUS_CONSUMER_GROUP_PREFIX` (default `{_group_prefix()}`) + `.` + the group a",
        "service names. A batch or tally handler receives every event type on its topic and may skip",
        "some; a one-at-a-time handler receives only the types it registered. Every group also sends",
        "what it cannot process to `<topic>.dlq`.",
        "",
        "## By consumer group",
        "",
        "| group | service | topic | delivery | event types |",
        "|---|---|---|---|---|",
    ]
    for group in groups:
        for reading in group.readings:
            views = (
                f", read as {', '.join(f'`{view}`' for view in reading.read_as)}" if reading.read_as else ""
            )
            types = ", ".join(f"`{event_type}`" for event_type in reading.event_types)
            lines.append(
                f"| `{group.group}` | {group.service} | `{reading.topic}` | "
                f"{DELIVERY_TEXT[reading.delivery]}{views} | {types} |"
            )
    lines += ["", "## By event type", "", "| event type | topic | consumer groups |", "|---|---|---|"]
    for registration in sorted(REGISTRY.values(), key=lambda r: (r.topic.name, r.event_type)):
        readers = [
            f"`{group.group}`"
            for group in groups
            for reading in group.readings
            if reading.topic == registration.topic.name and registration.event_type in reading.event_types
        ]
        lines.append(
            f"| `{registration.event_type}` | `{registration.topic.name}` | {', '.join(readers) or 'none'} |"
        )
    lines += [
        "",
        "## Where each group is built",
        "",
        "| group | built by |",
        "|---|---|",
        *(f"| `{group.group}` | `{group.built_by}` |" for group in groups),
    ]
    return "\n".join(lines) + "\n"
