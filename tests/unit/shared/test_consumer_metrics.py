"""The consumer runner's metrics as an exporter sees them."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from shared.messaging.consumer import PROCESS_DURATION_BUCKETS, process_duration_histogram


def test_the_processing_duration_is_exported_in_buckets_sized_for_seconds() -> None:
    reader = InMemoryMetricReader()
    histogram = process_duration_histogram(MeterProvider(metric_readers=[reader]).get_meter("test"))
    histogram.record(0.3)
    data = reader.get_metrics_data()
    assert data is not None
    [point] = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "messaging.process.duration"
        for p in m.data.data_points
    ]
    assert isinstance(point, HistogramDataPoint)
    assert tuple(point.explicit_bounds) == PROCESS_DURATION_BUCKETS
    assert point.bucket_counts[PROCESS_DURATION_BUCKETS.index(0.5)] == 1  # 0.25 < 0.3 <= 0.5
