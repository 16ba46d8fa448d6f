"""What every benchmark shares: the broker, per-variant topics, pre-encoded trips, measuring outputs.

Figures come from Kafka itself: a variant's throughput is the number of output messages over
the span of their produce timestamps (the middle of the run, after warm-up); latency joins a
trip's produce timestamp with its prediction's. Nothing is timed inside the pipelines.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException

from edml.core.config import Settings, Topics
from edml.kafka.clients import make_producer
from edml.kafka.local_broker import LocalBroker, free_port
from edml.kafka.reading import Message, read_to_end
from edml.kafka.topics import create_topics

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"
# The share of a run's outputs skipped at each end: start-up (first batches, JIT of the model
# call, fetch ramp-up) and the tail (the last partition draining alone).
WARMUP_SHARE = 0.10
TAIL_SHARE = 0.05
# TensorFlow's thread pools per process: one thread each. A batch of 1,000 rows is ~1 ms of
# model work; on 2 cores shared with the broker and another process, TF's default pools (one
# thread per core, spinning while they wait) took CPU from the Python thread that does the rest.
# Every TensorFlow process of the run gets it: edml, inline, the peer, the replay.
MODEL_THREADS_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


@dataclass(frozen=True)
class Throughput:
    """Outputs over the steady part of a run."""

    outputs: int  # every output message of the run
    steady_outputs: int  # those between the warm-up and the tail
    seconds: float  # the steady part's span of produce timestamps
    events_per_s: float


def steady_rate(timestamps_ms: list[int]) -> Throughput:
    """Throughput of the messages between WARMUP_SHARE and 1 - TAIL_SHARE of the run, by timestamp."""
    ts = sorted(timestamps_ms)
    n = len(ts)
    if n < 20:
        raise RuntimeError(f"only {n} outputs: too few to measure a rate")
    lo, hi = int(n * WARMUP_SHARE), int(n * (1 - TAIL_SHARE)) - 1
    seconds = max(ts[hi] - ts[lo], 1) / 1000
    return Throughput(n, hi - lo, seconds, (hi - lo) / seconds)


def topics_for(name: str, trips: str) -> Topics:
    """Topics of variant ``name``: its own outputs and model topic, reading the shared ``trips`` topic."""
    own = Topics().with_prefix(f"bench-{name}-")
    return dataclasses.replace(own, trips=trips)


def variant_settings(base: Settings, name: str, trips: str, append_time: bool = False) -> Settings:
    """Settings of one variant: own topics (created), own state folder, the shared artifact store.

    ``append_time``: the predictions topic stamps messages with the broker's append time, so a
    throughput run is measured the same way whatever timestamp its producer sets (Quix Streams
    copies the input's timestamp onto its output).
    """
    settings = dataclasses.replace(base, topics=topics_for(name, trips), state_dir=base.state_dir / name)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    if append_time:
        from confluent_kafka.admin import NewTopic

        from edml.kafka.clients import make_admin

        topic = NewTopic(settings.topics.predictions, num_partitions=settings.partitions, replication_factor=1,
                         config={"message.timestamp.type": "LogAppendTime"})
        admin = make_admin(settings)
        for future in admin.create_topics([topic], operation_timeout=30).values():
            future.result()
    create_topics(settings)
    return settings


def create_pipeline_topics(s: Settings) -> None:
    """A declared pipeline's topics; predictions stamped with the broker's append time, as the ceiling's output is."""
    from confluent_kafka.admin import NewTopic

    from edml.kafka.clients import make_admin

    topic = NewTopic(s.topics.predictions, num_partitions=s.partitions, replication_factor=1,
                     config={"message.timestamp.type": "LogAppendTime"})
    admin = make_admin(s)  # kept alive until the topic exists
    for future in admin.create_topics([topic], operation_timeout=30).values():
        future.result()
    create_topics(s)


def edml_env(settings: Settings) -> dict[str, str]:
    """Environment that points an ``edml`` subprocess at ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDML_")}
    env.update({
        "EDML_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "EDML_STATE_DIR": str(settings.state_dir),
        "EDML_ARTIFACT_STORE": settings.artifact_store_uri,
        "EDML_PARTITIONS": str(settings.partitions),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO),
        **MODEL_THREADS_ENV,
    })
    for role, topic in settings.topics.names().items():
        env[f"EDML_TOPIC_{role.upper()}"] = topic
    return env


_TAKEN: set[int] = set()


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports, none handed out before by this run."""
    import socket

    for _ in range(200):
        base = free_port()
        ports = range(base, base + n)
        if any(p in _TAKEN for p in ports):
            continue
        try:
            for p in ports:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", p))
        except OSError:
            continue
        _TAKEN.update(ports)
        return base
    raise RuntimeError(f"no {n} consecutive free ports")


def start_broker(home: Path) -> LocalBroker:
    """A dedicated broker for the whole run, on free ports."""
    broker = LocalBroker(home, port=free_ports(1), controller_port=free_ports(1), heap="1g")
    broker.up(timeout=120)
    return broker


class TripProducer:
    """One producer for pre-encoded (key, value) pairs, kept across phases.

    Reusing it matters for latency: a new idempotent producer first connects and acquires its
    producer id, and trips produced meanwhile carry a timestamp from before they could be sent.
    """

    def __init__(self, settings: Settings) -> None:
        self.producer = make_producer(settings, **{"linger.ms": 1, "queue.buffering.max.messages": 1_000_000})

    def send(self, topic: str, messages: list[tuple[bytes, bytes]], rate: float | None = None) -> tuple[float, float]:
        """Produce at ``rate`` a second or as fast as possible; the wall-clock (start, end) of producing."""
        produce, poll = self.producer.produce, self.producer.poll
        started = time.time()
        t0 = time.monotonic()
        step = 200 if rate and rate > 2000 else 20
        for i, (key, value) in enumerate(messages):
            if rate and i % step == 0:
                due = t0 + i / rate
                while (now := time.monotonic()) < due:
                    poll(0)
                    time.sleep(min(due - now, 0.002))
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    poll(0.05)
            if i % 5000 == 0:
                poll(0)
        if self.producer.flush(120):
            raise KafkaException(f"trips not delivered to {topic}")
        return started, time.time()


def produce_encoded(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]],
                    rate: float | None = None) -> tuple[float, float]:
    """Produce pre-encoded (key, value) pairs with a new producer; see :class:`TripProducer`."""
    return TripProducer(settings).send(topic, messages, rate)


def output_messages(settings: Settings, topic: str) -> list[Message]:
    """Every message of ``topic``."""
    return read_to_end(settings, topic)


@dataclass
class RssSampler:
    """Peak resident memory (VmHWM) of a process and its descendants, sampled in a thread."""

    root_pid: int
    interval_s: float = 0.25
    peaks_mb: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        """Sample until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in process_tree(self.root_pid):
                hwm = _vm_hwm_mb(pid)
                if hwm is not None:
                    self.peaks_mb[pid] = max(self.peaks_mb.get(pid, 0.0), hwm)
                    if pid not in self.names:
                        self.names[pid] = _cmdline(pid)
            self._stop.wait(self.interval_s)

    def stop(self) -> float:
        """Stop sampling; the largest peak of any one process (MB)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return max(self.peaks_mb.values(), default=0.0)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant, from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            continue
    return out


def _vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def terminate_group(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM the process group of ``proc``; SIGKILL it when it has not ended after ``timeout``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_logged(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float) -> tuple[int, float]:
    """Run ``cmd`` to its end with output to ``log_path``, sampling its peak RSS; (exit code, peak MB)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
        sampler = RssSampler(proc.pid).start()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            sampler.stop()
            raise RuntimeError(f"{' '.join(cmd[:4])} did not end within {timeout:.0f}s; see {log_path}") from None
        return code, sampler.stop()


def python() -> str:
    """The interpreter of edml's venv (the one running the bench)."""
    return sys.executable


def message_count(settings: Settings, topic: str) -> int:
    """Messages on ``topic`` (high minus low watermark, every partition): cheap, reads none."""
    from confluent_kafka import TopicPartition

    from edml.kafka.clients import make_admin, make_consumer

    partitions = make_admin(settings).list_topics(topic, timeout=10).topics[topic].partitions
    consumer = make_consumer(settings)
    try:
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            total += high - low
        return total
    finally:
        consumer.close()


def wait_for_messages(settings: Settings, topic: str, count: int, timeout: float) -> int:
    """Until ``topic`` holds ``count`` messages; RuntimeError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (n := message_count(settings, topic)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic} holds {n} of {count} messages after {timeout:.0f}s")
        time.sleep(0.2)
    return n
