"""What a frontend team does with a service's OpenAPI document: generate a TypeScript SDK from it
(@hey-api/openapi-ts, from npm) and compile it (tsc --strict). Every service's document must
generate, the SDK must compile, and its calls must be named after the operation ids."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHECKERS = REPO / "tests" / "contracts" / "node_modules"
GENERATOR = CHECKERS / "@hey-api" / "openapi-ts" / "bin" / "run.js"
TSC = CHECKERS / "typescript" / "bin" / "tsc"
SERVICES = ("content", "sharing", "metrics", "recognition")

# The generated client's own code uses the DOM's fetch and URLSearchParams, as a browser has them.
TSCONFIG = {
    "compilerOptions": {
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "strict": True,
        "noEmit": True,
        "lib": ["es2022", "dom", "dom.iterable"],
    },
    "include": ["*/**/*.ts"],
}


@pytest.fixture(scope="module")
def tools() -> None:
    # `make deps` ran `npm ci` there (never under the test timeout).
    assert shutil.which("node"), "node is needed to generate the SDK"
    assert GENERATOR.exists() and TSC.exists(), "run `make deps` first"


def generate(document: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # Run from the output's folder: the generator writes its crash logs where it runs.
    return subprocess.run(
        ["node", str(GENERATOR), "--input", str(document), "--output", str(out)],
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_service_generates_an_sdk_that_compiles_with_calls_named_by_operation_id(
    tools: None, tmp_path: Path
) -> None:
    for service in SERVICES:
        spec = importlib.import_module(f"services.{service}.main").create_app().openapi()
        document = tmp_path / f"{service}.json"
        document.write_text(json.dumps(spec))
        generated = generate(document, tmp_path / service)
        assert generated.returncode == 0, f"{service}: {generated.stdout}{generated.stderr}"
        sdk = (tmp_path / service / "sdk.gen.ts").read_text()
        calls = set(re.findall(r"^export const (\w+) =", sdk, re.MULTILINE))
        operation_ids = {op["operationId"] for ops in spec["paths"].values() for op in ops.values()}
        assert calls == operation_ids, f"{service}: {sorted(calls ^ operation_ids)}"
    (tmp_path / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    compiled = subprocess.run(
        ["node", str(TSC), "-p", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_a_document_with_a_dangling_reference_generates_nothing(tools: None, tmp_path: Path) -> None:
    """The harness above fails where the generator does."""
    answer = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Missing"}}}}
    operation = {"operationId": "getThing", "responses": {"200": {"description": "ok", **answer}}}
    broken = {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {"/thing": {"get": operation}},
    }
    document = tmp_path / "broken.json"
    document.write_text(json.dumps(broken))
    (tmp_path / "out").mkdir()
    generated = generate(document, tmp_path / "out" / "broken")
    assert generated.returncode != 0
    assert not (tmp_path / "out" / "broken" / "sdk.gen.ts").exists()
