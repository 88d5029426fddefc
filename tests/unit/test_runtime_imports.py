"""A production process imports no dev tooling: the image does not carry devtools/ (devtools/image.py)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from shared.serve import SERVICE_PORTS

REPO = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("shared", "services")
# The dev tooling's modules, under their names before and after they left shared/.
DEV_MODULES = {"local_stack", "devstack", "cli", "gateway", "image"}

# What a service process does before it serves: the serve entry, then each service's app.
SERVICE_PROCESS = f"""
import importlib, json, sys
import shared.serve
for name in {sorted(SERVICE_PORTS)!r}:
    importlib.import_module(f"services.{{name}}.main").create_app()
print(json.dumps(sorted(sys.modules)))
"""


def test_serving_every_service_imports_no_dev_tooling() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SERVICE_PROCESS], cwd=REPO, capture_output=True, text=True, check=True
    )
    modules = json.loads(result.stdout)
    assert "shared.serve" in modules and "services.sharing.main" in modules
    dev = [
        name
        for name in modules
        if name.split(".")[0] == "devtools"
        or (name.split(".")[0] in RUNTIME_PACKAGES and name.rsplit(".", 1)[-1] in DEV_MODULES)
    ]
    assert dev == []


def test_no_runtime_module_imports_devtools_even_lazily() -> None:
    importers = []
    for package in RUNTIME_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(name.split(".")[0] == "devtools" for name in names):
                    importers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert importers == []
