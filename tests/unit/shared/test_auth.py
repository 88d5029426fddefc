"""Authentication and authorisation: who may call, and what a refusal looks like."""

from __future__ import annotations

import time
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.auth import (
    Principal,
    Role,
    TokenVerifier,
    api_key_matches,
    generate_api_key,
    issue_dev_token,
    parse_api_key,
    require,
)
from shared.errors import Unauthorized, install_error_handlers
from shared.settings import ChorusSettings


@pytest.fixture
def settings() -> ChorusSettings:
    return ChorusSettings(telemetry_enabled=False, otlp_endpoint=None)


@pytest.fixture
def client(settings: ChorusSettings) -> TestClient:
    app = FastAPI()
    app.state.token_verifier = TokenVerifier(settings)
    install_error_handlers(app)

    @app.get("/admin-only")
    async def admin_only(principal: Annotated[Principal, Depends(require(Role.ADMIN))]) -> dict[str, str]:
        return {"org": principal.org, "sub": principal.sub}

    return TestClient(app)


def token(settings: ChorusSettings, **overrides: object) -> str:
    claims: dict[str, object] = {
        "sub": "alice",
        "org": "acme",
        "roles": ["admin"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


def test_a_valid_admin_token_is_accepted_and_carries_the_tenant(
    client: TestClient, settings: ChorusSettings
) -> None:
    response = client.get("/admin-only", headers={"Authorization": f"Bearer {token(settings)}"})
    assert response.status_code == 200
    assert response.json() == {"org": "acme", "sub": "alice"}


async def test_the_dev_token_helper_makes_tokens_the_verifier_accepts(settings: ChorusSettings) -> None:
    principal = await TokenVerifier(settings).verify(
        issue_dev_token(settings, org="acme", sub="bob", roles=["editor", "advocate"])
    )
    assert principal.org == "acme"
    assert principal.sub == "bob"
    assert principal.roles == {"editor", "advocate"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "authentication required"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "must be 'Bearer"),
        ({"Authorization": "Bearer not-a-jwt"}, "not valid"),
    ],
)
def test_missing_or_malformed_credentials_get_a_401_problem(
    client: TestClient, headers: dict[str, str], reason: str
) -> None:
    response = client.get("/admin-only", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert reason in response.json()["detail"]


def test_an_expired_token_is_refused(client: TestClient, settings: ChorusSettings) -> None:
    expired = token(settings, exp=int(time.time()) - 3600)
    response = client.get("/admin-only", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_signed_with_another_key_is_refused(client: TestClient, settings: ChorusSettings) -> None:
    forged = jwt.encode(
        jwt.decode(token(settings), options={"verify_signature": False}),
        "another-secret-of-32-bytes-or-more!!",
        algorithm="HS256",
    )
    response = client.get("/admin-only", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert "signature" in response.json()["detail"].lower()


@pytest.mark.parametrize("missing", ["org", "sub", "exp"])
def test_a_token_without_a_required_claim_is_refused(
    client: TestClient, settings: ChorusSettings, missing: str
) -> None:
    response = client.get(
        "/admin-only", headers={"Authorization": f"Bearer {token(settings, **{missing: None})}"}
    )
    assert response.status_code == 401
    assert missing in response.json()["detail"]


@pytest.mark.parametrize("value", ["", "  "])
@pytest.mark.parametrize("empty", ["sub", "org"])
def test_a_token_whose_subject_or_organisation_is_empty_is_refused(
    client: TestClient, settings: ChorusSettings, empty: str, value: str
) -> None:
    # An empty subject would be everyone's: one advocate "" for every such token of the
    # organisation; a blank one ("  ") as much.
    response = client.get(
        "/admin-only", headers={"Authorization": f"Bearer {token(settings, **{empty: value})}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert f"{empty} claim must be a non-blank string" in response.json()["detail"]


def test_a_token_for_another_audience_is_refused(client: TestClient, settings: ChorusSettings) -> None:
    response = client.get("/admin-only", headers={"Authorization": f"Bearer {token(settings, aud='other')}"})
    assert response.status_code == 401


def test_a_token_of_another_tenant_than_the_one_named_is_forbidden(
    client: TestClient, settings: ChorusSettings
) -> None:
    response = client.get(
        "/admin-only", headers={"Authorization": f"Bearer {token(settings)}", "X-Chorus-Org": "globex"}
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert "another organisation" in response.json()["detail"]


def test_a_role_that_is_not_allowed_gets_403(client: TestClient, settings: ChorusSettings) -> None:
    response = client.get(
        "/admin-only", headers={"Authorization": f"Bearer {token(settings, roles=['advocate'])}"}
    )
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_api_keys_are_stored_as_hashes_and_verify_only_with_their_secret() -> None:
    key = generate_api_key()
    key_id, secret = parse_api_key(key.plaintext)
    assert key_id == key.key_id
    assert secret not in key.secret_hash
    assert api_key_matches(secret, key.secret_hash)
    assert not api_key_matches(secret + "x", key.secret_hash)


@pytest.mark.parametrize("text", ["sk_live_123", "chorus_", "chorus_abc", "chorus__secret"])
def test_malformed_api_keys_are_unauthorized(text: str) -> None:
    with pytest.raises(Unauthorized):
        parse_api_key(text)


def test_prod_refuses_to_start_with_the_dev_secret() -> None:
    with pytest.raises(RuntimeError, match="dev secret"):
        TokenVerifier(ChorusSettings(environment="prod"))


def test_prod_refuses_a_secret_short_enough_to_guess() -> None:
    # Any signed-in person holds a token: a short HS256 secret is found offline from it, and
    # then tokens of any organisation and role can be made.
    with pytest.raises(RuntimeError, match="32 characters"):
        TokenVerifier(ChorusSettings(environment="prod", jwt_secret="changeme-in-prod"))
    TokenVerifier(ChorusSettings(environment="prod", jwt_secret="x" * 32))


async def test_a_verified_token_is_remembered_until_it_expires(
    settings: ChorusSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = TokenVerifier(settings)
    signed = token(settings)
    checks: list[str] = []
    verify_signature = verifier._verify

    def counting(raw: str, key: Any) -> Principal:
        checks.append(raw)
        return verify_signature(raw, key)

    monkeypatch.setattr(verifier, "_verify", counting)
    first = await verifier.verify(signed)
    assert await verifier.verify(signed) is first and len(checks) == 1
    # A forged token never reaches the cache's answer: its own string was never verified.
    with pytest.raises(Unauthorized):
        await verifier.verify(signed[:-4] + ("AAAA" if not signed.endswith("AAAA") else "BBBB"))
    # Past its expiry the token is checked again (and the checks decide, leeway included).
    expires = float(first.claims["exp"])
    monkeypatch.setattr("shared.auth.time.time", lambda: expires + 1)
    await verifier.verify(signed)
    assert len(checks) == 3
