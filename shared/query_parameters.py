"""A query string holds what the operation takes, each single value once; anything else is a 422,
as a body's unknown property is.

FastAPI ignores what a route does not declare, and keeps the last of a repeated single value. So
a misspelt filter was answered as if none had been asked (`GET /v1/funnel?teams=sales`, for
`team=`, gave the whole organisation's funnel, which its caller read as the sales team's), and
`?team=sales&team=eng` from a multiple choice gave the funnel of eng alone. Every route of
`create_service_app`'s routers depends on `refuse_unknown_query`, which runs before the route's
own dependencies; a query it refuses is refused after the caller is authenticated, so that an
expired token is a 401 (which a client answers by signing in again), as with any other 422.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from shared.auth import Caller

_SEQUENCES = (list, tuple, set, frozenset)


class ProtocolRoute(APIRoute):
    """A route of a protocol whose clients are not ours to hold to the document (SCIM): they send
    what their protocol allows, and what this server does not implement is ignored, not refused."""


def query_parameters(dependant: Dependant) -> dict[str, bool]:
    """The query parameters a route takes, its own and its dependencies', as the URL spells them,
    each with whether it may be given more than once (a list)."""
    taken = {param.alias: _is_sequence(param.field_info.annotation) for param in dependant.query_params}
    for dependency in dependant.dependencies:
        taken |= query_parameters(dependency)
    return taken


def _is_sequence(annotation: Any) -> bool:
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return any(
        (typing.get_origin(a) or a) in _SEQUENCES
        for a in (typing.get_args(annotation) if union else [annotation])
    )


def _callers(dependant: Dependant) -> list[Caller]:
    """The route's authentication and role checks, its own and its dependencies'."""
    found = [dependant.call] if isinstance(dependant.call, Caller) else []
    for dependency in dependant.dependencies:
        found += _callers(dependency)
    return found


@dataclass(frozen=True)
class _Route:
    """What the check needs of a route."""

    route: APIRoute
    taken: dict[str, bool]
    callers: list[Caller]


# Each route read once: routes live as long as the process, and holding the route here keeps its
# id from being reused for another.
_READ: dict[int, _Route] = {}


def _read(route: APIRoute) -> _Route:
    known = _READ.get(id(route))
    if known is None or known.route is not route:
        known = _READ[id(route)] = _Route(route, query_parameters(route.dependant), _callers(route.dependant))
    return known


async def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not request.scope["query_string"] or not isinstance(route, APIRoute):
        return
    if isinstance(route, ProtocolRoute):
        return
    read = _read(route)
    taken = read.taken
    seen: dict[str, int] = {}
    for name, _ in request.query_params.multi_items():
        seen[name] = seen.get(name, 0) + 1
    errors = []
    for name, times in seen.items():
        if name not in taken:
            takes = f"it takes {', '.join(sorted(taken))}" if taken else "it takes none"
            message = f"is not a query parameter of this operation ({takes})"
        elif times > 1 and not taken[name]:
            message = f"is given {times} times; it takes one value"
        else:
            continue
        errors.append(
            {
                "type": "value_error",
                "loc": ("query", name),
                "msg": message,
                "input": request.query_params.getlist(name),
            }
        )
    if errors:
        for caller in read.callers:
            await caller(request)  # raises 401 or 403, as FastAPI's own order would
        raise RequestValidationError(errors)
