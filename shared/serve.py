"""`chorus-serve SERVICE`: one service's HTTP server, the one way every process of a service starts.

    chorus-serve content --host 0.0.0.0 --port 8001       # the image's entrypoint, with deploy/k8s's args
    python -m shared.serve content                        # the same, as `chorus up` and the tests start it
    chorus-serve content --prepare                        # its indexes and migrations alone, then exit

The runtime's only command: the dev CLI's `chorus serve` calls this module, and nothing here
imports the dev tooling (devtools/), which the image does not carry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Each service's own port: the default here, the containerPort in deploy/k8s, and the base of the
# local gateway's table (devtools/gateway.py).
SERVICE_PORTS = {"content": 8001, "sharing": 8002, "metrics": 8003, "recognition": 8004}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=list(SERVICE_PORTS))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container")
    parser.add_argument("--port", type=int, default=None, help="default: the service's own port")
    parser.add_argument("--timeout-keep-alive", type=int, default=75, help="seconds")
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=20, help="seconds")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="build the service's MongoDB indexes and run its migrations, then exit (deploy/k8s's"
        " initContainer: a long index build outside the startup probe's limit)",
    )


def serve(args: argparse.Namespace) -> int:
    if args.prepare:
        return prepare(args.service)
    import uvicorn

    uvicorn.run(
        f"services.{args.service}.main:create_app",
        factory=True,
        host=args.host,
        port=args.port or SERVICE_PORTS[args.service],
        access_log=False,
        # Longer than an ingress controller's upstream keep-alive (ingress-nginx: 60 s), so a proxy
        # never reuses a connection the app has just closed (sporadic 502s).
        timeout_keep_alive=args.timeout_keep_alive,
        # Within Kubernetes' 30 s grace: drain requests, then the lifespan's shutdown (consumers
        # commit what they hold, the producer flushes).
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
    )
    return 0


def prepare(service: str) -> int:
    """What the service does at start before it listens, alone: its indexes, built however long
    they take (on a large collection, longer than a startup probe allows), and its migrations.
    The service started after it finds them done."""
    import asyncio
    import importlib
    import logging

    from shared.telemetry import setup_logging

    app = importlib.import_module(f"services.{service}.main").create_app()
    setup_logging(app.state.settings.log_level)  # the same JSON lines as the service's
    asyncio.run(app.state.prepare())
    logging.getLogger(__name__).info("%s: indexes and migrations done", service)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus-serve", description="Run one Chorus service's HTTP server.")
    add_arguments(parser)
    return serve(parser.parse_args(argv))


# The guard matters: metrics' tally workers are spawned, and spawning imports the main module again.
if __name__ == "__main__":
    sys.exit(main())
