"""One error family and one handler that writes RFC 9457 problem+json.

Raise an AppError subclass anywhere (service, domain, store); the handler turns it into a
response. Request validation errors from FastAPI become 422 problems that name each field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"

T = TypeVar("T")


# The JSON Schema of every error answer (RFC 9457), for the OpenAPI documents.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "a URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the path of the request"},
        "errors": {
            "type": "array",
            "description": "the fields at fault (422)",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


class AppError(Exception):
    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        problem: dict[str, Any] = {
            "type": f"https://chorus.dev/problems/{self.type_slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            problem["instance"] = instance
        if self.errors:
            problem["errors"] = self.errors
        return problem


class InvalidInput(AppError):
    """The request is well-formed but breaks a rule; `errors` names the fields."""

    status = 422
    title = "Invalid input"
    type_slug = "invalid-input"

    @classmethod
    def field(cls, field: str, message: str) -> InvalidInput:
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message}])


class Unauthorized(AppError):
    status = 401
    title = "Unauthorized"
    type_slug = "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="chorus"'})


class Forbidden(AppError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(AppError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


def found(value: T | None, detail: str) -> T:
    """`value`, or a 404 saying `detail` when there is none."""
    if value is None:
        raise NotFound(detail)
    return value


class Conflict(AppError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class PreconditionFailed(AppError):
    """A write's If-Match names another version than the stored one (shared/preconditions.py)."""

    status = 412
    title = "Precondition failed"
    type_slug = "precondition-failed"


class PayloadTooLarge(AppError):
    status = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class Unavailable(AppError):
    status = 503
    title = "Service unavailable"
    type_slug = "unavailable"


# What a 503 for an unreachable store asks the client to wait before trying again, in seconds.
RETRY_AFTER_S = 5


def store_unavailable(error: PyMongoError) -> Unavailable | None:
    """The 503 for a driver error that says MongoDB did not answer (no server to select, a lost
    connection, the request's deadline passed); None for any other error."""
    if isinstance(error, ConnectionFailure) or error.timeout:
        return Unavailable(
            "the database did not answer in time; retry the request shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return None


def problem_response(error: AppError, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        error.to_problem(instance), status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers
    )


def field_path(parts: Sequence[str | int]) -> str:
    """("suggested_posts", 0, "text") -> "suggested_posts[0].text"; "" for no parts."""
    path = ""
    for p in parts:
        path += f"[{p}]" if isinstance(p, int) else (f".{p}" if path else str(p))
    return path


def error_message(error: Mapping[str, Any]) -> str:
    """A validation error's message as a client reads it: pydantic writes "Value error, " before
    the words of a ValueError a validator raises, which says nothing to the client."""
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _field_of(loc: Sequence[Any]) -> str:
    # ("body", "suggested_posts", 0, "text") -> "suggested_posts[0].text". Only the first part
    # says where the value came from: a field may be named `body` or `path` itself.
    parts = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    return field_path(parts) or ".".join(str(p) for p in loc)


# For the `responses=` of a route whose path names no resource but that looks one up all the
# same (the caller's own enrolment, an id in the body): the 404 it may answer, which
# shared/app.py documents as a problem like the others.
NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: {"description": "what the request names is not there in the caller's organisation"}
}


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the app's OpenAPI document lists for `path` (HEAD with GET), or [] for a
    path it does not describe."""
    templates: list[tuple[re.Pattern[str], list[str]]] | None = getattr(app.state, "allowed_methods", None)
    if templates is None:
        templates = []
        for template, operations in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            methods = [m.upper() for m in operations if m in HTTP_METHODS]
            if "GET" in methods:
                methods.append("HEAD")
            templates.append((re.compile(f"{pattern}$"), sorted(methods)))
        app.state.allowed_methods = templates
    return next((methods for pattern, methods in templates if pattern.match(path)), [])


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem_response(exc, request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [{"field": _field_of(e.get("loc", ())), "message": error_message(e)} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(InvalidInput(detail, errors=errors), request.url.path)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error = AppError(str(exc.detail), headers=dict(exc.headers or {}))
        error.status = exc.status_code
        error.title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        error.type_slug = f"http-{exc.status_code}"
        if exc.status_code == 400:
            # FastAPI's answer to a body it could not read as text (not UTF-8): name the field.
            error.errors = [{"field": "body", "message": "must be JSON in UTF-8"}]
        if exc.status_code == 405 and (allowed := _allowed_methods(app, request.url.path)):
            # Starlette names only the methods of the first route matching the path; a path
            # served by several routes (GET and POST of a collection) takes them all.
            error.headers["Allow"] = ", ".join(allowed)
        return problem_response(error, request.url.path)

    async def on_store_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PyMongoError)
        unavailable = store_unavailable(exc)
        if unavailable is None:
            raise exc
        return problem_response(unavailable, request.url.path)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(PyMongoError, on_store_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
