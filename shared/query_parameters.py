"""A query parameter an operation does not take is refused with a 422, as a body's unknown
property is.

FastAPI ignores what a route does not declare. So a misspelt filter was answered as if none had
been asked: `GET /v1/funnel?teams=sales` (for `team=`) gave the whole organisation's funnel, which
its caller then read as the sales team's. Every route of `create_service_app`'s routers depends on
`refuse_unknown_query`, which runs before the route's own dependencies.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


class ProtocolRoute(APIRoute):
    """A route of a protocol whose clients are not ours to hold to the document (SCIM): they send
    what their protocol allows, and what this server does not implement is ignored, not refused."""


def query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters a route takes: its own and its dependencies', as the URL spells them."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= query_names(dependency)
    return frozenset(names)


# Each route's names, read once: routes live as long as the process, and holding the route here
# keeps its id from being reused for another.
_TAKEN: dict[int, tuple[APIRoute, frozenset[str]]] = {}


def _taken_by(route: APIRoute) -> frozenset[str]:
    known = _TAKEN.get(id(route))
    if known is None or known[0] is not route:
        known = _TAKEN[id(route)] = (route, query_names(route.dependant))
    return known[1]


async def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not request.scope["query_string"] or not isinstance(route, APIRoute):
        return
    if isinstance(route, ProtocolRoute):
        return
    taken = _taken_by(route)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in taken]
    if unknown:
        takes = f"it takes {', '.join(sorted(taken))}" if taken else "it takes none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"is not a query parameter of this operation ({takes})",
                    "input": request.query_params.getlist(name),
                }
                for name in unknown
            ]
        )
