"""The taxi pipeline's trip-duration models: which inputs each takes and which trips it learns from.

* ``full`` (``trip-duration``): the wide & deep model on every TripPickup field, trained on every trip;
  the ``taxi`` pipeline's model and the ``taxi-routed`` pipeline's default route;
* ``airport`` (``trip-duration-airport``): the same model trained only on airport trips (either end
  at EWR, JFK or LGA: longer, partly on highways, with terminal time): the ``taxi-routed`` route for them;
* ``basic`` (``trip-duration-basic``): distance and time only, no zone and no borough in its
  signature: the fallback for trips whose zones are unknown or out of range.

Every kind writes the same outputs (``saved_model/``, ``metrics.json``, ``golden.json``,
``reference.json``) through :func:`edml.trainer.train.train_columns`, and predicts ``duration_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from edml.trainer.generator import TripColumns
from edml.trainer.zones import airport_trips

FULL_INPUTS = ("pickup_time", "pickup_zone", "dropoff_zone", "pickup_borough", "passenger_count", "trip_distance_km")
# what a model that knows no place reads: distance and time (and the passengers), no zone, no borough
DISTANCE_TIME_INPUTS = ("pickup_time", "passenger_count", "trip_distance_km")


@dataclass(frozen=True)
class ModelKind:
    """One of the taxi pipeline's models: its default name on the model topic, its inputs, its trips."""

    name: str  # what `edml train --kind` says
    model_name: str  # its name on the model topic (what `edml publish --name` gets)
    inputs: tuple[str, ...]  # the signature's inputs, each a TripPickup field
    trips: str  # which trips it trains on, in words
    airport_only: bool = False

    @property
    def zones(self) -> bool:
        """Whether the model reads the zones and the borough."""
        return "pickup_zone" in self.inputs

    def rows(self, columns: TripColumns) -> np.ndarray:
        """Indices of the trips of ``columns`` this model trains on."""
        if self.airport_only:
            return np.flatnonzero(airport_trips(columns.pickup_zone, columns.dropoff_zone))
        return np.arange(len(columns))


FULL = ModelKind("full", "trip-duration", FULL_INPUTS, "every trip")
AIRPORT = ModelKind("airport", "trip-duration-airport", FULL_INPUTS, "airport trips (either end at EWR, JFK or LGA)",
                    airport_only=True)
BASIC = ModelKind("basic", "trip-duration-basic", DISTANCE_TIME_INPUTS, "every trip, without zones or borough")
KINDS = {kind.name: kind for kind in (FULL, AIRPORT, BASIC)}


def model_kind(name: str) -> ModelKind:
    """The kind called ``name``; ValueError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"no model kind {name!r}: use one of {', '.join(KINDS)}") from None
