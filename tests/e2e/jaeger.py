"""Reading traces back from Jaeger's query API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers import eventually


def new_traceparent() -> tuple[str, str]:
    """A W3C traceparent with a fresh trace id, so a test knows which trace its requests join."""
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class Span:
    span_id: str
    service: str
    name: str
    parent_ids: tuple[str, ...]
    tags: dict[str, Any]


def spans_of(trace: dict[str, Any]) -> list[Span]:
    processes = trace["processes"]
    return [
        Span(
            span_id=s["spanID"],
            service=processes[s["processID"]]["serviceName"],
            name=s["operationName"],
            parent_ids=tuple(r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"),
            tags={t["key"]: t["value"] for t in s.get("tags", [])},
        )
        for s in trace["spans"]
    ]


async def wait_for_spans(
    jaeger_url: str, trace_id: str, wanted: list[tuple[str, str]], timeout_s: float = 60.0
) -> list[Span]:
    """Poll Jaeger until the trace holds a span for every (service, span name) in `wanted`."""

    async def fetch() -> list[Span] | None:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{jaeger_url}/api/traces/{trace_id}")
        if response.status_code != 200 or not response.json().get("data"):
            return None
        spans = spans_of(response.json()["data"][0])
        present = {(s.service, s.name) for s in spans}
        return spans if all(w in present for w in wanted) else None

    try:
        result: list[Span] = await eventually(fetch, timeout_s=timeout_s, interval_s=1.0)
    except AssertionError:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{jaeger_url}/api/traces/{trace_id}")
        found = (
            sorted({(s.service, s.name) for s in spans_of(response.json()["data"][0])})
            if (response.status_code == 200 and response.json().get("data"))
            else []
        )
        missing = [w for w in wanted if w not in found]
        raise AssertionError(f"trace {trace_id} lacks {missing}; it has {found}") from None
    return result
