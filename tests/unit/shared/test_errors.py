"""Every error leaves as application/problem+json with a message a person can act on."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.errors import AutoReconnect, DuplicateKeyError, NetworkTimeout, ServerSelectionTimeoutError

from shared.errors import PROBLEM_JSON, Conflict, InvalidInput, install_error_handlers


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list, max_length=2)

    @field_validator("tags")
    @classmethod
    def _no_blank_tag(cls, tags: list[str]) -> list[str]:
        if any(not tag.strip() for tag in tags):
            raise ValueError("a tag is not blank")
        return tags


def make_client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/things")
    async def create(body: Body) -> dict[str, str]:
        if body.title == "taken":
            raise Conflict("a thing with this title exists")
        if body.title.startswith("ftp"):
            raise InvalidInput.field("title", "must not look like a URL")
        if body.title in STORE_ERRORS:
            raise STORE_ERRORS[body.title]
        return {"title": body.title}

    return TestClient(app, raise_server_exceptions=False)


STORE_ERRORS = {
    "no-server": ServerSelectionTimeoutError("No servers found yet, Timeout: 2.0s"),
    "lost": AutoReconnect("connection closed"),
    "deadline": NetworkTimeout("timed out"),
    "duplicate": DuplicateKeyError("E11000 duplicate key"),
}


def test_an_app_error_becomes_a_problem_with_its_status() -> None:
    response = make_client().post("/things", json={"title": "taken"})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409
    assert problem["detail"] == "a thing with this title exists"
    assert problem["instance"] == "/things"


def test_validation_errors_name_each_field() -> None:
    response = make_client().post("/things", json={"title": "", "tags": ["a", "b", "c"], "extra": 1})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"title", "tags", "extra"}


def test_a_validator_s_message_reads_as_its_words() -> None:
    # pydantic writes "Value error, " before them, which says nothing to a client.
    response = make_client().post("/things", json={"title": "t", "tags": [" "]})
    assert response.json()["errors"] == [{"field": "tags", "message": "a tag is not blank"}]


def test_a_rule_violation_names_its_field() -> None:
    response = make_client().post("/things", json={"title": "ftp://x"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "title", "message": "must not look like a URL"}]


def test_an_unknown_route_is_a_problem_too() -> None:
    response = make_client().get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_a_store_that_does_not_answer_is_a_503_to_retry_later() -> None:
    client = make_client()
    for title in ("no-server", "lost", "deadline"):
        response = client.post("/things", json={"title": title})
        assert response.status_code == 503, title
        assert response.headers["content-type"] == PROBLEM_JSON
        assert int(response.headers["retry-after"]) > 0
        assert response.json()["title"] == "Service unavailable"


def test_any_other_store_error_is_not_reported_as_an_outage() -> None:
    response = make_client().post("/things", json={"title": "duplicate"})
    assert response.status_code == 500


class Policy(BaseModel):
    body: str = Field(min_length=1)
    links: list[dict[str, int]] = Field(default_factory=list)


def test_a_field_named_like_where_it_came_from_keeps_its_name() -> None:
    """Only a location's first part is where the value came from: a policy's `body` field was
    reported as `body.body`, a nested `path` field lost its name."""

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/policies")
    async def create(policy: Policy) -> None: ...

    response = TestClient(app).post("/policies", json={"body": "", "links": [{"path": "x"}]})
    assert {e["field"] for e in response.json()["errors"]} == {"body", "links[0].path"}
