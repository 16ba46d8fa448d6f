"""A real Apache Kafka broker (KRaft, combined broker+controller) on loopback.

The jars come from Maven Central through ``kafka/pom.xml`` (``mvn dependency:copy-dependencies``)
and run on the machine's Java; pid, log and data live under a state folder.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from edml.core.local_service import (  # noqa: F401 - free_port and ToolMissing are imported from here too
    JAVA_HINT,
    LocalService,
    ToolMissing,
    free_port,
    port_open,
    require_tool,
)

KAFKA_DIR = Path(__file__).resolve().parents[2] / "kafka"
LIB_DIR = KAFKA_DIR / "lib"


def ensure_jars() -> Path:
    """Fetch the broker's jars into ``kafka/lib`` unless they are there; returns the folder."""
    if LIB_DIR.is_dir() and any(LIB_DIR.glob("kafka_2.13-*.jar")):
        return LIB_DIR
    mvn = require_tool("mvn", "install Apache Maven (e.g. `apt-get install maven`)")
    require_tool("java", JAVA_HINT)
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


@dataclass
class LocalBroker(LocalService):
    """One KRaft broker+controller whose files live in ``home``."""

    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"

    name = "kafka"
    what = "broker"

    @property
    def bootstrap_servers(self) -> str:
        """The address clients use."""
        return f"127.0.0.1:{self.port}"

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
        java = require_tool("java", JAVA_HINT)
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
        self.check_port_free()
        self.launch(self._java("kafka.Kafka", str(props)), lambda: port_open(self.port) and self._ready(), timeout)
        return True

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap_servers}).list_topics(timeout=2)
        except Exception:
            return False
        return True
