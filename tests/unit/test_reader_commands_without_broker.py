"""Commands that only read topics (``edml autopilot status``, ``edml scores``) say in one line that no broker
answered, and how to start one, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

from edml.kafka.local_broker import free_port


def test_reading_commands_name_the_unreachable_broker_in_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"  # reserved and released: nothing listens there
    commands = {"autopilot status": ["autopilot", "status", "--pipeline", "taxi"], "scores": ["scores"]}
    running = {name: subprocess.Popen([sys.executable, "-m", "edml.cli", *args, "--bootstrap-servers", address],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}  # in parallel: each waits for the broker's timeout
    for name, proc in running.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines == [f"edml: error: no Kafka broker answered at {address} (Failed to get metadata: Local: "
                         "Broker transport failure); start one with `make kafka-up` or set EDML_BOOTSTRAP_SERVERS"
                         ], (name, err)
