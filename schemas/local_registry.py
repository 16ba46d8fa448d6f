"""A real schema registry on loopback: Apicurio Registry 3.0.9, like the local Kafka broker.

Apicurio serves the Confluent Schema Registry API under ``/apis/ccompat/v7``, which is what
confluent-kafka's client (and kcat, and any Confluent serde) talks to. Its runnable tarball
comes from Maven Central through ``registry/pom.xml`` (``mvn dependency:copy``) and is unpacked
into ``registry/app`` (git-ignored); it runs on the machine's Java 17 (later 3.x releases need
Java 21). Pid, log and data live under a state folder. Storage is Apicurio's default SQL
storage on H2, pointed at a file in that folder, so schemas and their ids survive a restart
(ids must: they are inside every message already written).

Start-up is a Quarkus boot (a few seconds on an idle machine); the first start records the
loaded classes into a class-data-sharing archive beside the jar, which later starts map
instead of parsing the jars again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edml.core.local_service import JAVA_HINT, LocalService, ToolMissing, free_port, require_tool

REGISTRY_DIR = Path(__file__).resolve().parents[1] / "registry"
APP_DIR = REGISTRY_DIR / "app"
VERSION = "3.0.9"
RUNNER = f"apicurio-registry-app-{VERSION}-runner.jar"
CCOMPAT_PATH = "/apis/ccompat/v7"


def ensure_app() -> Path:
    """Fetch and unpack Apicurio Registry into ``registry/app`` unless it is there; returns the folder."""
    if (APP_DIR / RUNNER).is_file():
        return APP_DIR
    mvn = require_tool("mvn", "install Apache Maven (e.g. `apt-get install maven`)")
    require_tool("java", JAVA_HINT)
    download = REGISTRY_DIR / "download"
    tarball = download / f"apicurio-registry-app-{VERSION}-all.tar.gz"
    if not tarball.is_file():
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(REGISTRY_DIR / "pom.xml"), "dependency:copy",
             f"-DoutputDirectory={download}"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not tarball.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise ToolMissing("mvn could not fetch Apicurio Registry from Maven Central: " + " | ".join(tail))
    partial = APP_DIR.with_name("app.partial")
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(partial, filter="data")
    partial.rename(APP_DIR)
    tarball.unlink()  # 110 MB: the unpacked app is what runs
    return APP_DIR


@dataclass
class LocalRegistry(LocalService):
    """One Apicurio Registry whose pid, log and data live in ``home``."""

    port: int = 8081
    heap: str = "384m"

    name = "registry"
    what = "schema registry"

    @property
    def url(self) -> str:
        """The Confluent-compatible API's base URL (what ``[schema_registry] url`` takes)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    def ready(self) -> bool:
        """Whether the registry answers its readiness check."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _command(self) -> list[str]:
        java = require_tool("java", JAVA_HINT)
        app = ensure_app()
        cds = app / "app-cds.jsa"
        # the first start writes the archive when it stops; later ones map it
        share = f"-XX:SharedArchiveFile={cds}" if cds.is_file() else f"-XX:ArchiveClassesAtExit={cds}"
        return [java, f"-Xmx{self.heap}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", share,
                "-jar", str(app / RUNNER)]

    def up(self, timeout: float = 180.0) -> bool:
        """Start the registry unless it runs; wait until it is ready. False when it was already up."""
        if self.pid() is not None:
            return False
        self.check_port_free()
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, QUARKUS_HTTP_HOST="127.0.0.1", QUARKUS_HTTP_PORT=str(self.port),
                   # the management interface (metrics, health) stays on the main port
                   QUARKUS_MANAGEMENT_ENABLED="false",
                   APICURIO_DATASOURCE_URL=f"jdbc:h2:file:{(self.home / 'data' / 'registry').resolve()}",
                   QUARKUS_LOG_CATEGORY__IO_APICURIO_REGISTRY_ACCESS__LEVEL="WARN")
        self.launch(self._command(), self.ready, timeout, env=env, cwd=self.home)
        return True

    def down(self, timeout: float = 90.0) -> bool:
        """Stop the registry (it flushes its storage on SIGTERM: a longer grace); False when it was not running."""
        return super().down(timeout)


def start_on_free_port(home: Path) -> LocalRegistry:
    """A started registry on a port reserved just now (for tests and demos)."""
    registry = LocalRegistry(home, port=free_port())
    registry.up()
    return registry
