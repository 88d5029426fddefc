"""The fuzzing step: Schemathesis drives every operation of an OpenAPI document against a
running service, with all its checks, and says whether any answer fell outside the document.

`fuzz` runs the `schemathesis` command (the dev dependency) in a directory of the caller's, so
its caches, crash files and reports land there and nowhere else; `schemathesis.toml` beside this
file holds the few checks configured narrowly, each with its reason.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@dataclass(frozen=True)
class FuzzRun:
    label: str
    returncode: int
    output: str

    @property
    def passed(self) -> bool:
        return self.returncode == 0

    def report(self) -> str:
        """What went wrong, readably: Schemathesis's failures (each with a curl command that
        reproduces it) and its summary, without the progress lines before them."""
        text = self.output
        start = text.find("=== FAILURES")
        if start < 0:
            start = text.find("=== ERRORS")
        if start >= 0:
            text = text[text.rfind("\n", 0, start) + 1 :]
        return f"--- {self.label} (exit {self.returncode}) ---\n{text[-20_000:]}"


async def fuzz(
    openapi_url: str,
    *,
    label: str,
    headers: Mapping[str, str],
    max_examples: int,
    workdir: Path,  # an existing directory
    seed: int = 1,
    options: Sequence[str] = (),
    config: Path = CONFIG,
    timeout_s: float = 300,
) -> FuzzRun:
    """Every operation of the document at `openapi_url`, `max_examples` cases each in every phase
    (examples, coverage, fuzzing, stateful), all checks, `headers` on every request. A fixed
    `seed` makes a failure reproducible with the same command."""
    argv = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        openapi_url,
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--report-dir",
        str(workdir / "report"),
        *options,
    ]
    for name, value in headers.items():
        argv += ["--header", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "NO_COLOR": "1", "COLUMNS": "120"},
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        return FuzzRun(label, -9, out.decode(errors="replace") + f"\n(stopped after {timeout_s}s)")
    assert process.returncode is not None
    return FuzzRun(label, process.returncode, out.decode(errors="replace"))
