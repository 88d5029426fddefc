"""What the HTTP benchmarks share: a server under uvicorn, wrk against it, results and medians.

Every server runs with the same settings (one worker, uvloop, httptools, no access log) and is
pinned to CPU 0 once it is up when the machine has two or more; wrk runs pinned to CPU 1. So a
service and its bare baseline are measured alike, in the same run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No proxy for 127.0.0.1, and a redirect is an answer, not something to follow.
PROBE = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass
class Result:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # answers other than 2xx/3xx, and timeouts
    how: str = "wrk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cpu: int) -> list[str]:
    """The taskset prefix that runs a command on `cpu`, when there is more than one."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


@contextlib.contextmanager
def server(
    app: str,
    port: int,
    env: dict[str, str],
    *,
    probe_path: str,
    factory: bool = False,
    app_dir: Path = REPO,
    start_timeout_s: float = 90,
) -> Iterator[int]:
    """Run `app` under uvicorn until the block ends; yields the server's pid. The server is up
    once `probe_path` gets any HTTP answer (a 302 or a 404 is an answer)."""
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--app-dir",
        str(app_dir),
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    if factory:
        argv.append("--factory")
    log = open(Path(tempfile.gettempdir()) / f"bench-{port}.log", "wb")  # noqa: SIM115
    environment = {**os.environ, **env}
    process = subprocess.Popen(argv, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                PROBE.open(f"http://127.0.0.1:{port}{probe_path}", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start; see {log.name}")
            time.sleep(0.3)
        # Pinned only once up: a process the server starts (a relay) may run on any CPU.
        if pin(0):
            os.sched_setaffinity(process.pid, {0})
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wrk(name: str, url: str, duration: int, connections: int, headers: Sequence[str] = ()) -> Result:
    """One wrk run (one thread, `connections` connections, `duration` seconds) against `url`."""
    argv = [*pin(1), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = (int(bad.group(1)) if bad else 0) + (int(timeouts.group(1)) if timeouts else 0)
    return Result(name, rps, percentile("50"), percentile("99"), errors)


def median_result(runs: Sequence[Result]) -> Result:
    """The median of each figure over rounds of one server (errors summed)."""
    return Result(
        runs[0].name,
        statistics.median(r.requests_per_s for r in runs),
        statistics.median(r.p50_ms for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        runs[0].how,
    )
