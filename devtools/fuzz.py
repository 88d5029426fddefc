"""Fuzzing: Schemathesis drives every operation of an OpenAPI document against a running
service, with all its checks, and says whether any answer fell outside the document.

`fuzz` runs the `schemathesis` command (the dev dependency) in a directory of the caller's, so
its caches, crash files and reports land there and nowhere else; `schemathesis.toml` beside this
file holds the few checks configured narrowly, each with its reason. `fuzz_services` runs it on
all four services as each kind of caller: the fuzzing step of the tests
(tests/e2e/test_fuzz_openapi.py) with a few cases, and `chorus fuzz` against `make run` with as
many as asked.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.auth import issue_dev_token
from shared.settings import ChorusSettings

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Runs side by side: one Schemathesis process keeps about one core busy between itself and the
# service it drives, so two use a 2-core machine (docs/DEVELOPING.md, "The fuzzing step": 0.51
# of the time of one at a time).
PARALLEL_RUNS = 2


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
    finally:
        if process.returncode is None:  # cancelled: the run it was part of is over
            process.kill()
    assert process.returncode is not None
    return FuzzRun(label, process.returncode, out.decode(errors="replace"))


async def fuzz_services(
    urls: Mapping[str, str],
    settings: ChorusSettings,
    *,
    max_examples: int,
    workdir: Path,
    seed: int = 1,
    timeout_s: float = 300,
    parallel: int = PARALLEL_RUNS,
) -> AsyncIterator[FuzzRun]:
    """Every service at `urls` (name -> base URL), as an admin, as an advocate and with a token
    that does not verify, in an organisation of its own (the services keep every organisation
    apart, so what the fuzzer creates is seen by no one else); sharing's SCIM endpoint with an
    organisation API key holding `scim:provision`, as identity providers call it. One run each,
    its files in a directory of `workdir`, `parallel` at a time, each given as it ends."""
    org = f"fuzz-{uuid.uuid4().hex[:10]}"
    token = issue_dev_token(settings, org=org, sub="fuzz-admin", roles=["admin"])
    # Each caller with the phases it needs. An admin may call every operation, so the admin's
    # runs explore the inputs (the coverage phase's boundary cases above all: most of a run's
    # time). The others are about what the caller may do, which no input changes: the advocate
    # gets the same validation, and a token that does not verify a 401 whatever the request.
    callers = {
        "admin": (token, ()),
        "advocate": (
            issue_dev_token(settings, org=org, sub="fuzz-advocate", roles=["advocate"]),
            ("--phases", "examples,fuzzing,stateful"),
        ),
        # Signed with another secret: every operation that authenticates must answer 401.
        "invalid token": (token[: token.rfind(".") + 1] + "A" * 43, ("--phases", "fuzzing")),
    }
    key = await scim_key(urls, token)
    # Caller by caller, so that runs side by side are mostly of different services.
    runs: list[tuple[str, str, str, tuple[str, ...]]] = [
        (service, caller, bearer, phases)
        for caller, (bearer, phases) in callers.items()
        for service in urls
        if (service, caller) != ("sharing", "admin")
    ]
    # Sharing's SCIM endpoint as identity providers call it, with an API key, and the rest of
    # sharing as the admin (an admin passes the same SCIM routes once authenticated).
    runs += [
        ("sharing", "admin", token, ("--exclude-path-regex", "^/scim/")),
        ("sharing", "SCIM API key", key, ("--include-path-regex", "^/scim/")),
    ]
    slots = asyncio.Semaphore(parallel)

    async def run(service: str, caller: str, bearer: str, options: tuple[str, ...]) -> FuzzRun:
        directory = workdir / f"{service}-{caller.replace(' ', '-')}"
        directory.mkdir(parents=True, exist_ok=True)
        async with slots:
            return await fuzz(
                f"{urls[service]}/openapi.json",
                label=f"{service} as {caller}",
                headers={"Authorization": f"Bearer {bearer}"},
                max_examples=max_examples,
                workdir=directory,
                seed=seed,
                options=options,
                timeout_s=timeout_s,
            )

    tasks = [asyncio.create_task(run(*each)) for each in runs]
    try:
        for done in asyncio.as_completed(tasks):
            yield await done
    finally:
        for task in tasks:
            task.cancel()


async def scim_key(urls: Mapping[str, str], admin_token: str, wait_s: float = 30.0) -> str:
    """An API key of the organisation holding `scim:provision`, issued on metrics; ready once
    sharing has learnt of it (from chorus.access) and lets it in."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {admin_token}"}) as client:
        issued = await client.post(
            f"{urls['metrics']}/v1/api-keys", json={"name": "fuzzer", "scopes": ["scim:provision"]}
        )
        if issued.status_code != 201:
            raise RuntimeError(f"no API key for the SCIM runs: {issued.status_code} {issued.text}")
        key: str = issued.json()["api_key"]
        deadline = time.monotonic() + wait_s
        while True:
            probe = await client.get(
                f"{urls['sharing']}/scim/v2/ServiceProviderConfig", headers={"Authorization": f"Bearer {key}"}
            )
            if probe.status_code == 200:
                return key
            if time.monotonic() > deadline:
                raise RuntimeError(f"sharing did not take the SCIM key within {wait_s}s: {probe.status_code}")
            await asyncio.sleep(0.2)
