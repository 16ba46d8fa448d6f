"""The local cluster launcher: ports checked before anything starts, a normal start's peer retries not shown."""

from __future__ import annotations

import io
import socket
import time

import pytest

from edml.core.errors import OperatorError
from edml.runtime import cluster

# what timely (Bytewax's networking) prints while process 0 is not listening yet
RETRY = b"worker 1:\terror connecting to worker 0: Connection refused (os error 111); retrying\n"


class Out(io.TextIOWrapper):
    """A text stream whose bytes the test reads back."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")

    def bytes(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()  # type: ignore[attr-defined]


def test_peer_retries_of_a_normal_start_are_dropped_and_the_rest_relayed() -> None:
    out = Out()
    lines = [b"2026-11-28 INFO edml.serve model loaded\n", RETRY, RETRY, b"a real error: broker gone\n"]
    cluster._relay(io.BytesIO(b"".join(lines)), out, started=time.monotonic())
    assert out.bytes() == lines[0] + lines[3]


def test_peer_retries_after_the_start_are_relayed() -> None:
    # a peer still missing long after the start is a real problem: the operator sees the retries
    out = Out()
    cluster._relay(io.BytesIO(RETRY), out, started=time.monotonic() - cluster.PEER_START_S - 1)
    assert out.bytes() == RETRY


def test_a_taken_cluster_port_is_named_with_the_option_to_change() -> None:
    with socket.socket() as taken:
        taken.bind((cluster.HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OperatorError, match=f"cluster port {port} is in use .*: pass another --cluster-port"):
            cluster.cluster_ports_free(port, 2)
