"""HTTP telemetry as the services configure FastAPI's (shared.app.telemetry_config): one server
span per request, named by route, in the caller's trace; no spans for probes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shared.app import telemetry_config
from shared.settings import ChorusSettings
from shared.telemetry import sampler

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@dataclass
class Traced:
    client: httpx.AsyncClient
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@contextlib.asynccontextmanager
async def traced_app(settings: ChorusSettings) -> AsyncIterator[Traced]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler(settings))
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    config = telemetry_config(settings)
    # The providers the process would set globally, here the test's own.
    config["tracer_provider"] = tracer_provider
    config["meter_provider"] = MeterProvider(metric_readers=[reader])
    app = FastAPI(telemetry=config)

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield Traced(client, spans, reader)


@pytest.fixture
async def traced() -> AsyncIterator[Traced]:
    async with traced_app(ChorusSettings(telemetry_enabled=True)) as app:
        yield app


async def test_a_request_gets_one_server_span_named_by_its_route_in_the_callers_trace(traced: Traced) -> None:
    response = await traced.client.get("/items/42", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert response.status_code == 200
    [span] = traced.finished()
    assert span.name == "GET /items/{item_id}"
    assert span.kind == SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/items/42"
    assert span.status.status_code == StatusCode.UNSET


async def test_a_failing_request_is_an_error_span_with_the_exception(traced: Traced) -> None:
    response = await traced.client.get("/broken")
    assert response.status_code == 500
    [span] = traced.finished()
    assert span.name == "GET /broken"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "RuntimeError"


async def test_unmatched_paths_are_named_by_method_and_probes_make_no_span(traced: Traced) -> None:
    assert (await traced.client.get("/nowhere")).status_code == 404
    assert (await traced.client.get("/healthz")).status_code == 200
    [span] = traced.finished()
    assert span.name == "GET"
    assert span.attributes is not None and "http.route" not in span.attributes
    assert span.status.status_code == StatusCode.UNSET  # a 404 is the caller's error


async def test_each_request_is_measured_by_method_route_and_status(traced: Traced) -> None:
    for _ in range(3):
        await traced.client.get("/items/1")
    await traced.client.get("/broken")
    data = traced.metrics.get_metrics_data()
    assert data is not None
    [metric] = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "http.server.request.duration"
    ]
    counts = {
        (p.attributes["http.route"], p.attributes["http.response.status_code"]): p.count
        for p in metric.data.data_points  # type: ignore[union-attr]
        if p.attributes is not None
    }
    assert counts == {("/items/{item_id}", 200): 3, ("/broken", 500): 1}


def test_telemetry_off_turns_fastapis_own_off_even_where_a_provider_is_set() -> None:
    config = telemetry_config(ChorusSettings(telemetry_enabled=False))
    assert not config.get("tracing", True) and not config.get("metrics", True)


async def test_a_trace_begun_here_is_kept_at_the_sample_ratio_and_a_callers_as_the_caller_decided() -> None:
    def traceparent(n: int, sampled: bool) -> dict[str, str]:
        return {"traceparent": f"00-{n:032x}-{PARENT_ID}-{'01' if sampled else '00'}"}

    async with traced_app(ChorusSettings(telemetry_enabled=True, trace_sample_ratio=0.0)) as none_begun:
        assert (await none_begun.client.get("/items/1")).status_code == 200
        await none_begun.client.get("/items/2", headers=traceparent(1, sampled=True))
        assert [span.context.trace_id for span in none_begun.finished()] == [1]
    async with traced_app(ChorusSettings(telemetry_enabled=True, trace_sample_ratio=1.0)) as all_begun:
        await all_begun.client.get("/items/1")
        await all_begun.client.get("/items/2", headers=traceparent(2, sampled=False))
        [span] = all_begun.finished()
        assert span.parent is None and span.attributes is not None
        assert span.attributes["url.path"] == "/items/1"
    # About half of the traces begun here, by their ids.
    async with traced_app(ChorusSettings(telemetry_enabled=True, trace_sample_ratio=0.5)) as half:
        for _ in range(200):
            await half.client.get("/items/1")
        assert 60 < len(half.finished()) < 140


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_a_sample_ratio_outside_zero_to_one_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="trace_sample_ratio"):
        ChorusSettings(trace_sample_ratio=ratio)


async def test_the_sdks_own_sampler_variables_are_ignored_out_loud(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    async with traced_app(ChorusSettings(telemetry_enabled=True, trace_sample_ratio=1.0)) as app:
        await app.client.get("/items/1")
        assert len(app.finished()) == 1  # CHORUS_TRACE_SAMPLE_RATIO decides
    assert "OTEL_TRACES_SAMPLER and _ARG are ignored" in caplog.text
