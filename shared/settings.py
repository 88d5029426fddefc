"""Settings every service shares, read from CHORUS_* environment variables.

Local defaults point at the stack `chorus up` starts, so a developer needs no configuration;
production sets the same variables (see deploy/). A service adds its own fields by subclassing.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "chorus-dev-secret-change-me-in-production-0123456789"  # noqa: S105 - dev only, refused in prod


# Development only: production refuses it (shared/webhooks/sealing.py).
DEV_WEBHOOK_SECRET_KEY = "Y2hvcnVzLWRldi13ZWJob29rLXNlY3JldC1rZXktMDE="  # noqa: S105 - dev only


class ChorusSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHORUS_", extra="ignore")

    environment: str = Field("dev", description="dev or prod; prod refuses the dev JWT secret")
    service_name: str = "chorus"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # How the Kafka clients connect and who they are (shared/messaging/security.py). PLAINTEXT is
    # the local stack's development listener only, where no principal is checked; production
    # uses SASL_SSL with the service's SCRAM-SHA-512 user, or SSL with its client certificate
    # (mTLS). The broker's certificate is checked against the CA file (the system's CAs when
    # unset), and its host name against the bootstrap address.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # A client certificate and its (unencrypted PEM) key: mTLS, on the SSL protocol.
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    # Each service keeps its own database: <mongo_db_prefix>_<service>. Tests set a unique prefix.
    mongo_db_prefix: str = "chorus"
    # The driver's connection pool per process (PyMongo's default, 100, when unset).
    mongo_max_pool_size: int | None = None
    # Log an error for every query that selects documents without naming the organisation
    # (shared/tenancy.py). On in the tests; a staging environment may turn it on too.
    mongo_tenancy_check: bool = False
    # Consumer groups are <prefix>.<service group>; tests set a unique prefix so that runs
    # sharing one broker never steal each other's partitions.
    consumer_group_prefix: str = "chorus"
    # Create the topics of the catalog at start (local and tests); production declares KafkaTopic resources.
    create_topics: bool = True
    otlp_endpoint: str | None = "http://127.0.0.1:4318"
    # Jaeger takes traces only; production sends metrics to the OpenTelemetry Collector too.
    otlp_metrics_enabled: bool = False
    telemetry_enabled: bool = True
    # Of the traces that start here (a request or a scheduled job with no caller's trace), the
    # share recorded; a trace that continues a caller's, or a share's through Kafka, is recorded
    # as it was begun. So a share's trace to its leads is kept whole or not at all. 1.0 keeps
    # every trace (local and tests); lower it where the tracing backend cannot take them all.
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    log_level: str = "INFO"
    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "chorus"
    jwt_audience: str = "chorus"
    # In production tokens are RS256/ES256 and verified against this JWKS.
    jwks_url: str | None = None
    # Where the token carries the organisation, the roles and the team: a preset (chorus, entra,
    # okta, keycloak: shared/auth.py CLAIM_PRESETS), and any of the three set on its own (a
    # dotted path for a nested claim, e.g. realm_access.roles).
    jwt_claims: Literal["chorus", "entra", "okta", "keycloak"] = "chorus"
    jwt_org_claim: str | None = None
    jwt_roles_claim: str | None = None
    jwt_team_claim: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    # Keys (Fernet, urlsafe base64 of 32 bytes) that seal outbound webhooks' secrets at rest, as a
    # JSON list: the first seals, every one opens; add a new key first to rotate
    # (shared/webhooks/sealing.py).
    webhook_secret_keys: list[str] = Field(default_factory=lambda: [DEV_WEBHOOK_SECRET_KEY])
    # Requests a caller (an API key or a user) may make a minute, per limited operation
    # (shared/ratelimit.py), as JSON; an operation not named here is not limited. `redirect` is
    # per client address and per redirect process (services/sharing/redirect); the production
    # manifests set it, locally it is off (the demo and the benchmarks click from one address).
    rate_limits_per_minute: dict[str, int] = Field(
        default_factory=lambda: {"conversions": 600, "survey_responses": 30}
    )
    # Origins whose browser apps may call the API (CORS), as a JSON list, e.g.
    # CHORUS_CORS_ALLOWED_ORIGINS='["https://app.example.com"]'. Empty: same origin only.
    cors_allowed_origins: list[str] = Field(default_factory=list)
    # Request bodies above this size are refused with 413 before any of it is parsed.
    max_body_bytes: int = Field(256 * 1024, gt=0)
    # How long the MongoDB operations of one HTTP request may take in all; past it the request
    # gets a 503 with Retry-After (a store that does not answer never hangs a request). An
    # Idempotency-Key left running by a request that died is taken over 5 s after this.
    mongo_request_timeout_s: float = Field(5.0, gt=0)
    # How often the outbox relay looks for events to send when no write nudged it (events that a
    # broker outage, a crash or another replica left pending).
    outbox_relay_interval_s: float = Field(1.0, gt=0)
    # The person vault (shared/vault.py): how long a process trusts what it read of an entry
    # (an erased person may still be revealed for this long after their entry was shredded),
    # and how long after an erasure event the person's entry is shredded: longer than any
    # consumer lags, since consumers need the entry to know whom the event names.
    vault_cache_s: float = Field(5.0, gt=0)
    # The vault's database, shared by every service; none: <mongo_db_prefix>_vault.
    vault_database: str | None = None
    erasure_grace_s: float = Field(24 * 3600.0, ge=0)
    vault_shred_interval_s: float = Field(30.0, gt=0)
    # Worker processes per tallied subscription (Subscription.on_tally), which decode and fold
    # its polls while the consumer fetches the next; 0 tallies in the consumer's own process.
    consumer_tally_processes: int = Field(1, ge=0)
    consumer_max_retries: int = 3
    consumer_retry_backoff_s: float = 0.2
    # How long a stopping service waits for its consumers, relays and producer to finish. With
    # the broker gone they would wait out Kafka's request timeouts (35 s seen); what they have
    # not sent stays in the outbox or spool and goes out after the next start, and what the
    # consumers have not committed is processed again (idempotently). Fits Kubernetes' 30 s
    # grace after the preStop pause and uvicorn's request drain.
    shutdown_timeout_s: float = Field(5.0, gt=0)
    # How long a starting service waits for Kafka before it serves anyway and goes on connecting
    # in the background (a broker outage must not keep pods from starting).
    kafka_connect_wait_s: float = Field(10.0, ge=0)

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> ChorusSettings:
        protocol = self.kafka_security_protocol
        if protocol == "SASL_SSL" and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                "CHORUS_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs CHORUS_KAFKA_SASL_USERNAME and"
                " CHORUS_KAFKA_SASL_PASSWORD"
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("CHORUS_KAFKA_SSL_CERTFILE and CHORUS_KAFKA_SSL_KEYFILE go together")
        if protocol == "SSL" and not self.kafka_ssl_certfile:
            raise ValueError(
                "CHORUS_KAFKA_SECURITY_PROTOCOL=SSL authenticates with a client certificate:"
                " set CHORUS_KAFKA_SSL_CERTFILE and CHORUS_KAFKA_SSL_KEYFILE"
            )
        tls_files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if protocol == "PLAINTEXT" and any(tls_files):
            raise ValueError(
                "CHORUS_KAFKA_SSL_* files are set but CHORUS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT"
            )
        return self

    def jwt_claim_overrides(self) -> dict[str, str]:
        given = {"org": self.jwt_org_claim, "roles": self.jwt_roles_claim, "team": self.jwt_team_claim}
        return {name: path for name, path in given.items() if path}

    def database_name(self, service: str) -> str:
        return f"{self.mongo_db_prefix}_{service}"

    def vault_database_name(self) -> str:
        return self.vault_database or self.database_name("vault")


def setting_names() -> frozenset[str]:
    """The CHORUS_* variables some service reads: one ConfigMap may hold every service's."""
    # By name, as shared/serve.py starts them: the runtime library imports no service statically.
    from shared.serve import SERVICE_PORTS

    names: set[str] = set()
    for service in SERVICE_PORTS:
        module = importlib.import_module(f"services.{service}.settings")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, ChorusSettings):
                names.update(f"CHORUS_{field.upper()}" for field in value.model_fields)
    return frozenset(names)


def misspelt_settings(environ: Mapping[str, str], known: Collection[str]) -> list[str]:
    """Warnings for the CHORUS_* variables no service reads that look like a setting misspelt:
    `CHORUS_KAFKA_BOOTSTAP` is ignored, and the service runs on the default. Only near misses:
    the dev and test tooling reads variables of its own (`CHORUS_STATE_DIR`, the stack's ports),
    none as close to a setting."""
    unread = sorted(name for name in environ if name.startswith("CHORUS_") and name not in known)
    return [
        f"{name} is not a Chorus setting and is ignored; did you mean {near[0]}?"
        for name in unread
        if (near := difflib.get_close_matches(name, known, n=1, cutoff=MISSPELT_CUTOFF))
    ]


# How alike a name must be to a setting's to be taken for it misspelt (difflib's ratio): a letter
# dropped or doubled, or a plural, scores over 0.93; the tooling's own names at most 0.88.
MISSPELT_CUTOFF = 0.9
