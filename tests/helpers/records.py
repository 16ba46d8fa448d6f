"""edml's records and the taxi pipeline's, by schema name, for tests that walk every schema."""

from __future__ import annotations

from typing import Any

from edml.schemas import records
from edml.schemas.serde import AvroSerde, serde_for
from edml.trainer import records as taxi_records


def record_type(name: str) -> Any:
    """The dataclass of the schema named ``name`` (edml's own, or the taxi's); None when it has none."""
    return getattr(records, name, None) or getattr(taxi_records, name, None)


def serde_of(name: str) -> AvroSerde[Any]:
    """The serde of the schema named ``name`` (edml's own, or the taxi's)."""
    taxi = {"TripPickup": taxi_records.trip_serde, "TripDropoff": taxi_records.dropoff_serde}
    return taxi[name]() if name in taxi else serde_for(name)
