"""Building a service's FastAPI app: one lifespan that connects, runs and stops everything.

Each service's main.py calls `create_service_app` with its routers, its indexes and a `wire`
function that builds its service object and subscriptions from the connected `Runtime`.
Nothing connects at import time; all of it happens in the lifespan, in this order:
telemetry, MongoDB (+ indexes), topics, producer, the outbox, the service, consumers, background
tasks (the outbox relay among them); and stops in reverse, consumers finishing the batch in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared import idempotency, ratelimit
from shared.auth import ApiKeyResolver, TokenVerifier
from shared.bodylimit import BodyLimit
from shared.errors import PROBLEM_JSON, PROBLEM_SCHEMA, install_error_handlers
from shared.idempotency import REPLAYED_HEADER
from shared.liveness import ended_by, for_good, tasks_ended
from shared.messaging import ConsumerRunner, EventProducer, Subscription, ensure_topics, kafka_security
from shared.migrations import Migration, migrate
from shared.mongo import Document, IndexSpec, RequestDeadline, create_client, ensure_indexes
from shared.outbox import Outbox
from shared.query_parameters import refuse_unknown_query
from shared.settings import ChorusSettings, misspelt_settings, setting_names
from shared.telemetry import flush_telemetry, setup_telemetry
from shared.vault import Vault

log = logging.getLogger(__name__)

READINESS_TIMEOUT_S = 2.0


@dataclass
class Runtime:
    """What a running service is connected to."""

    settings: ChorusSettings
    mongo: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    producer: EventProducer
    # The person vault its producer seals events with and its consumers reveal them with.
    vault: Vault
    # Where writes queue their events (shared/outbox.py); its relay runs as a periodic job.
    outbox: Outbox


# A periodic job (e.g. a sweeper): the coroutine runs, then the loop waits `every_s` seconds, or
# less if `wake` is set meanwhile (a job with work to do now, like the outbox relay).
@dataclass(frozen=True)
class Periodic:
    name: str
    every_s: float
    run: Callable[[], Awaitable[Any]]
    # Seconds before the first run (0: as the service starts).
    first_after_s: float = 0.0
    wake: asyncio.Event | None = None


@dataclass
class Wiring:
    """What `wire` returns: the service object the routes use and what runs beside them."""

    service: Any
    subscriptions: list[Subscription] = field(default_factory=list)
    periodic: list[Periodic] = field(default_factory=list)
    api_key_resolver: ApiKeyResolver | None = None
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # More objects routes need, set as attributes of app.state (e.g. a second module's service).
    state: dict[str, Any] = field(default_factory=dict)
    # What else runs beside the routes until the service stops, started by `wire` itself (sharing's
    # click relay): each call names what of it ended for good, with why (shared/liveness.py), and
    # /healthz fails on any (`ended_for_good`). Called by every probe: no I/O.
    liveness: list[Callable[[], dict[str, str]]] = field(default_factory=list)


Wire = Callable[[Runtime], Awaitable[Wiring]]


KAFKA_RETRY_MAX_S = 15.0


async def _connect_kafka(
    settings: ChorusSettings, producer: EventProducer, consumers: Sequence[ConsumerRunner]
) -> None:
    """Create the topics (locally), start the producer, then each consumer; retry each step with
    backoff until the broker answers."""
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    if settings.create_topics:
        steps.append(("topics", lambda: ensure_topics(settings.kafka_bootstrap, kafka_security(settings))))
    steps.append(("producer", producer.start))
    steps += [(f"consumer {c.group_id}", c.start) for c in consumers]
    for step, start in steps:
        delay = 0.5
        while True:
            try:
                await start()
                break
            except Exception as exc:
                log.warning(
                    "Kafka: %s not started (%s: %s); again in %.1fs", step, type(exc).__name__, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(KAFKA_RETRY_MAX_S, delay * 2)


async def _run_periodic(job: Periodic) -> None:
    await asyncio.sleep(job.first_after_s)
    task = asyncio.current_task()
    while True:
        if job.wake is not None:
            job.wake.clear()  # a wake-up from now on asks for the run after this one
        try:
            await job.run()
        except Exception:
            log.exception("periodic job %s failed; it runs again in %ss", job.name, job.every_s)
        if task is not None and task.cancelling():
            # Stopped while the job ran, and something in it swallowed the cancellation (seen
            # in a driver's cleanup): going on to sleep would hold the shutdown up to every_s.
            return
        if job.wake is None:
            await asyncio.sleep(job.every_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.wake.wait(), job.every_s)


_gc_tuned = False


def tune_gc() -> None:
    """Collect garbage less often, and never walk what was loaded at start.

    A batch consumer holds a poll's decoded events alive together: 20,000 events of ~25 tracked
    objects each in metrics, some 500,000 young objects. The collector's first threshold counts
    tracked allocations net of frees, so below that it runs mid-poll and walks them all again
    and again: with the defaults (700, 10, 10) decoding cost twice as much, and at 50,000 the
    collector still took ~8 s of a bench/pipeline run against 0.3 s at 1,000,000 (a poll's
    objects are freed, by reference count, before the count gets there). Almost nothing here
    makes reference cycles, so little waits for a collection. Once per process: a frozen object
    is never freed.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(1_000_000, 20, 20)


async def _stop_io(
    consumers: Sequence[ConsumerRunner],
    on_stop: Sequence[Callable[[], Awaitable[None]]],
    producer: EventProducer,
) -> None:
    # Consumers first (they may still produce dead letters), then the wiring's hooks (relays
    # that flush through the producer), then the producer. One failing does not skip the rest.
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        (f"consumer {c.group_id}", c.stop) for c in consumers
    ]
    steps += [(getattr(hook, "__qualname__", "a stop hook"), hook) for hook in on_stop]
    steps.append(("the producer", producer.stop))
    for what, step in steps:
        try:
            await step()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the shutdown budget ran out: wait_for is cancelling us
            # aiokafka's consumer, stopped while a fetch backs off from an unreachable broker,
            # awaits its own cancelled fetch task and lets that CancelledError out.
            log.warning("stopping %s was cancelled from within; going on", what)
        except Exception:
            log.exception("stopping %s failed; going on", what)


def create_service_app(
    *,
    name: str,
    settings: ChorusSettings,
    routers: Sequence[APIRouter],
    indexes: list[IndexSpec],
    wire: Wire,
    version: str,
    outbox_collections: Sequence[str] = (),
    migrations: Sequence[Migration] = (),
    description: str = "",
    schemas: Mapping[str, dict[str, Any]] | None = None,
    webhooks: Sequence[APIRouter] = (),
) -> FastAPI:
    """`outbox_collections`: the collections whose documents may hold pending events (each
    declared with `outbox_index` among `indexes`); their relay runs as the periodic job
    "outbox-relay", woken early by `runtime.outbox.nudge()`. `migrations`: one-off upgrades of
    stored data, run once at start before anything reads or writes (shared/migrations.py).
    `schemas`: JSON Schemas written by hand that operations `$ref` as
    `#/components/schemas/<name>` (bodies validated otherwise than by pydantic, as SCIM's).
    `webhooks`: routes that document what the service POSTs to its clients' endpoints (the
    document's `webhooks`), never served. `version`: the OpenAPI document's, raised with every
    release of it (docs/openapi/README.md, "Versions")."""
    settings.service_name = name

    async def prepare(db: AsyncDatabase[Document]) -> None:
        # Every service takes idempotency keys on creates and may limit rates; their TTL indexes
        # are declared here once.
        await ensure_indexes(db, [*indexes, *idempotency.INDEXES, *ratelimit.INDEXES])
        await migrate(db, migrations)

    async def prepare_alone() -> None:
        mongo = create_client(settings, service=True)
        try:
            await prepare(mongo[settings.database_name(name)])
        finally:
            await mongo.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_telemetry(settings)
        for warning in misspelt_settings(os.environ, setting_names()):
            log.warning(warning)
        mongo = create_client(settings, service=True)
        db = mongo[settings.database_name(name)]
        vault = Vault(settings, client=mongo)
        producer = EventProducer(settings, vault=vault)
        outbox = Outbox(db, outbox_collections, producer)
        # Quick when `chorus-serve SERVICE --prepare` has already run (deploy/k8s's initContainer).
        await prepare(db)
        runtime = Runtime(settings, mongo, db, producer, vault, outbox)
        wiring = await wire(runtime)
        tune_gc()
        consumers = [ConsumerRunner(settings, sub, producer) for sub in wiring.subscriptions]
        # Kafka is not needed to serve: a service started during a broker outage connects when
        # the broker is back, and meanwhile its writes wait in the outbox.
        kafka = asyncio.create_task(_connect_kafka(settings, producer, consumers), name="kafka-connect")
        await asyncio.wait({kafka}, timeout=settings.kafka_connect_wait_s)
        if not kafka.done():
            log.warning("%s: Kafka not reachable yet; serving, and connecting in the background", name)
        periodic = list(wiring.periodic)
        if outbox.collections:
            periodic.append(
                Periodic("outbox-relay", settings.outbox_relay_interval_s, outbox.relay, wake=outbox.wakeup)
            )
        # A job that ends otherwise than by the service stopping (a cancellation from within, a
        # driver's own task) runs no more: logged, and /healthz says so (`ended_for_good`).
        tasks = [
            asyncio.create_task(
                for_good(f"periodic job {job.name}", functools.partial(_run_periodic, job)), name=job.name
            )
            for job in periodic
        ]
        app.state.runtime = runtime
        app.state.service = wiring.service
        app.state.consumers = consumers
        app.state.kafka = kafka
        app.state.periodic = tasks
        app.state.liveness = wiring.liveness
        app.state.stopping = False
        app.state.api_key_resolver = wiring.api_key_resolver
        for key, value in wiring.state.items():
            setattr(app.state, key, value)
        log.info("%s started", name)
        try:
            yield
        finally:
            app.state.stopping = True  # what ends from now on was asked to: not a liveness failure
            for task in [*tasks, kafka]:
                task.cancel()
            await asyncio.gather(*tasks, kafka, return_exceptions=True)
            stopping = _stop_io(consumers, wiring.on_stop, producer)
            try:
                await asyncio.wait_for(stopping, settings.shutdown_timeout_s)
            except TimeoutError:
                log.warning(
                    "%s: consumers, relays and producer did not stop within %ss (is Kafka down?);"
                    " unsent events wait in the outbox or spool, uncommitted ones are redelivered",
                    name,
                    settings.shutdown_timeout_s,
                )
            await mongo.close()
            flush_telemetry()
            log.info("%s stopped", name)

    app = FastAPI(
        title=f"Chorus {name}",
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
        telemetry=telemetry_config(settings),
    )
    app.state.settings = settings
    # `chorus-serve SERVICE --prepare` (shared/serve.py): the indexes and migrations alone.
    app.state.prepare = prepare_alone
    app.state.token_verifier = TokenVerifier(settings)
    install_error_handlers(app)
    # Every MongoDB operation of a request shares one deadline: a store that does not answer
    # makes a prompt 503 (shared/errors.py), never a hung request.
    app.add_middleware(RequestDeadline, seconds=settings.mongo_request_timeout_s)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.cors_allowed_origins:
        # Browsers on these origins may call the API with a bearer token (no cookies: none of
        # the API's credentials are cookies). Outermost, so a preflight never reaches a route.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "X-API-Key",
                "Accept",
            ],
            expose_headers=["Retry-After", "Location", "ETag"],
            max_age=600,
        )
    app.include_router(health_router())
    for router in routers:
        app.include_router(router, dependencies=[Depends(refuse_unknown_query)])
    for router in webhooks:
        app.webhooks.include_router(router, generate_unique_id_function=operation_id)
    document_problems(app, schemas or {})
    return app


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route's name in camelCase (`list_content` -> `listContent`), so a
    client generated from the document calls `listContent`, not FastAPI's default
    `listContentV1ContentGet`. Route names are unique across the four services (a test holds
    them to it), so one client may be generated from all four documents."""
    return camel_case(route.name)


def camel_case(name: str) -> str:
    """`get_user` -> `getUser`: the operation id of the route named `get_user`."""
    first, *rest = name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def links(*route_names: str, **parameters: str) -> dict[str, Any]:
    """An answer's OpenAPI links to the operations on what it made: each route by its name (so
    its operation id), given `parameters` as runtime expressions (`content_id="$response.body#/id"`).
    A client reads where it may go next; the fuzzer's stateful phase follows them to real
    resources. The link is named after the operation: `GetContent`."""
    return {
        camel_case(name)[:1].upper() + camel_case(name)[1:]: {
            "operationId": camel_case(name),
            "parameters": parameters,
        }
        for name in route_names
    }


# The problem+json answers an operation may give, beyond its own: a body that is not JSON (400),
# who may call (401, 403), a resource that is not there (404), a write that lost a race (409), a
# write whose If-Match names an older version (412), a body over the limit (413), bad input or an
# unknown query parameter (422), MongoDB not answering (503, with Retry-After).
PROBLEMS = {
    400: "the request body is not JSON (or not UTF-8)",
    401: "no valid credential",
    403: "the credential may not do this",
    404: "nothing of that id in the caller's organisation",
    409: "the state changed meanwhile, or the request contradicts it",
    412: "If-Match names another version than the stored one: read it again",
    413: "the request body is larger than the service takes (CHORUS_MAX_BODY_BYTES)",
    422: "invalid input; `errors` names the fields",
    503: "the database did not answer in time; retry after `Retry-After` seconds",
}

# The headers those answers carry (shared/errors.py sets them).
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {"schema": {"type": "string"}, "description": "the scheme to authenticate with"}
    },
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}

REPLAYED = {
    REPLAYED_HEADER: {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "present when this is the first response to the same Idempotency-Key again",
    }
}
IN_FLIGHT = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "present when a request with the same Idempotency-Key is still being processed:"
        " seconds to wait before sending it again",
    }
}


def problem_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The problems one operation can answer, read from what it declares: 401 and 403 where it
    authenticates (its `security`), 400 and 413 where it takes a body, 404 where its path names a
    resource (or the route lists a 404 of its own lookup, `responses=NOT_FOUND_RESPONSE`), 409
    where it writes, 412 where it takes If-Match (shared/preconditions.py), and 422 and 503
    everywhere: an operation without parameters refuses an unknown query parameter all the same
    (shared/query_parameters.py), and all read the store."""
    statuses = {422, 503}
    if operation.get("security"):
        statuses |= {401, 403}
    if "requestBody" in operation:
        statuses |= {400, 413}
    if "{" in path or "404" in operation.get("responses", {}):
        statuses.add(404)
    if method in ("post", "put", "patch", "delete"):
        statuses.add(409)
    if _takes_header(operation, "If-Match"):
        statuses.add(412)
    return sorted(statuses)


def _takes_header(operation: dict[str, Any], name: str) -> bool:
    return any(p.get("in") == "header" and p.get("name") == name for p in operation.get("parameters", []))


def document_problems(app: FastAPI, schemas: Mapping[str, dict[str, Any]]) -> None:
    """Every /v1 operation's OpenAPI says which problem+json answers it may give and the headers
    they carry (so a client generated from it knows them), with their schema in
    `components.schemas.Problem`; a create that takes an Idempotency-Key says its success may be
    a replay. `schemas` join the document's components. tests/e2e/test_fuzz_openapi.py holds the
    services to these documents."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = plain()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update({**schemas, "Problem": PROBLEM_SCHEMA})
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in problem_statuses(path, method, operation):
                    documented = responses.setdefault(str(status), {"description": PROBLEMS[status]})
                    documented["content"] = problem  # FastAPI's own 422 is not the shape we answer
                    if status == 422:
                        documented["description"] = PROBLEMS[422]
                    if status in PROBLEM_HEADERS:
                        documented.setdefault("headers", {}).update(PROBLEM_HEADERS[status])
                if _takes_header(operation, "Idempotency-Key"):
                    for status, documented in responses.items():
                        if status.startswith("2"):
                            documented.setdefault("headers", {}).update(REPLAYED)
                    responses["409"].setdefault("headers", {}).update(IN_FLIGHT)
        for operations in schema.get("webhooks", {}).values():
            for operation in operations.values():
                operation["responses"].pop("422", None)  # the receiver's answer is its own
        # FastAPI's validation-error models are no longer referenced: the 422 is a Problem.
        if "#/components/schemas/HTTPValidationError" not in json.dumps(schema["paths"]):
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A route dependency giving what `wire` put on app.state as `name` (a module's service):
    `Service = Annotated[SharesService, Depends(app_state("shares"))]`."""

    async def from_state(request: Request) -> Any:
        return getattr(request.app.state, name)

    return from_state


UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def telemetry_config(settings: ChorusSettings) -> TelemetryConfig:
    """FastAPI's own OpenTelemetry instrumentation: a SERVER span per request, named by its route
    and continuing the caller's `traceparent`, and the HTTP server metrics, on the providers
    shared/telemetry.py sets up. Not the spans it can open around dependencies, endpoint and
    serialisation, which cost as much again per request (an in-process run of a small endpoint:
    189 us bare, 421 us with request spans, 809 us with those too, 980 us with OpenTelemetry's
    FastAPIInstrumentor that this replaced), nor probes' and scrapes' requests."""
    if not settings.telemetry_enabled:
        return {"tracing": False, "metrics": False, "logs": False}
    return {"operation_spans": False, "logs": False, "exclude": lambda scope: scope["path"] in UNTRACED_PATHS}


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz",
        summary="The process is up and nothing it runs has ended for good (liveness probe): a"
        " consumer, the connection to Kafka or a background job (the outbox relay among them)"
        " that ended on an error it does not retry fails it, so that the pod is restarted. An"
        " outage of MongoDB or Kafka never does: each of them waits it out",
        responses={
            503: {
                "description": "something the process runs ended for good: each is named, with"
                " the error that ended it",
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "additionalProperties": {"type": "string"}}
                    }
                },
            }
        },
    )
    async def healthz(request: Request, response: Response) -> dict[str, str]:
        ended = ended_for_good(request.app)
        if not ended:
            return {"status": "ok"}
        response.status_code = 503
        return {"status": "not live", **ended}

    @router.get(
        "/readyz",
        summary="MongoDB is reachable and the consumers run (readiness probe). Kafka is not"
        " needed to serve: writes queue their events in the outbox, which the relay sends when"
        " the broker is back",
        responses={
            503: {
                "description": "starting, or MongoDB unreachable, or a consumer stopped",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        return await readiness(request.app)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def ended_for_good(app: FastAPI) -> dict[str, str]:
    """What the service runs beside its routes that ended without being asked to stop, and the
    error that ended it: a consumer ("consumer <group>"), the connection to Kafka, a periodic job
    ("periodic job <name>", the outbox relay among them), and what the wiring watches itself
    (`Wiring.liveness`: "click relay <loop>", "click relay process"). Each waits out an outage of
    MongoDB or Kafka, so one that ended met an error it does not retry, and only a restart brings
    it back. Reads the tasks' state only: no I/O."""
    if getattr(app.state, "runtime", None) is None or app.state.stopping:
        return {}
    ended = {f"consumer {c.group_id}": why for c in app.state.consumers if (why := c.ended_by)}
    kafka: asyncio.Task[None] = app.state.kafka
    if kafka.done() and (kafka.cancelled() or kafka.exception() is not None):
        ended["kafka connection"] = ended_by(kafka)  # the consumers it was to start never will
    ended.update(tasks_ended("periodic job", app.state.periodic))
    for watched in app.state.liveness:
        ended.update(watched())
    return ended


async def readiness(
    app: FastAPI, *, mongodb: bool = True, checks: Mapping[str, str] | None = None
) -> JSONResponse:
    """The readiness answer: started, MongoDB answering (unless `mongodb` is False: a workload
    that serves through a MongoDB outage, the redirect), the consumers running, and the caller's
    own `checks` ("ok" or what is wrong)."""
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    results: dict[str, str] = {}
    if mongodb:
        try:
            await asyncio.wait_for(_check_mongo(runtime), READINESS_TIMEOUT_S)
            results["mongodb"] = "ok"
        except Exception as exc:
            results["mongodb"] = f"unavailable: {type(exc).__name__} {exc}".strip()
    consumers: list[ConsumerRunner] = app.state.consumers
    kafka: asyncio.Task[None] = app.state.kafka
    if not kafka.done():
        results["consumers"] = "ok"  # connecting to Kafka: serving needs no broker
        results["kafka"] = "connecting"
    else:
        results["consumers"] = "ok" if all(c.running for c in consumers) else "stopped"
    results.update(checks or {})
    ready = all(result == "ok" for name, result in results.items() if name != "kafka")
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": results},
        status_code=200 if ready else 503,
    )


async def _check_mongo(runtime: Runtime) -> None:
    await runtime.mongo.admin.command("ping")
