"""The SCIM 2.0 service provider's routes (RFC 7644), at /scim/v2 on sharing.

Identity providers (Entra ID, Okta, OneLogin) call it with `Authorization: Bearer <API key>`:
an organisation API key holding the scope `scim:provision`, or an organisation admin's token.
Every answer, errors included, is `application/scim+json`; errors are SCIM Error messages
(RFC 7644 §3.12) with their `scimType` (wire.py). Users and groups are listed and searched one
way (`listed`); the OpenAPI document describes each operation's answers and bodies (schemas.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.routing import APIRoute
from scim2_models import Error, Group, NotFoundException, NotImplementedException

from services.sharing.directory import schemas
from services.sharing.directory.domain import DirectoryGroup, DirectoryUser, UserResource, etag
from services.sharing.directory.service import DirectoryService
from services.sharing.directory.wire import (
    SCIM_ERRORS,
    ScimJson,
    ScimRoute,
    base_of,
    body_of,
    page_of,
    params_of,
    scim_json,
    search_of,
)
from shared.auth import API_KEY_ROLE, Principal, Role, require

SCOPE = "scim:provision"

router = APIRouter(
    prefix="/scim/v2",
    tags=["directory (SCIM 2.0)"],
    route_class=ScimRoute,
    responses=SCIM_ERRORS,
    default_response_class=ScimJson,
)
Responses = dict[int | str, dict[str, Any]]
RESOURCE = schemas.RESOURCE_SCHEMA
ONE_USER: Responses = {200: schemas.answer("the user", RESOURCE, resource=True)}
ONE_GROUP: Responses = {200: schemas.answer("the group", RESOURCE, resource=True)}
USERS: Responses = {200: schemas.answer("a page of users (a ListResponse)", schemas.LIST_SCHEMA)}
GROUPS: Responses = {200: schemas.answer("a page of groups (a ListResponse)", schemas.LIST_SCHEMA)}
DISCOVERY: Responses = {200: schemas.answer("the document", RESOURCE)}
DISCOVERY_LIST: Responses = {200: schemas.answer("every one of them (a ListResponse)", schemas.LIST_SCHEMA)}
USER_BODY = schemas.body(schemas.USER_IN_SCHEMA)
GROUP_BODY = schemas.body(schemas.GROUP_IN_SCHEMA)
SEARCH_BODY = schemas.body(schemas.SEARCH_SCHEMA)
PATCH_BODY = schemas.body(schemas.PATCH_SCHEMA)


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


# --- lists, one way for both resource types ----------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """How a resource type is listed: its scim2-models model and a page of its resources."""

    model: Any
    page: Callable[[DirectoryService, str, str | None, int, int, str], Awaitable[tuple[int, list[Any]]]]


@dataclass(frozen=True)
class ListQuery:
    """A list's query, from the URL (GET) or the body (POST .search)."""

    filter: str | None
    start_index: int | None
    count: int | None
    attributes: Any
    excluded: Any


async def user_page(
    service: DirectoryService, org: str, filter: str | None, skip: int, size: int, base: str
) -> tuple[int, list[Any]]:
    total, users = await service.users(org, filter, skip, size)
    groups = await service.groups_of(org, users)
    return total, [schemas.user_out(u, groups[u.scim_id], base) for u in users]


async def group_page(
    service: DirectoryService, org: str, filter: str | None, skip: int, size: int, base: str
) -> tuple[int, list[Any]]:
    total, groups = await service.groups(org, filter, skip, size)
    return total, [schemas.group_out(g, base) for g in groups]


USER_LIST = Listing(UserResource, user_page)
GROUP_LIST = Listing(Group, group_page)


async def searched(listing: Listing, request: Request) -> ListQuery:
    search = search_of(listing.model, await body_of(request))
    return ListQuery(
        search.filter, search.start_index, search.count, search.attributes, search.excluded_attributes
    )


async def listed(
    listing: Listing, principal: Principal, service: DirectoryService, request: Request, query: ListQuery
) -> Response:
    params = params_of(listing.model, query.attributes, query.excluded)
    start, size = page_of(query.start_index, query.count)
    total, resources = await listing.page(
        service, principal.org, query.filter, start - 1, size, base_of(request)
    )
    return scim_json(schemas.list_out(listing.model, resources, total, start, params))


# --- discovery ---------------------------------------------------------------------------------


@router.get("/ServiceProviderConfig", summary="What this SCIM provider offers", responses=DISCOVERY)
async def service_provider_config(principal: Provisioner, request: Request) -> Response:
    """PATCH, filtering, ETags; no bulk, sort or password change."""
    return scim_json(schemas.service_provider_config(base_of(request)))


@router.get(
    "/ResourceTypes",
    summary="The resource types: User (with the enterprise extension), Group",
    responses=DISCOVERY_LIST,
)
async def resource_types(principal: Provisioner, request: Request) -> Response:
    base = base_of(request)
    return scim_json(schemas.list_of([schemas.resource_type(name, base) for name in schemas.RESOURCE_TYPES]))


@router.get("/ResourceTypes/{name}", summary="One resource type", responses=DISCOVERY)
async def resource_type(name: str, principal: Provisioner, request: Request) -> Response:
    if name not in schemas.RESOURCE_TYPES:
        raise NotFoundException(detail=f"no resource type {name}")
    return scim_json(schemas.resource_type(name, base_of(request)))


@router.get(
    "/Schemas", summary="The schemas: core User, enterprise User, core Group", responses=DISCOVERY_LIST
)
async def schemas_list(principal: Provisioner, request: Request) -> Response:
    base = base_of(request)
    return scim_json(schemas.list_of([schemas.schema(urn, base) for urn in schemas.SCHEMAS]))


@router.get("/Schemas/{urn}", summary="One schema", responses=DISCOVERY)
async def schema(urn: str, principal: Provisioner, request: Request) -> Response:
    if urn not in schemas.SCHEMAS:
        raise NotFoundException(detail=f"no schema {urn}")
    return scim_json(schemas.schema(urn, base_of(request)))


# --- users -------------------------------------------------------------------------------------


@router.post(
    "/Users",
    summary="Provision a user (enrols or updates their advocate)",
    status_code=201,
    responses={
        201: schemas.answer("the user, created", RESOURCE, resource=True, links=schemas.links_to("User"))
    },
    openapi_extra=USER_BODY,
)
async def create_user(principal: Provisioner, service: Service, request: Request) -> Response:
    """409 uniqueness when the userName (or externalId) is taken; nothing is written then."""
    user = await service.create_user(principal.org, await body_of(request))
    return await user_response(service, principal.org, user, request, 201)


@router.get("/Users", summary="List or filter users", responses=USERS)
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
    query = ListQuery(filter, start_index, count, attributes, excluded)
    return await listed(USER_LIST, principal, service, request, query)


@router.post(
    "/Users/.search",
    summary="Search users (the query in the body)",
    responses=USERS,
    openapi_extra=SEARCH_BODY,
)
async def search_users(principal: Provisioner, service: Service, request: Request) -> Response:
    return await listed(USER_LIST, principal, service, request, await searched(USER_LIST, request))


@router.get("/Users/{scim_id}", summary="One user", responses=ONE_USER, operation_id="scim_get_user")
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


@router.put(
    "/Users/{scim_id}",
    summary="Replace a user",
    responses=ONE_USER,
    openapi_extra=USER_BODY,
    operation_id="scim_replace_user",
)
async def replace_user(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    """412 when If-Match names another version than the stored one."""
    user = await service.replace_user(principal.org, scim_id, await body_of(request), if_match)
    return await user_response(service, principal.org, user, request)


@router.patch(
    "/Users/{scim_id}",
    summary="Change a user (PATCH add, replace, remove)",
    responses=ONE_USER,
    openapi_extra=PATCH_BODY,
    operation_id="scim_patch_user",
)
async def patch_user(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    """`active: false` deactivates the advocate: they can no longer share, their scheduled shares
    are cancelled, their links keep redirecting."""
    user = await service.patch_user(principal.org, scim_id, await body_of(request), if_match)
    return await user_response(service, principal.org, user, request)


@router.delete(
    "/Users/{scim_id}",
    summary="Remove a user (their advocate stays, deactivated)",
    status_code=204,
    operation_id="scim_delete_user",
)
async def delete_user(
    scim_id: str, principal: Provisioner, service: Service, if_match: IfMatch = None
) -> Response:
    await service.delete_user(principal.org, scim_id, if_match)
    return Response(status_code=204)


# --- groups ------------------------------------------------------------------------------------


@router.post(
    "/Groups",
    summary="Provision a group (a team: its members' team is its name)",
    status_code=201,
    responses={
        201: schemas.answer("the group, created", RESOURCE, resource=True, links=schemas.links_to("Group"))
    },
    openapi_extra=GROUP_BODY,
)
async def create_group(principal: Provisioner, service: Service, request: Request) -> Response:
    group = await service.create_group(principal.org, await body_of(request))
    return group_response(group, request, 201)


@router.get("/Groups", summary="List or filter groups", responses=GROUPS)
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
    query = ListQuery(filter, start_index, count, attributes, excluded)
    return await listed(GROUP_LIST, principal, service, request, query)


@router.post(
    "/Groups/.search",
    summary="Search groups (the query in the body)",
    responses=GROUPS,
    openapi_extra=SEARCH_BODY,
)
async def search_groups(principal: Provisioner, service: Service, request: Request) -> Response:
    return await listed(GROUP_LIST, principal, service, request, await searched(GROUP_LIST, request))


@router.get("/Groups/{scim_id}", summary="One group", responses=ONE_GROUP, operation_id="scim_get_group")
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


@router.put(
    "/Groups/{scim_id}",
    summary="Replace a group",
    responses=ONE_GROUP,
    openapi_extra=GROUP_BODY,
    operation_id="scim_replace_group",
)
async def replace_group(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    group = await service.replace_group(principal.org, scim_id, await body_of(request), if_match)
    return group_response(group, request)


@router.patch(
    "/Groups/{scim_id}",
    summary="Change a group: rename, add or remove members",
    responses=ONE_GROUP,
    openapi_extra=PATCH_BODY,
    operation_id="scim_patch_group",
)
async def patch_group(
    scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
) -> Response:
    group = await service.patch_group(principal.org, scim_id, await body_of(request), if_match)
    return group_response(group, request)


@router.delete(
    "/Groups/{scim_id}",
    summary="Remove a group (its members leave the team)",
    status_code=204,
    operation_id="scim_delete_group",
)
async def delete_group(
    scim_id: str, principal: Provisioner, service: Service, if_match: IfMatch = None
) -> Response:
    await service.delete_group(principal.org, scim_id, if_match)
    return Response(status_code=204)


# --- anything else under /scim/v2 --------------------------------------------------------------


# Not offered, so not in the document: a client that tries it learns why (501).
@router.post("/.search", include_in_schema=False)
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
