"""A real Apache Kafka broker (KRaft, combined broker+controller) on loopback.

The jars come from Maven Central through ``kafka/pom.xml`` (``mvn dependency:copy-dependencies``)
and run on the machine's Java; pid, log and data live under a state folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from edml.core.errors import OperatorError

KAFKA_DIR = Path(__file__).resolve().parents[2] / "kafka"
LIB_DIR = KAFKA_DIR / "lib"


class ToolMissing(OperatorError):
    """A program the local broker needs is not installed; the message says what to install."""


def require_tool(name: str, install_hint: str) -> str:
    """The path of ``name`` on PATH, or ToolMissing with ``install_hint``."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"`{name}` was not found on PATH: {install_hint}")
    return path


def ensure_jars() -> Path:
    """Fetch the broker's jars into ``kafka/lib`` unless they are there; returns the folder."""
    if LIB_DIR.is_dir() and any(LIB_DIR.glob("kafka_2.13-*.jar")):
        return LIB_DIR
    mvn = require_tool("mvn", "install Apache Maven (e.g. `apt-get install maven`)")
    require_tool("java", "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)")
    tmp = LIB_DIR.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise ToolMissing("mvn could not fetch the Kafka jars from Maven Central: " + " | ".join(tail))
    tmp.rename(LIB_DIR)
    return LIB_DIR


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@dataclass
class LocalBroker:
    """One KRaft broker+controller whose files live in ``home``."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        """The address clients use."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        """Where the broker's pid is kept."""
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        """The broker's stdout and stderr."""
        return self.home / "kafka.log"

    def pid(self) -> int | None:
        """The running broker's pid, or None."""
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def _write_properties(self) -> Path:
        props = self.home / "server.properties"
        data = self.home / "data"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.backoff.ms=1000",
            "auto.create.topics.enable=false",
            "",
        ]))
        return props

    def _java(self, main: str, *args: str, **popen: object) -> list[str]:
        java = require_tool("java", "install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre-headless`)")
        return [java, f"-Xmx{self.heap}", "-Xms128m",
                f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.properties'}",
                "-cp", f"{ensure_jars()}/*", main, *args]

    def up(self, timeout: float = 60.0) -> bool:
        """Start the broker unless it runs; returns False when it was already up."""
        if self.pid() is not None:
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        props = self._write_properties()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                                            "-c", str(props)), capture_output=True, text=True)
            if fmt.returncode != 0:
                raise RuntimeError(f"formatting KRaft storage failed: {fmt.stdout}{fmt.stderr}")
        if port_open(self.port):
            raise RuntimeError(f"port {self.port} is taken by another program; pick another with --port")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(self._java("kafka.Kafka", str(props)), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the broker exited with {proc.returncode}; see {self.log_file}")
            if port_open(self.port) and self._ready():
                return True
            time.sleep(0.3)
        raise RuntimeError(f"the broker did not start within {timeout:.0f}s; see {self.log_file}")

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=2)
        except Exception:
            return False
        return True

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the broker; returns False when it was not running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # reap it when it is our child; harmless otherwise
                os.waitpid(pid, os.WNOHANG)
            except (ProcessLookupError, ChildProcessError):
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """Kill -9 the broker (for fault tests); ``up`` restarts it on the same data."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                time.sleep(0.5)
        self.pid_file.unlink(missing_ok=True)
