"""Put generated trips on Kafka: pick-ups on the trips topic, drop-offs on the labels topic.

Two ways:

* :func:`produce_trips` -- as fast as possible (or at a rate), for tests and back-fills; each
  trip's drop-off can follow its pick-up right away.
* :func:`produce_live` -- at a target rate, each drop-off produced ``duration_s / time_scale``
  seconds of real time after its pick-up (time is compressed: with the default time scale of 60 a
  20-minute trip ends 20 s later), so the drop-offs stream lags the trips stream as in a city.
  The ``dropoff_time`` field always holds the trip's true end (pick-up + duration); only *when*
  it is produced is compressed. Drop-offs still pending when the pick-ups end are produced
  right away.

Keys are the trip id as UTF-8 bytes; values are Avro single-object encoded (``schemas.serde``);
Kafka timestamps are the produce time (the producer's default).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer
from edml.schemas.wire import topic_serdes
from edml.trainer.generator import GeneratedTrip
from edml.trainer.records import TripDropoff, TripPickup, dropoff_serde, trip_serde

from edml.core.config import Settings
from edml.core.errors import OperatorError
from edml.kafka.clients import make_producer

DEFAULT_TIME_SCALE = 60.0


class ProduceError(OperatorError):
    """Kafka refused or could not take the trips (broker down, topic missing, not authorised)."""


@dataclass
class ProduceStats:
    """How many events (pick-ups, on the input topic) and labels (drop-offs, on the label topic) were produced.

    Named by their topics' roles so that a command can show them without knowing what a trip is.
    """

    events: int = 0
    labels: int = 0


class _TripProducer:
    """One Kafka producer for both topics, remembering the first delivery failure."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Producer = make_producer(settings)
        serdes = topic_serdes(settings)
        self.trips = serdes.for_serde(settings.topics.trips, trip_serde())
        self.dropoffs = serdes.for_serde(settings.topics.labels, dropoff_serde())
        self.error: str | None = None

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None and self.error is None:
            self.error = str(err)

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:  # the local queue is full: let deliveries drain, then retry
                self.producer.poll(0.05)
            except KafkaException as e:
                raise ProduceError(f"cannot produce to {topic}: {e}") from None

    def pickup(self, trip: TripPickup) -> None:
        self._produce(self.settings.topics.trips, trip.trip_id.encode(), self.trips.encode(trip))

    def dropoff(self, dropoff: TripDropoff) -> None:
        self._produce(self.settings.topics.labels, dropoff.trip_id.encode(), self.dropoffs.encode(dropoff))

    def poll(self) -> None:
        self.producer.poll(0)
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise ProduceError(f"Kafka delivery failed ({self.settings.bootstrap_servers}): {self.error}")

    def flush(self, timeout: float = 60.0) -> None:
        left = self.producer.flush(timeout)
        self._check()
        if left:
            raise ProduceError(
                f"{left} messages not delivered within {timeout:.0f}s; is Kafka reachable at "
                f"{self.settings.bootstrap_servers}?"
            )


def produce_trips(
    settings: Settings,
    trips: Sequence[GeneratedTrip],
    rate: float | None = None,
    with_dropoffs: bool = False,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> int:
    """Produce every trip's pick-up (and, with ``with_dropoffs``, its drop-off right after); returns the count.

    ``rate`` is trips per second; None means as fast as possible. Returns once all are delivered.
    """
    out = _TripProducer(settings)
    stats = ProduceStats()
    started = time.monotonic()
    for i, trip in enumerate(trips):
        if rate:
            _sleep_until(started + i / rate, out)
        out.pickup(trip.pickup)
        stats.events += 1
        if with_dropoffs:
            out.dropoff(trip.dropoff)
            stats.labels += 1
        if i % 1000 == 999:
            out.poll()
            if on_progress:
                on_progress(stats)
    out.flush()
    if on_progress:
        on_progress(stats)
    return stats.events


def produce_live(
    settings: Settings,
    trips: Iterable[GeneratedTrip],
    rate: float,
    time_scale: float = DEFAULT_TIME_SCALE,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce pick-ups at ``rate`` a second and each drop-off ``duration_s / time_scale`` s after its pick-up."""
    if rate <= 0 or time_scale <= 0:
        raise ValueError("rate and time_scale must be positive")
    out = _TripProducer(settings)
    stats = ProduceStats()
    pending: list[tuple[float, int, TripDropoff]] = []  # (due, sequence, drop-off): a min-heap on due time
    started = time.monotonic()

    def emit_due(now: float) -> None:
        while pending and pending[0][0] <= now:
            out.dropoff(heapq.heappop(pending)[2])
            stats.labels += 1

    last_report = 0.0
    for i, trip in enumerate(trips):
        due = started + i / rate
        while (now := time.monotonic()) < due:
            emit_due(now)
            out.poll()
            time.sleep(min(due - now, 0.01))
        out.pickup(trip.pickup)
        stats.events += 1
        heapq.heappush(pending, (time.monotonic() + trip.dropoff.duration_s / time_scale, i, trip.dropoff))
        emit_due(time.monotonic())
        if on_progress and time.monotonic() - last_report > 0.1:
            out.poll()
            on_progress(stats)
            last_report = time.monotonic()
    emit_due(float("inf"))  # the city stops: end the trips still under way now
    out.flush()
    if on_progress:
        on_progress(stats)
    return stats


def _sleep_until(deadline: float, out: _TripProducer) -> None:
    while (now := time.monotonic()) < deadline:
        out.poll()
        time.sleep(min(deadline - now, 0.01))
