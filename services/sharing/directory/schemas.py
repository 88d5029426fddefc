"""The SCIM messages of the directory API (RFC 7643/7644), built with scim2-models: the discovery
documents, resources with their computed attributes (meta, a user's groups), list responses
and errors. Every answer is `application/scim+json`.
"""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    Error,
    ETag,
    Filter,
    Group,
    ListResponse,
    Meta,
    Patch,
    ResourceType,
    ResponseParameters,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_models import GroupMembership as UserGroup

from services.sharing.directory import domain
from services.sharing.directory.domain import DirectoryGroup, DirectoryUser, UserResource
from shared.fields import TEXT
from shared.preconditions import etag

SCIM_JSON = "application/scim+json"
MAX_RESULTS = 200  # per page of a list (`count` above it is lowered to it)
DOCS = (
    "https://github.com/chorus-advocacy/chorus/blob/main/docs/ARCHITECTURE.md#directory-provisioning-scim-20"
)

RESOURCE_TYPES = {
    "User": ResourceType.from_resource(UserResource),
    "Group": ResourceType.from_resource(Group),
}
SCHEMAS = {str(s.id): s for s in (User.to_schema(), EnterpriseUser.to_schema(), Group.to_schema())}


def service_provider_config(base: str) -> dict[str, Any]:
    """What this provider offers: PATCH, filters (the attributes docs/ARCHITECTURE.md lists),
    ETags; not bulk, sort or password changes (provisioned people sign in at their identity
    provider)."""
    config = ServiceProviderConfig(
        documentation_uri=DOCS,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="Organisation API key",
                description="Authorization: Bearer chorus_<id>_<secret>, an API key of the organisation "
                "with the scope scim:provision (POST /v1/api-keys on metrics), or an admin's token",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base}/ServiceProviderConfig"),
    )
    return config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def resource_type(name: str, base: str) -> dict[str, Any]:
    found = RESOURCE_TYPES[name].model_copy()
    found.meta = Meta(resource_type="ResourceType", location=f"{base}/ResourceTypes/{name}")
    return found.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def schema(urn: str, base: str) -> dict[str, Any]:
    found = SCHEMAS[urn].model_copy()
    found.meta = Meta(resource_type="Schema", location=f"{base}/Schemas/{urn}")
    return found.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def location(base: str, resource_type: str, scim_id: str) -> str:
    """A resource's URL: its type's endpoint (`/Users`, `/Groups`), then its id."""
    return f"{base}{RESOURCE_TYPES[resource_type].endpoint}/{scim_id}"


def meta(resource_type: str, entity: DirectoryUser | DirectoryGroup, base: str) -> Meta:
    """What the directory computes of a resource: its dates, version and URL."""
    return Meta(
        resource_type=resource_type,
        created=entity.created,
        last_modified=entity.last_modified,
        version=etag(entity.version),
        location=location(base, resource_type, entity.scim_id),
    )


def user_out(user: DirectoryUser, groups: list[DirectoryGroup], base: str) -> UserResource:
    resource = domain.user_resource(user)
    resource.groups = [
        UserGroup(
            value=g.scim_id, display=g.display_name, ref=location(base, "Group", g.scim_id), type="direct"
        )
        for g in groups
    ] or None
    resource.meta = meta("User", user, base)
    return resource


def group_out(group: DirectoryGroup, base: str) -> Group:
    resource = domain.group_resource(group)
    for member in resource.members or ():
        if member.value:
            member.ref = location(base, "User", member.value)  # type: ignore[assignment]
            member.type = "User"
    resource.meta = meta("Group", group, base)
    return resource


def dump(resource: Any, params: ResponseParameters[Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = resource.model_dump(
        scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=params
    )
    return data


def list_out(
    model: Any, resources: list[Any], total: int, start_index: int, params: ResponseParameters[Any] | None
) -> dict[str, Any]:
    response = ListResponse[model](  # type: ignore[valid-type]
        total_results=total, start_index=start_index, items_per_page=len(resources), resources=resources
    )
    data: dict[str, Any] = response.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=params)
    return data


def list_of(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A ListResponse of discovery documents (all of them, on one page)."""
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


# What the OpenAPI document says of the messages (RFC 7644). The resources' attributes are
# RFC 7643's schemas, served at /Schemas; the document names the message shapes and leaves each
# resource's attributes to those schemas (scim2-models checks them, with a 400 naming the first
# fault).
URNS = {
    "list": "urn:ietf:params:scim:api:messages:2.0:ListResponse",
    "search": "urn:ietf:params:scim:api:messages:2.0:SearchRequest",
    "patch": "urn:ietf:params:scim:api:messages:2.0:PatchOp",
    "error": "urn:ietf:params:scim:api:messages:2.0:Error",
}
# Every text of a SCIM body is TEXT's (wire.body_of refuses a control character anywhere in it).
_TEXT = {"type": "string", "pattern": TEXT.pattern}
_URN_LIST: dict[str, Any] = {"type": "array", "items": _TEXT}
RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a SCIM resource: its attributes are those of the schemas it names (GET /Schemas)",
    "required": ["schemas"],
    "properties": {
        "schemas": {**_URN_LIST, "minItems": 1},
        "id": {"type": "string"},
        "meta": {"type": "object"},
    },
}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schemas", "totalResults"],
    "properties": {
        "schemas": {"type": "array", "items": {"const": URNS["list"]}},
        "totalResults": {"type": "integer", "minimum": 0},
        "startIndex": {"type": "integer", "minimum": 1},
        "itemsPerPage": {"type": "integer", "minimum": 0},
        "Resources": {"type": "array", "items": RESOURCE_SCHEMA},
    },
}
# An attribute a resource may leave unassigned takes null as its absence (RFC 7643 §2.5).
_OPTIONAL_TEXT = {**_TEXT, "type": ["string", "null"]}
USER_IN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a User (RFC 7643 §4.1) with the enterprise extension; its attributes are those of"
    " the schemas it names (GET /Schemas)",
    "required": ["userName"],
    "properties": {
        "schemas": {
            "type": "array",
            "items": {"enum": [str(User.__schema__), domain.ENTERPRISE]},
        },
        "userName": {**_TEXT, "description": "unique in the organisation, ignoring case"},
        "externalId": _OPTIONAL_TEXT,
        "displayName": _OPTIONAL_TEXT,
        "active": {"description": "a boolean; false deactivates the advocate"},
        domain.ENTERPRISE: {"description": "the enterprise extension's attributes (GET /Schemas)"},
    },
}
GROUP_IN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a Group (RFC 7643 §4.2): its members are users' ids",
    "required": ["displayName"],
    "properties": {
        "schemas": {"type": "array", "items": {"const": str(Group.__schema__)}},
        "displayName": _TEXT,
        "externalId": _OPTIONAL_TEXT,
        "members": {
            "type": ["array", "null"],
            "items": {"type": "object", "properties": {"value": _OPTIONAL_TEXT}},
        },
    },
}
_NULLABLE_COUNT = {"type": ["integer", "null"]}
_NULLABLE_PATHS = {"type": ["array", "null"], "items": _TEXT}
SEARCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": f"RFC 7644 §3.4.3: the query of a GET, in the body; `schemas`: [{URNS['search']}]",
    "properties": {
        "schemas": _URN_LIST,
        "filter": {**_OPTIONAL_TEXT, "description": "RFC 7644 §3.4.2.2"},
        "startIndex": _NULLABLE_COUNT,
        "count": _NULLABLE_COUNT,
        "attributes": _NULLABLE_PATHS,
        "excludedAttributes": _NULLABLE_PATHS,
    },
}
PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["Operations"],
    "properties": {
        "schemas": {"type": "array", "items": {"const": URNS["patch"]}},
        "Operations": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["op"],
                "properties": {
                    "op": {  # add, replace or remove, in any case
                        "type": "string",
                        "pattern": "^([Aa][Dd][Dd]|[Rr][Ee][Pp][Ll][Aa][Cc][Ee]|[Rr][Ee][Mm][Oo][Vv][Ee])$",
                    },
                    "path": {**_OPTIONAL_TEXT, "description": "RFC 7644 §3.5.2: an attribute path"},
                    "value": {},
                },
            },
        },
    },
}


def ref(component: str) -> dict[str, Any]:
    """A reference to one of `COMPONENTS`. Named once, a message is one model in a generated client,
    however many operations and media types carry it."""
    if component not in COMPONENTS:  # fail here, not in a client that meets a dangling $ref
        raise KeyError(f"no SCIM component named {component!r}")
    return {"$ref": f"#/components/schemas/{component}"}


def body(component: str) -> dict[str, Any]:
    """An operation's request body (`openapi_extra`): SCIM JSON, or plain JSON as clients also send."""
    content = {"schema": ref(component)}
    return {"requestBody": {"required": True, "content": {SCIM_JSON: content, "application/json": content}}}


def answer(
    description: str, component: str, *, resource: bool = False, links: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A success answer's description; a resource's carries its ETag and Location, and a created
    one links to the operations on it (by `operation_id`, with its id)."""
    documented: dict[str, Any] = {
        "description": description,
        "content": {SCIM_JSON: {"schema": ref(component)}},
    }
    if links:
        documented["links"] = links
    if resource:
        documented["headers"] = {
            "ETag": {"description": "the resource's version, as meta.version", "schema": {"type": "string"}},
            "Location": {"description": "the resource's URL, as meta.location", "schema": {"type": "string"}},
        }
    return documented


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schemas", "status"],
    "properties": {
        "schemas": {"type": "array", "items": {"const": URNS["error"]}},
        "status": {"type": "string", "description": "the HTTP status, as a string"},
        "scimType": {"type": "string", "description": "invalidFilter, uniqueness, invalidPath, ..."},
        "detail": {"type": "string"},
    },
}


# The messages by the names the OpenAPI document gives them (the sharing app's components).
COMPONENTS: dict[str, dict[str, Any]] = {
    "ScimResource": RESOURCE_SCHEMA,
    "ScimListResponse": LIST_SCHEMA,
    "ScimUser": USER_IN_SCHEMA,
    "ScimGroup": GROUP_IN_SCHEMA,
    "ScimSearchRequest": SEARCH_SCHEMA,
    "ScimPatchOp": PATCH_SCHEMA,
    "ScimError": ERROR_SCHEMA,
}


def error(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = Error(status=status, scim_type=scim_type, detail=detail).model_dump()
    return data
