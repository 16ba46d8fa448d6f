"""Generated taxi traffic as archive messages: what ``edml record --generate`` archives without Kafka.

The taxi pipeline's example data, kept with its generator: :func:`generated_messages` gives the
messages of ``n`` generated trips as the pipeline's input topic (pick-ups) and label topic
(drop-offs) would hold them; ``edml.replay.recorder.write_archive`` writes them as an archive.
"""

from __future__ import annotations

import zlib

from edml.trainer.generator import DAY_MS, DEFAULT_START_MS, generate_trips
from edml.trainer.records import dropoff_serde, trip_serde

from edml.core.config import Topics
from edml.core.errors import OperatorError
from edml.kafka.messages import SourceMessage

# the archive roles of a pipeline's input and label topics (edml.replay.archive.EVENTS / LABELS)
EVENTS_ROLE = "events"
LABELS_ROLE = "labels"


def generated_messages(n: int, seed: int, *, partitions: int = 2, start_ms: int | None = None,
                       span_days: float = 7.0, topics: Topics | None = None) -> dict[str, list[list[SourceMessage]]]:
    """Archive role -> per partition, the messages of ``n`` generated trips (pick-ups and drop-offs).

    Keys are trip ids; a trip's pick-up and drop-off go to partition ``crc32(trip id) % partitions``;
    pick-ups are stamped with their pick-up time and drop-offs with their drop-off time, each
    partition in time order. The default window starts where the generator's default training
    window (28 days) ends: traffic the trained models have not seen.
    """
    if n < 1 or partitions < 1:
        raise OperatorError("--generate needs a positive trip count and partition count")
    topics = topics or Topics()
    start_ms = DEFAULT_START_MS + 28 * DAY_MS if start_ms is None else start_ms
    trips = generate_trips(n, seed, start_ms=start_ms, span_days=span_days)
    pickup_serde, label_serde = trip_serde(), dropoff_serde()
    pickups: list[list[SourceMessage]] = [[] for _ in range(partitions)]
    dropoffs: list[list[tuple[int, bytes, bytes]]] = [[] for _ in range(partitions)]
    for trip in trips:
        key = trip.pickup.trip_id.encode()
        p = zlib.crc32(key) % partitions
        pickups[p].append(SourceMessage(topics.trips, p, len(pickups[p]), key, pickup_serde.encode(trip.pickup),
                                        trip.pickup.pickup_time))
        dropoffs[p].append((trip.dropoff.dropoff_time, key, label_serde.encode(trip.dropoff)))
    labels = [[SourceMessage(topics.labels, p, i, key, value, ts)
               for i, (ts, key, value) in enumerate(sorted(dropoffs[p], key=lambda d: (d[0], d[1])))]
              for p in range(partitions)]
    return {EVENTS_ROLE: pickups, LABELS_ROLE: labels}
