"""The directory's rules: SCIM users and groups as the organisation's identity provider sends
them, and what they make of an advocate's profile.

The resources are scim2-models' own (`User[EnterpriseUser]`, `Group`): they validate what the
identity provider sends (RFC 7643), apply PATCH operations (RFC 7644 §3.5.2) and serialise the
answers. Here are the rules around them: which advocate a user is, what their profile says, which
team their groups make. No I/O.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from scim2_models import (
    Context,
    EnterpriseUser,
    Group,
    InvalidValueException,
    PatchOp,
    Resource,
    User,
)

from services.sharing.advocates.domain import DirectoryProfile

UserResource = User[EnterpriseUser]
R = TypeVar("R", bound=Resource[Any])  # a resource: a user, a group


@dataclass(frozen=True)
class DirectoryUser:
    """A provisioned user: the columns filters and uniqueness read, and the whole resource."""

    scim_id: str
    advocate_id: str  # fixed at creation: the user's externalId, or their userName without one
    user_name: str
    user_name_key: str  # userName compared as SCIM compares it (case-insensitive): unique
    external_id: str | None
    display_name_key: str | None
    emails: tuple[str, ...]  # lower-cased, for `emails eq`
    active: bool
    created: datetime
    last_modified: datetime
    version: int
    resource: str  # the resource as JSON, without meta and groups (which are computed)


@dataclass(frozen=True)
class DirectoryGroup:
    scim_id: str
    display_name: str
    display_name_key: str
    external_id: str | None
    members: tuple[str, ...]  # the SCIM ids of its member users
    created: datetime
    last_modified: datetime
    version: int
    resource: str  # without meta


def comparison_key(value: str) -> str:
    """A string as SCIM compares a case-insensitive attribute: NFC, lower case."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).lower())


def new_id() -> str:
    return uuid.uuid4().hex


ENTERPRISE = str(EnterpriseUser.__schema__)
MANAGER_PATH = f"{ENTERPRISE}:manager".lower()


def _manager(value: Any) -> Any:
    """A manager as identity providers send it (`"id"`, or `{"value": "id"}` without the `$ref`
    RFC 7643 §4.3 asks for) made whole; anything else as it is, for the model to judge."""
    if isinstance(value, str):
        value = {"value": value}
    if isinstance(value, dict) and isinstance(value.get("value"), str) and "$ref" not in value:
        return {**value, "$ref": f"/scim/v2/Users/{value['value']}"}
    return value


def tolerated(payload: Any) -> Any:
    """A user body with the manager made whole (see `_manager`)."""
    extension = payload.get(ENTERPRISE) if isinstance(payload, dict) else None
    if not isinstance(extension, dict) or "manager" not in extension:
        return payload
    return {**payload, ENTERPRISE: {**extension, "manager": _manager(extension["manager"])}}


def tolerated_patch(payload: Any) -> Any:
    """A PATCH body whose operations on the manager carry it made whole."""
    operations = payload.get("Operations") if isinstance(payload, dict) else None
    if not isinstance(operations, list):
        return payload
    fixed = [
        {**op, "value": _manager(op.get("value"))}
        if isinstance(op, dict) and str(op.get("path", "")).lower() == MANAGER_PATH
        else op
        for op in operations
    ]
    return {**payload, "Operations": fixed}


def _stored(resource: Any) -> str:
    data = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    data.pop("meta", None)
    data.pop("groups", None)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def user_resource(user: DirectoryUser) -> UserResource:
    return UserResource.model_validate(json.loads(user.resource), scim_ctx=None)


def group_resource(group: DirectoryGroup) -> Group:
    return Group.model_validate(json.loads(group.resource), scim_ctx=None)


def replacement(current: R, payload: Any) -> R:
    """What a PUT makes of `current` (RFC 7644 §3.5.1): the body validated whole as a resource of
    the same type, its read-only attributes kept and its immutable ones checked."""
    resource = type(current).model_validate(payload, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    resource.replace(current)
    return resource


def patched(current: R, payload: Any) -> R | None:
    """`current` with a PATCH's operations applied (RFC 7644 §3.5.2); None when they change
    nothing."""
    patch = PatchOp[type(current)].model_validate(payload, scim_ctx=Context.RESOURCE_PATCH_REQUEST)  # type: ignore[misc]
    return current if patch.patch(current) else None


def user_entity(
    resource: UserResource, *, scim_id: str, advocate_id: str, created: datetime, now: datetime, version: int
) -> DirectoryUser:
    """The stored user for a validated resource (server-assigned attributes set here)."""
    resource.id = scim_id
    resource.meta = None
    resource.groups = None
    user_name = resource.user_name or ""
    if not user_name.strip():
        # userName is the user's unique name (RFC 7643 4.1.1): a blank one names nobody.
        raise InvalidValueException(detail="userName: must not be blank")
    return DirectoryUser(
        scim_id=scim_id,
        advocate_id=advocate_id,
        user_name=user_name,
        user_name_key=comparison_key(user_name),
        external_id=resource.external_id,
        display_name_key=comparison_key(resource.display_name) if resource.display_name else None,
        emails=tuple(comparison_key(e.value) for e in resource.emails or () if e.value),
        active=resource.active is not False,
        created=created,
        last_modified=now,
        version=version,
        resource=_stored(resource),
    )


def created_user(resource: UserResource, now: datetime) -> DirectoryUser:
    scim_id = new_id()
    advocate_id = resource.external_id or resource.user_name or scim_id
    return user_entity(resource, scim_id=scim_id, advocate_id=advocate_id, created=now, now=now, version=1)


def changed_user(current: DirectoryUser, resource: UserResource, now: datetime) -> DirectoryUser:
    """The user after a replacement or a patch: same id, advocate and creation, one version on."""
    return user_entity(
        resource,
        scim_id=current.scim_id,
        advocate_id=current.advocate_id,
        created=current.created,
        now=now,
        version=current.version + 1,
    )


def group_entity(
    resource: Group, *, scim_id: str, created: datetime, now: datetime, version: int
) -> DirectoryGroup:
    resource.id = scim_id
    resource.meta = None
    display_name = resource.display_name or ""
    members = tuple(dict.fromkeys(m.value for m in resource.members or () if m.value))
    return DirectoryGroup(
        scim_id=scim_id,
        display_name=display_name,
        display_name_key=comparison_key(display_name),
        external_id=resource.external_id,
        members=members,
        created=created,
        last_modified=now,
        version=version,
        resource=_stored(resource),
    )


def created_group(resource: Group, now: datetime) -> DirectoryGroup:
    return group_entity(resource, scim_id=new_id(), created=now, now=now, version=1)


def changed_group(current: DirectoryGroup, resource: Group, now: datetime) -> DirectoryGroup:
    return group_entity(
        resource, scim_id=current.scim_id, created=current.created, now=now, version=current.version + 1
    )


def without_member(group: DirectoryGroup, user_id: str, now: datetime) -> DirectoryGroup:
    """The group once a deleted user left it."""
    resource = group_resource(group)
    resource.members = [m for m in resource.members or () if m.value != user_id] or None
    return changed_group(group, resource, now)


def affected_members(before: DirectoryGroup | None, after: DirectoryGroup | None) -> set[str]:
    """The users whose team may change with this group write: those who joined or left, and all
    of its members when its name changed or it went."""
    old = set(before.members) if before else set()
    new = set(after.members) if after else set()
    if before is None or after is None or before.display_name != after.display_name:
        return old | new
    return old ^ new


def display_name_of(resource: UserResource) -> str:
    name = resource.name
    if resource.display_name:
        return resource.display_name
    if name is not None and name.formatted:
        return name.formatted
    if name is not None and (name.given_name or name.family_name):
        return " ".join(p for p in (name.given_name, name.family_name) if p)
    return resource.user_name or ""


def team_of(group_names: Iterable[str]) -> str | None:
    """A user's team is their group, the first by name when they are in several."""
    return min(group_names, key=comparison_key, default=None)


def directory_profile(user: DirectoryUser, groups: Iterable[str]) -> DirectoryProfile:
    """What the directory says of the advocate at this version of their user: it wins over what
    they declare."""
    resource = user_resource(user)
    enterprise = resource[EnterpriseUser]
    addresses = sorted(resource.addresses or (), key=lambda a: not a.primary)
    location = next((a.locality for a in addresses if a.locality), None)
    return DirectoryProfile(
        display_name=display_name_of(resource)[:120],
        team=team_of(groups),
        department=enterprise.department if enterprise is not None else None,
        location=location,
        active=resource.active is not False,
        user_id=user.scim_id,
        user_version=user.version,
    )


def leaving_user(current: DirectoryUser, now: datetime) -> DirectoryUser:
    """A user being deleted, first made inactive (one version on): should the delete not be
    finished, an inactive user is left, whose advocate the sweep deactivates."""
    resource = user_resource(current).model_copy(update={"active": False})
    return changed_user(current, resource, now)


def deactivated(profile: DirectoryProfile) -> DirectoryProfile:
    """A user deleted from the directory stays an advocate (their history and links stay), inactive."""
    return replace(profile, active=False)
