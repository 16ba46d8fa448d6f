"""Start each pipeline under test as the user would (a CLI process), over a pre-filled trips topic."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    MODEL_THREADS_ENV,
    REPO,
    WORK,
    RssSampler,
    edml_env,
    free_ports,
    python,
    steady_rate,
    terminate_group,
)
from edml.core.config import Settings
from edml.kafka.reading import read_to_end

PEER_VENV = WORK / "peer-venv"


@dataclass(frozen=True)
class RunFigures:
    """One throughput run: outputs, steady events/s and peak RSS of its biggest process."""

    variant: str
    processes: int
    events: int  # trips offered
    outputs: int  # output messages
    events_per_s: float
    steady_seconds: float
    peak_rss_mb: float
    wall_seconds: float  # the whole run, start-up included


def _cluster_addresses(processes: int) -> str:
    base = free_ports(processes)
    return ";".join(f"127.0.0.1:{base + i}" for i in range(processes))


def _run(cmds: list[list[str]], env: dict[str, str], log_path: Path, timeout: float,
         ready: Callable[[], bool] | None = None, go: Callable[[], None] | None = None) -> tuple[float, float]:
    """Run ``cmds`` side by side to their end; (wall seconds, largest peak RSS of one process in MB).

    With ``ready`` and ``go``: once ``ready()`` (every process started and waiting), ``go()`` lets
    them all start at once, so no process works alone while another still loads.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "wb") as log:
        procs = [subprocess.Popen(c, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
                 for c in cmds]
        samplers = [RssSampler(p.pid).start() for p in procs]
        deadline = time.monotonic() + timeout
        try:
            if ready is not None:
                ready_by = time.monotonic() + 180
                while not ready():
                    if any(p.poll() is not None for p in procs) or time.monotonic() > ready_by:
                        raise RuntimeError(f"{' '.join(cmds[0][:5])} never got ready; see {log_path}")
                    time.sleep(0.2)
            if go is not None:
                go()
            for p in procs:
                code = p.wait(max(1.0, deadline - time.monotonic()))
                if code != 0:
                    raise RuntimeError(f"{' '.join(cmds[0][:5])} exited with {code}; see {log_path}")
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{' '.join(cmds[0][:5])} did not end within {timeout:.0f}s; see {log_path}") from None
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            peak = max((s.stop() for s in samplers), default=0.0)
    return time.monotonic() - started, peak


def _figures(variant: str, settings: Settings, out_topic: str, processes: int, events: int, wall: float,
             peak: float) -> RunFigures:
    outputs = read_to_end(settings, out_topic)
    if len({m.key for m in outputs}) < events:
        raise RuntimeError(f"{variant}: {len({m.key for m in outputs})} of {events} trips came out")
    rate = steady_rate([m.timestamp_ms for m in outputs])
    return RunFigures(variant, processes, events, len(outputs), rate.events_per_s, rate.seconds, peak, wall)


def run_ceiling(settings: Settings, io: str, processes: int, events: int, log_dir: Path, batch_size: int = 1000,
                timeout: float = 300) -> RunFigures:
    """The Bytewax passthrough over the trips topic into its own output topic."""
    out = settings.topics.predictions
    sync = settings.state_dir / "sync"
    sync.mkdir(parents=True, exist_ok=True)
    base = [python(), "-m", "bench.ceiling", "--io", io, "--trips", settings.topics.trips, "--out", out,
            "--sync-dir", str(sync), "--batch-size", str(batch_size)]
    if processes == 1:
        cmds = [base]
    else:
        addresses = _cluster_addresses(processes)
        cmds = [[*base, "-i", str(i), "-a", addresses] for i in range(processes)]
    wall, peak = _run(cmds, edml_env(settings), log_dir / f"ceiling-{io}-p{processes}.log", timeout,
                      ready=lambda: len(list(sync.glob("ready-*"))) >= processes, go=(sync / "go").touch)
    return _figures(f"ceiling-{io}", settings, out, processes, events, wall, peak)


def serve_command(processes: int, batch_size: int, per_event: bool = False, stop_at_end: bool = True,
                  metrics_port: int | None = None) -> list[str]:
    """``edml serve`` with the bench's options."""
    cmd = [python(), "-m", "edml.cli", "serve", "--processes", str(processes), "--batch-size", str(batch_size),
           "--metrics-port", str(metrics_port or free_ports(processes)),
           "--cluster-port", str(free_ports(processes))]
    if per_event:
        cmd.append("--per-event")
    if stop_at_end:
        cmd.append("--stop-at-end")
    return cmd


def run_serve(settings: Settings, variant: str, processes: int, events: int, log_dir: Path,
              publish: Callable[[], None], batch_size: int = 1000, per_event: bool = False, timeout: float = 600,
              profile: Path | None = None) -> RunFigures:
    """``edml serve --stop-at-end`` over the pre-filled trips topic.

    Every process starts with no model (holding its partitions); once all of them answer on
    their metrics port, ``publish()`` puts the model on the model topic and they start together.
    ``profile``: run it under py-spy, collapsed stacks to that file (figures then include its overhead).
    """
    port = free_ports(processes)
    cmd = serve_command(processes, batch_size, per_event, metrics_port=port)
    if profile is not None:
        from bench.profile import wrap

        cmd = wrap(cmd, profile)
    wall, peak = _run([cmd], edml_env(settings), log_dir / f"{variant}-p{processes}-b{batch_size}.log", timeout,
                      ready=lambda: all(_answers(port + i) for i in range(processes)), go=publish)
    return _figures(variant, settings, settings.topics.predictions, processes, events, wall, peak)


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def peer_available() -> bool:
    """Whether the peer's venv is installed (``make bench`` installs it)."""
    return (PEER_VENV / "bin" / "python").exists()


def run_peer(settings: Settings, saved_model: Path, header: bytes, events: int, log_dir: Path,
             timeout: float = 600) -> RunFigures:
    """The Quix Streams application over the trips topic, in its own venv."""
    out = settings.topics.predictions
    cmd = [str(PEER_VENV / "bin" / "python"), str(REPO / "bench" / "peer_quix.py"),
           "--bootstrap", settings.bootstrap_servers, "--trips", settings.topics.trips, "--out", out,
           "--saved-model", str(saved_model), "--trip-schema", str(REPO / "schemas/avro/TripPickup.avsc"),
           "--prediction-schema", str(REPO / "schemas/avro/Prediction.avsc"), "--prediction-header", header.hex(),
           "--count", str(events), "--state-dir", str(settings.state_dir / "quix")]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", **MODEL_THREADS_ENV})
    wall, peak = _run([cmd], env, log_dir / "peer-quix.log", timeout)
    return _figures("peer-quix", settings, out, 1, events, wall, peak)


class Scorer:
    """A tailing ``edml serve`` for latency and swap runs, with its peak RSS sampled."""

    def __init__(self, settings: Settings, processes: int, batch_size: int, log_path: Path) -> None:
        self.metrics_port = free_ports(processes)
        self.processes = processes
        cmd = serve_command(processes, batch_size, stop_at_end=False, metrics_port=self.metrics_port)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.log_path = log_path
        self.proc = subprocess.Popen(cmd, env=edml_env(settings), stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=REPO, start_new_session=True)
        self.rss = RssSampler(self.proc.pid).start()

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until every process has an active model."""
        deadline = time.monotonic() + timeout
        for i in range(self.processes):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"edml serve exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port + i}/healthz", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"edml serve not healthy after {timeout:.0f}s; see {self.log_path}")
                time.sleep(0.3)

    def stop(self) -> float:
        """SIGTERM, wait; the largest peak RSS of one process (MB)."""
        terminate_group(self.proc)
        self._log.close()
        return self.rss.stop()
