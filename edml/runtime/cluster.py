"""Several processes of one ``edml`` service on this host, wired as one Bytewax cluster (``-i/-a``).

Like a StatefulSet across hosts: process i listens on ``base_port + i`` and serves metrics on
``metrics_port + i``. The ports are checked before any process starts (a taken port would
otherwise fail only after every process had loaded its model). The children's output passes
through the launcher, which drops the one line a normal start prints as an error: timely's
``worker 1: error connecting to worker 0 ...; retrying`` while process 0 is not listening yet.
Past ``PEER_START_S`` those lines pass, since then a peer really is missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import IO, TextIO

from edml.core.errors import OperatorError
from edml.runtime.service import port_in_use

HOST = "127.0.0.1"
# how long the processes of a normal start may wait for each other (importing TensorFlow, loading a model)
PEER_START_S = 120.0
_PEER_RETRY = re.compile(rb"^worker \d+:\s+error connecting to worker \d+: .*; retrying")


def cluster_ports_free(base_port: int, processes: int) -> None:
    """OperatorError naming the first taken port of ``base_port .. base_port + processes - 1``."""
    for port in range(base_port, base_port + processes):
        if port_in_use(HOST, port):
            raise OperatorError(f"cluster port {port} is in use (the {processes} processes listen on "
                                f"{base_port}..{base_port + processes - 1}): pass another --cluster-port")


def launch_processes(command: list[str], argv: list[str], processes: int, base_port: int,
                     metrics_port: int | None) -> int:
    """Start ``processes`` copies of ``edml <command> <argv>`` as one Bytewax cluster; wait for them.

    Returns the exit code of the first process that failed (the cause, not the signal that
    stopped the others), else the largest one.
    """
    cluster_ports_free(base_port, processes)
    addresses = ";".join(f"{HOST}:{base_port + i}" for i in range(processes))
    started = time.monotonic()
    children = [
        subprocess.Popen([sys.executable, "-m", "edml.cli", *command, *argv, "--process-id", str(i),
                          "--addresses", addresses, "--metrics-port", str(metrics_port + i if metrics_port else 0)],
                         env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(processes)
    ]
    relays = [threading.Thread(target=_relay, args=(pipe, out, started), daemon=True)
              for child in children
              for pipe, out in ((child.stdout, sys.stdout), (child.stderr, sys.stderr))]
    for relay in relays:
        relay.start()

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        # A cluster missing a process cannot make progress: when one fails, stop the others.
        while None in (codes := [child.poll() for child in children]):
            failed = next((code for code in codes if code), None)
            if failed is not None:
                forward(signal.SIGTERM, None)
                _wait_or_kill(children, grace_s=10)
                return failed
            time.sleep(0.2)
        return max((code or 0 for code in codes), key=abs)
    finally:
        for relay in relays:
            relay.join(timeout=5)  # the rest of each child's output, up to its exit


def _relay(pipe: IO[bytes] | None, out: TextIO, started: float) -> None:
    """Copy a child's output line by line, without the peer-retry lines of a normal start."""
    if pipe is None:
        return
    for line in pipe:
        if _PEER_RETRY.match(line) and time.monotonic() - started < PEER_START_S:
            continue
        out.buffer.write(line)
        out.flush()


def _wait_or_kill(children: list[subprocess.Popen], grace_s: float) -> None:
    """Give stopping processes a grace period; kill those still waiting on a missing peer."""
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
