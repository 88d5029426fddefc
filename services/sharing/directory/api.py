"""The SCIM 2.0 service provider's routes (RFC 7644), at /scim/v2 on sharing.

Identity providers (Entra ID, Okta, OneLogin) call it with `Authorization: Bearer <API key>`:
an organisation API key holding the scope `scim:provision`, or an organisation admin's token.
Every answer, errors included, is `application/scim+json`; errors are SCIM Error messages
(RFC 7644 §3.12) with their `scimType`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from scim2_models import (
    Context,
    Error,
    Group,
    InvalidSyntaxException,
    NotFoundException,
    NotImplementedException,
    PayloadTooLargeException,
    ResponseParameters,
    SCIMException,
    SearchRequest,
)

from services.sharing.directory import schemas
from services.sharing.directory.domain import DirectoryGroup, DirectoryUser, UserResource, etag
from services.sharing.directory.service import DirectoryService
from shared.auth import API_KEY_ROLE, Principal, Role, require
from shared.errors import AppError, store_unavailable

SCOPE = "scim:provision"
MAX_BODY = 1_000_000


class ScimRoute(APIRoute):
    """A route whose every error, from its dependencies (auth) to its body, is a SCIM Error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def scim_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SCIMException as exc:
                return scim_error(exc.to_error())
            except ValidationError as exc:  # scim2-models refused the payload: the first reason
                return scim_error(Error.from_validation_errors(exc)[0])
            except RequestValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                return scim_error(
                    Error(status=400, scim_type="invalidValue", detail=f"{where}: {first['msg']}")
                )
            except PyMongoError as exc:  # the store did not answer: a 503 the client retries
                unavailable = store_unavailable(exc)
                if unavailable is None:
                    raise
                return app_error(unavailable)
            except AppError as exc:
                return app_error(exc)

        return scim_handler


def app_error(exc: AppError) -> Response:
    """One of the service's own errors, as a SCIM Error (SCIM has no 422: a bad value is a 400)."""
    status = 400 if exc.status == 422 else exc.status
    response = scim_error(Error(status=status, detail=exc.detail))
    response.headers.update(exc.headers)
    return response


def scim_error(error: Error) -> Response:
    status = error.status or 400
    return scim_json(error.model_dump(), status)


def scim_json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), status, headers=headers, media_type=schemas.SCIM_JSON)


# Errors are SCIM Error messages, not problem+json: declared once for every operation (which also
# keeps FastAPI from documenting its own 422, which these routes never answer).
SCIM_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "a SCIM Error message (RFC 7644 §3.12): status, scimType, detail",
        "content": {schemas.SCIM_JSON: {"schema": schemas.ERROR_SCHEMA}},
    }
}
router = APIRouter(
    prefix="/scim/v2", tags=["directory (SCIM 2.0)"], route_class=ScimRoute, responses=SCIM_ERRORS
)


async def provisioner(
    principal: Annotated[Principal, Depends(require(Role.ADMIN, API_KEY_ROLE))],
) -> Principal:
    """An organisation API key with `scim:provision`, or an organisation admin."""
    principal.check_scope(SCOPE)
    return principal


async def get_service(request: Request) -> DirectoryService:
    service: DirectoryService = request.app.state.directory
    return service


Provisioner = Annotated[Principal, Depends(provisioner)]
Service = Annotated[DirectoryService, Depends(get_service)]
IfMatch = Annotated[str | None, Header(alias="If-Match")]
Filter = Annotated[str | None, Query(alias="filter", max_length=2000)]
StartIndex = Annotated[int, Query(alias="startIndex")]
Count = Annotated[int | None, Query(alias="count")]
Attributes = Annotated[str | None, Query(alias="attributes")]
Excluded = Annotated[str | None, Query(alias="excludedAttributes")]


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/scim/v2"


async def body_of(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise PayloadTooLargeException(detail=f"the body is over {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidSyntaxException(detail=f"the body is not JSON: {exc}") from exc


def params_of(model: Any, attributes: Any, excluded: Any) -> ResponseParameters[Any] | None:
    """What `attributes` / `excludedAttributes` (a comma-separated string, or paths) select."""
    if attributes is None and excluded is None:
        return None
    params: ResponseParameters[Any] = ResponseParameters[model].model_validate(  # type: ignore[valid-type]
        {"attributes": attributes, "excludedAttributes": excluded}
    )
    return params


def search_of(model: Any, body: Any) -> SearchRequest[Any]:
    search: SearchRequest[Any] = SearchRequest[model].model_validate(body, scim_ctx=Context.SEARCH_REQUEST)  # type: ignore[valid-type]
    return search


def page_of(start_index: int | None, count: int | None) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: startIndex below 1 is 1; count below 0 is 0; above the maximum, the maximum."""
    start = max(start_index or 1, 1)
    size = schemas.MAX_RESULTS if count is None else min(max(count, 0), schemas.MAX_RESULTS)
    return start, size


async def user_response(
    service: Service, org: str, user: DirectoryUser, request: Request, status: int = 200, params: Any = None
) -> Response:
    base = base_of(request)
    groups = (await service.groups_of(org, [user]))[user.scim_id]
    body = schemas.dump(schemas.user_out(user, groups, base), params)
    headers = {"ETag": etag(user.version), "Location": schemas.user_location(base, user.scim_id)}
    return scim_json(body, status, headers)


def group_response(
    group: DirectoryGroup, request: Request, status: int = 200, params: Any = None
) -> Response:
    base = base_of(request)
    body = schemas.dump(schemas.group_out(group, base), params)
    headers = {"ETag": etag(group.version), "Location": schemas.group_location(base, group.scim_id)}
    return scim_json(body, status, headers)


# --- discovery ---------------------------------------------------------------------------------


@router.get("/ServiceProviderConfig", summary="What this SCIM provider offers")
async def service_provider_config(principal: Provisioner, request: Request) -> Response:
    """PATCH, filtering, ETags; no bulk, sort or password change."""
    return scim_json(schemas.service_provider_config(base_of(request)))


@router.get("/ResourceTypes", summary="The resource types: User (with the enterprise extension), Group")
async def resource_types(principal: Provisioner, request: Request) -> Response:
    base = base_of(request)
    return scim_json(schemas.list_of([schemas.resource_type(name, base) for name in schemas.RESOURCE_TYPES]))


@router.get("/ResourceTypes/{name}", summary="One resource type")
async def resource_type(name: str, principal: Provisioner, request: Request) -> Response:
    if name not in schemas.RESOURCE_TYPES:
        raise NotFoundException(detail=f"no resource type {name}")
    return scim_json(schemas.resource_type(name, base_of(request)))


@router.get("/Schemas", summary="The schemas: core User, enterprise User, core Group")
async def schemas_list(principal: Provisioner, request: Request) -> Response:
    base = base_of(request)
    return scim_json(schemas.list_of([schemas.schema(urn, base) for urn in schemas.SCHEMAS]))


@router.get("/Schemas/{urn}", summary="One schema")
async def schema(urn: str, principal: Provisioner, request: Request) -> Response:
    if urn not in schemas.SCHEMAS:
        raise NotFoundException(detail=f"no schema {urn}")
    return scim_json(schemas.schema(urn, base_of(request)))


# --- users -------------------------------------------------------------------------------------


@router.post("/Users", summary="Provision a user (enrols or updates their advocate)")
async def create_user(principal: Provisioner, service: Service, request: Request) -> Response:
    """409 uniqueness when the userName (or externalId) is taken; nothing is written then."""
    user = await service.create_user(principal.org, await body_of(request))
    return await user_response(service, principal.org, user, request, 201)


@router.get("/Users", summary="List or filter users")
async def list_users(
    principal: Provisioner,
    service: Service,
    request: Request,
    filter: Filter = None,
    start_index: StartIndex = 1,
    count: Count = None,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    """Filters on userName, externalId, id, displayName, active, emails and meta.created /
    meta.lastModified; pages by startIndex and count."""
    params = params_of(UserResource, attributes, excluded)
    return await users_page(principal, service, request, filter, start_index, count, params)


@router.post("/Users/.search", summary="Search users (the query in the body)")
async def search_users(principal: Provisioner, service: Service, request: Request) -> Response:
    search = search_of(UserResource, await body_of(request))
    params = params_of(UserResource, search.attributes, search.excluded_attributes)
    return await users_page(
        principal, service, request, search.filter, search.start_index, search.count, params
    )


async def users_page(
    principal: Principal,
    service: DirectoryService,
    request: Request,
    filter: str | None,
    start_index: int | None,
    count: int | None,
    params: ResponseParameters[Any] | None,
) -> Response:
    start, size = page_of(start_index, count)
    total, users = await service.users(principal.org, filter, start - 1, size)
    groups = await service.groups_of(principal.org, users)
    base = base_of(request)
    resources = [schemas.user_out(u, groups[u.scim_id], base) for u in users]
    return scim_json(schemas.list_out(UserResource, resources, total, start, params))


@router.get("/Users/{scim_id}", summary="One user")
async def get_user(
    scim_id: str,
    principal: Provisioner,
    service: Service,
    request: Request,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    params = params_of(UserResource, attributes, excluded)
    user = await service.user(principal.org, scim_id)
    return await user_response(service, principal.org, user, request, params=params)


@router.put("/Users/{scim_id}", summary="Replace a user")
async def replace_user(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    """412 when If-Match names another version than the stored one."""
    user = await service.replace_user(principal.org, scim_id, await body_of(request), if_match)
    return await user_response(service, principal.org, user, request)


@router.patch("/Users/{scim_id}", summary="Change a user (PATCH add, replace, remove)")
async def patch_user(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    """`active: false` deactivates the advocate: they can no longer share, their scheduled shares
    are cancelled, their links keep redirecting."""
    user = await service.patch_user(principal.org, scim_id, await body_of(request), if_match)
    return await user_response(service, principal.org, user, request)


@router.delete("/Users/{scim_id}", summary="Remove a user (their advocate stays, deactivated)")
async def delete_user(
    scim_id: str, principal: Provisioner, service: Service, if_match: IfMatch = None
) -> Response:
    await service.delete_user(principal.org, scim_id, if_match)
    return Response(status_code=204)


# --- groups ------------------------------------------------------------------------------------


@router.post("/Groups", summary="Provision a group (a team: its members' team is its name)")
async def create_group(principal: Provisioner, service: Service, request: Request) -> Response:
    group = await service.create_group(principal.org, await body_of(request))
    return group_response(group, request, 201)


@router.get("/Groups", summary="List or filter groups")
async def list_groups(
    principal: Provisioner,
    service: Service,
    request: Request,
    filter: Filter = None,
    start_index: StartIndex = 1,
    count: Count = None,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    """Filters on displayName, externalId, id, members and meta.created / meta.lastModified."""
    params = params_of(Group, attributes, excluded)
    return await groups_page(principal, service, request, filter, start_index, count, params)


@router.post("/Groups/.search", summary="Search groups (the query in the body)")
async def search_groups(principal: Provisioner, service: Service, request: Request) -> Response:
    search = search_of(Group, await body_of(request))
    params = params_of(Group, search.attributes, search.excluded_attributes)
    return await groups_page(
        principal, service, request, search.filter, search.start_index, search.count, params
    )


async def groups_page(
    principal: Principal,
    service: DirectoryService,
    request: Request,
    filter: str | None,
    start_index: int | None,
    count: int | None,
    params: ResponseParameters[Any] | None,
) -> Response:
    start, size = page_of(start_index, count)
    total, groups = await service.groups(principal.org, filter, start - 1, size)
    base = base_of(request)
    resources = [schemas.group_out(g, base) for g in groups]
    return scim_json(schemas.list_out(Group, resources, total, start, params))


@router.get("/Groups/{scim_id}", summary="One group")
async def get_group(
    scim_id: str,
    principal: Provisioner,
    service: Service,
    request: Request,
    attributes: Attributes = None,
    excluded: Excluded = None,
) -> Response:
    params = params_of(Group, attributes, excluded)
    return group_response(await service.group(principal.org, scim_id), request, params=params)


@router.put("/Groups/{scim_id}", summary="Replace a group")
async def replace_group(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    group = await service.replace_group(principal.org, scim_id, await body_of(request), if_match)
    return group_response(group, request)


@router.patch("/Groups/{scim_id}", summary="Change a group: rename, add or remove members")
async def patch_group(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    group = await service.patch_group(principal.org, scim_id, await body_of(request), if_match)
    return group_response(group, request)


@router.delete("/Groups/{scim_id}", summary="Remove a group (its members leave the team)")
async def delete_group(
    scim_id: str, principal: Provisioner, service: Service, if_match: IfMatch = None
) -> Response:
    await service.delete_group(principal.org, scim_id, if_match)
    return Response(status_code=204)


# --- anything else under /scim/v2 --------------------------------------------------------------


@router.post("/.search", summary="Search across resource types: not offered (501)")
async def search_everything(principal: Provisioner) -> Response:
    """Search /Users/.search or /Groups/.search instead."""
    raise NotImplementedException(
        detail="search /Users/.search or /Groups/.search, one resource type at a time"
    )


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown(rest: str, principal: Provisioner, request: Request) -> Response:
    """405 for a SCIM endpoint called with a method it does not take, 404 for no endpoint."""
    path = request.url.path
    allowed = sorted(
        method
        for route in router.routes
        if isinstance(route, APIRoute) and route.name != "unknown" and route.path_regex.match(path)
        for method in route.methods or ()
    )
    if allowed:
        error = Error(status=405, detail=f"{request.method} is not allowed here; use {', '.join(allowed)}")
        return scim_json(error.model_dump(), 405, {"Allow": ", ".join(allowed)})
    raise NotFoundException(detail=f"no SCIM endpoint /scim/v2/{rest}")
