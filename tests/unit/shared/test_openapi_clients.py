"""What a client generated from a service's OpenAPI document needs of it: each message one named
model, whatever media types carry it, and each enum value a member name of its own.

Found by generating clients (openapi-python-client failed on the time zones and dropped SCIM's
bodies, named twice); these tests hold the documents to what the generators need."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
from pydantic import ValidationError

from services.content.program.schemas import zone_member_name
from shared.clock import time_zone

SERVICES = ("content", "sharing", "metrics", "recognition")


def document(service: str) -> dict[str, Any]:
    openapi: dict[str, Any] = importlib.import_module(f"services.{service}.main").create_app().openapi()
    return openapi


def objects_with(node: Any, key: str) -> Iterator[dict[str, Any]]:
    """Every object of the document that has `key` (an `enum`, a `$ref`)."""
    if isinstance(node, dict):
        if key in node:
            yield node
        for value in node.values():
            yield from objects_with(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from objects_with(item, key)


def generated_member_key(value: str) -> str:
    """What a generator names an enum member after when the document gives no name: the value's
    letters and digits, upper-cased (openapi-python-client does so)."""
    return re.sub(r"[^A-Z0-9]", "", value.upper())


@pytest.mark.parametrize("service", SERVICES)
def test_every_enum_value_gets_a_member_name_of_its_own(service: str) -> None:
    for schema in objects_with(document(service), "enum"):
        values = [v for v in schema["enum"] if isinstance(v, str)]
        names = schema.get("x-enum-varnames")
        if names is None:
            keys = [generated_member_key(v) for v in values]
            clashes = sorted({v for v, k in zip(values, keys, strict=True) if keys.count(k) > 1})
            assert not clashes, f"{service}: these values would share a member name: {clashes[:6]}"
        else:
            assert len(names) == len(schema["enum"]), service
            assert len(set(names)) == len(names), service
            assert all(name.isidentifier() for name in names), service


def test_the_time_zones_are_an_enum_whose_members_keep_the_signs_apart() -> None:
    [zones] = [s for s in objects_with(document("content"), "enum") if "Europe/Paris" in s["enum"]]
    named = dict(zip(zones["enum"], zones["x-enum-varnames"], strict=True))
    assert named["Etc/GMT+1"] == "ETC_GMT_PLUS_1"
    assert named["Etc/GMT-1"] == "ETC_GMT_MINUS_1"
    assert named["America/Port-au-Prince"] == "AMERICA_PORT_AU_PRINCE"
    assert zone_member_name("GMT0") != zone_member_name("GMT-0") != zone_member_name("GMT+0")


def test_the_time_zones_are_the_same_on_every_machine() -> None:
    """The document is released (docs/openapi), so its zone list must not be the machine's: a
    machine's zone files may hold `localtime` (the server's own zone, whatever it is) and follow
    its release. The pinned tzdata package's list is the one accepted and documented."""
    [zones] = [s for s in objects_with(document("content"), "enum") if "Europe/Paris" in s["enum"]]
    assert zones["enum"] == sorted(files("tzdata").joinpath("zones").read_text().split())
    assert "localtime" not in zones["enum"]
    with pytest.raises(ValueError, match="not an IANA time zone"):
        time_zone("localtime")


def media_types(operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, content) of the operation's body and of each of its answers."""
    if "requestBody" in operation:
        yield "body", operation["requestBody"]["content"]
    for status, response in operation.get("responses", {}).items():
        if "content" in response:
            yield status, response["content"]


@pytest.mark.parametrize("service", SERVICES)
def test_a_message_carried_in_several_media_types_is_one_named_schema(service: str) -> None:
    """SCIM takes application/scim+json and application/json alike: with the schema written out
    under each, a generator makes two models of one name and drops one. (A report's text/csv
    beside its JSON is another message, a string.)"""
    shared = 0
    for path, operations in document(service)["paths"].items():
        for method, operation in operations.items():
            for where, content in media_types(operation):
                objects = [m["schema"] for m in content.values() if "type" not in m["schema"]]
                if len(objects) < 2:
                    continue
                shared += 1
                assert all(set(s) == {"$ref"} for s in objects), f"{method} {path} {where}"
                assert len({s["$ref"] for s in objects}) == 1, f"{method} {path} {where}"
    if service == "sharing":
        assert shared == 8  # the SCIM bodies: create, search, replace and patch, of users and groups


# What may stand beside a `$ref`: words about the value, none that constrains it.
ANNOTATIONS = {"$ref", "default", "description", "title", "examples", "deprecated"}


@pytest.mark.parametrize("service", SERVICES)
def test_a_reference_is_constrained_by_its_schema_alone(service: str) -> None:
    """FastAPI writes `type: string` for an answer whose class is not JSON, and merges the route's
    own schema into it: beside a `$ref` that makes a schema no answer can satisfy."""
    spec = document(service)
    for reference in objects_with(spec, "$ref"):
        assert set(reference) <= ANNOTATIONS, reference
        name = reference["$ref"].removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"], reference


# Each service's own probes and metrics: the gateway and the ingress route none of them, so no
# client generated from the four documents together calls them.
PER_SERVICE = {"/healthz", "/readyz", "/metrics"}


def operations(service: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document(service)["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_operation_ids_are_short_names_unique_across_the_services() -> None:
    """A generated client names its calls after the operation ids: `listContent`, not FastAPI's
    default `listContentV1ContentGet`; and a frontend may generate one client from all four
    documents, so no two services share an id."""
    seen: dict[str, str] = {}
    for service in SERVICES:
        for path, method, operation in operations(service):
            operation_id = operation["operationId"]
            where = f"{service} {method.upper()} {path}"
            assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", operation_id), f"{where}: {operation_id}"
            if path in PER_SERVICE:
                continue
            assert operation_id not in seen, f"{where} and {seen[operation_id]}: {operation_id}"
            seen[operation_id] = where
    assert {"listContent", "createShare", "recordConversion", "redeemReward", "getUser"} <= set(seen)


@pytest.mark.parametrize("service", SERVICES)
def test_every_link_names_an_operation_of_its_document_and_its_parameters(service: str) -> None:
    """What a create answers links to the operations on what it made (shared/app.py `links`):
    SCIM's users and groups, content, courses, goals, surveys, webhook endpoints, rewards and
    their redemptions. A link to an operation that is not there, or to a parameter it does not
    take, would be followed to nothing."""
    parameters = {
        operation["operationId"]: {p["name"] for p in operation.get("parameters", [])}
        for _, _, operation in operations(service)
    }
    spec = document(service)
    links = []
    for answer in objects_with(spec, "links"):
        [body] = {media["schema"]["$ref"] for media in answer["content"].values()}
        fields = spec["components"]["schemas"][body.removeprefix("#/components/schemas/")]["properties"]
        for link in answer["links"].values():
            links.append(link)
            assert link["operationId"] in parameters, link
            assert set(link["parameters"]) <= parameters[link["operationId"]], link
            for value in link["parameters"].values():
                assert value.removeprefix("$response.body#/") in fields, link
    expected = {"content": 8, "sharing": 8, "metrics": 10, "recognition": 6}
    assert len(links) == expected[service]


def test_a_schema_name_means_one_thing_across_the_services() -> None:
    """One client generated from all four documents has one model per name: two services may
    share a schema (the Problem, a webhook attempt) only if it is the same schema."""
    named: dict[str, tuple[str, dict[str, Any]]] = {}
    for service in SERVICES:
        for name, schema in document(service)["components"]["schemas"].items():
            if name in named:
                other, first = named[name]
                assert schema == first, f"{name} means one thing in {other}, another in {service}"
            named[name] = (service, schema)
    assert {"PersonalGoalOut", "GoalOut", "FulfilmentDeliveryOut", "DeliveryOut"} <= set(named)


def schemas_reached(node: Any, schemas: dict[str, Any]) -> set[str]:
    """The component schemas `node` refers to, and those they refer to in turn."""
    reached: set[str] = set()
    pending = [node]
    while pending:
        for reference in objects_with(pending.pop(), "$ref"):
            name = reference["$ref"].removeprefix("#/components/schemas/")
            if name not in reached:
                reached.add(name)
                pending.append(schemas[name])
    return reached


@pytest.mark.parametrize("service", SERVICES)
def test_a_field_every_answer_carries_is_required_in_the_document(service: str) -> None:
    """An answer writes all its model's fields, defaults too: a model of answers only says so
    (shared/schemas.py ResponseBody), or a generated client types `next_cursor?:` and makes its
    callers test for a field that is always there. A model that requests use too keeps its
    defaults optional (FastAPI would split it in two otherwise); SCIM's resources drop what
    `attributes` leaves out."""
    spec = document(service)
    schemas = spec["components"]["schemas"]
    sent: set[str] = set()
    answered: set[str] = set()
    for _, _, operation in operations(service):
        sent |= schemas_reached([operation.get("parameters", []), operation.get("requestBody", {})], schemas)
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                answered |= schemas_reached(response, schemas)
    checked = [name for name in sorted(answered - sent) if not name.startswith("Scim")]
    assert checked, service
    for name in checked:
        schema = schemas[name]
        assert set(schema.get("properties", {})) <= set(schema.get("required", [])), name


def test_a_number_in_an_answer_is_a_number_never_null() -> None:
    """pydantic writes an infinite or NaN float as `null`, which a client typed `number` takes
    for one and computes with. An answer that would hold one fails on the server, where it is
    seen: the goal whose progress was `value / 2.2e-309` answered null before it was capped."""
    from services.metrics.goals.schemas import GoalOut

    with pytest.raises(ValidationError, match="finite number"):
        GoalOut.model_validate({**dict.fromkeys(GoalOut.model_fields), "progress": float("inf")})
