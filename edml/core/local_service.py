"""A Java service on loopback run for a session (the local Kafka broker, the local schema registry).

One place for what every such service does the same way: find the tools it needs, reserve or
probe a port, start the process in its own session with its output in a log, keep its pid in a
file, wait until it answers, stop it with a grace period, kill it for fault tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edml.core.errors import OperatorError

JAVA_HINT = "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)"


class ToolMissing(OperatorError):
    """A program a local service needs is not installed, or its port is taken; the message says what to do."""


def require_tool(name: str, install_hint: str) -> str:
    """The path of ``name`` on PATH, or ToolMissing with ``install_hint``."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"`{name}` was not found on PATH: {install_hint}")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class LocalService:
    """A process whose pid file and log live in ``home``; subclasses say how it starts and when it is ready."""

    home: Path
    port: int

    name = "service"  # names the pid and log files
    what = "service"  # names the service in messages

    @property
    def pid_file(self) -> Path:
        """Where the running process's pid is kept."""
        return self.home / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """The process's stdout and stderr."""
        return self.home / f"{self.name}.log"

    def pid(self) -> int | None:
        """The running process's pid, or None."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def check_port_free(self) -> None:
        """ToolMissing naming the port when another program listens on it."""
        if port_open(self.port):
            raise ToolMissing(f"port {self.port} is taken by another program; pick another with --port")

    def launch(self, command: list[str], ready: Callable[[], bool], timeout: float, *,
               env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        """Start ``command`` in its own session, keep its pid, and wait until ``ready()`` (or it exits)."""
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=cwd, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RuntimeError(f"the {self.what} exited with {proc.returncode}; see {self.log_file}")
            if ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"the {self.what} did not start within {timeout:.0f}s; see {self.log_file}")

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``); False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our child, and it exited
                    break
            except ChildProcessError:  # not our child: ask the kernel
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Kill -9 the process (for fault tests); ``up`` starts it again on the same data."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
