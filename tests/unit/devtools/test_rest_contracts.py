"""The REST API compatibility check: what breaks a generated client fails it, additions pass.

The documents are FastAPI's own, from small apps, so the check reads what pydantic and FastAPI
really write (nullable as anyOf, separate input and output schemas, enums of Literals).
No `from __future__ import annotations` here: the routes below take their models from the
factory's arguments, which FastAPI must see as objects."""

import json
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Header, Query
from pydantic import AnyUrl, BaseModel, ConfigDict, Field, create_model

from devtools.contracts import Schema
from devtools.rest_contracts import (
    OPENAPI_DIR,
    breaking_changes,
    breaking_document_changes,
    build_documents,
    check_documents,
    version_problems,
    write_documents,
)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(max_length=100)
    kind: Literal["note", "link"] = "note"
    note: str | None = None


class ItemOut(BaseModel):
    id: str
    title: str
    score: int
    status: Literal["draft", "published"]


def item_in(**fields: Any) -> type[BaseModel]:
    """ItemIn with these fields added or changed, under its name: a client names its type so."""
    return create_model("ItemIn", __base__=ItemIn, **fields)


def item_out(**fields: Any) -> type[BaseModel]:
    return create_model("ItemOut", __base__=ItemOut, **fields)


def api(
    item_in: type[BaseModel] = ItemIn,
    item_out: type[BaseModel] = ItemOut,
    *,
    limit_max: int = 200,
    team_required: bool = False,
    create_status: int = 201,
    create_id: str = "createItem",
    with_delete: bool = True,
    delete_deprecated: bool = False,
    with_search: bool = False,
    hook_body: type[BaseModel] | None = None,
    hook_signed: bool = True,
) -> Schema:
    app = FastAPI()

    if hook_body is not None:
        if hook_signed:

            @app.webhooks.post("item-published", operation_id="itemPublished")
            async def signed(body: hook_body, x_signature: str = Header()) -> None:  # type: ignore[valid-type]
                return None

        else:

            @app.webhooks.post("item-published", operation_id="itemPublished")
            async def unsigned(body: hook_body) -> None:  # type: ignore[valid-type]
                return None

    @app.post("/v1/items", status_code=create_status, operation_id=create_id, response_model=item_out)
    async def create(body: item_in) -> Any:  # type: ignore[valid-type]
        return None

    team = Query() if team_required else Query(None)

    @app.get("/v1/items", operation_id="listItems", response_model=list[item_out])  # type: ignore[valid-type]
    async def list_items(team: str | None = team, limit: int = Query(50, ge=1, le=limit_max)) -> Any:
        return None

    if with_delete:

        @app.delete(
            "/v1/items/{item_id}", status_code=204, operation_id="deleteItem", deprecated=delete_deprecated
        )
        async def delete(item_id: str) -> None:
            return None

    if with_search:

        @app.get("/v1/items/search", operation_id="searchItems")
        async def search(q: str) -> list[str]:
            return []

    return app.openapi()


def changes(**current: Any) -> list[str]:
    return breaking_changes(api(), api(**current))


# --- compatible --------------------------------------------------------------------------------


def test_the_same_api_is_compatible() -> None:
    assert changes() == []


def test_additions_are_compatible() -> None:
    assert (
        changes(
            item_in=item_in(tags=(list[str], [])), item_out=item_out(tags=(list[str], ...)), with_search=True
        )
        == []
    )


def test_a_response_enum_may_grow_and_a_request_limit_may_widen() -> None:
    assert (
        changes(
            item_out=item_out(status=(Literal["draft", "published", "archived"], ...)),
            item_in=item_in(title=(str, Field(max_length=200))),
            limit_max=500,
        )
        == []
    )


def test_a_deprecated_operation_may_be_removed() -> None:
    assert breaking_changes(api(delete_deprecated=True), api(with_delete=False)) == []


# --- what a client sends -----------------------------------------------------------------------


def item_in_without_note() -> type[BaseModel]:
    return create_model(
        "ItemIn",
        __config__=ConfigDict(extra="forbid"),
        title=(str, Field(max_length=100)),
        kind=(Literal["note", "link"], "note"),
    )


def test_a_request_property_removed_breaks() -> None:
    # The model refuses unknown properties: a client still sending it gets a 422.
    assert changes(item_in=item_in_without_note()) == ["POST /v1/items: request body.note: removed"]


def test_a_request_property_newly_required_breaks() -> None:
    assert changes(item_in=item_in(note=(str, ...))) == [
        "POST /v1/items: request body.note: type narrowed from ['null', 'string'] to ['string']",
        "POST /v1/items: request body.note: newly required",
    ]


def test_a_request_type_narrowed_breaks() -> None:
    assert changes(item_in=item_in(note=(str, ""))) == [
        "POST /v1/items: request body.note: type narrowed from ['null', 'string'] to ['string']"
    ]


def test_a_request_limit_tightened_breaks() -> None:
    assert changes(item_in=item_in(title=(str, Field(max_length=50)))) == [
        "POST /v1/items: request body.title: maxLength lowered to 50"
    ]
    assert changes(item_in=item_in(title=(str, Field(max_length=100, pattern=r"^\w+$")))) == [
        "POST /v1/items: request body.title: pattern added"
    ]
    assert changes(limit_max=100) == ["GET /v1/items: query parameter limit: maximum lowered to 100"]


def test_a_request_enum_value_dropped_breaks() -> None:
    assert changes(item_in=item_in(kind=(Literal["note"], "note"))) == [
        "POST /v1/items: request body.kind: no longer accepts ['link']"
    ]


def test_a_parameter_newly_required_breaks() -> None:
    assert changes(team_required=True) == ["GET /v1/items: query parameter team: newly required"]


# --- what a client receives --------------------------------------------------------------------


def item_out_without_score() -> type[BaseModel]:
    return create_model(
        "ItemOut", id=(str, ...), title=(str, ...), status=(Literal["draft", "published"], ...)
    )


def test_a_response_property_removed_breaks() -> None:
    # Told once, where the model is first met (not again in the list's items).
    assert changes(item_out=item_out_without_score()) == ["POST /v1/items: response 201.score: removed"]


def test_a_response_type_widened_or_changed_breaks() -> None:
    # A strict TypeScript client typed `score: number` is wrong once it may be null.
    assert changes(item_out=item_out(score=(int | None, ...))) == [
        "POST /v1/items: response 201.score: type widened from ['integer'] to ['integer', 'null']"
    ]
    assert changes(item_out=item_out(score=(str, ...))) == [
        "POST /v1/items: response 201.score: type changed from ['integer'] to ['string']"
    ]


def test_a_format_changed_breaks_either_way() -> None:
    # A request string must now be a URI; a response string a client parsed as a URI no longer is.
    assert changes(item_in=item_in(note=(AnyUrl | None, None))) == [
        "POST /v1/items: request body.note: format changed from None to uri",
        "POST /v1/items: request body.note: minLength raised to 1",
    ]
    assert breaking_changes(api(item_out=item_out(id=(AnyUrl, ...))), api()) == [
        "POST /v1/items: response 201.id: format changed from uri to None"
    ]
    assert changes(item_out=item_out(id=(AnyUrl, ...))) == []


def test_a_response_property_no_longer_always_given_breaks() -> None:
    released = api()
    current = api()
    current["components"]["schemas"]["ItemOut"]["required"].remove("score")
    assert breaking_changes(released, current) == [
        "POST /v1/items: response 201.score: no longer always given"
    ]


def test_a_success_status_changed_breaks() -> None:
    assert changes(create_status=200) == ["POST /v1/items: response 201: removed"]


def test_a_response_header_no_longer_sent_breaks() -> None:
    # A client follows the created item's Location.
    released = api()
    released["paths"]["/v1/items"]["post"]["responses"]["201"]["headers"] = {"Location": {"schema": {}}}
    assert breaking_changes(released, api()) == [
        "POST /v1/items: response 201 header Location: no longer sent"
    ]


# --- operations --------------------------------------------------------------------------------


def tree(*, labelled: bool) -> type[BaseModel]:
    """A recursive model (its children are nodes): the check must end."""
    if labelled:

        class Node(BaseModel):
            label: str
            children: list["Node"] = []

    else:

        class Node(BaseModel):
            children: list["Node"] = []

    return Node


def test_a_recursive_schema_is_compared_and_its_change_told_once() -> None:
    labelled = api(item_out=tree(labelled=True))
    assert breaking_changes(labelled, api(item_out=tree(labelled=True))) == []
    assert breaking_changes(labelled, api(item_out=tree(labelled=False))) == [
        "POST /v1/items: response 201.label: removed"
    ]


def test_a_schema_renamed_breaks() -> None:
    # The same shape under another name: a client's `ItemOut` type is gone.
    assert changes(item_out=create_model("Item", __base__=ItemOut)) == [
        "schema ItemOut: removed or renamed (a generated client names a type after it)"
    ]


def test_an_operation_removed_or_renamed_breaks() -> None:
    assert changes(with_delete=False) == ["DELETE /v1/items/{item_id}: removed"]
    assert changes(create_id="addItem") == [
        "POST /v1/items: operationId changed from createItem to addItem (a generated client names its call"
        " after it)"
    ]


# --- what a service sends to its clients' endpoints -------------------------------------------


class Published(BaseModel):
    item_id: str
    score: int


def published(**fields: Any) -> type[BaseModel]:
    return create_model("Published", __base__=Published, **fields)


def test_a_webhook_is_judged_as_its_receiver_reads_it() -> None:
    released = api(hook_body=Published)
    assert breaking_changes(released, api(hook_body=published(tags=(list[str], ...)))) == []
    assert breaking_changes(released, api(hook_body=published(score=(int | None, ...)))) == [
        "webhook item-published: body.score: type widened from ['integer'] to ['integer', 'null']"
    ]
    assert breaking_changes(released, api(hook_body=Published, hook_signed=False)) == [
        "webhook item-published: header x-signature: no longer sent"
    ]
    assert breaking_changes(released, api()) == [
        "schema Published: removed or renamed (a generated client names a type after it)",
        "webhook item-published: removed",
    ]


# --- the released documents --------------------------------------------------------------------


def test_the_released_documents_match_the_apps() -> None:
    # Fails when an API changed without `chorus schemas`, or changed in a way that breaks clients.
    assert check_documents() == [], (
        "a change that breaks clients goes beside the old shape, which is deprecated first: "
        "docs/openapi/README.md"
    )


def test_a_stale_or_broken_release_is_reported(tmp_path: Path) -> None:
    write_documents(tmp_path)
    assert check_documents(tmp_path) == []
    path = tmp_path / OPENAPI_DIR / "sharing.json"
    released = json.loads(path.read_text())
    del released["components"]["schemas"]["ShareOut"]["properties"]["short_url"]
    released["info"]["version"] = "1.0.9"  # the app's is higher: the change is versioned
    path.write_text(json.dumps(released))
    assert breaking_document_changes(tmp_path) == []  # an addition: `chorus schemas` writes it
    assert check_documents(tmp_path) == [
        f"sharing: {OPENAPI_DIR / 'sharing.json'} is not up to date; run `chorus schemas`"
    ]
    released["components"]["schemas"]["ShareOut"]["properties"]["shortened_url"] = {"type": "string"}
    path.write_text(json.dumps(released))
    problems = check_documents(tmp_path)
    assert problems and all(p.startswith("sharing: ") and "shortened_url: removed" in p for p in problems)
    # `chorus schemas` writes nothing over a release its change breaks.
    assert breaking_document_changes(tmp_path) == problems


def test_a_document_changed_at_its_released_version_is_reported(tmp_path: Path) -> None:
    write_documents(tmp_path)
    path = tmp_path / OPENAPI_DIR / "metrics.json"
    released = json.loads(path.read_text())
    version = released["info"]["version"]
    released["paths"]["/v1/funnel"]["get"]["summary"] = "an older wording"
    path.write_text(json.dumps(released))
    [problem] = version_problems(tmp_path)
    assert problem.startswith(f"metrics: the document changed, and its version did not rise above {version}")
    assert "services/metrics/main.py" in problem
    assert check_documents(tmp_path) == [problem]

    # Released at a lower version, the same change is only waiting to be written out.
    released["info"]["version"] = "0.9.0"
    path.write_text(json.dumps(released))
    assert version_problems(tmp_path) == []
    stale = f"metrics: {OPENAPI_DIR / 'metrics.json'} is not up to date; run `chorus schemas`"
    assert check_documents(tmp_path) == [stale]

    # Versions compare as numbers: 1.10.0 is above 1.9.0, though not as text.
    released["info"]["version"] = "1.9.0"
    path.write_text(json.dumps(released))
    apps = build_documents()
    apps["metrics"]["info"]["version"] = "1.10.0"
    assert version_problems(tmp_path, apps) == []
    apps["metrics"]["info"]["version"] = "1.8.12"
    assert len(version_problems(tmp_path, apps)) == 1
