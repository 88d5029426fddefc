"""The fuzzing step: every operation of each service's OpenAPI document, driven by Schemathesis
against the running services with all its checks, as an admin, as an advocate and with a token
that does not verify; sharing's SCIM endpoint with an organisation API key holding
`scim:provision` instead of the admin's token, as identity providers call it. A 5xx, or any
answer the operation's document does not describe (status, content type, headers, body), fails
the step with Schemathesis's report of it; each failure comes with a curl command that
reproduces it.

The callers belong to organisations of this test's own (the services keep every organisation
apart), so what the fuzzer creates is invisible to the tests that run after it. Schemathesis
works in a temporary directory (its caches and reports land there). Bounded: a few cases per
operation and phase (MAX_EXAMPLES), every phase for the admin only (devtools/fuzz.py says why),
one worker each, two runs at a time, about three minutes on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException

from devtools.fuzz import fuzz, fuzz_services
from tests.e2e.conftest import RunningServices
from tests.helpers import http_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MAX_EXAMPLES = 10


async def test_every_operation_answers_as_its_openapi_document_says(
    services: RunningServices, tmp_path: Path
) -> None:
    runs = [
        run
        async for run in fuzz_services(
            services.urls, services.settings, max_examples=MAX_EXAMPLES, workdir=tmp_path
        )
    ]
    failed = [run for run in runs if not run.passed]
    assert not failed, "\n\n".join(run.report() for run in failed)
    assert len(runs) == 3 * len(services.urls) + 1  # three callers each, and SCIM with its key


def broken_app() -> FastAPI:
    """A tiny service whose OpenAPI document promises what one endpoint does not keep."""
    app = FastAPI(title="broken")

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, Any]:
        if not thing_id.isascii():
            raise RuntimeError("not ready for this id")  # a 500
        return {"id": thing_id}

    @app.get("/v1/widgets")
    async def widgets() -> dict[str, Any]:
        raise HTTPException(status_code=418, detail="undocumented")

    return app


async def test_the_step_fails_on_a_server_error_and_an_undocumented_status(tmp_path: Path) -> None:
    async with http_server(broken_app()) as url:
        run = await fuzz(
            f"{url}/openapi.json", label="broken", headers={}, max_examples=MAX_EXAMPLES, workdir=tmp_path
        )
    assert not run.passed
    report = run.report()
    assert "GET /v1/things/{thing_id}" in report and "Server error" in report, report
    assert "GET /v1/widgets" in report and "Undocumented status code" in report, report
    assert written_outside() == []


def written_outside() -> list[str]:
    """What Schemathesis left in the checkout rather than in its own directory."""
    return [name for name in (".hypothesis", ".schemathesis", "schemathesis-report") if Path(name).exists()]
