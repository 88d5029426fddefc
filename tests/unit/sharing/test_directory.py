"""The directory's pure rules: SCIM filters as MongoDB queries, ETags, teams from groups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import ValidationError
from pymongo.errors import ServerSelectionTimeoutError
from scim2_models import (
    Context,
    EnterpriseUser,
    Group,
    InvalidFilterException,
    PatchOp,
)
from starlette.testclient import TestClient

from services.sharing.directory import domain, query
from services.sharing.directory.domain import UserResource
from services.sharing.directory.wire import ScimRoute, body_of, refuse_control_characters
from shared.errors import InvalidInput, NotFound

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def users(text: str) -> dict[str, object]:
    return query.to_query(text, UserResource, query.USER_COLUMNS, query.CORE_USER)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('userName eq "BJensen@Example.com"', {"user_name_key": "bjensen@example.com"}),
        ('externalId eq "Ext-1"', {"external_id": "Ext-1"}),
        ('meta.lastModified gt "2026-12-06T03:00:00Z"', {"last_modified": {"$gt": NOW}}),
        ('emails[value eq "A@X.com"]', {"emails": "a@x.com"}),
        ('userName sw "a.b"', {"user_name_key": {"$regex": r"^a\.b"}}),
        (
            'active eq true and not (displayName co "x")',
            {"$and": [{"active": True}, {"$nor": [{"display_name_key": {"$regex": "x"}}]}]},
        ),
        (
            'externalId pr or id eq "u1"',
            {"$or": [{"external_id": {"$exists": True, "$nin": [None, "", []]}}, {"scim_id": "u1"}]},
        ),
    ],
)
def test_a_filter_becomes_a_query_on_the_stored_columns(text: str, expected: dict[str, object]) -> None:
    assert users(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("userName eq", "syntax"),
        ('shoeSize eq "44"', "shoeSize"),
        ('title eq "Boss"', "not offered"),
        ('active eq "yes"', "active"),
        ('meta.lastModified gt "yesterday"', "lastModified"),
    ],
)
def test_a_bad_filter_is_an_invalid_filter_error_naming_its_fault(text: str, says: str) -> None:
    with pytest.raises(InvalidFilterException) as refused:
        users(text)
    assert says.lower() in str(refused.value.detail).lower()


def test_the_directory_profile_comes_from_the_user_and_their_first_group_by_name() -> None:
    resource = UserResource.model_validate(
        {
            "schemas": [str(UserResource.__schema__)],
            "userName": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "active": False,
            "addresses": [{"locality": "London"}, {"locality": "Paris", "primary": True}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Maths"},
        },
        scim_ctx=Context.RESOURCE_CREATION_REQUEST,
    )
    user = domain.created_user(resource, datetime(2026, 12, 1, tzinfo=UTC))
    profile = domain.directory_profile(user, ["zeta", "Analytical", "beta"])
    assert (profile.display_name, profile.team, profile.department, profile.location, profile.active) == (
        "Ada Lovelace",
        "Analytical",
        "Maths",
        "Paris",
        False,
    )
    assert (profile.user_id, profile.user_version) == (user.scim_id, 1)


def test_a_user_is_their_external_id_as_an_advocate_and_never_keeps_a_password() -> None:
    resource = UserResource.model_validate(
        {
            "schemas": [str(UserResource.__schema__)],
            "userName": "Bob",
            "externalId": "okta-1",
            "password": "s3cret",
        },
        scim_ctx=Context.RESOURCE_CREATION_REQUEST,
    )
    user = domain.created_user(resource, NOW)
    assert (user.advocate_id, user.user_name_key, user.version) == ("okta-1", "bob", 1)
    assert "s3cret" not in user.resource


def test_a_group_change_moves_who_joined_or_left_or_everyone_when_renamed() -> None:
    def group(name: str, *members: str) -> domain.DirectoryGroup:
        resource = Group(display_name=name, members=[{"value": m} for m in members])  # type: ignore[list-item]
        return domain.group_entity(resource, scim_id="g1", created=NOW, now=NOW, version=1)

    assert domain.affected_members(group("A", "u1", "u2"), group("A", "u2", "u3")) == {"u1", "u3"}
    assert domain.affected_members(group("A", "u1", "u2"), group("B", "u1", "u2")) == {"u1", "u2"}
    assert domain.affected_members(None, group("A", "u1")) == {"u1"}
    assert domain.affected_members(group("A", "u1"), None) == {"u1"}


def test_a_manager_sent_without_its_ref_as_identity_providers_do_is_taken() -> None:
    enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    body = {
        "schemas": [str(UserResource.__schema__), enterprise],
        "userName": "a",
        enterprise: {"manager": {"value": "m1"}},
    }
    resource = UserResource.model_validate(domain.tolerated(body), scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    assert resource[EnterpriseUser].manager.value == "m1"
    patch = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": f"{enterprise}:manager", "value": "m2"}],
    }
    PatchOp[UserResource].model_validate(
        domain.tolerated_patch(patch), scim_ctx=Context.RESOURCE_PATCH_REQUEST
    ).patch(resource)
    assert resource[EnterpriseUser].manager.value == "m2"
    with pytest.raises(ValidationError):  # without the tolerance, the library refuses both
        UserResource.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (ServerSelectionTimeoutError("no primary"), 503),  # the store did not answer: retry
        (InvalidInput.field("x", "bad"), 400),  # SCIM has no 422
        (NotFound("no user u1"), 404),
    ],
)
def test_a_scim_routes_errors_are_scim_errors(raised: Exception, status: int) -> None:
    router = APIRouter(route_class=ScimRoute)

    @router.get("/probe")
    async def probe() -> None:
        raise raised

    app = FastAPI()
    app.include_router(router)
    response = TestClient(app).get("/probe")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/scim+json")
    assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert response.json()["status"] == str(status)  # RFC 7644 §3.12: a string
    if status == 503:
        assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize(
    ("body", "scim_type", "detail"),
    [
        ("[" * 100_000 + "]" * 100_000, "invalidSyntax", "the body nests too deep"),  # was a 500
        ('{"a": [' * 400 + '"\\u0000"' + "]}" * 400, "invalidValue", "a[0].a[0]"),  # nested deep
        ('{"name": {"givenName": "Ann\\u001b[2J"}}', "invalidValue", "name.givenName: must not hold"),
    ],
)
def test_a_body_nested_too_deep_or_holding_a_control_character_is_refused(
    body: str, scim_type: str, detail: str
) -> None:
    router = APIRouter(route_class=ScimRoute)

    @router.post("/probe")
    async def probe(request: Request) -> None:
        await body_of(request)

    app = FastAPI()
    app.include_router(router)
    response = TestClient(app).post("/probe", content=body)
    assert (response.status_code, response.json()["scimType"]) == (400, scim_type), response.text
    assert response.json()["detail"].startswith(detail)


def test_text_with_tabs_and_line_breaks_is_taken() -> None:
    refuse_control_characters({"addresses": [{"formatted": "1 Main St\r\nSpringfield\tUSA"}]})
