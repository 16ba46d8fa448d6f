"""Run ``edml serve`` as a real subprocess for tests, and read what it produced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edml.schemas.records import DeadLetter, ModelStatus, Prediction
from edml.schemas.serde import dead_letter_serde, model_status_serde, prediction_serde

from edml.core.config import Settings
from edml.kafka.reading import read_to_end
from tests.helpers.ports import free_ports


def scorer_env(settings: Settings) -> dict[str, str]:
    """Environment that points ``edml`` at the test's broker, topics and state folder."""
    prefix = settings.topics.prefix or settings.topics.trips.removesuffix("trips")
    return {
        **os.environ,
        "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "EDML_TOPIC_PREFIX": prefix,
        "EDML_STATE_DIR": str(settings.state_dir),
        "EDML_ARTIFACT_STORE": settings.artifact_store_uri,
        "EDML_PARTITIONS": str(settings.partitions),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@dataclass
class ScorerProcess:
    """One ``edml serve`` (possibly launching several Bytewax processes)."""

    settings: Settings
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    # process i of `--processes N` listens on metrics_port + i: room for up to 4, reserved together
    metrics_port: int = field(default_factory=lambda: free_ports(4))
    metrics_host: str = "127.0.0.1"  # where the test reaches /metrics (pass --metrics-host in args to move it)
    proc: subprocess.Popen | None = None

    def start(self) -> ScorerProcess:
        """Start the scorer; its log goes to a file beside the state folder."""
        self.log_path = self.log_path or self.settings.state_dir.parent / f"serve-{time.time_ns()}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edml.cli", "serve", "--metrics-port", str(self.metrics_port),
                 "--epoch-interval", "1", *self.args],
                env={**scorer_env(self.settings), **self.env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def healthy(self, process_index: int = 0) -> bool:
        """Whether ``/healthz`` answers 200 (a model is active)."""
        try:
            with urllib.request.urlopen(f"http://{self.metrics_host}:{self.metrics_port + process_index}/healthz",
                                        timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self, process_index: int = 0) -> str:
        """The Prometheus text of one process."""
        with urllib.request.urlopen(f"http://{self.metrics_host}:{self.metrics_port + process_index}/metrics",
                                    timeout=2) as r:
            return r.read().decode()

    def wait_healthy(self, timeout: float = 90, process_index: int = 0) -> None:
        """Wait for an active model; fail with the log when the scorer died or never got one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy(process_index):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"scorer exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.3)
        raise AssertionError(f"scorer not healthy after {timeout}s:\n{self.log()}")

    def log(self, tail: int | None = 8000) -> str:
        """The scorer's output so far (the last ``tail`` characters; None for all of it)."""
        text = self.log_path.read_text(errors="replace") if self.log_path else ""
        return text if tail is None else text[-tail:]

    def stop(self) -> int | None:
        """SIGTERM the scorer and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """kill -9 every process of the scorer."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def predictions(settings: Settings, topic: str | None = None) -> list[Prediction]:
    """Every prediction on the predictions topic (or ``topic``)."""
    serde = prediction_serde()
    return [serde.decode(m.value) for m in read_to_end(settings, topic or settings.topics.predictions)]


def dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every record on the dead-letter topic."""
    serde = dead_letter_serde()
    return [serde.decode(m.value) for m in read_to_end(settings, settings.topics.dead_letter)]


def statuses(settings: Settings) -> list[ModelStatus]:
    """Every model status event."""
    serde = model_status_serde()
    return [serde.decode(m.value) for m in read_to_end(settings, settings.topics.model_status)]


def wait_until(condition, timeout: float = 60, interval: float = 0.5, message: str = "") -> None:  # noqa: ANN001
    """Poll ``condition()`` until it is truthy; AssertionError with ``message`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(message or "condition not met in time")
