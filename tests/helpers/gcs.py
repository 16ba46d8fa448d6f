"""A local gcp-storage-emulator for the real google-cloud-storage client.

``GcsEmulator.start`` runs one on a free port (or a given one), in memory or on disk; an on-disk
emulator can be stopped and started again on the same port and data (an artifact store outage).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from edml.kafka.local_broker import free_port, port_open

EXECUTABLE = Path(sys.executable).with_name("gcp-storage-emulator")
DEFAULT_BUCKET = "edml-test-models"


@dataclass
class GcsEmulator:
    """A gcp-storage-emulator: its endpoint (for ``STORAGE_EMULATOR_HOST``) and a bucket."""

    port: int
    bucket: str
    log_path: Path
    data_dir: Path | None = None  # None: in memory (the data dies with the process)
    process: subprocess.Popen | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """The endpoint, as STORAGE_EMULATOR_HOST wants it."""
        return f"http://127.0.0.1:{self.port}"

    def store_uri(self, prefix: str) -> str:
        """``gs://<bucket>/<prefix>``: an artifact store in the emulator's bucket."""
        return f"gs://{self.bucket}/{prefix}"

    @classmethod
    def start(cls, log_path: Path, *, data_dir: Path | None = None, bucket: str = DEFAULT_BUCKET,
              port: int | None = None) -> GcsEmulator:
        """Start an emulator with ``bucket``; on disk under ``data_dir`` when given."""
        emulator = cls(port=port or free_port(), bucket=bucket, log_path=log_path, data_dir=data_dir)
        emulator.up()
        return emulator

    def up(self, timeout: float = 30.0) -> None:
        """Start the process (again, on the same port and data) and wait until it listens."""
        if self.process is not None and self.process.poll() is None:
            return
        args = [str(EXECUTABLE), "start", "--host", "127.0.0.1", "--port", str(self.port),
                "--default-bucket", self.bucket, "-q"]
        env = None
        if self.data_dir is None:
            args.append("--in-memory")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "STORAGE_BASE": str(self.data_dir)}
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gcp-storage-emulator exited with {self.process.returncode}; see {self.log_path}")
            if port_open(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"gcp-storage-emulator did not listen on port {self.port} within {timeout}s")

    def down(self) -> None:
        """Stop the process (the store becomes unreachable: connections are refused)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
