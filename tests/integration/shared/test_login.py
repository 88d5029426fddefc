"""Login through an identity provider: tokens signed RS256 or ES256 by a test issuer that serves
its JWKS over HTTP, verified by key id, through a key rotation, with each claim-name preset."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.auth import SigningKeys, TokenVerifier
from shared.errors import Unauthorized, Unavailable
from shared.settings import ChorusSettings
from tests.helpers import http_server

pytestmark = pytest.mark.integration

ISSUER, AUDIENCE = "https://login.test/", "chorus-api"


@dataclass
class Issuer:
    """An identity provider: signing keys by id, the ones it publishes, and how often it is asked."""

    keys: dict[str, tuple[Any, str]] = field(default_factory=dict)  # kid -> (private key, alg)
    published: list[str] = field(default_factory=list)
    jwks_requests: int = 0
    url: str = ""
    down: bool = False  # its JWKS endpoint answers 503

    def add_key(self, kid: str, alg: str) -> None:
        private = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else (ec.generate_private_key(ec.SECP256R1()))
        )
        self.keys[kid] = (private, alg)
        self.published.append(kid)

    async def jwks(self, request: Request) -> JSONResponse:
        self.jwks_requests += 1
        if self.down:
            return JSONResponse({"error": "down"}, status_code=503)
        keys = []
        for kid in self.published:
            private, alg = self.keys[kid]
            codec = RSAAlgorithm if alg == "RS256" else ECAlgorithm
            keys.append(
                {**json.loads(codec.to_jwk(private.public_key())), "kid": kid, "alg": alg, "use": "sig"}
            )
        return JSONResponse({"keys": keys})

    def token(self, kid: str, **claims: Any) -> str:
        private, alg = self.keys[kid]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ann", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, private, algorithm=alg, headers={"kid": kid})


@contextlib.asynccontextmanager
async def serving(issuer: Issuer) -> AsyncIterator[Issuer]:
    app = Starlette(routes=[Route("/.well-known/jwks.json", issuer.jwks)])
    async with http_server(app) as base_url:
        issuer.url = f"{base_url}/.well-known/jwks.json"
        yield issuer


def verifier(issuer: Issuer, **settings: Any) -> TokenVerifier:
    return TokenVerifier(
        ChorusSettings(
            environment="prod", jwks_url=issuer.url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **settings
        )
    )


async def test_rs256_and_es256_tokens_are_verified_through_a_key_rotation() -> None:
    issuer = Issuer()
    issuer.add_key("rsa-1", "RS256")
    issuer.add_key("ec-1", "ES256")
    async with serving(issuer):
        check = verifier(issuer)
        for kid in ("rsa-1", "ec-1"):
            principal = await check.verify(issuer.token(kid, org="acme", roles=["admin"]))
            assert (principal.sub, principal.org, principal.roles) == ("ann", "acme", {"admin"})
        assert issuer.jwks_requests == 1  # both keys came in one fetch

        # The provider rotates: a new key, the old one withdrawn. A token signed with the new
        # key makes the verifier fetch again (an unknown key id, after its minimum wait).
        issuer.add_key("rsa-2", "RS256")
        issuer.published.remove("rsa-1")
        SigningKeys.REFETCH_S, refetch = 0.0, SigningKeys.REFETCH_S
        try:
            rotated = await check.verify(issuer.token("rsa-2", org="acme", roles=["advocate"]))
        finally:
            SigningKeys.REFETCH_S = refetch
        assert rotated.roles == {"advocate"} and issuer.jwks_requests == 2

        # Made-up key ids do not make it ask the provider again and again.
        for n in range(5):
            forged = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": f"nope-{n}"})
            with pytest.raises(Unauthorized):
                await check.verify(forged)
        assert issuer.jwks_requests == 2

        # Wrong issuer or audience: refused.
        for wrong in ({"iss": "https://elsewhere.test/"}, {"aud": "another-api"}):
            with pytest.raises(Unauthorized):
                await check.verify(issuer.token("rsa-2", org="acme", roles=[], **wrong))


async def test_while_the_provider_s_keys_cannot_be_fetched_tokens_get_503_and_then_are_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = Issuer()
    issuer.add_key("rsa-1", "RS256")
    issuer.down = True
    async with serving(issuer):
        check = verifier(issuer)
        signed = issuer.token("rsa-1", org="acme", roles=["admin"])
        # A pod started during a JWKS blip: 503 with Retry-After, never a 401 signing people out,
        # and the next requests within the short wait do not ask the provider again.
        for _ in range(2):
            with pytest.raises(Unavailable) as refused:
                await check.verify(signed)
            assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "2"
        assert issuer.jwks_requests == 1

        # The provider is back: after the short wait (not REFETCH_S) the token is accepted.
        issuer.down = False
        monkeypatch.setattr(SigningKeys, "RETRY_S", 0.0)
        principal = await check.verify(signed)
        assert (principal.sub, principal.org) == ("ann", "acme") and issuer.jwks_requests == 2


@pytest.mark.parametrize(
    ("preset", "claims"),
    [
        ("entra", {"tid": "tenant-guid", "roles": ["admin"], "department": "sales"}),
        ("okta", {"org": "tenant-guid", "groups": ["admin"], "team": "sales"}),
        ("keycloak", {"org": "tenant-guid", "realm_access": {"roles": ["admin"]}, "team": "sales"}),
    ],
)
async def test_each_identity_providers_claim_names(preset: str, claims: dict[str, Any]) -> None:
    issuer = Issuer()
    issuer.add_key(f"k-{uuid.uuid4().hex[:6]}", "RS256")
    async with serving(issuer):
        principal = await verifier(issuer, jwt_claims=preset).verify(
            issuer.token(issuer.published[0], **claims)
        )
    assert (principal.org, principal.roles, principal.claims["team"]) == ("tenant-guid", {"admin"}, "sales")


async def test_a_claim_name_set_on_its_own_wins_over_the_preset() -> None:
    issuer = Issuer()
    issuer.add_key("k", "ES256")
    async with serving(issuer):
        check = verifier(issuer, jwt_claims="entra", jwt_org_claim="extension_chorusOrg")
        principal = await check.verify(issuer.token("k", tid="t", extension_chorusOrg="acme", roles=[]))
        assert principal.org == "acme"
        with pytest.raises(Unauthorized, match="extension_chorusOrg"):
            await check.verify(issuer.token("k", tid="t", roles=[]))


async def test_a_token_whose_algorithm_is_not_its_key_s_is_refused_with_a_401() -> None:
    """A forger names a published key and another family's algorithm (ES256 for an RSA key):
    the token is refused as not valid, never a 500 (a TypeError from the key's use)."""
    issuer = Issuer()
    issuer.add_key("rsa-1", "RS256")
    issuer.add_key("ec-1", "ES256")
    forger_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger_ec = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "org": "acme", "exp": int(time.time()) + 600}
    async with serving(issuer):
        check = verifier(issuer)
        for kid, key, alg in (("rsa-1", forger_ec, "ES256"), ("ec-1", forger_rsa, "RS256")):
            forged = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
            with pytest.raises(Unauthorized):
                await check.verify(forged)
