"""The test helper that reserves ports: consecutive, free, below the ephemeral range, never twice."""

from __future__ import annotations

import socket

from tests.helpers.ports import _ephemeral_start, free_ports


def test_reserved_ports_are_consecutive_free_and_never_handed_out_twice() -> None:
    handed: list[int] = []
    for _ in range(20):
        base = free_ports(4)
        ports = list(range(base, base + 4))
        assert ports[-1] < _ephemeral_start()  # the OS never picks them for a client socket
        sockets = [socket.socket() for _ in ports]
        try:
            for sock, port in zip(sockets, ports, strict=True):
                sock.bind(("0.0.0.0", port))
        finally:
            for sock in sockets:
                sock.close()
        handed += ports
    assert len(handed) == len(set(handed))
