"""Free loopback ports for tests that start servers of their own, so that two test runs on one
machine (two checkouts, or CI beside a developer) never meet on a fixed port."""

from __future__ import annotations

import random
import socket

HOST = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports the kernel says are free now (the small race until the test's
    server binds one is acceptable here)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def free_port_block(size: int) -> int:
    """The first of `size` consecutive free ports, below Linux's ephemeral range (32768 and up),
    for servers whose ports are derived from one base (the gateway and the services beside it)."""
    for _ in range(200):
        base = random.randrange(23000, 32000 - size)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {size} consecutive free ports between 23000 and 32000")
