"""Who is calling: JWTs for people, hashed API keys for servers, and role checks.

A JWT carries `sub` (the user), the organisation (the tenant) and the roles. Locally it is HS256
with the dev secret (`chorus token` prints one); in production it is RS256/ES256 verified
against the identity provider's JWKS, fetched without blocking the loop and kept by key id
(`SigningKeys`). Where the organisation, roles and team are in the token is set by
`CHORUS_JWT_CLAIMS` (a preset: chorus, entra, okta, keycloak) or each `CHORUS_JWT_*_CLAIM`.
Every route declares who may call it with `require(...)`, and every query is scoped by the
`org` of the principal it gets back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx
import jwt
from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from shared.errors import Forbidden, Unauthorized, Unavailable
from shared.settings import DEV_JWT_SECRET, ChorusSettings

log = logging.getLogger(__name__)


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    ADVOCATE = "advocate"


# The roles a person's token may hold; anything else its roles claim says is ignored.
PERSON_ROLES = frozenset(Role)
# An API key acts for its organisation in server-to-server calls (conversions, integrations).
API_KEY_ROLE = "integration"
ORG_HEADER = "X-Chorus-Org"
VERIFIED_TOKENS_KEPT = 10_000
# The shortest HS256 secret production takes (RFC 7518 3.2: at least the hash's 256 bits).
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Principal:
    sub: str
    org: str
    roles: frozenset[str]
    kind: str = "user"  # "user" (JWT) or "api_key"
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    scopes: frozenset[str] = frozenset()  # an API key's: what it may do

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def check_scope(self, scope: str) -> None:
        """An API key must hold `scope`; a person is judged by their roles instead."""
        if self.kind == "api_key" and scope not in self.scopes:
            raise Forbidden(f"this API key lacks the scope {scope!r}")


@dataclass(frozen=True)
class ResolvedKey:
    """What an API key's service knows of a valid key: its organisation and scopes."""

    org: str
    scopes: frozenset[str]


# Where each identity provider puts the organisation and the roles (a dotted path for a nested
# claim). Okta has no tenant claim: add a custom `org` claim to its authorization server.
CLAIM_PRESETS: dict[str, dict[str, str]] = {
    "chorus": {"org": "org", "roles": "roles", "team": "team"},
    "entra": {"org": "tid", "roles": "roles", "team": "department"},
    "okta": {"org": "org", "roles": "groups", "team": "team"},
    "keycloak": {"org": "org", "roles": "realm_access.roles", "team": "team"},
}


def claim(claims: dict[str, Any], path: str) -> Any:
    """The claim at `path` ("realm_access.roles" is claims["realm_access"]["roles"]), or None."""
    value: Any = claims
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class SigningKeys:
    """The identity provider's signing keys, from its JWKS: fetched with an async client (never
    on the event loop's thread), kept by key id, fetched again after MAX_AGE_S or when a token
    names a key id not among them (a rotation), at most once per REFETCH_S (so tokens with made-up
    key ids cannot make us hammer the provider). Until a first fetch succeeds every token is
    answered 503, never 401: the provider is unreachable, not the token bad; a failed first fetch
    is tried again after RETRY_S."""

    MAX_AGE_S = 3600.0
    REFETCH_S = 30.0
    RETRY_S = 2.0

    def __init__(self, url: str, http: httpx.AsyncClient | None = None) -> None:
        self._url = url
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._failed_at: float | None = None  # the last failed fetch while no keys were held
        self._lock = asyncio.Lock()
        self.fetches = 0

    def _due(self, kid: str | None) -> bool:
        if self._fetched_at is None:
            return self._failed_at is None or time.monotonic() - self._failed_at > self.RETRY_S
        age = time.monotonic() - self._fetched_at
        return age > self.MAX_AGE_S or (kid not in self._keys and age > self.REFETCH_S)

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if self._due(kid):
            async with self._lock:
                if self._due(kid):  # another request may have fetched them meanwhile
                    await self._fetch()
        if not self._keys:
            raise self._unavailable()
        found = self._keys.get(kid) or (
            next(iter(self._keys.values())) if kid is None and len(self._keys) == 1 else None
        )
        if found is None:
            raise Unauthorized("the token's signing key is not one of the identity provider's keys")
        return found

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            response = await self._http.get(self._url)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            if self._keys:
                self._fetched_at = time.monotonic()  # wait REFETCH_S before trying again
                log.warning("the identity provider's keys could not be fetched again (%s); keeping them", exc)
                return
            # Not a fetch: with no keys every token would be refused, so try again soon.
            self._failed_at = time.monotonic()
            log.warning("the identity provider's keys could not be fetched (%s)", exc)
            raise self._unavailable() from exc
        self._keys = {k.key_id: k for k in keys}
        self._fetched_at = time.monotonic()
        self._failed_at = None

    def _unavailable(self) -> Unavailable:
        return Unavailable(
            "the identity provider's signing keys cannot be fetched; retry shortly",
            headers={"Retry-After": str(math.ceil(self.RETRY_S))},
        )


def _check_prod_secret(secret: str) -> None:
    # A token is in every signed-in person's hands: a short secret is found offline from it.
    if secret == DEV_JWT_SECRET:
        raise RuntimeError("CHORUS_JWT_SECRET is the dev secret: set CHORUS_JWKS_URL or a real secret")
    if len(secret) < MIN_SECRET_LENGTH:
        raise RuntimeError(
            f"CHORUS_JWT_SECRET must be {MIN_SECRET_LENGTH} characters or more (or set CHORUS_JWKS_URL)"
        )


class TokenVerifier:
    """Verifies bearer tokens: HS256 against the dev secret, or RS256/ES256 against a JWKS."""

    def __init__(self, settings: ChorusSettings) -> None:
        self._settings = settings
        self._keys = SigningKeys(settings.jwks_url) if settings.jwks_url else None
        self._claims = {**CLAIM_PRESETS[settings.jwt_claims], **settings.jwt_claim_overrides()}
        self._verified: dict[str, tuple[float, Principal]] = {}  # token -> (exp, principal)
        if settings.environment == "prod" and not self._keys:
            _check_prod_secret(settings.jwt_secret)

    async def verify(self, token: str) -> Principal:
        """The principal a token names. A client sends the same token on every request until it
        expires, so a verified token is remembered until its `exp` (bounded in number): checking
        a signature costs more than most endpoints' own work."""
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and now < cached[0]:
            return cached[1]
        principal = self._verify(token, await self._key(token))
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified = {t: v for t, v in self._verified.items() if now < v[0]}
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.clear()
        self._verified[token] = (float(principal.claims["exp"]), principal)
        return principal

    async def _key(self, token: str) -> Any:
        if self._keys is None:
            return self._settings.jwt_secret
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from exc
        # The key with its algorithm: a token naming another (ES256 for an RSA key) is refused
        # as not valid, where the bare key made PyJWT raise a TypeError (a 500).
        return await self._keys.key(kid)

    def _verify(self, token: str, key: Any) -> Principal:
        algorithms = ["HS256"] if self._keys is None else ["RS256", "ES256"]
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=30,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired; sign in again") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"the token is not valid: {exc}") from exc
        org, roles, team = (claim(claims, self._claims[name]) for name in ("org", "roles", "team"))
        if isinstance(roles, str):
            roles = [roles]
        if roles is None:
            roles = []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized(f"the token's {self._claims['roles']} claim must be a list of strings")
        if not isinstance(org, str) or not org.strip():
            raise Unauthorized(f"the token's {self._claims['org']} claim must be a non-blank string")
        # PyJWT checks only that `sub` is a string: an empty or blank one names nobody, and every
        # such token of an organisation would be the same person (one advocate "", their points).
        if not claims["sub"].strip():
            raise Unauthorized("the token's sub claim must be a non-blank string")
        # A token is a person's: of its roles (an identity provider's groups, say) only a
        # person's count. `integration` among them would pass for an API key holding every scope.
        roles = [r for r in roles if r in PERSON_ROLES]
        # The rest of Chorus reads the organisation, roles and team under its own names.
        normalised = {**claims, "org": org, "roles": roles, "team": team if isinstance(team, str) else None}
        return Principal(sub=str(claims["sub"]), org=org, roles=frozenset(roles), claims=normalised)


def issue_dev_token(
    settings: ChorusSettings, *, org: str, sub: str, roles: list[str], ttl_s: int = 12 * 3600
) -> str:
    """A locally signed HS256 token, for development, tests and `chorus token`."""
    now = int(time.time())
    claims = {
        "sub": sub,
        "org": org,
        "roles": roles,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


# --- API keys -------------------------------------------------------------------------------
# Format: chorus_<key id>_<secret>. Only the SHA-256 of the secret is stored: the secret has 256
# bits of entropy, so a slow password hash would add cost without adding safety.
API_KEY_PREFIX = "chorus_"


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    plaintext: str  # shown once to the admin, never stored
    secret_hash: str


def generate_api_key() -> NewApiKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(key_id, f"{API_KEY_PREFIX}{key_id}_{secret}", hash_api_secret(secret))


def hash_api_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(plaintext: str) -> tuple[str, str]:
    """(key id, secret), or Unauthorized when the text is not shaped like one of our keys."""
    if not plaintext.startswith(API_KEY_PREFIX):
        raise Unauthorized("the API key is not a Chorus key")
    key_id, sep, secret = plaintext[len(API_KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret:
        raise Unauthorized("the API key is malformed")
    return key_id, secret


def api_key_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_secret(secret), stored_hash)


# Looks up an API key (key id, secret) and returns its organisation, or None when unknown/revoked.
ApiKeyResolver = Callable[[Request, str, str], Awaitable[ResolvedKey | None]]


# --- FastAPI dependencies -------------------------------------------------------------------


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


async def authenticate(request: Request) -> Principal:
    """The caller, from a bearer JWT or (where the app allows it) an API key: in an X-API-Key
    header, or as the bearer token itself (SCIM clients such as Entra ID and Okta send their
    secret that way; a JWT never starts with our keys' prefix)."""
    verifier: TokenVerifier = request.app.state.token_verifier
    token = _bearer_token(request)
    api_key = request.headers.get("x-api-key")
    if token is not None and token.startswith(API_KEY_PREFIX):
        token, api_key = None, token
    if token is not None:
        principal = await verifier.verify(token)
    elif api_key is not None:
        resolver: ApiKeyResolver | None = getattr(request.app.state, "api_key_resolver", None)
        if resolver is None:
            raise Unauthorized("this service does not accept API keys; use a bearer token")
        key_id, secret = parse_api_key(api_key)
        resolved = await resolver(request, key_id, secret)
        if resolved is None:
            raise Unauthorized("the API key is unknown, expired or revoked")
        principal = Principal(
            sub=f"api-key:{key_id}",
            org=resolved.org,
            roles=frozenset({API_KEY_ROLE}),
            kind="api_key",
            scopes=resolved.scopes,
        )
    else:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'")
    # A client that names the organisation it means to act for must hold a token for it.
    claimed_org = request.headers.get(ORG_HEADER)
    if claimed_org is not None and claimed_org != principal.org:
        raise Forbidden(f"this credential belongs to another organisation than {claimed_org!r}")
    request.state.principal = principal
    return principal


class Caller(SecurityBase):
    """A route dependency: the authenticated caller, who holds one of `roles`.

    It is also the bearer scheme of the OpenAPI documents (`security` on each operation that
    authenticates, which shared/app.py reads to document its 401 and 403). One dependency, not a
    scheme, an authentication and a role check: FastAPI resolves each dependency on every
    request, and two fewer gave the leaderboard about 8% more requests a second."""

    # One scheme for every Caller, under the name FastAPI's HTTPBearer gave it (generated clients
    # name their auth setting after it).
    scheme_name = "HTTPBearer"
    model = HTTPBearerModel(
        bearerFormat="JWT",
        description="a JWT with `sub`, `org` and `roles`, or an API key where the service takes one"
        " (also as an `X-API-Key` header)",
    )

    def __init__(self, roles: Iterable[str]) -> None:
        self.roles = frozenset(roles)

    async def __call__(self, request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.roles & self.roles:
            raise Forbidden(f"this action needs one of the roles: {', '.join(sorted(self.roles))}")
        return principal


def require(*roles: str) -> Caller:
    """`Depends(require(Role.ADMIN))`: the caller, authenticated and holding one of `roles`."""
    return Caller(roles)


ANY_MEMBER = (Role.ADMIN, Role.EDITOR, Role.ADVOCATE)
