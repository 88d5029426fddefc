"""One way to serve: `chorus-serve`, `python -m shared.serve` and the dev CLI's `chorus serve` run
the same uvicorn call."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn

from devtools import cli
from shared import serve


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    return calls


def test_a_service_is_served_by_its_app_factory_on_its_own_port(
    runs: list[tuple[str, dict[str, Any]]],
) -> None:
    assert serve.main(["metrics"]) == 0

    (app, options) = runs[0]
    assert app == "services.metrics.main:create_app"
    assert options["factory"] is True
    assert (options["host"], options["port"]) == ("127.0.0.1", serve.SERVICE_PORTS["metrics"])
    # Longer than ingress-nginx's upstream keep-alive; within Kubernetes' 30 s grace.
    assert (options["timeout_keep_alive"], options["timeout_graceful_shutdown"]) == (75, 20)


def test_the_dev_cli_and_the_command_line_chorus_up_starts_serve_the_same_way(
    runs: list[tuple[str, dict[str, Any]]],
) -> None:
    argv = cli.serve_argv("sharing", host="0.0.0.0", port=9000)  # noqa: S104

    assert argv[1:3] == ["-m", "shared.serve"]
    assert serve.main(argv[3:]) == 0
    assert cli.main(["serve", *argv[3:]]) == 0
    assert runs[0] == runs[1]
    assert (runs[0][1]["host"], runs[0][1]["port"]) == ("0.0.0.0", 9000)  # noqa: S104
