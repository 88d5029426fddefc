"""The SCIM wire of the directory's routes (RFC 7644): the route class that turns every error,
auth and query parameters included, into a SCIM Error; the `application/scim+json` answers; and
reading a request's body, the attributes an answer holds (`Selection`), a list's query from the
URL or a search's body (`ListQuery`), and a page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    InvalidValueException,
    PayloadTooLargeException,
    ResponseParameters,
    SCIMException,
    SearchRequest,
)

from services.sharing.directory import schemas
from shared.errors import AppError, error_message, field_path, store_unavailable
from shared.fields import TEXT
from shared.query_parameters import ProtocolRoute

MAX_BODY = 1_000_000


class ScimRoute(ProtocolRoute):
    """A route whose every error, from its dependencies (auth) to its body, is a SCIM Error. Its
    clients are identity providers: a query parameter SCIM defines and this server does not
    implement (`sortBy`) is ignored, not refused, so that provisioning goes on."""

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
                    Error(status=400, scim_type="invalidValue", detail=f"{where}: {error_message(first)}")
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
        "content": {schemas.SCIM_JSON: {"schema": schemas.ref("ScimError")}},
    }
}


class ScimJson(JSONResponse):
    """What every operation answers, for the document (the routes build their answers whole).
    JSON, so that FastAPI leaves the answers' schemas to the routes' `responses`."""

    media_type = schemas.SCIM_JSON


def base_of(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/scim/v2"


async def body_of(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise PayloadTooLargeException(detail=f"the body is over {MAX_BODY} bytes")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidSyntaxException(detail=f"the body is not JSON: {exc}") from exc
    except RecursionError:  # `[[[[...`, within the size limit
        raise InvalidSyntaxException(detail="the body nests too deep") from None
    refuse_control_characters(body)
    return body


# Where a value stands in a body: its key or index, and where its container stands (None: the
# body). Shared by siblings, so a deep body costs no copy of its path per value.
Place = tuple[str | int, "Place"] | None


def refuse_control_characters(body: Any) -> None:
    """The SCIM rule of shared/fields.py's TEXT, over the whole body: no text a directory sends
    holds a control character but a tab or a line break (an address's `formatted` may hold those).
    A loop, not a recursion: json.loads takes bodies nested nearly as deep as Python recurses."""
    to_visit: list[tuple[Any, Place]] = [(body, None)]
    while to_visit:
        value, place = to_visit.pop()
        if isinstance(value, str) and not TEXT.allows(value):
            raise InvalidValueException(detail=f"{spelt(place)}: {TEXT.message}")
        if isinstance(value, dict):
            to_visit.extend((inner, (key, place)) for key, inner in value.items())
        elif isinstance(value, list):
            to_visit.extend((inner, (index, place)) for index, inner in enumerate(value))


def spelt(place: Place) -> str:
    """`name.givenName`, `Operations[0].value`; `the body` for the body itself."""
    parts: list[str | int] = []
    while place is not None:
        key, place = place
        parts.append(key)
    return field_path(parts[::-1]) or "the body"


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


@dataclass(frozen=True)
class Selection:
    """Which attributes an answer holds (RFC 7644 §3.9): `attributes`, `excludedAttributes`."""

    attributes: Any
    excluded: Any

    def params(self, model: Any) -> ResponseParameters[Any] | None:
        return params_of(model, self.attributes, self.excluded)


async def selection(
    attributes: Annotated[str | None, Query(alias="attributes")] = None,
    excluded: Annotated[str | None, Query(alias="excludedAttributes")] = None,
) -> Selection:
    return Selection(attributes, excluded)


Selected = Annotated[Selection, Depends(selection)]


@dataclass(frozen=True)
class ListQuery:
    """A list's query, from the URL (GET) or the body (POST .search)."""

    filter: str | None
    start_index: int | None
    count: int | None
    selection: Selection


async def url_query(
    selected: Selected,
    filter: Annotated[str | None, Query(alias="filter", max_length=2000)] = None,
    start_index: Annotated[int, Query(alias="startIndex")] = 1,
    count: Annotated[int | None, Query(alias="count")] = None,
) -> ListQuery:
    return ListQuery(filter, start_index, count, selected)


def body_query(model: Any, body: Any) -> ListQuery:
    found = search_of(model, body)
    return ListQuery(
        found.filter, found.start_index, found.count, Selection(found.attributes, found.excluded_attributes)
    )


FromUrl = Annotated[ListQuery, Depends(url_query)]
