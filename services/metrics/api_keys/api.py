"""Routes of the API keys (admins of the organisation)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.metrics.api_keys.domain import ApiKey
from services.metrics.api_keys.schemas import ApiKeyIn, ApiKeyOut, ApiKeyPage, NewApiKeyOut
from services.metrics.web import Admin, Cursor, Limit, Modules
from shared.app import links

router = APIRouter(prefix="/v1", tags=["api-keys"])


def _key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut.model_validate(key, from_attributes=True)


@router.post(
    "/api-keys",
    response_model=NewApiKeyOut,
    status_code=201,
    summary="Create an API key",
    responses={201: {"links": links("revoke_api_key", key_id="$response.body#/key_id")}},
)
async def create_api_key(body: ApiKeyIn, principal: Admin, modules: Modules) -> NewApiKeyOut:
    """The key is shown in this response only; it is stored hashed. `scopes` says what it may do;
    past `expires_at` it is refused with 401. A key works on every service whose endpoints its
    scopes open, about a second after it is made, sent as `X-API-Key: <key>` or
    `Authorization: Bearer <key>`.
    """
    scopes = tuple(scope.value for scope in body.scopes)
    key, plaintext = await modules.api_keys.create(principal, body.name, scopes, body.expires_at)
    return NewApiKeyOut(**dict(_key_out(key)), api_key=plaintext)


@router.get("/api-keys", response_model=ApiKeyPage, summary="List the organisation's API keys")
async def list_api_keys(principal: Admin, modules: Modules, cursor: Cursor = None, limit: Limit = 50) -> Any:
    keys, next_cursor = await modules.api_keys.page(principal, cursor, limit)
    return {"items": [_key_out(k) for k in keys], "next_cursor": next_cursor}


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
async def revoke_api_key(key_id: str, principal: Admin, modules: Modules) -> ApiKeyOut:
    """Calls with a revoked key are refused with 401: here at once, on the other services as soon
    as they read the revocation (about a second)."""
    return _key_out(await modules.api_keys.revoke(principal, key_id))
