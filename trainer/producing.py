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

Keys are the trip id as UTF-8 bytes; values in the settings' wire format; Kafka timestamps are the
produce time (the producer's default). The pacing is :mod:`edml.trainer.paced`'s, shared with every pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from edml.schemas.wire import topic_serdes
from edml.trainer.generator import GeneratedTrip
from edml.trainer.paced import Pair, PairProducer, ProduceError, ProduceStats, produce_paced, produce_pairs
from edml.trainer.records import dropoff_serde, trip_serde

from edml.core.config import Settings

DEFAULT_TIME_SCALE = 60.0

__all__ = ["DEFAULT_TIME_SCALE", "ProduceError", "ProduceStats", "produce_live", "produce_trips"]


def _pairs(settings: Settings, trips: Iterable[GeneratedTrip]) -> Iterator[Pair]:
    serdes = topic_serdes(settings)
    pickups = serdes.for_serde(settings.topics.trips, trip_serde())
    dropoffs = serdes.for_serde(settings.topics.labels, dropoff_serde())
    for trip in trips:
        yield Pair(trip.pickup.trip_id.encode(), pickups.encode(trip.pickup), dropoffs.encode(trip.dropoff),
                   trip.dropoff.duration_s)


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
    return produce_pairs(PairProducer(settings), _pairs(settings, trips), rate, with_dropoffs, on_progress).events


def produce_live(
    settings: Settings,
    trips: Iterable[GeneratedTrip],
    rate: float,
    time_scale: float = DEFAULT_TIME_SCALE,
    on_progress: Callable[[ProduceStats], None] | None = None,
) -> ProduceStats:
    """Produce pick-ups at ``rate`` a second and each drop-off ``duration_s / time_scale`` s after its pick-up."""
    return produce_paced(PairProducer(settings), _pairs(settings, trips), rate, time_scale, on_progress)
