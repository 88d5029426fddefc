"""The REST APIs' released OpenAPI documents, and the check that keeps them compatible.

`chorus schemas` writes docs/openapi/<service>.json from each service's app. The files in git are
the released APIs. `check_documents` (run by the test suite) fails when an app has drifted from
them in a way that breaks a client built on them, and when a compatible change has not been
written out yet. The policy is in docs/openapi/README.md.

A change is judged from the client's side (devtools/contracts.py `Compatibility`): what a client
sends (parameters and request bodies) must still be accepted as before, and what it receives
(the success answers, and the webhook requests a service sends it) must still be what its
generated types say.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from devtools.contracts import Compatibility, Direction, Schema, dump_json
from shared.serve import SERVICE_PORTS

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENAPI_DIR = Path("docs/openapi")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def build_documents() -> dict[str, Schema]:
    """Service name -> the OpenAPI document its app serves."""
    return {
        service: importlib.import_module(f"services.{service}.main").create_app().openapi()
        for service in SERVICE_PORTS
    }


def document_path(root: Path, service: str) -> Path:
    return root / OPENAPI_DIR / f"{service}.json"


def write_documents(root: Path = REPO_ROOT, current: dict[str, Schema] | None = None) -> list[Path]:
    (root / OPENAPI_DIR).mkdir(parents=True, exist_ok=True)
    written = []
    for service, document in (current or build_documents()).items():
        path = document_path(root, service)
        path.write_text(dump_json(document))
        written.append(path)
    return written


def breaking_document_changes(root: Path = REPO_ROOT, current: dict[str, Schema] | None = None) -> list[str]:
    """How the apps break the documents released under `root` (empty when they do not):
    `chorus schemas` writes nothing over them while there is any."""
    problems: list[str] = []
    for service, document in (current or build_documents()).items():
        path = document_path(root, service)
        if path.exists():
            released = json.loads(path.read_text())
            problems += [f"{service}: {problem}" for problem in breaking_changes(released, document)]
    return problems


def version_problems(root: Path = REPO_ROOT, current: dict[str, Schema] | None = None) -> list[str]:
    """Documents that changed since their release without a higher `info.version`: a client
    tells the API it was generated from by that version. `chorus schemas` writes nothing while
    there is any."""
    problems: list[str] = []
    for service, document in (current or build_documents()).items():
        path = document_path(root, service)
        if not path.exists():
            continue
        released = json.loads(path.read_text())
        was, now = released["info"]["version"], document["info"]["version"]
        if _without_version(released) != _without_version(document) and _semver(now) <= _semver(was):
            problems.append(
                f"{service}: the document changed, and its version did not rise above {was}, the"
                f" released one: raise API_VERSION in services/{service}/main.py (a minor for something"
                " new, a patch for wording)"
            )
    return problems


def _without_version(document: Schema) -> Schema:
    return {**document, "info": {**document["info"], "version": None}}


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def check_documents(root: Path = REPO_ROOT) -> list[str]:
    """Problems between the released documents under `root` and the apps (empty when fine)."""
    current = build_documents()
    problems = breaking_document_changes(root, current) or version_problems(root, current)
    if problems:
        return problems
    for service, document in current.items():
        path = document_path(root, service)
        if not path.exists():
            problems.append(f"{service}: no released document at {OPENAPI_DIR}; run `chorus schemas`")
        elif json.loads(path.read_text()) != document:
            problems.append(f"{service}: {OPENAPI_DIR / path.name} is not up to date; run `chorus schemas`")
    return problems


def breaking_changes(released: Schema, current: Schema) -> list[str]:
    """Why a client generated from `released` breaks against `current` (empty when it does not)."""
    compare = _ApiCompatibility(released, current)
    # A generated client names its types after the schemas: renaming one breaks code that uses it.
    current_schemas = current.get("components", {}).get("schemas", {})
    problems = [
        f"schema {name}: removed or renamed (a generated client names a type after it)"
        for name in released.get("components", {}).get("schemas", {})
        if name not in current_schemas
    ]
    # The operations a client calls, and the webhooks a service sends it (it reads those whole).
    for section in ("paths", "webhooks"):
        for name, released_item in released.get(section, {}).items():
            current_item = current.get(section, {}).get(name, {})
            for method, old in released_item.items():
                if method not in METHODS:
                    continue
                where = f"{method.upper()} {name}" if section == "paths" else f"webhook {name}"
                new = current_item.get(method)
                if new is None:
                    if not old.get("deprecated"):
                        problems.append(f"{where}: removed")
                    continue
                found = compare.operations(old, new) if section == "paths" else compare.webhook(old, new)
                problems += [f"{where}: {problem}" for problem in found]
    return problems


class _ApiCompatibility(Compatibility):
    """An operation's change, from its client's side: it sends parameters and request bodies,
    and receives the success answers."""

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
            problems += [
                f"response {status} header {header}: no longer sent"
                for header in old_response.get("headers", {})
                if header not in new_response.get("headers", {})
            ]
            problems += self.contents(
                old_response.get("content", {}),
                new_response.get("content", {}),
                f"response {status}",
                "received",
            )
        return problems

    def webhook(self, old: Schema, new: Schema) -> list[str]:
        """A request we send: its receiver reads the headers and the body."""
        current = {(p["in"], p["name"]) for p in new.get("parameters", [])}
        problems = [
            f"{p['in']} {p['name']}: no longer sent"
            for p in old.get("parameters", [])
            if (p["in"], p["name"]) not in current and not p.get("deprecated")
        ]
        old_body, new_body = old.get("requestBody"), new.get("requestBody")
        if old_body is not None and new_body is None:
            return [*problems, "body: no longer sent"]
        if old_body is not None and new_body is not None:
            problems += self.contents(
                old_body.get("content", {}), new_body.get("content", {}), "body", "received"
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
                old_parameter.get("schema", {}), new_parameter.get("schema", {}), where, "sent"
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
            old.get("content", {}), new.get("content", {}), "request body", "sent"
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
