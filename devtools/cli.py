"""The `chorus` command: run the whole system locally and the chores around it.

chorus up [--demo]              the stack and the four services in the foreground (Ctrl-C stops all);
                                with --demo, `chorus demo` plays a simulated program against them
chorus serve SERVICE            one service's HTTP server: shared/serve.py, what `chorus up` and the image run
chorus stack up|down|status     only the infrastructure (Kafka, SecantusDB, Jaeger)
chorus token --org O --sub S --role R   print a dev JWT
chorus topics                   create the catalog's topics and list them
chorus schemas [--out DIR] [--accept-breaking]
                                write the events' JSON Schemas, AsyncAPI document, consumer map and
                                Kafka ACLs, and the REST APIs' OpenAPI documents (docs/openapi); a
                                change that breaks what is released is written only if accepted
chorus rebuild metrics          replay the topics into fresh metrics projections, then swap
chorus demo [--advocates N] [--days D] [--seed S] [--speed X] [--url URL]
                                a simulated program played against a running stack (make demo)
chorus fuzz [--seed S] [--examples N]  Schemathesis against the running services (make fuzz)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

from devtools import local_stack
from devtools.gateway import gateway_port, local_service_ports
from shared import serve as runtime_serve
from shared.settings import ChorusSettings

SERVICE_READY_TIMEOUT_S = 60.0


def serve_argv(service: str, *, host: str = "127.0.0.1", port: int | None = None) -> list[str]:
    """The command line that runs one service (shared/serve.py): `chorus up` and the tests start
    exactly this; the image's entrypoint `chorus-serve` takes the same arguments (`[3:]`)."""
    argv = [sys.executable, "-m", "shared.serve", service, "--host", host]
    return argv if port is None else [*argv, "--port", str(port)]


def _service_env(config: local_stack.StackConfig, gateway: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(config.env())
    # Short links point at the gateway (which routes /r/ to sharing), wherever it listens.
    env.setdefault("CHORUS_PUBLIC_BASE_URL", f"http://127.0.0.1:{gateway}")
    # The redirect's click spool in this installation's state: with the default (one path in /tmp
    # for every sharing process on the machine) another installation's relay drains, and sends
    # to its own Kafka, the clicks this one recorded.
    env.setdefault("CHORUS_CLICK_SPOOL_PATH", str(config.state_dir / "click-spool.sqlite3"))
    return env


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


# Ctrl-C stops everything within 10 s: the services get this long (their own shutdown is bounded
# by CHORUS_SHUTDOWN_TIMEOUT_S, 5 s), the stack's processes the rest.
SERVICES_STOP_S = 7.0
STACK_STOP_S = 3.0


def _terminate(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # uvicorn drains requests and runs the lifespan's shutdown
    deadline = time.monotonic() + SERVICES_STOP_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _claim_up(config: local_stack.StackConfig) -> IO[str] | None:
    """Hold the state directory's `up` lock for as long as this process runs; None if another has it.

    The file names the holder's pid, for the message the second `chorus up` prints.
    """
    handle = open(local_stack.claim_state_dir(config) / "up.lock", "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        print(
            f"chorus up: Chorus is already running from {config.state_dir} (pid {holder}); "
            "this one leaves it alone. Stop it with Ctrl-C in its terminal, or run this one "
            "with another CHORUS_STATE_DIR and other ports.",
            file=sys.stderr,
        )
        return None
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    config = local_stack.StackConfig.from_env()
    try:
        claim = _claim_up(config)
    except local_stack.StackError as exc:
        print(f"chorus up: {exc}", file=sys.stderr)
        return 1
    if claim is None:
        return 1
    gateway = gateway_port()
    service_ports = local_service_ports(gateway)
    ports = {**service_ports, "gateway": gateway}
    busy = [f"{name} 127.0.0.1:{port}" for name, port in ports.items() if not local_stack.port_free(port)]
    if busy:
        print(f"chorus up: in use by another process: {', '.join(busy)}; started nothing", file=sys.stderr)
        return 1
    # Parts someone else started (`chorus stack up`) are theirs: left running when this one stops.
    theirs = {part.name for part in local_stack.status(config) if part.pid is not None}
    try:
        local_stack.start(config)
    except local_stack.StackError as exc:
        print(f"chorus up: {exc}", file=sys.stderr)
        return 1
    env = _service_env(config, gateway)
    logs = config.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    demo: subprocess.Popen[bytes] | None = None
    log_files = contextlib.ExitStack()
    stopping = False

    def log_to(name: str) -> IO[bytes] | None:
        return None if args.verbose else log_files.enter_context(open(logs / f"{name}.log", "ab"))

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for name, port in service_ports.items():
            processes.append(
                subprocess.Popen(
                    serve_argv(name, port=port),
                    env=env,
                    stdout=None if args.verbose else open(logs / f"{name}.log", "ab"),  # noqa: SIM115
                    stderr=subprocess.STDOUT,
                )
            )
        for (name, port), process in zip(service_ports.items(), processes, strict=True):
            if not _wait_ready(f"http://127.0.0.1:{port}/readyz", process, SERVICE_READY_TIMEOUT_S):
                print(
                    f"chorus up: the {name} service did not become ready; see {logs / f'{name}.log'}",
                    file=sys.stderr,
                )
                return 1
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "devtools.gateway:create_gateway",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(gateway),
                    "--no-access-log",
                ],
                env=env,
                stdout=log_to("gateway"),
                stderr=subprocess.STDOUT,
            )
        )
        if not _wait_ready(f"http://127.0.0.1:{gateway}/", processes[-1], SERVICE_READY_TIMEOUT_S):
            print(f"chorus up: the gateway did not start; see {logs / 'gateway.log'}", file=sys.stderr)
            return 1
        print(f"\nChorus is up in {time.monotonic() - started:.1f}s\n")
        print(f"  API gateway      http://127.0.0.1:{gateway}   (/v1/... and /r/... to every service)")
        print(f"  dashboard        http://127.0.0.1:{gateway}/dashboard/   (log in with an organisation id)")
        for name, port in service_ports.items():
            print(f"  {name:<16} http://127.0.0.1:{port}   docs: http://127.0.0.1:{port}/docs")
        print(f"  Jaeger UI        {config.jaeger_query_url}")
        print(f"  Kafka            {config.kafka_bootstrap}")
        print(f"  MongoDB          {config.mongo_url}   (SecantusDB)")
        print(f"  logs             {logs}")
        print("\n  a dev token:  chorus token --org acme --sub alice --role admin")
        print("Press Ctrl-C to stop everything.\n", flush=True)
        if args.demo:
            # Beside the services, not among them: the demo ending does not stop the stack.
            demo_argv = [sys.executable, "-m", "devtools.cli", "demo", "--url", f"http://127.0.0.1:{gateway}"]
            demo = subprocess.Popen(demo_argv, env=env)
        while not stopping:
            if demo is not None:
                demo.poll()  # reaps it once it is done
            for process in processes:
                if process.poll() is not None:
                    print(
                        f"chorus up: process {process.pid} ({process.args!r}) exited; stopping",
                        file=sys.stderr,
                    )
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        print("stopping services…", flush=True)
        _terminate([*processes, *([demo] if demo is not None else [])])
        print("stopping the stack…", flush=True)
        ours = [part.name for part in local_stack.PARTS if part.name not in theirs]
        local_stack.stop(config, names=ours, grace_s=STACK_STOP_S)
        log_files.close()
        claim.close()
        print("stopped.")


def cmd_stack(args: argparse.Namespace) -> int:
    return local_stack.main([args.action, *(["--test-tools"] if args.test_tools else [])])


def cmd_token(args: argparse.Namespace) -> int:
    from shared.auth import issue_dev_token

    settings = ChorusSettings()
    print(issue_dev_token(settings, org=args.org, sub=args.sub, roles=args.role, ttl_s=args.ttl))
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from shared.messaging import ensure_topics

    settings = ChorusSettings()
    catalog = asyncio.run(ensure_topics(settings.kafka_bootstrap))
    print(f"{'topic':<28} {'partitions':>10}  retention")
    for name, partitions, configs in catalog:
        retention = int(configs["retention.ms"])
        shown = "forever" if retention < 0 else f"{retention // 86_400_000} days"
        print(f"{name:<28} {partitions:>10}  {shown}")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from devtools.contracts import breaking_event_changes, write_contracts
    from devtools.kafka_access import write_access
    from devtools.rest_contracts import (
        REPO_ROOT,
        breaking_document_changes,
        build_documents,
        version_problems,
        write_documents,
    )

    # Writing the contracts releases them: a change that breaks what was released is not
    # written over it unless asked, so that regenerating never passes one through unseen.
    documents = build_documents()  # the four apps, built once for the checks and the writing
    breaking = [*breaking_event_changes(Path(args.out)), *breaking_document_changes(REPO_ROOT, documents)]
    if breaking and not args.accept_breaking:
        print("chorus schemas: nothing written; these changes break what is released:", file=sys.stderr)
        for problem in breaking:
            print(f"  {problem}", file=sys.stderr)
        print(
            "Make the change beside the old shape (docs/events/README.md, docs/openapi/README.md), "
            "or release it anyway with --accept-breaking and say why in the commit.",
            file=sys.stderr,
        )
        return 1
    if unversioned := version_problems(REPO_ROOT, documents):
        print(
            "chorus schemas: nothing written; these documents changed at the same version:", file=sys.stderr
        )
        for problem in unversioned:
            print(f"  {problem}", file=sys.stderr)
        return 1
    for path in [*write_contracts(Path(args.out)), *write_access(), *write_documents(REPO_ROOT, documents)]:
        print(path)
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    if args.service != "metrics":
        print("only 'metrics' can be rebuilt", file=sys.stderr)
        return 2
    # Imported here: the CLI is a tool beside the services, not part of any of them.
    from services.metrics.rebuild import main as rebuild_main

    return rebuild_main()


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here: rich and the demo are only needed by this command.
    from rich.console import Console

    from devtools.demo.client import DemoError
    from devtools.demo.report import render
    from devtools.demo.run import DemoOptions, run_demo

    base_url = args.url or f"http://127.0.0.1:{gateway_port()}"
    try:
        with urllib.request.urlopen(base_url + "/", timeout=3):  # noqa: S310 - the URL the user gave
            pass
    except OSError as exc:
        print(
            f"chorus demo: nothing answers at {base_url} ({exc}); start the stack with `make run` first",
            file=sys.stderr,
        )
        return 1
    options = DemoOptions(
        advocates=args.advocates,
        days=args.days,
        seed=args.seed,
        speed=args.speed,
        base_url=base_url,
        org=args.org,
    )
    console = Console(stderr=True)
    try:
        summary = asyncio.run(run_demo(options, console=console))
    except DemoError as exc:
        print(f"chorus demo: {exc}", file=sys.stderr)
        return 1
    # Wide enough for the goals table when the output goes to a file or a pipe.
    out = Console()
    render(summary, out if out.is_terminal else Console(width=120))
    return 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    from devtools.fuzz import FuzzRun, fuzz_services

    urls = {name: f"http://127.0.0.1:{port}" for name, port in local_service_ports(gateway_port()).items()}
    for name, url in urls.items():
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=3):  # noqa: S310 - loopback
                pass
        except OSError as exc:
            print(
                f"chorus fuzz: {name} is not ready at {url} ({exc}); start it with `make run`",
                file=sys.stderr,
            )
            return 1
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    workdir = local_stack.StackConfig.from_env().state_dir / "fuzz" / f"seed-{seed}"
    print(f"chorus fuzz: seed {seed}, {args.examples} cases per operation and phase; files in {workdir}")

    async def each_run() -> list[FuzzRun]:
        runs = []
        # The services verify dev tokens with the settings `chorus token` uses.
        settings = ChorusSettings()
        async for run in fuzz_services(
            urls, settings, max_examples=args.examples, workdir=workdir, seed=seed, timeout_s=3600
        ):
            print(f"{'passed' if run.passed else 'FAILED'}  {run.label}", flush=True)
            runs.append(run)
        return runs

    runs = asyncio.run(each_run())
    failed = [run for run in runs if not run.passed]
    for run in failed:
        print(run.report())
    if failed:
        print(
            f"chorus fuzz: {len(failed)} of {len(runs)} runs failed; again with --seed {seed}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="chorus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one service's HTTP server in the foreground")
    runtime_serve.add_arguments(serve)
    serve.set_defaults(run=runtime_serve.serve)

    up = commands.add_parser("up", help="run the stack and all services in the foreground")
    up.add_argument("--verbose", action="store_true", help="service logs to the terminal")
    up.add_argument("--demo", action="store_true", help="once all is up, play `chorus demo` against it")
    up.set_defaults(run=cmd_up)

    stack = commands.add_parser("stack", help="only the infrastructure")
    stack.add_argument("action", choices=["up", "down", "status", "reset", "install"])
    stack.add_argument("--test-tools", action="store_true", help="install: also what the tests need")
    stack.set_defaults(run=cmd_stack)

    token = commands.add_parser("token", help="print a dev JWT")
    token.add_argument("--org", required=True)
    token.add_argument("--sub", required=True)
    token.add_argument("--role", action="append", required=True, choices=["admin", "editor", "advocate"])
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    token.set_defaults(run=cmd_token)

    topics = commands.add_parser("topics", help="create and list the topics")
    topics.set_defaults(run=cmd_topics)

    schemas = commands.add_parser("schemas", help="write the event and REST contracts, and who consumes what")
    schemas.add_argument("--out", default="docs/events", help="where the event contracts go")
    schemas.add_argument(
        "--accept-breaking", action="store_true", help="write even a change that breaks what is released"
    )
    schemas.set_defaults(run=cmd_schemas)

    rebuild = commands.add_parser("rebuild", help="rebuild a service's projections from the topics")
    rebuild.add_argument("service", choices=["metrics"])
    rebuild.set_defaults(run=cmd_rebuild)

    demo = commands.add_parser("demo", help="play a simulated program against a running stack")
    demo.add_argument("--advocates", type=_positive, default=50, help="advocates in the program (50)")
    demo.add_argument("--days", type=_positive, default=28, help="days of activity to simulate (28)")
    demo.add_argument("--seed", type=int, default=7, help="the same seed plays the same program (7)")
    demo.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="simulated days a minute; 0 (default): as fast as the stack takes it",
    )
    demo.add_argument("--url", help="the gateway's base URL (default: the local one, CHORUS_GATEWAY_PORT)")
    demo.add_argument("--org", help="the organisation to create (default: a new demo-<seed>-<time>)")
    demo.set_defaults(run=cmd_demo)

    fuzz = commands.add_parser("fuzz", help="Schemathesis against the running services, every caller")
    fuzz.add_argument("--seed", type=int, help="the same seed asks the same cases (default: a new one)")
    fuzz.add_argument("--examples", type=_positive, default=50, help="cases per operation and phase (50)")
    fuzz.set_defaults(run=cmd_fuzz)

    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
