"""Integration fixtures: a local Google Cloud Storage emulator for the real GCS client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class GcsEmulator:
    """A running gcp-storage-emulator: its endpoint (also in STORAGE_EMULATOR_HOST) and a bucket."""

    host: str
    bucket: str
    process: subprocess.Popen

    def store_uri(self, prefix: str) -> str:
        """``gs://<bucket>/<prefix>``: an artifact store in the emulator's bucket."""
        return f"gs://{self.bucket}/{prefix}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gcp-storage-emulator did not listen on port {port} within {timeout}s")


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """A gcp-storage-emulator on a free port (in memory) with bucket ``edml-test-models``.

    Sets ``STORAGE_EMULATOR_HOST`` for this process and its children for the session, so every
    ``google.cloud.storage.Client()`` talks to the emulator.
    """
    port = _free_port()
    bucket = "edml-test-models"
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    log = (tmp_path_factory.mktemp("gcs") / "emulator.log").open("wb")
    process = subprocess.Popen(
        [str(exe), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", bucket],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        _wait_listening(port, process, timeout=30)
        host = f"http://127.0.0.1:{port}"
        os.environ["STORAGE_EMULATOR_HOST"] = host
        yield GcsEmulator(host=host, bucket=bucket, process=process)
    finally:
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
