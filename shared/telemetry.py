"""One call sets up traces, metrics and logs for a service process.

Traces and metrics go over OTLP/HTTP to the collector (Jaeger locally); metrics are also on
the Prometheus `/metrics` endpoint. Logs are JSON lines carrying the current trace and span
ids, so a log line leads to its trace. PyMongo is instrumented here (before any client is
created, as the instrumentor requires); HTTP requests by FastAPI itself (`telemetry_config` in
shared/app.py); Kafka in shared/messaging.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from shared.settings import ChorusSettings

log = logging.getLogger(__name__)
_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            line["trace_id"] = format(span_context.trace_id, "032x")
            line["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))


def setup_telemetry(settings: ChorusSettings) -> None:
    """Idempotent: the first call in a process wins (tests run several apps in one process)."""
    global _tracer_provider, _meter_provider
    setup_logging(settings.log_level)
    if _tracer_provider is not None or not settings.telemetry_enabled:
        return
    resource = Resource.create(
        {
            "service.name": f"chorus-{settings.service_name}",
            "service.namespace": "chorus",
            "deployment.environment.name": settings.environment,
        }
    )
    _tracer_provider = TracerProvider(resource=resource, sampler=sampler(settings))
    readers: list[MetricReader] = [PrometheusMetricReader()]
    if settings.otlp_endpoint:
        endpoint = settings.otlp_endpoint.rstrip("/")
        _tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"), schedule_delay_millis=500)
        )
    if settings.otlp_endpoint and settings.otlp_metrics_enabled:
        endpoint = settings.otlp_endpoint.rstrip("/")
        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"), export_interval_millis=15000
            )
        )
    trace.set_tracer_provider(_tracer_provider)
    _meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(_meter_provider)
    PymongoInstrumentor().instrument()


def sampler(settings: ChorusSettings) -> Sampler:
    """A trace's first span decides by `trace_sample_ratio`; every later span, in this process or
    another, follows the decision its parent carries (W3C `traceparent`, sampled flag). The
    SDK's own OTEL_TRACES_SAMPLER variables would be ignored: say so rather than surprise."""
    if any(name in os.environ for name in ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")):
        log.warning("OTEL_TRACES_SAMPLER and _ARG are ignored: Chorus samples by CHORUS_TRACE_SAMPLE_RATIO")
    return ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))


def flush_telemetry() -> None:
    if _tracer_provider is not None:
        _tracer_provider.force_flush(timeout_millis=5000)
