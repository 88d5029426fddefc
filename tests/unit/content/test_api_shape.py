"""The HTTP contract frontends build on, checked without a stack (nothing connects at import)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.content.library.schemas import ContentCreate
from services.content.main import create_app
from services.content.settings import ContentSettings

CORE_PATHS = {
    "/v1/content": {"get", "post"},
    "/v1/content/{content_id}": {"get", "patch"},
    "/v1/content/{content_id}/publish": {"post"},
    "/v1/content/{content_id}/reject": {"post"},
    "/v1/content/{content_id}/archive": {"post"},
    "/v1/settings": {"get", "put"},
    "/v1/policy": {"get"},
    "/v1/policy/versions": {"get", "post"},
    "/v1/policy/acknowledgements": {"post"},
    "/v1/courses": {"get", "post"},
    "/v1/courses/{course_id}": {"get", "put"},
    "/v1/courses/{course_id}/progress": {"get"},
    "/v1/courses/{course_id}/modules/{module_id}/complete": {"post"},
}


def test_openapi_lists_the_core_paths_each_with_a_summary() -> None:
    spec = create_app(ContentSettings(telemetry_enabled=False, otlp_endpoint=None)).openapi()
    for path, methods in CORE_PATHS.items():
        assert set(spec["paths"][path]) >= methods, path
        for method in methods:
            assert spec["paths"][path][method].get("summary"), f"{method} {path}"
    create = spec["paths"]["/v1/content"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


def test_content_create_refuses_unknown_fields_and_networks() -> None:
    body = {"type": "article", "title": "t", "url": "https://e.example"}
    ContentCreate.model_validate(body)
    with pytest.raises(ValidationError):
        ContentCreate.model_validate({**body, "colour": "red"})
    with pytest.raises(ValidationError) as exc:
        ContentCreate.model_validate({**body, "suggested_posts": [{"network": "myspace", "text": "hi"}]})
    assert exc.value.errors()[0]["loc"] == ("suggested_posts", 0, "network")


def test_dates_without_a_time_zone_are_refused() -> None:
    with pytest.raises(ValidationError):
        ContentCreate.model_validate(
            {"type": "article", "title": "t", "url": "https://e.example", "starts_at": "2026-01-01T10:00:00"}
        )
