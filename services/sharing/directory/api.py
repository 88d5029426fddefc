"""The SCIM 2.0 service provider's routes (RFC 7644), at /scim/v2 on sharing.

Identity providers (Entra ID, Okta, OneLogin) call it with `Authorization: Bearer <API key>`:
an organisation API key holding the scope `scim:provision`, or an organisation admin's token.
Every answer, errors included, is `application/scim+json`; errors are SCIM Error messages
(RFC 7644 §3.12) with their `scimType` (wire.py). Users and groups are one protocol over two
resource types: each operation (create, list, search, get, replace, patch, delete) is written
once (`resource_routes`), and a `ResourceKind` describes a type: its path, model, body, the
service's use cases and what the OpenAPI document says where the types differ (schemas.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from scim2_models import Error, Group, NotFoundException, NotImplementedException, ResponseParameters

from services.sharing.directory import schemas
from services.sharing.directory.domain import DirectoryGroup, DirectoryUser, UserResource
from services.sharing.directory.service import DirectoryService
from services.sharing.directory.wire import (
    SCIM_ERRORS,
    FromUrl,
    ListQuery,
    ScimJson,
    ScimRoute,
    Selected,
    base_of,
    body_of,
    body_query,
    page_of,
    scim_json,
)
from shared.app import links
from shared.auth import API_KEY_ROLE, Principal, Role, require
from shared.preconditions import IfMatch

SCOPE = "scim:provision"

router = APIRouter(
    prefix="/scim/v2",
    tags=["directory (SCIM 2.0)"],
    route_class=ScimRoute,
    responses=SCIM_ERRORS,
    default_response_class=ScimJson,
)
Responses = dict[int | str, dict[str, Any]]
DISCOVERY: Responses = {200: schemas.answer("the document", "ScimResource")}
DISCOVERY_LIST: Responses = {200: schemas.answer("every one of them (a ListResponse)", "ScimListResponse")}
SEARCH_BODY = schemas.body("ScimSearchRequest")
PATCH_BODY = schemas.body("ScimPatchOp")


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


# --- a resource type, described once -----------------------------------------------------------

E = TypeVar("E")  # the directory's entity of the type: DirectoryUser, DirectoryGroup


@dataclass(frozen=True)
class ResourceKind(Generic[E]):
    """A SCIM resource type as its routes serve it. The routes themselves are the same for every
    type (`resource_routes`); what differs between users and groups is here, explicit."""

    name: str  # the resource type ("User"): the noun of its summaries and operation ids
    model: Any  # its scim2-models model: `attributes`, searches and list responses read it
    body: str  # the component (schemas.COMPONENTS) a create and a replace take
    # The service's use cases for the type (unbound: the service comes with each request).
    create: Callable[[DirectoryService, str, Any], Awaitable[E]]
    get: Callable[[DirectoryService, str, str], Awaitable[E]]
    replace: Callable[[DirectoryService, str, str, Any, str | None], Awaitable[E]]
    patch: Callable[[DirectoryService, str, str, Any, str | None], Awaitable[E]]
    delete: Callable[[DirectoryService, str, str, str | None], Awaitable[None]]
    find: Callable[[DirectoryService, str, str | None, int, int], Awaitable[tuple[int, list[E]]]]
    # Its entities as SCIM resources, with what they compute (meta; a user's groups).
    out: Callable[[DirectoryService, str, list[E], str], Awaitable[list[Any]]]
    # The summaries the types do not share (the others follow the noun), and any operation's
    # description beyond its summary, by operation.
    create_summary: str
    patch_summary: str
    delete_summary: str
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """Its endpoint ("/Users"), as its ResourceType document (GET /ResourceTypes) says."""
        return str(schemas.RESOURCE_TYPES[self.name].endpoint)

    @property
    def one(self) -> str:
        return self.name.lower()

    @property
    def many(self) -> str:
        return self.path.strip("/").lower()


async def one_resource(
    kind: ResourceKind[E],
    service: DirectoryService,
    org: str,
    entity: E,
    request: Request,
    status: int = 200,
    params: ResponseParameters[Any] | None = None,
) -> Response:
    """A resource, with its version as ETag and its URL as Location (its meta.version and
    meta.location)."""
    resource = (await kind.out(service, org, [entity], base_of(request)))[0]
    headers = {"ETag": str(resource.meta.version), "Location": str(resource.meta.location)}
    return scim_json(schemas.dump(resource, params), status, headers)


async def listed(
    kind: ResourceKind[E], principal: Principal, service: DirectoryService, request: Request, query: ListQuery
) -> Response:
    params = query.selection.params(kind.model)
    start, size = page_of(query.start_index, query.count)
    total, entities = await kind.find(service, principal.org, query.filter, start - 1, size)
    resources = await kind.out(service, principal.org, entities, base_of(request))
    return scim_json(schemas.list_out(kind.model, resources, total, start, params))


def resource_routes(kind: ResourceKind[E]) -> None:
    """The seven operations on a resource type, on the router. The endpoints carry no docstring:
    an operation's description is the type's note for it, if any."""
    one, many = kind.one, kind.many
    item = f"{kind.path}/{{scim_id}}"
    single: Responses = {200: schemas.answer(f"the {one}", "ScimResource", resource=True)}
    page: Responses = {200: schemas.answer(f"a page of {many} (a ListResponse)", "ScimListResponse")}
    body = schemas.body(kind.body)
    # The item routes' names, which a created resource's links name by their operation ids.
    item_routes = {verb: f"{verb.lower()}_{one}" for verb in ("Get", "Replace", "Patch", "Delete")}
    created: Responses = {
        201: schemas.answer(
            f"the {one}, created",
            "ScimResource",
            resource=True,
            links=links(*item_routes.values(), scim_id="$response.body#/id"),
        )
    }

    @router.post(
        kind.path,
        summary=kind.create_summary,
        description=kind.notes.get("create", ""),
        status_code=201,
        responses=created,
        openapi_extra=body,
        name=f"create_{one}",
    )
    async def create(principal: Provisioner, service: Service, request: Request) -> Response:
        entity = await kind.create(service, principal.org, await body_of(request))
        return await one_resource(kind, service, principal.org, entity, request, 201)

    @router.get(
        kind.path,
        summary=f"List or filter {many}",
        description=kind.notes.get("list", ""),
        responses=page,
        name=f"list_{many}",
    )
    async def list_(principal: Provisioner, service: Service, request: Request, query: FromUrl) -> Response:
        return await listed(kind, principal, service, request, query)

    @router.post(
        f"{kind.path}/.search",
        summary=f"Search {many} (the query in the body)",
        description=kind.notes.get("search", ""),
        responses=page,
        openapi_extra=SEARCH_BODY,
        name=f"search_{many}",
    )
    async def search(principal: Provisioner, service: Service, request: Request) -> Response:
        query = body_query(kind.model, await body_of(request))
        return await listed(kind, principal, service, request, query)

    @router.get(
        item,
        summary=f"One {one}",
        description=kind.notes.get("get", ""),
        responses=single,
        name=item_routes["Get"],
    )
    async def get(
        scim_id: str, principal: Provisioner, service: Service, request: Request, selected: Selected
    ) -> Response:
        entity = await kind.get(service, principal.org, scim_id)
        return await one_resource(
            kind, service, principal.org, entity, request, params=selected.params(kind.model)
        )

    @router.put(
        item,
        summary=f"Replace a {one}",
        description=kind.notes.get("replace", ""),
        responses=single,
        openapi_extra=body,
        name=item_routes["Replace"],
    )
    async def replace(
        scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
    ) -> Response:
        entity = await kind.replace(service, principal.org, scim_id, await body_of(request), if_match)
        return await one_resource(kind, service, principal.org, entity, request)

    @router.patch(
        item,
        summary=kind.patch_summary,
        description=kind.notes.get("patch", ""),
        responses=single,
        openapi_extra=PATCH_BODY,
        name=item_routes["Patch"],
    )
    async def patch(
        scim_id: str, principal: Provisioner, service: Service, request: Request, if_match: IfMatch = None
    ) -> Response:
        entity = await kind.patch(service, principal.org, scim_id, await body_of(request), if_match)
        return await one_resource(kind, service, principal.org, entity, request)

    @router.delete(
        item,
        summary=kind.delete_summary,
        description=kind.notes.get("delete", ""),
        status_code=204,
        name=item_routes["Delete"],
    )
    async def delete(
        scim_id: str, principal: Provisioner, service: Service, if_match: IfMatch = None
    ) -> Response:
        await kind.delete(service, principal.org, scim_id, if_match)
        return Response(status_code=204)


async def users_out(
    service: DirectoryService, org: str, users: list[DirectoryUser], base: str
) -> list[UserResource]:
    """Users, each with their groups (a read-only attribute the directory computes)."""
    groups = await service.groups_of(org, users)
    return [schemas.user_out(u, groups[u.scim_id], base) for u in users]


async def groups_out(
    service: DirectoryService, org: str, groups: list[DirectoryGroup], base: str
) -> list[Group]:
    return [schemas.group_out(g, base) for g in groups]


USERS = ResourceKind(
    name="User",
    model=UserResource,
    body="ScimUser",
    create=DirectoryService.create_user,
    get=DirectoryService.user,
    replace=DirectoryService.replace_user,
    patch=DirectoryService.patch_user,
    delete=DirectoryService.delete_user,
    find=DirectoryService.users,
    out=users_out,
    create_summary="Provision a user (enrols or updates their advocate)",
    patch_summary="Change a user (PATCH add, replace, remove)",
    delete_summary="Remove a user (their advocate stays, deactivated)",
    notes={
        "create": "409 uniqueness when the userName (or externalId) is taken; nothing is written then.",
        "list": "Filters on userName, externalId, id, displayName, active, emails and meta.created / "
        "meta.lastModified; pages by startIndex and count.",
        "replace": "412 when If-Match names another version than the stored one.",
        "patch": "`active: false` deactivates the advocate: they can no longer share, their scheduled "
        "shares are cancelled, their links keep redirecting.",
    },
)
GROUPS = ResourceKind(
    name="Group",
    model=Group,
    body="ScimGroup",
    create=DirectoryService.create_group,
    get=DirectoryService.group,
    replace=DirectoryService.replace_group,
    patch=DirectoryService.patch_group,
    delete=DirectoryService.delete_group,
    find=DirectoryService.groups,
    out=groups_out,
    create_summary="Provision a group (a team: its members' team is its name)",
    patch_summary="Change a group: rename, add or remove members",
    delete_summary="Remove a group (its members leave the team)",
    notes={"list": "Filters on displayName, externalId, id, members and meta.created / meta.lastModified."},
)

# --- discovery ---------------------------------------------------------------------------------


@router.get("/ServiceProviderConfig", summary="What this SCIM provider offers", responses=DISCOVERY)
async def get_service_provider_config(principal: Provisioner, request: Request) -> Response:
    """PATCH, filtering, ETags; no bulk, sort or password change."""
    return scim_json(schemas.service_provider_config(base_of(request)))


@router.get(
    "/ResourceTypes",
    summary="The resource types: User (with the enterprise extension), Group",
    responses=DISCOVERY_LIST,
)
async def list_resource_types(principal: Provisioner, request: Request) -> Response:
    base = base_of(request)
    return scim_json(schemas.list_of([schemas.resource_type(name, base) for name in schemas.RESOURCE_TYPES]))


@router.get("/ResourceTypes/{name}", summary="One resource type", responses=DISCOVERY)
async def get_resource_type(name: str, principal: Provisioner, request: Request) -> Response:
    if name not in schemas.RESOURCE_TYPES:
        raise NotFoundException(detail=f"no resource type {name}")
    return scim_json(schemas.resource_type(name, base_of(request)))


@router.get(
    "/Schemas", summary="The schemas: core User, enterprise User, core Group", responses=DISCOVERY_LIST
)
async def list_schemas(principal: Provisioner, request: Request) -> Response:
    base = base_of(request)
    return scim_json(schemas.list_of([schemas.schema(urn, base) for urn in schemas.SCHEMAS]))


@router.get("/Schemas/{urn}", summary="One schema", responses=DISCOVERY)
async def get_schema(urn: str, principal: Provisioner, request: Request) -> Response:
    if urn not in schemas.SCHEMAS:
        raise NotFoundException(detail=f"no schema {urn}")
    return scim_json(schemas.schema(urn, base_of(request)))


# --- users and groups --------------------------------------------------------------------------

resource_routes(USERS)
resource_routes(GROUPS)

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
