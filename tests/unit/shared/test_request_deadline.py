"""A request's MongoDB operations share one deadline: a store that does not answer is a 503."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from shared.errors import PROBLEM_JSON, install_error_handlers
from shared.mongo import Document, RequestDeadline


def app_over(client: AsyncMongoClient[Document], seconds: float) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestDeadline, seconds=seconds)

    @app.get("/thing")
    async def thing() -> dict[str, str]:
        await client["db"]["things"].find_one({"_id": "x"})
        return {"found": "no"}

    return app


async def test_a_store_nobody_answers_at_gets_the_request_a_503_at_its_deadline() -> None:
    # Without the deadline the driver would look for a server for ten minutes.
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=600_000
    )
    try:
        app = app_over(mongo, seconds=0.2)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            response = await http.get("/thing")
    finally:
        await mongo.close()
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert int(response.headers["retry-after"]) > 0
