"""Published event contracts: JSON Schemas, the AsyncAPI document, and the compatibility check.

`chorus schemas` writes, from the registry and the services' subscriptions (devtools/consumers.py):
  docs/events/schemas/<event type>.v<schema version>.json   one JSON Schema per type and version
  docs/events/asyncapi.json                                  AsyncAPI 3.0: topics, keys, headers,
                                                             examples, and each consumer group
  docs/events/consumers.md                                   who consumes what, as tables
The files in git are the released contracts. `check_contracts` (run by the test suite) fails
when the registry has drifted from them in a breaking way (a field removed or renamed, a type
changed, a field newly required, an event type dropped) and when an additive change, or a change
of who consumes what, has not been written out yet. The policy is in docs/events/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def compatibility_problems(
    released: Schema,
    current: Schema,
    *,
    path: str = "",
    released_root: Schema | None = None,
    current_root: Schema | None = None,
) -> list[str]:
    """Why `current` breaks consumers written against `released` (empty when compatible).

    Breaking: a property removed (or renamed, which is a removal), a type narrowed or changed, a
    property newly required. Compatible: new optional properties, widened types.
    """
    released_root = released if released_root is None else released_root
    current_root = current if current_root is None else current_root
    problems: list[str] = []
    where = path or "(root)"
    old_types, new_types = types_of(released, released_root), types_of(current, current_root)
    if old_types and new_types and not old_types <= new_types:
        problems.append(f"{where}: type changed from {sorted(old_types)} to {sorted(new_types)}")
        return problems
    old_object = object_variant(released, released_root)
    new_object = object_variant(current, current_root)
    if old_object is not None and new_object is not None:
        old_props = old_object.get("properties", {})
        new_props = new_object.get("properties", {})
        for name, old_sub in old_props.items():
            sub_path = f"{path}.{name}" if path else name
            if name not in new_props:
                problems.append(f"{sub_path}: removed")
                continue
            problems += compatibility_problems(
                old_sub,
                new_props[name],
                path=sub_path,
                released_root=released_root,
                current_root=current_root,
            )
        for name in sorted(set(new_object.get("required", [])) - set(old_object.get("required", []))):
            problems.append(f"{path + '.' if path else ''}{name}: newly required")
    old_items = next((v["items"] for v in variants(released, released_root) if "items" in v), None)
    new_items = next((v["items"] for v in variants(current, current_root) if "items" in v), None)
    if old_items is not None and new_items is not None:
        problems += compatibility_problems(
            old_items, new_items, path=f"{path}[]", released_root=released_root, current_root=current_root
        )
    return problems


def check_contracts(out: Path) -> list[str]:
    """Problems between the released contracts in `out` and the registry (empty when fine)."""
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
    if not problems:
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
