"""Published event contracts: JSON Schemas, the AsyncAPI document, and the compatibility check.

`chorus schemas` writes, from the registry and the services' subscriptions (devtools/consumers.py):
  docs/events/schemas/<event type>.v<schema version>.json   one JSON Schema per type and version
  docs/events/asyncapi.json                                  AsyncAPI 3.0: topics, keys, headers,
                                                             examples, and each consumer group
  docs/events/consumers.md                                   who consumes what, as tables
The files in git are the released contracts. `check_contracts` (run by the test suite) fails
when the registry has drifted from them in a way that breaks a consumer (a field removed or
renamed, a type changed, a field newly required or no longer always given, an event type
dropped) and when a compatible change, or a change of who consumes what, has not been written
out yet. The policy is in docs/events/README.md. `Compatibility` judges a schema's change from
one side; devtools/rest_contracts.py uses it for the REST APIs too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from devtools.consumers import DELIVERY_TEXT, ConsumerGroup, consumer_groups, consumers_markdown
from shared.events.envelope import REGISTRY, Event, Registration, json_schema
from shared.events.topics import TOPICS

Schema = dict[str, Any]

KAFKA_BINDING_VERSION = "0.5.0"
EXAMPLE_TIME = datetime(2026, 1, 15, 9, 30, tzinfo=UTC).isoformat().replace("+00:00", "Z")

HEADERS_SCHEMA: Schema = {
    "type": "object",
    "properties": {
        "ce_type": {"type": "string", "description": "the CloudEvents type, for routing without parsing"},
        "ce_id": {"type": "string", "description": "the event id (dedupe on it)"},
        "ce_tenant": {"type": "string", "description": "the organisation id"},
        "content-type": {"type": "string", "const": "application/cloudevents+json"},
        "traceparent": {"type": "string", "description": "W3C trace context of the producing span"},
        "tracestate": {"type": "string"},
    },
    "required": ["ce_type", "ce_id", "ce_tenant", "content-type"],
}


def schema_file_name(registration: Registration) -> str:
    return f"{registration.event_type}.v{registration.schema_version}.json"


def build_schemas() -> dict[str, Schema]:
    """File name -> JSON Schema of the whole CloudEvent, for every registered type."""
    return {schema_file_name(r): json_schema(r.event_type) for r in REGISTRY.values()}


def resolve(schema: Schema, root: Schema) -> Schema:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _example(schema: Schema, root: Schema, name: str = "") -> Any:
    schema = resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "anyOf" in schema:
        non_null = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _example(non_null[0], root, name) if non_null else None
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(v, root, k) for k, v in props.items()}
    if kind == "array":
        return []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return EXAMPLE_TIME
    return f"{name or 'value'}-1"


def example_event(registration: Registration) -> Schema:
    schema = json_schema(registration.event_type)
    data = _example(schema["properties"]["data"], schema)
    return {
        "specversion": "1.0",
        "id": "6f1c2a52-8f7e-4d1b-9a70-0d3c1e1d2b11",
        "source": f"/chorus/{registration.topic.name.removeprefix('chorus.')}",
        "type": registration.event_type,
        "time": EXAMPLE_TIME,
        "subject": None,
        "datacontenttype": "application/json",
        "tenant": "acme",
        "schemaversion": str(registration.schema_version),
        "data": data,
    }


def _message_name(registration: Registration) -> str:
    return registration.model.__name__


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_")


def group_operations(groups: Sequence[ConsumerGroup]) -> Schema:
    """One `receive` operation per consumer group and topic, its group id in the Kafka binding."""
    operations: Schema = {}
    for group in groups:
        for reading in group.readings:
            channel_id = _channel_id(reading.topic)
            slug = group.group.replace(".", "_").replace("-", "_")
            operations[f"group_{slug}_{channel_id}"] = {
                "action": "receive",
                "title": f"{group.group} receives {reading.topic}",
                "summary": (
                    f"Consumer group {group.group} of the {group.service} service: "
                    f"{DELIVERY_TEXT[reading.delivery]}."
                ),
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{_message_name(REGISTRY[event_type])}"}
                    for event_type in reading.event_types
                ],
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [group.group]},
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
            }
    return operations


def build_asyncapi(groups: Sequence[ConsumerGroup]) -> Schema:
    registrations = sorted(REGISTRY.values(), key=lambda r: r.event_type)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (Event[r.model], "serialization")  # type: ignore[name-defined]
        for r in registrations
    ]
    keyed, definitions = models_json_schema(
        models, by_alias=True, ref_template="#/components/schemas/{model}"
    )
    component_schemas: Schema = dict(definitions.get("$defs", {}))
    messages: Schema = {}
    channels: Schema = {}
    operations: Schema = {}
    for topic in TOPICS:
        channel_id = _channel_id(topic.name)
        channels[channel_id] = {
            "address": topic.name,
            "title": topic.name,
            "description": f"{topic.description}. Record key: {topic.key}.",
            "messages": {},
            "bindings": {
                "kafka": {
                    "partitions": topic.partitions,
                    "replicas": 1,
                    "topicConfiguration": {"retention.ms": topic.retention_ms},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
    for registration, (model, mode) in zip(registrations, models, strict=True):
        name = _message_name(registration)
        payload_ref = keyed[(model, mode)]
        channel_id = _channel_id(registration.topic.name)
        example = example_event(registration)
        messages[name] = {
            "name": registration.event_type,
            "title": registration.event_type,
            "summary": (registration.model.__doc__ or registration.event_type).strip().split("\n")[0],
            "contentType": "application/cloudevents+json",
            "headers": HEADERS_SCHEMA,
            "payload": payload_ref,
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": f"the {registration.key_field} of the event data",
                    },
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
            "examples": [
                {
                    "name": f"{name}Example",
                    "headers": {
                        "ce_type": registration.event_type,
                        "ce_id": example["id"],
                        "ce_tenant": "acme",
                        "content-type": "application/cloudevents+json",
                        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                    },
                    "payload": example,
                }
            ],
        }
        channels[channel_id]["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for topic in TOPICS:
        channel_id = _channel_id(topic.name)
        operations[f"consume_{channel_id}"] = {
            "action": "receive",
            "title": f"Consume {topic.name}",
            "summary": f"Events on {topic.name}, in order per {topic.key}.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channels[channel_id]["messages"]
            ],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Chorus integration events",
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 in structured JSON mode on Kafka. Extensions: `tenant` (organisation id) "
                "and `schemaversion`. See docs/events/README.md for the compatibility policy. "
                "Operations `consume_<topic>` are for integrations; operations `group_<group>_<topic>` "
                "are Chorus's own consumer groups, generated from the services' subscriptions "
                "(docs/events/consumers.md)."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "the `chorus up` broker"}
        },
        "channels": channels,
        "operations": {**operations, **group_operations(groups)},
        "components": {"schemas": component_schemas, "messages": messages},
    }


def dump_json(document: Schema) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


CONSUMERS_FILE = "consumers.md"


def write_contracts(out: Path) -> list[Path]:
    (out / "schemas").mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in build_schemas().items():
        path = out / "schemas" / file_name
        path.write_text(dump_json(schema))
        written.append(path)
    path = out / "asyncapi.json"
    groups = consumer_groups()
    path.write_text(dump_json(build_asyncapi(groups)))
    written.append(path)
    path = out / CONSUMERS_FILE
    path.write_text(consumers_markdown(groups))
    written.append(path)
    return written


# --- compatibility -----------------------------------------------------------------------------


def variants(schema: Schema, root: Schema) -> list[Schema]:
    schema = resolve(schema, root)
    if "anyOf" in schema:
        return [resolve(s, root) for s in schema["anyOf"]]
    return [schema]


def types_of(schema: Schema, root: Schema) -> set[str]:
    found: set[str] = set()
    for variant in variants(schema, root):
        kind = variant.get("type")
        if isinstance(kind, list):
            found.update(kind)
        elif isinstance(kind, str):
            found.add(kind)
        elif "properties" in variant:
            found.add("object")
    return found


def object_variant(schema: Schema, root: Schema) -> Schema | None:
    objects = [v for v in variants(schema, root) if v.get("type") == "object" or "properties" in v]
    return objects[0] if objects else None


Direction = Literal["sent", "received"]

# Bounds a sent value must keep within: lowering an upper one or raising a lower one refuses what
# was accepted before.
UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems")
LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems")


@dataclass
class Compatibility:
    """Why a schema as it is now breaks what was written against it as released, in one
    direction. A value `sent` to us (a request body, a parameter, a retained event replayed) must
    still be accepted whatever it was valid as; a value `received` from us (a response, a new
    event) must still be what its reader understood. An enumeration may grow in what is
    received: readers take an unknown value as they take an unknown field. The roots resolve
    each side's `$ref`s."""

    released: Schema
    current: Schema
    # Object schemas already compared (by identity, in a direction): recursive schemas end, and
    # a shared one's problem is told once, at the first place it is met.
    seen: set[tuple[int, int, Direction]] = field(default_factory=set)

    def schemas(self, old: Schema, new: Schema, where: str, direction: Direction) -> list[str]:
        old_types, new_types = types_of(old, self.released), types_of(new, self.current)
        # No type at all is any value: a request that takes anything, an answer that gives anything.
        wider, narrower = (new_types, old_types) if direction == "sent" else (old_types, new_types)
        if not _covers(wider, narrower):
            verb = (
                "changed"
                if old_types and new_types and not old_types & new_types
                else ("narrowed" if direction == "sent" else "widened")
            )
            return [f"{where or '(root)'}: type {verb} from {_shown(old_types)} to {_shown(new_types)}"]
        problems = self.formats(old, new, where, direction)
        if direction == "sent":
            problems += self.sent_limits(old, new, where)
        problems += self.properties(old, new, where, direction)
        old_items = next((v["items"] for v in variants(old, self.released) if "items" in v), None)
        new_items = next((v["items"] for v in variants(new, self.current) if "items" in v), None)
        if old_items is not None and new_items is not None:
            problems += self.schemas(old_items, new_items, f"{where}[]", direction)
        return problems

    def formats(self, old: Schema, new: Schema, where: str, direction: Direction) -> list[str]:
        """A format (date, date-time, uri...) a sent value must newly follow, or one a received
        value no longer follows: the reader parses by it."""
        problems: list[str] = []
        for kind in types_of(old, self.released) & types_of(new, self.current):
            before = _variant(old, self.released, kind).get("format")
            after = _variant(new, self.current, kind).get("format")
            if before != after and (after if direction == "sent" else before) is not None:
                problems.append(f"{where or '(root)'}: format changed from {before} to {after}")
        return problems

    def sent_limits(self, old: Schema, new: Schema, where: str) -> list[str]:
        """What a sent value newly has to keep within, type by type."""
        problems: list[str] = []
        old_values, new_values = _enum_values(old, self.released), _enum_values(new, self.current)
        if new_values is not None and (old_values is None or not old_values <= new_values):
            dropped = "any value" if old_values is None else sorted(old_values - new_values, key=str)
            problems.append(f"{where}: no longer accepts {dropped}")
        for kind in types_of(old, self.released) & types_of(new, self.current):
            old_variant, new_variant = _variant(old, self.released, kind), _variant(new, self.current, kind)
            for bound in UPPER_BOUNDS:
                limit, before = new_variant.get(bound), old_variant.get(bound)
                if limit is not None and (before is None or limit < before):
                    problems.append(f"{where}: {bound} lowered to {limit}")
            for bound in LOWER_BOUNDS:
                limit, before = new_variant.get(bound), old_variant.get(bound)
                if limit is not None and (before is None or limit > before):
                    problems.append(f"{where}: {bound} raised to {limit}")
            # A changed pattern may be wider or narrower: only a new one is surely narrower.
            if "pattern" in new_variant and "pattern" not in old_variant:
                problems.append(f"{where}: pattern added")
        return problems

    def properties(self, old: Schema, new: Schema, where: str, direction: Direction) -> list[str]:
        old_object, new_object = object_variant(old, self.released), object_variant(new, self.current)
        if old_object is None or new_object is None:
            return []
        pair = (id(old_object), id(new_object), direction)
        if pair in self.seen:
            return []
        self.seen.add(pair)
        problems: list[str] = []
        old_required, new_required = set(old_object.get("required", [])), set(new_object.get("required", []))
        new_properties = new_object.get("properties", {})
        for name, old_property in old_object.get("properties", {}).items():
            at = _at(where, name)
            if name not in new_properties:
                if not resolve(old_property, self.released).get("deprecated"):
                    problems.append(f"{at}: removed")
                continue
            if direction == "received" and name in old_required and name not in new_required:
                problems.append(f"{at}: no longer always given")
            problems += self.schemas(old_property, new_properties[name], at, direction)
        old_extra, new_extra = old_object.get("additionalProperties"), new_object.get("additionalProperties")
        if direction == "sent":
            problems += [
                f"{_at(where, name)}: newly required" for name in sorted(new_required - old_required)
            ]
            if old_extra is not False and new_extra is False:
                problems.append(f"{where or '(root)'}: other properties no longer accepted")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            problems += self.schemas(old_extra, new_extra, f"{where}.*", direction)
        return problems


def _at(where: str, name: str) -> str:
    """A property's place in a message: `request body.title`, or `title` at an event's root."""
    return f"{where}.{name}" if where else name


def _covers(wider: set[str], narrower: set[str]) -> bool:
    """Whether every value of the `narrower` types is one of the `wider` (an empty set is any)."""
    if not wider:
        return True
    if not narrower:
        return False
    return all(kind in wider or (kind == "integer" and "number" in wider) for kind in narrower)


def _shown(kinds: set[str]) -> str:
    return str(sorted(kinds)) if kinds else "any"


def _enum_values(schema: Schema, root: Schema) -> set[Any] | None:
    """The only values a schema allows besides null, or None when it is not an enumeration."""
    values: set[Any] = set()
    for variant in variants(schema, root):
        if variant.get("type") == "null":
            continue
        if "enum" in variant:
            values.update(v for v in variant["enum"] if v is not None)
        elif "const" in variant:
            values.add(variant["const"])
        else:
            return None
    return values or None


def _variant(schema: Schema, root: Schema, kind: str) -> Schema:
    return next((v for v in variants(schema, root) if kind in types_of(v, root)), {})


def compatibility_problems(released: Schema, current: Schema) -> list[str]:
    """Why an event schema as it is now breaks a consumer of events written to the released one
    (empty when compatible). Consumers read it both ways: an integrator receives new events and
    must understand them, and our own consumers replay the events a topic retains through
    today's models, which must still take every event that was valid."""
    received = Compatibility(released, current).schemas(released, current, "", "received")
    replayed = Compatibility(released, current).schemas(released, current, "", "sent")
    return list(dict.fromkeys(received + replayed))


def breaking_event_changes(out: Path) -> list[str]:
    """How the registry breaks the contracts released in `out` (empty when it does not):
    `chorus schemas` writes nothing over them while there is any."""
    problems: list[str] = []
    current = build_schemas()
    released_dir = out / "schemas"
    released_files = {p.name: p for p in released_dir.glob("*.json")} if released_dir.exists() else {}
    latest_version = {r.event_type: r.schema_version for r in REGISTRY.values()}
    for file_name, path in sorted(released_files.items()):
        event_type, _, version = file_name.removesuffix(".json").rpartition(".v")
        if event_type not in latest_version:
            problems.append(f"{event_type}: the event type was removed but its schema v{version} is released")
            continue
        if int(version) < latest_version[event_type]:
            continue  # superseded by a new major version: both stay published
        if file_name not in current:
            problems.append(f"{file_name}: released, but the registry now declares an older version")
            continue
        released = json.loads(path.read_text())
        problems += [f"{event_type}: {p}" for p in compatibility_problems(released, current[file_name])]
    return problems


def check_contracts(out: Path) -> list[str]:
    """Problems between the released contracts in `out` and the registry (empty when fine)."""
    problems = breaking_event_changes(out)
    if not problems:
        current = build_schemas()
        released_dir = out / "schemas"
        released_files = {p.name: p for p in released_dir.glob("*.json")} if released_dir.exists() else {}
        stale = [
            name
            for name, schema in current.items()
            if name not in released_files or json.loads(released_files[name].read_text()) != schema
        ]
        asyncapi = out / "asyncapi.json"
        groups = consumer_groups()
        if not asyncapi.exists() or json.loads(asyncapi.read_text()) != build_asyncapi(groups):
            stale.append("asyncapi.json")
        consumers = out / CONSUMERS_FILE
        if not consumers.exists() or consumers.read_text() != consumers_markdown(groups):
            stale.append(CONSUMERS_FILE)
        problems += [
            f"{name}: not up to date with the registry or the subscriptions; run `chorus schemas`"
            for name in stale
        ]
    return problems
