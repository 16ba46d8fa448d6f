"""Runs the scoring dataflow as a service: model subscriber, metrics, recovery, processes.

``run_scorer`` runs one Bytewax process (with W worker threads); ``launch_processes`` starts P
such processes on this host wired as one Bytewax cluster (``-i/-a``), like a StatefulSet does
across hosts.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from edml.core.config import Settings
from edml.core.errors import OperatorError

log = logging.getLogger("edml.serve")
# (source, scorer, sink) -> the Bytewax Dataflow to run; edml.dataflows.scoring.build_flow
FlowBuilder = Callable[..., Any]


@dataclass(frozen=True)
class ScorerOptions:
    """How one scoring process runs."""

    workers: int = 1
    process_id: int | None = None
    addresses: list[str] | None = None
    batch_size: int = 1000
    metrics_port: int | None = 9100
    recovery: bool = True
    epoch_interval_s: float = 5.0
    keep_versions: int = 3
    per_event: bool = False
    tail: bool = True


def cluster_addresses(process_id: int | None, addresses: str | None) -> list[str] | None:
    """The ``-a`` list of a Bytewax cluster, checked against ``-i``; None for a lone process."""
    if (process_id is None) != (addresses is None):
        raise OperatorError("--process-id and --addresses go together (Bytewax -i/-a)")
    if addresses is None:
        return None
    address_list = addresses.split(";")
    if not 0 <= process_id < len(address_list):
        raise OperatorError(f"--process-id {process_id} is not an index into the {len(address_list)} addresses")
    return address_list


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines with time, process and logger name to stderr."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def recovery_config(settings: Settings, name: str, process_id: int | None = None):  # noqa: ANN201 - bytewax type
    """Bytewax recovery under the state folder, initialised when missing.

    The cluster must hold each recovery partition once: only process 0 (or a lone process)
    creates it. Processes sharing one folder (``--processes`` on one host) find it there; on
    hosts with a volume each (a StatefulSet), the others start with an empty folder.
    """
    from bytewax.recovery import RecoveryConfig, init_db_dir

    db_dir = settings.state_dir / "recovery" / name
    db_dir.mkdir(parents=True, exist_ok=True)
    if not process_id and not any(db_dir.iterdir()):
        init_db_dir(db_dir, 1)
        _created_marker(settings, name).write_text(str(int(time.time() * 1000)))
        log.info("initialised Bytewax recovery in %s", db_dir)
    return RecoveryConfig(db_dir)


def recovery_created_ms(settings: Settings, name: str) -> int | None:
    """When this state folder's recovery was initialised (None before it is, or when unknown).

    A partition without a snapshot in an existing recovery may still have been read by a run
    that crashed before its first snapshot: that run started after this time.
    """
    try:
        return int(_created_marker(settings, name).read_text())
    except (OSError, ValueError):
        return None


def _created_marker(settings: Settings, name: str) -> Path:
    return settings.state_dir / "recovery" / f"{name}.created-ms"


def start_models(settings: Settings, process_index: int, keep_versions: int):  # noqa: ANN201
    """The process's ActiveModels, fed by a started ModelSubscriber (returned too)."""
    import tensorflow  # noqa: F401 - imported once here so the first model load is not slowed by it

    from edml.scoring.model_store import ModelStore
    from edml.scoring.serving import ActiveModels
    from edml.scoring.status import StatusReporter
    from edml.scoring.subscriber import ModelSubscriber
    from edml.scoring.trust import record_check

    active = ActiveModels()
    # One RocksDB per process: RocksDB allows one writer per folder.
    path = settings.state_dir / "model-store" / f"process-{process_index}"
    try:
        store = ModelStore(path, keep=keep_versions)
    except Exception as e:  # rocksdict raises a bare Exception
        if "lock" not in str(e).lower():
            raise
        raise OperatorError(f"model store {path} is in use by another scorer process: give each its own "
                            "--state-dir") from None
    subscriber = ModelSubscriber(settings, active, store, StatusReporter(settings),
                                 workdir=settings.state_dir / "models" / f"process-{process_index}",
                                 check_record=record_check(settings))
    subscriber.start()
    return active, subscriber


def run_scorer(settings: Settings, options: ScorerOptions, build_flow: FlowBuilder) -> None:
    """Run one scoring process until interrupted: the flow ``build_flow`` makes from the source, scorer and sink.

    The flow is passed in, not imported: the dataflows sit above the runtime they are built from.
    """
    from bytewax.run import cli_main

    from edml.core.metrics import serve_metrics
    from edml.kafka.security import check_client_settings, describe
    from edml.kafka.sink import KafkaMessageSink
    from edml.kafka.source import RESTART, STOP, HeldKafkaSource
    from edml.kafka.topics import existing_topics
    from edml.model_topic.stores import open_store
    from edml.scoring.batch import BatchScorer
    from edml.scoring.reemission import EmittedPredictions

    # configuration mistakes stop here with one line, not later inside a thread or the dataflow
    check_client_settings(settings)
    open_store(settings.artifact_store_uri)
    log.info("kafka: %s", describe(settings))
    missing = {settings.topics.trips, settings.topics.models} - existing_topics(settings)
    if missing:
        raise OperatorError(f"topics {sorted(missing)} do not exist on {settings.bootstrap_servers}: "
                            "run `edml topics create`")
    index = options.process_id or 0
    active, subscriber = start_models(settings, index, options.keep_versions)
    if options.metrics_port:
        port = options.metrics_port
        try:
            serve_metrics(port, active.ready)
        except OSError as e:
            raise OperatorError(f"metrics port {port} is not free ({e.strerror}): pass --metrics-port") from None
        log.info("metrics on http://0.0.0.0:%d/metrics, health on /healthz", port)
    recovery, emitted, created_ms = None, None, None
    if options.recovery:
        created_ms = recovery_created_ms(settings, "scoring")  # read before a first start sets it
        recovery = recovery_config(settings, "scoring", options.process_id)
        # trips re-read after a crash are re-emitted with their first predictions' bytes
        emitted = EmittedPredictions(settings)
    # without recovery a restart would read everything again, so added partitions do not restart the flow
    known_parts = settings.state_dir / "recovery" / "scoring.partitions.json" if options.recovery else None
    source = HeldKafkaSource(settings, settings.topics.trips, gate=active.ready, batch_size=options.batch_size,
                             tail=options.tail, on_resume=emitted, unsnapshotted_since_ms=created_ms,
                             known_parts=known_parts, **({} if options.recovery else {"partition_check_s": math.inf}))
    flow = build_flow(source, BatchScorer(active, settings.topics, per_event=options.per_event, emitted=emitted),
                      KafkaMessageSink(settings))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while True:
            cli_main(flow, workers_per_process=options.workers, process_id=options.process_id,
                     addresses=options.addresses, epoch_interval=timedelta(seconds=options.epoch_interval_s),
                     recovery_config=recovery)
            if not RESTART.is_set() or STOP.is_set():
                break
            RESTART.clear()  # the topic gained partitions: run again from the last snapshot to read them
            log.info("running the dataflow again from its last snapshot")
        log.info("stopped")
    finally:
        subscriber.stop()


def _stop(signum: int, frame: object) -> None:
    from edml.kafka.source import STOP

    log.info("signal %d: finishing the current epoch, then stopping", signum)
    STOP.set()


def launch_processes(argv: list[str], processes: int, base_port: int, metrics_port: int | None) -> int:
    """Start ``processes`` copies of ``edml serve`` as one Bytewax cluster; wait for them.

    Process i listens for metrics on ``metrics_port + i`` (one host, one port each).
    """
    addresses = ";".join(f"127.0.0.1:{base_port + i}" for i in range(processes))
    children = [
        subprocess.Popen([sys.executable, "-m", "edml.cli", "serve", *argv, "--process-id", str(i),
                          "--addresses", addresses, "--metrics-port", str(metrics_port + i if metrics_port else 0)],
                         env=os.environ.copy())
        for i in range(processes)
    ]

    def forward(signum: int, frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # A cluster missing a process cannot make progress: when one fails, stop the others.
    while None in (codes := [child.poll() for child in children]):
        failed = next((code for code in codes if code), None)
        if failed is not None:
            forward(signal.SIGTERM, None)
            _wait_or_kill(children, grace_s=10)
            return failed  # the cause, not the signal that stopped the others
        time.sleep(0.2)
    return max(codes, key=abs)


def _wait_or_kill(children: list[subprocess.Popen], grace_s: float) -> None:
    """Give stopping processes a grace period; kill those still waiting on a missing peer."""
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def state_dir_writable(path: Path) -> None:
    """OperatorError unless the state folder can be created and written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a probe of its own: processes sharing the folder start at the same moment
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise OperatorError(f"state folder {path} is not writable ({e.strerror}): pass --state-dir") from None
