"""Single-document update patterns on the real local store (SecantusDB, MongoDB's behaviour)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pymongo
import pytest
from opentelemetry import trace
from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.mongo import applied_once_filter, create_client, mark_applied, outliving_request
from shared.settings import ChorusSettings

pytestmark = pytest.mark.integration


async def test_concurrent_updates_of_one_document_are_all_applied(settings: ChorusSettings) -> None:
    # Through the driver's normal pool, as in production: concurrent updates are isolated.
    client = create_client(settings)
    try:
        collection = client[settings.database_name("mongo_tests")]["counters"]
        doc_id = uuid.uuid4().hex
        await collection.insert_one({"_id": doc_id, "n": 0, "balance": 50})
        await asyncio.gather(*[collection.update_one({"_id": doc_id}, {"$inc": {"n": 1}}) for _ in range(50)])
        spends = await asyncio.gather(
            *[
                collection.update_one({"_id": doc_id, "balance": {"$gte": 20}}, {"$inc": {"balance": -20}})
                for _ in range(6)
            ]
        )
        doc = await collection.find_one({"_id": doc_id})
        assert doc is not None
        assert doc["n"] == 50
        assert sum(r.modified_count for r in spends) == 2
        assert doc["balance"] == 10
    finally:
        await client.close()


async def test_an_event_applied_twice_changes_the_document_once(settings: ChorusSettings) -> None:
    client = create_client(settings)
    try:
        collection = client[settings.database_name("mongo_tests")]["applied"]
        doc_id = uuid.uuid4().hex
        for event_id in ["e1", "e2", "e1", "e2", "e3"]:
            # A duplicate key means the upsert found the document but not the filter: applied.
            with contextlib.suppress(DuplicateKeyError):
                await collection.update_one(
                    {"_id": doc_id, **applied_once_filter(event_id)},
                    {"$inc": {"n": 1}, "$push": mark_applied(event_id)},
                    upsert=True,
                )
        doc = await collection.find_one({"_id": doc_id})
        assert doc is not None
        assert doc["n"] == 3
    finally:
        await client.close()


async def test_work_a_request_leaves_running_is_not_held_to_the_requests_deadline(
    settings: ChorusSettings,
) -> None:
    """A task copies its creator's context, and with it the request's MongoDB deadline
    (RequestDeadline): a webhook replay started by a request failed once the request's seconds
    were up. `outliving_request` starts it without the deadline, in the request's trace."""
    client = create_client(settings)
    trace_id = 0x5EED
    span = trace.NonRecordingSpan(
        trace.SpanContext(trace_id=trace_id, span_id=0xF00D, is_remote=False, trace_flags=trace.TraceFlags(1))
    )

    async def after_the_deadline() -> int:
        await asyncio.sleep(0.3)
        await client["admin"].command("ping")
        return trace.get_current_span().get_span_context().trace_id

    try:
        with trace.use_span(span), pymongo.timeout(0.1):  # a request with 0.1 s for MongoDB
            inherited = asyncio.create_task(after_the_deadline())
            outliving = outliving_request(after_the_deadline(), name="test")
        with pytest.raises(PyMongoError):
            await inherited
        assert await outliving == trace_id
    finally:
        await client.close()
