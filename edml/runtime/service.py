"""Start-up and stop of one dataflow process: topics, metrics, recovery, signals, the Bytewax run.

Every service starts the same way (``check_topics``, ``start_metrics``, ``recovery_config``) and
stops the same way (``run_flow``): a signal sets ``STOP``. A flow whose sources honour it (edml's
own Kafka source) finishes the current epoch and returns; a flow reading through Bytewax's
Kafka source cannot end at a signal without flushing its open windows as if the input had ended,
so there the signal interrupts the run instead, and recovery resumes it from the last snapshot.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
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

log = logging.getLogger("edml.runtime")


@dataclass(frozen=True)
class FlowOptions:
    """How one dataflow process runs: Bytewax workers and cluster, metrics, recovery."""

    workers: int = 1
    process_id: int | None = None
    addresses: list[str] | None = None
    metrics_port: int | None = None
    recovery: bool = True
    epoch_interval_s: float = 5.0


def configure_logging(level: int = logging.INFO) -> None:
    """Log lines with time, process and logger name to stderr."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def cluster_addresses(process_id: int | None, addresses: str | None) -> list[str] | None:
    """The ``-a`` list of a Bytewax cluster, checked against ``-i``; None for a lone process."""
    if (process_id is None) != (addresses is None):
        raise OperatorError("--process-id and --addresses go together (Bytewax -i/-a)")
    if addresses is None:
        return None
    address_list = addresses.split(";")
    if process_id is None or not 0 <= process_id < len(address_list):
        raise OperatorError(f"--process-id {process_id} is not an index into the {len(address_list)} addresses")
    return address_list


def port_in_use(host: str, port: int) -> bool:
    """Whether another process listens on ``host:port`` (binds it as Bytewax would, address re-use on)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def check_cluster_port(addresses: list[str] | None, process_id: int | None, option: str = "--addresses") -> None:
    """OperatorError when this process's own cluster address is taken: before anything loads, in one line."""
    if addresses is None or process_id is None:
        return
    host, _, port = addresses[process_id].rpartition(":")
    if port.isdigit() and port_in_use(host or "0.0.0.0", int(port)):
        raise OperatorError(f"cluster port {port} of process {process_id} ({addresses[process_id]}) is in use: "
                            f"pass another {option}")


def state_dir_writable(path: Path) -> None:
    """OperatorError unless the state folder can be created and written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a probe of its own: processes sharing the folder start at the same moment
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as e:
        raise OperatorError(f"state folder {path} is not writable ({e.strerror}): pass --state-dir") from None


def check_topics(settings: Settings, needed: set[str]) -> None:
    """OperatorError naming the topics of ``needed`` the broker does not have."""
    from edml.kafka.topics import existing_topics

    missing = needed - existing_topics(settings)
    if missing:
        raise OperatorError(f"topics {sorted(missing)} do not exist on {settings.bootstrap_servers}: "
                            "run `edml topics create`")


def start_metrics(port: int | None, healthy: Callable[[], bool], host: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` (None: off); a busy port is an operator mistake."""
    from edml.core.metrics import serve_metrics

    if not port:
        return
    try:
        serve_metrics(port, healthy, host)
    except OSError as e:
        raise OperatorError(f"metrics port {port} is not free ({e.strerror}): pass --metrics-port") from None
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, port)


def recovery_config(settings: Settings, name: str, process_id: int | None = None):  # noqa: ANN201 - bytewax type
    """Bytewax recovery under the state folder, initialised when missing.

    The cluster must hold each recovery partition once: only process 0 (or a lone process)
    creates it. Processes sharing one folder (``--processes`` on one host) find it there; on
    hosts with a volume each (a StatefulSet), the others start with an empty folder.
    """
    from bytewax.recovery import RecoveryConfig, init_db_dir

    state_dir_writable(settings.state_dir)
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


def run_flow(flow: Any, options: FlowOptions, recovery: Any = None, sources_honour_stop: bool = True) -> None:
    """Run ``flow`` in this process until its inputs end or a signal stops it; logs ``stopped``.

    ``sources_honour_stop=False`` for flows whose sources do not watch ``STOP``: the signal then
    interrupts the run (see the module docstring).
    """
    from bytewax.run import cli_main

    from edml.kafka.source import RESTART, STOP

    def stop(signum: int, frame: object) -> None:
        STOP.set()
        if not sources_honour_stop:
            log.info("signal %d: stopping; a restart resumes from the last snapshot", signum)
            raise KeyboardInterrupt
        log.info("signal %d: finishing the current epoch, then stopping", signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while True:
            cli_main(flow, workers_per_process=options.workers, process_id=options.process_id,
                     addresses=options.addresses, epoch_interval=timedelta(seconds=options.epoch_interval_s),
                     recovery_config=recovery)
            if not RESTART.is_set() or STOP.is_set():
                break
            RESTART.clear()  # a source's topic gained partitions: run again from the last snapshot to read them
            log.info("running the dataflow again from its last snapshot")
    except KeyboardInterrupt:
        pass
    except Exception as e:
        # a signal that lands inside a Python callback reaches us wrapped by Bytewax
        if not isinstance(e.__cause__, KeyboardInterrupt):
            raise
    log.info("stopped")
