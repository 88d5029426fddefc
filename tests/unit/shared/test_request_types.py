"""Requests are refused where their OpenAPI document says so: a number is not a date-time, a
boolean or a number written otherwise is not taken for one (pydantic alone would coerce them), and
no text holds a control character."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.metrics.org_settings.domain import PAYABLE_CURRENCIES
from shared.auth import issue_dev_token
from shared.errors import PROBLEM_JSON
from shared.fields import CONTROLS, TEXT_CONTROLS
from shared.networks import NETWORKS
from shared.settings import ChorusSettings

SETTINGS = ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)


async def refused_fields(
    app: FastAPI, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> set[str]:
    token = issue_dev_token(SETTINGS, org="acme", sub="ann", roles=["admin"])
    transport = httpx.ASGITransport(app=app)  # no lifespan: bad input is refused before any I/O
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        answer = await client.request(method, url, headers=headers, **kwargs)
    assert (answer.status_code, answer.headers["content-type"]) == (422, PROBLEM_JSON), answer.text
    return {error["field"] for error in answer.json()["errors"]}


@pytest.mark.parametrize("since", ["0.5", "1700000000", " -3e2"])
async def test_a_time_in_a_query_is_iso_8601_text_not_a_number(since: str) -> None:
    from services.content.main import create_app

    app = create_app()
    app.state.library = None  # never reached
    assert await refused_fields(app, "GET", "/v1/content", params={"since": since}) == {"since"}


async def test_a_boolean_is_true_or_false_not_a_number() -> None:
    from services.sharing.main import create_app

    app = create_app()
    app.state.advocates = None  # never reached
    body = {"display_name": "Ann", "consents": {"tracking": 1, "public_ranking": 0}}
    assert await refused_fields(app, "PUT", "/v1/advocates/me", json=body) == {
        "consents.tracking",
        "consents.public_ranking",
    }


async def test_a_count_is_a_number_not_a_boolean() -> None:
    from services.recognition.main import create_app

    app = create_app()
    app.state.rules = None  # never reached
    body = {"rules": {"kudos_weekly_allowance": False, "points": {"lead": True}}, "expected_version": False}
    assert await refused_fields(app, "PUT", "/v1/rules", json=body) == {
        "rules.kudos_weekly_allowance",
        "rules.points.lead",
        "expected_version",
    }


async def test_a_time_or_a_day_in_a_body_or_query_is_text_too() -> None:
    from services.content.main import create_app as content_app
    from services.metrics.main import create_app as metrics_app

    content = content_app()
    content.state.library = None  # never reached
    content.state.runtime = SimpleNamespace(db=None)  # the Idempotency-Key's store, never reached
    body = {"type": "article", "title": "T", "url": "https://example.com/a", "expires_at": 1_900_000_000}
    assert await refused_fields(content, "POST", "/v1/content", json=body) == {"expires_at"}
    metrics = metrics_app()
    metrics.state.service = None  # never reached
    params = {"from": "20260101", "to": "2026-01-31"}
    assert await refused_fields(metrics, "GET", "/v1/funnel", params=params) == {"from"}


async def test_text_with_a_control_character_is_refused_naming_the_field() -> None:
    from services.content.main import create_app

    app = create_app()
    app.state.library = None  # never reached
    app.state.runtime = SimpleNamespace(db=None)  # the Idempotency-Key's store, never reached
    body = {
        "type": "article",
        "title": "Hello\u0000",  # NUL: PostgreSQL refuses it, C ends the string there
        "url": "https://example.com/a\u001b[2J",  # an escape sequence clears a terminal
        "summary": "two lines\nand a tab\t are fine, a bell \u0007 is not",
        "tags": ["one\nline"],  # a name, a title or a tag is one line
        "audience": {"teams": ["sales\u0085"]},  # C1's NEL
    }
    assert await refused_fields(app, "POST", "/v1/content", json=body) == {
        "title",
        "url",
        "summary",
        "tags[0]",
        "audience.teams[0]",
    }


SERVICES = ("content", "sharing", "metrics", "recognition")
# Formats pydantic checks itself, whose values cannot hold a control character.
CHECKED_FORMATS = {"date", "date-time", "uri"}


def request_strings(service: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every string schema of every request body of the service, named by where it stands."""
    document = importlib.import_module(f"services.{service}.main").create_app().openapi()
    schemas = document["components"]["schemas"]

    def walk(
        schema: dict[str, Any], where: str, seen: frozenset[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                yield from walk(schemas[name], name, seen | {name})
            return
        if "string" in (schema["type"] if isinstance(schema.get("type"), list) else [schema.get("type")]):
            yield where, schema
        for branch in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
            yield from walk(branch, where, seen)
        for key, inner in (("items", "[]"), ("additionalProperties", "{}"), ("propertyNames", "<key>")):
            if isinstance(schema.get(key), dict):
                yield from walk(schema[key], where + inner, seen)
        for name, property_schema in schema.get("properties", {}).items():
            yield from walk(property_schema, f"{where}.{name}", seen)

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                yield from walk(media.get("schema", {}), f"{method.upper()} {path}", frozenset())


def refuses_controls(pattern: str) -> bool:
    """Whether a pattern names its characters: no `.`, no `\\S`-like class, and every negated
    class leaves the control characters out. A stricter reading than a regex engine's, on purpose:
    a pattern it cannot read is written again in its terms."""
    if re.search(r"(?<!\\)\.|\\[SWDP]", pattern):
        return False
    return all(
        CONTROLS in negated or TEXT_CONTROLS in negated
        for negated in re.findall(r"\[\^((?:\\.|[^]\\])*)\]", pattern)
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_text_a_request_body_takes_says_which_characters(service: str) -> None:
    """A string field declared as a plain `str` takes NUL and escape sequences, stores them and
    sends them on in events; each says its characters instead (shared/fields.py: `Line`, `Text`,
    or a pattern of its own that leaves control characters out)."""
    unchecked = sorted(
        where
        for where, schema in request_strings(service)
        if not ({"enum", "const"} & schema.keys() or schema.get("format") in CHECKED_FORMATS)
        and not refuses_controls(schema.get("pattern", "."))
    )
    assert not unchecked, f"{service}: these take any character: {unchecked}"


def test_a_pattern_that_leaves_a_control_character_possible_is_found() -> None:
    assert refuses_controls(r"^[A-Za-z0-9_-]+$")
    assert refuses_controls(r"^[0-9]+(\.[0-9]+)?$")
    assert refuses_controls(rf"^https://[^\s{CONTROLS}]+$")
    assert not refuses_controls(r"^https://\S+$")
    assert not refuses_controls(r"^a.b$")
    assert not refuses_controls(r"^[^\s/?#@]+$")


async def test_a_number_is_finite_as_json_has_it() -> None:
    """Python's JSON reader takes `Infinity` and `NaN`; a goal's target of Infinity was stored and
    answered as `"target": null`."""
    from services.metrics.main import create_app

    app = create_app()
    app.state.service = None  # never reached
    app.state.runtime = SimpleNamespace(db=None)  # the Idempotency-Key's store, never reached
    for number in ("Infinity", "-Infinity", "NaN"):
        body = f'{{"name": "Reach", "metric": "clicks", "target": {number}, "horizon_months": 3}}'
        headers = {"content-type": "application/json"}
        assert await refused_fields(app, "POST", "/v1/goals", headers, content=body) == {"target"}, number


@pytest.mark.parametrize(
    ("service", "schema", "field", "values"),
    [
        ("sharing", "ShareIn", "network", NETWORKS),
        ("sharing", "ConnectedNetwork", "network", NETWORKS),
        ("metrics", "ConversionIn", "currency", PAYABLE_CURRENCIES),
        ("metrics", "MetricsSettingsIn", "currency", PAYABLE_CURRENCIES),
    ],
)
def test_a_field_the_service_checks_against_a_list_documents_that_list(
    service: str, schema: str, field: str, values: tuple[str, ...]
) -> None:
    spec = importlib.import_module(f"services.{service}.main").create_app().openapi()
    documented = spec["components"]["schemas"][schema]["properties"][field]
    # An optional field is the list or null.
    choices = [c for c in documented.get("anyOf", [documented]) if c.get("type") != "null"]
    assert [c["enum"] for c in choices] == [list(values)], documented
