"""The taxi pipeline's records: a trip at pick-up (its events) and at drop-off (its labels).

Their schemas are ``schemas/avro/TripPickup.avsc`` and ``TripDropoff.avsc`` (with their history),
which the built-in ``taxi`` declaration names as ``edml:TripPickup`` and ``edml:TripDropoff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from edml.schemas.serde import AvroSerde, build_serde


@dataclass(slots=True)
class TripPickup:
    """A trip at pick-up time, as produced on the trips topic."""

    trip_id: str
    pickup_time: int
    pickup_zone: int
    dropoff_zone: int
    pickup_borough: str
    passenger_count: int
    trip_distance_km: float


@dataclass(slots=True)
class TripDropoff:
    """The end of a trip with its actual duration, as produced on the dropoffs topic."""

    trip_id: str
    dropoff_time: int
    duration_s: float


@cache
def trip_serde() -> AvroSerde[TripPickup]:
    """Serde of TripPickup (the taxi pipeline's input topic), single-object encoding."""
    return build_serde("TripPickup", TripPickup)


@cache
def dropoff_serde() -> AvroSerde[TripDropoff]:
    """Serde of TripDropoff (the taxi pipeline's label topic), single-object encoding."""
    return build_serde("TripDropoff", TripDropoff)
