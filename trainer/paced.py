"""Put a pipeline's events and their labels on Kafka, at once or paced like the world that makes them.

Two ways, for any pipeline (the taxi's trips and drop-offs, the moderation's comments and decisions):

* :func:`produce_pairs` -- as fast as possible (or at a rate), for tests, benchmarks and back-fills;
  each event's label can follow it right away.
* :func:`produce_paced` -- events at a target rate, each label produced ``label_delay_s /
  time_scale`` seconds of real time after its event, so the label stream lags the event stream as
  the truth does. The label record keeps its true time; only *when* it is produced is compressed.
  Labels still pending when the events end are produced then.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer

from edml.core.config import Settings
from edml.core.errors import OperatorError
from edml.kafka.clients import make_producer


class ProduceError(OperatorError):
    """Kafka refused or could not take the events (broker down, topic missing, not authorised)."""


@dataclass
class ProduceStats:
    """How many events (on the input topic) and labels (on the label topic) were produced."""

    events: int = 0
    labels: int = 0


@dataclass(frozen=True)
class Pair:
    """One event and its label, encoded, keyed alike; the label is known ``label_delay_s`` after the event."""

    key: bytes
    event: bytes
    label: bytes
    label_delay_s: float = 0.0


class PairProducer:
    """One Kafka producer for a pipeline's input and label topics, remembering the first delivery failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Producer = make_producer(settings)
        self.error: str | None = None

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None and self.error is None:
            self.error = str(err)

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce raw bytes (also for tests that need a malformed value), waiting when the local queue is full."""
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                self.producer.poll(0.05)
            except KafkaException as e:
                raise ProduceError(f"cannot produce to {topic}: {e}") from None

    def event(self, pair: Pair) -> None:
        """The pair's event on the input topic."""
        self.produce(self.settings.topics.trips, pair.key, pair.event)

    def label(self, pair: Pair) -> None:
        """The pair's label on the label topic."""
        self.produce(self.settings.topics.labels, pair.key, pair.label)

    def poll(self) -> None:
        """Serve delivery reports; ProduceError once one failed."""
        self.producer.poll(0)
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise ProduceError(f"Kafka delivery failed ({self.settings.bootstrap_servers}): {self.error}")

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything is delivered; ProduceError when it is not within ``timeout``."""
        left = self.producer.flush(timeout)
        self._check()
        if left:
            raise ProduceError(f"{left} messages not delivered within {timeout:.0f}s; is Kafka reachable at "
                               f"{self.settings.bootstrap_servers}?")

    def sleep_until(self, deadline: float) -> None:
        """Serve delivery reports until ``deadline`` (monotonic seconds)."""
        while (now := time.monotonic()) < deadline:
            self.poll()
            time.sleep(min(deadline - now, 0.01))


def produce_pairs(
    out: PairProducer,
    pairs: Iterable[Pair],
    rate: float | None = None,
    with_labels: bool = False,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce every event (and, with ``with_labels``, its label right after); returns once all are delivered.

    ``rate`` is events per second; None means as fast as possible.
    """
    stats = ProduceStats()
    started = time.monotonic()
    for i, pair in enumerate(pairs):
        if rate:
            out.sleep_until(started + i / rate)
        out.event(pair)
        stats.events += 1
        if with_labels:
            out.label(pair)
            stats.labels += 1
        if i % 1000 == 999:
            out.poll()
            if on_progress:
                on_progress(stats)
    out.flush()
    if on_progress:
        on_progress(stats)
    return stats


def produce_paced(
    out: PairProducer,
    pairs: Iterable[Pair],
    rate: float,
    time_scale: float,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce events at ``rate`` a second and each label ``label_delay_s / time_scale`` s after its event."""
    if rate <= 0 or time_scale <= 0:
        raise ValueError("rate and time_scale must be positive")
    stats = ProduceStats()
    pending: list[tuple[float, int, Pair]] = []  # (due, sequence, pair): a min-heap on the label's due time
    started = time.monotonic()

    def emit_due(now: float) -> None:
        while pending and pending[0][0] <= now:
            out.label(heapq.heappop(pending)[2])
            stats.labels += 1

    last_report = 0.0
    for i, pair in enumerate(pairs):
        due = started + i / rate
        while (now := time.monotonic()) < due:
            emit_due(now)
            out.poll()
            time.sleep(min(due - now, 0.01))
        out.event(pair)
        stats.events += 1
        heapq.heappush(pending, (time.monotonic() + pair.label_delay_s / time_scale, i, pair))
        emit_due(time.monotonic())
        if on_progress and time.monotonic() - last_report > 0.1:
            out.poll()
            on_progress(stats)
            last_report = time.monotonic()
    emit_due(float("inf"))  # the stream stops: every label still to come is known now
    out.flush()
    if on_progress:
        on_progress(stats)
    return stats
