"""Ports for the servers tests start: reserved, never guessed.

``free_ports(n)`` hands out the first of ``n`` consecutive ports that are all free, and never
hands a port out twice in a test session. The ports come from below the kernel's ephemeral range
(``ip_local_port_range``): there the OS never picks one for an outgoing connection between the
reservation and the server's bind, the race that made "free port + 1" flaky.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_TAKEN: set[int] = set()
_LOCK = threading.Lock()
_LOWEST = 10_000
_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _all_free(ports: range) -> bool:
    for port in ports:
        with socket.socket() as sock:
            try:
                # every interface, as the servers bind; SO_REUSEADDR as they do (TIME_WAIT is no clash)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def free_ports(n: int = 1) -> int:
    """The first of ``n`` consecutive free TCP ports (bound all at once, then released)."""
    top = _ephemeral_start() - n
    with _LOCK:
        for _ in range(500):
            base = random.randrange(_LOWEST, top)
            ports = range(base, base + n)
            if _TAKEN.isdisjoint(ports) and _all_free(ports):
                _TAKEN.update(ports)
                return base
    raise RuntimeError(f"no {n} consecutive free ports between {_LOWEST} and {top}")


def free_port() -> int:
    """One reserved free TCP port."""
    return free_ports(1)
