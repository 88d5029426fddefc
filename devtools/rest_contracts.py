"""The REST APIs' released OpenAPI documents, and the check that keeps them compatible.

`chorus schemas` writes docs/openapi/<service>.json from each service's app. The files in git are
the released APIs. `check_documents` (run by the test suite) fails when an app has drifted from
them in a way that breaks a client built on them, and when a compatible change has not been
written out yet. The policy is in docs/openapi/README.md.

A change is judged from the client's side, in both directions: what a client sends (parameters
and request bodies) must still be accepted as before, and what it receives (the success
responses) must still be what its generated types say.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from devtools.contracts import Schema, dump_json, object_variant, resolve, types_of, variants
from shared.serve import SERVICE_PORTS

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENAPI_DIR = Path("docs/openapi")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
Direction = Literal["request", "response"]

# Bounds a request's value must keep within: lowering an upper one or raising a lower one refuses
# what was accepted before.
UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems")
LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems")


def build_documents() -> dict[str, Schema]:
    """Service name -> the OpenAPI document its app serves."""
    return {
        service: importlib.import_module(f"services.{service}.main").create_app().openapi()
        for service in SERVICE_PORTS
    }


def document_path(root: Path, service: str) -> Path:
    return root / OPENAPI_DIR / f"{service}.json"


def write_documents(root: Path = REPO_ROOT) -> list[Path]:
    (root / OPENAPI_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for service, document in build_documents().items():
        path = document_path(root, service)
        path.write_text(dump_json(document))
        written.append(path)
    return written


def check_documents(root: Path = REPO_ROOT) -> list[str]:
    """Problems between the released documents under `root` and the apps (empty when fine)."""
    problems: list[str] = []
    for service, current in build_documents().items():
        path = document_path(root, service)
        if not path.exists():
            problems.append(f"{service}: no released document at {OPENAPI_DIR}; run `chorus schemas`")
            continue
        released = json.loads(path.read_text())
        breaking = breaking_changes(released, current)
        problems += [f"{service}: {problem}" for problem in breaking]
        if not breaking and released != current:
            problems.append(f"{service}: {OPENAPI_DIR / path.name} is not up to date; run `chorus schemas`")
    return problems


def breaking_changes(released: Schema, current: Schema) -> list[str]:
    """Why a client generated from `released` breaks against `current` (empty when it does not)."""
    compare = _Comparison(released, current)
    problems: list[str] = []
    for path, released_item in released.get("paths", {}).items():
        current_item = current.get("paths", {}).get(path, {})
        for method, old in released_item.items():
            if method not in METHODS:
                continue
            new = current_item.get(method)
            if new is None:
                if not old.get("deprecated"):
                    problems.append(f"{method.upper()} {path}: removed")
                continue
            problems += [f"{method.upper()} {path}: {p}" for p in compare.operations(old, new)]
    return problems


@dataclass
class _Comparison:
    released: Schema
    current: Schema
    # Object schemas already compared (by identity, in a direction): recursive schemas end, and
    # a shared component's problem is told once, at the first place it is met.
    seen: set[tuple[int, int, Direction]] = field(default_factory=set)

    def operations(self, old: Schema, new: Schema) -> list[str]:
        problems: list[str] = []
        if old.get("operationId") != new.get("operationId"):
            problems.append(
                f"operationId changed from {old.get('operationId')} to {new.get('operationId')}"
                " (a generated client names its call after it)"
            )
        problems += self.parameters(old.get("parameters", []), new.get("parameters", []))
        problems += self.request_body(old.get("requestBody"), new.get("requestBody"))
        for status, old_response in old.get("responses", {}).items():
            if not status.startswith("2"):
                continue  # errors are problem+json; a client reads them by their type
            new_response = new.get("responses", {}).get(status)
            if new_response is None:
                problems.append(f"response {status}: removed")
                continue
            problems += self.contents(
                old_response.get("content", {}),
                new_response.get("content", {}),
                f"response {status}",
                "response",
            )
        return problems

    def parameters(self, old: list[Schema], new: list[Schema]) -> list[str]:
        problems: list[str] = []
        old_by_key = {(p["in"], p["name"]): p for p in old}
        new_by_key = {(p["in"], p["name"]): p for p in new}
        for (place, name), old_parameter in old_by_key.items():
            where = f"{place} parameter {name}"
            new_parameter = new_by_key.get((place, name))
            if new_parameter is None:
                if not old_parameter.get("deprecated"):
                    problems.append(f"{where}: removed")
                continue
            if new_parameter.get("required") and not old_parameter.get("required"):
                problems.append(f"{where}: newly required")
            problems += self.schemas(
                old_parameter.get("schema", {}), new_parameter.get("schema", {}), where, "request"
            )
        problems += [
            f"{place} parameter {name}: new and required"
            for (place, name), parameter in new_by_key.items()
            if (place, name) not in old_by_key and parameter.get("required")
        ]
        return problems

    def request_body(self, old: Schema | None, new: Schema | None) -> list[str]:
        if old is None:
            return ["request body: new and required"] if new is not None and new.get("required") else []
        if new is None:
            return ["request body: removed"]
        problems = ["request body: newly required"] if new.get("required") and not old.get("required") else []
        return problems + self.contents(
            old.get("content", {}), new.get("content", {}), "request body", "request"
        )

    def contents(self, old: Schema, new: Schema, where: str, direction: Direction) -> list[str]:
        problems: list[str] = []
        for media_type, old_media in old.items():
            new_media = new.get(media_type)
            if new_media is None:
                problems.append(f"{where} {media_type}: removed")
                continue
            problems += self.schemas(
                old_media.get("schema", {}), new_media.get("schema", {}), where, direction
            )
        return problems

    def schemas(self, old: Schema, new: Schema, where: str, direction: Direction) -> list[str]:
        old_types, new_types = types_of(old, self.released), types_of(new, self.current)
        # No type at all means any value: a request taking anything, a response giving anything.
        if direction == "request" and not _covers(new_types, old_types):
            return [f"{where}: type narrowed from {_shown(old_types)} to {_shown(new_types)}"]
        if direction == "response" and not _covers(old_types, new_types):
            return [f"{where}: type widened from {_shown(old_types)} to {_shown(new_types)}"]
        problems = self.formats(old, new, where, direction)
        if direction == "request":
            problems += self.request_limits(old, new, where)
        problems += self.properties(old, new, where, direction)
        old_items = next((v["items"] for v in variants(old, self.released) if "items" in v), None)
        new_items = next((v["items"] for v in variants(new, self.current) if "items" in v), None)
        if old_items is not None and new_items is not None:
            problems += self.schemas(old_items, new_items, f"{where}[]", direction)
        return problems

    def request_limits(self, old: Schema, new: Schema, where: str) -> list[str]:
        """What a request's value newly has to keep within, type by type."""
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

    def formats(self, old: Schema, new: Schema, where: str, direction: Direction) -> list[str]:
        """A format (date, date-time, uri...) a request must newly follow, or one a response no
        longer follows: a client parses by it."""
        problems: list[str] = []
        for kind in types_of(old, self.released) & types_of(new, self.current):
            before = _variant(old, self.released, kind).get("format")
            after = _variant(new, self.current, kind).get("format")
            if before != after and (after if direction == "request" else before) is not None:
                problems.append(f"{where}: format changed from {before} to {after}")
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
            at = f"{where}.{name}"
            if name not in new_properties:
                if not resolve(old_property, self.released).get("deprecated"):
                    problems.append(f"{at}: removed")
                continue
            if direction == "response" and name in old_required and name not in new_required:
                problems.append(f"{at}: no longer always given")
            problems += self.schemas(old_property, new_properties[name], at, direction)
        if direction == "request":
            problems += [f"{where}.{name}: newly required" for name in sorted(new_required - old_required)]
            if (
                old_object.get("additionalProperties") is not False
                and new_object.get("additionalProperties") is False
            ):
                problems.append(f"{where}: other properties no longer accepted")
        old_extra, new_extra = old_object.get("additionalProperties"), new_object.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            problems += self.schemas(old_extra, new_extra, f"{where}.*", direction)
        return problems


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
