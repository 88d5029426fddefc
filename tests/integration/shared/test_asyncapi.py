"""The published AsyncAPI document validates with the AsyncAPI project's own parser (npm)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHECKER = REPO / "tests" / "contracts"


@pytest.fixture(scope="module")
def parser_installed() -> Path:
    # `make deps` ran `npm ci` there (never under the test timeout).
    assert shutil.which("node"), "node is needed to validate the AsyncAPI document"
    assert (CHECKER / "node_modules" / "@asyncapi" / "parser").exists(), "run `make deps` first"
    return CHECKER


def test_the_asyncapi_document_validates(parser_installed: Path) -> None:
    result = subprocess.run(
        ["node", "validate.mjs", str(REPO / "docs" / "events" / "asyncapi.json")],
        cwd=parser_installed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "VALID: AsyncAPI 3.0.0" in result.stdout


def test_a_broken_document_is_refused(parser_installed: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"asyncapi": "3.0.0", "info": {"title": "x"}, "channels": {"c": {"address": 5}}}')
    result = subprocess.run(
        ["node", "validate.mjs", str(broken)],
        cwd=parser_installed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "INVALID" in result.stdout
