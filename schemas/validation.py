"""Decode and validate trips in batches: good trips become columns, bad ones dead letters.

Range checks run before the model so that one bad value never reaches TensorFlow (an
out-of-range zone id raises inside an embedding lookup and would fail the whole batch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from schemas.records import DeadLetter, TripPickup
from schemas.serde import AvroSerde, DecodeError, trip_serde

ZONE_IDS = range(1, 266)  # NYC TLC taxi zones 1..265 (1 = EWR)
BOROUGHS = frozenset({"Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR"})
PASSENGERS = range(1, 7)
MAX_DISTANCE_KM = 250.0  # farther than any trip inside the five boroughs and EWR
# 2000-01-01 .. 2100-01-01: anything outside is a unit mistake (seconds vs millis) or garbage
PICKUP_TIME_RANGE_MS = (946_684_800_000, 4_102_444_800_000)


@dataclass(slots=True)
class SourceMessage:
    """Where an event came from and its raw bytes (a Kafka message or a replayed one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass(slots=True)
class TripBatch:
    """The valid trips of one source batch, with their Kafka timestamps, and the dead letters."""

    trips: list[TripPickup] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trips)


def check_trip(trip: TripPickup) -> str | None:
    """The reason ``trip`` must not reach the model, or None when it is in range."""
    if not trip.trip_id:
        return "trip_id is empty"
    if trip.pickup_zone not in ZONE_IDS:
        return f"pickup_zone {trip.pickup_zone} is not a taxi zone (1..265)"
    if trip.dropoff_zone not in ZONE_IDS:
        return f"dropoff_zone {trip.dropoff_zone} is not a taxi zone (1..265)"
    if trip.passenger_count not in PASSENGERS:
        return f"passenger_count {trip.passenger_count} is out of range 1..6"
    d = trip.trip_distance_km
    if not math.isfinite(d):
        return f"trip_distance_km is {d}"
    if d < 0 or d > MAX_DISTANCE_KM:
        return f"trip_distance_km {d} is out of range 0..{MAX_DISTANCE_KM:.0f}"
    if trip.pickup_borough not in BOROUGHS:
        return f"pickup_borough {trip.pickup_borough!r} is not a borough"
    lo, hi = PICKUP_TIME_RANGE_MS
    if not lo <= trip.pickup_time <= hi:
        return f"pickup_time {trip.pickup_time} is not epoch millis between 2000 and 2100"
    return None


class TripDecoder:
    """Turns a batch of source messages into a :class:`TripBatch`."""

    def __init__(self, serde: AvroSerde[TripPickup] | None = None) -> None:
        self.serde = serde or trip_serde()

    def dead_letter(self, msg: SourceMessage, kind: str, message: str) -> DeadLetter:
        """A dead letter for ``msg`` with the reason."""
        return DeadLetter(
            source_topic=msg.topic, partition=msg.partition, offset=msg.offset, key=msg.key,
            value=msg.value, error_kind=kind, message=message, time=int(time.time() * 1000),
        )

    def decode_batch(self, messages: list[SourceMessage]) -> TripBatch:
        """Decode and range-check every message; never raises for bad data."""
        batch = TripBatch()
        decode = self.serde.decode
        for msg in messages:
            try:
                trip = decode(msg.value)
            except DecodeError as e:
                batch.dead_letters.append(self.dead_letter(msg, e.kind, e.message))
                continue
            reason = check_trip(trip)
            if reason is not None:
                batch.dead_letters.append(self.dead_letter(msg, "out-of-range", reason))
                continue
            batch.trips.append(trip)
            batch.timestamps_ms.append(msg.timestamp_ms)
        return batch
