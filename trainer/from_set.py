"""The taxi trainer's entry point for ``edml autopilot``: train on recorded trips joined with their drop-offs.

``[autopilot] trainer = "edml.trainer.from_set:train_trips"`` in the taxi declaration; the
controller passes a :class:`~edml.pipelines.autopilot.TrainingSet` whose rows are ``TripPickup``
records with the label ``duration_s`` added, and the ``[autopilot.params]`` as keywords.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edml.trainer.generator import TripColumns
from edml.trainer.train import TrainConfig, train_columns

from edml.pipelines.autopilot import TrainingSet


def trip_columns(training_set: TrainingSet) -> TripColumns:
    """The training set's rows as the trainer's columns (drop-off time = pick-up + duration)."""
    rows = training_set.rows
    pickup = np.array([int(r["pickup_time"]) for r in rows], dtype=np.int64)
    duration = np.array([float(r[training_set.label]) for r in rows], dtype=np.float64)
    return TripColumns(
        trip_id=[str(r["trip_id"]) for r in rows],
        pickup_time=pickup,
        pickup_zone=np.array([int(r["pickup_zone"]) for r in rows], dtype=np.int64),
        dropoff_zone=np.array([int(r["dropoff_zone"]) for r in rows], dtype=np.int64),
        pickup_borough=[str(r["pickup_borough"]) for r in rows],
        passenger_count=np.array([int(r["passenger_count"]) for r in rows], dtype=np.int64),
        trip_distance_km=np.array([float(r["trip_distance_km"]) for r in rows], dtype=np.float64),
        dropoff_time=pickup + (duration * 1000).astype(np.int64),
        duration_s=duration,
    )


def train_trips(training_set: TrainingSet, out_dir: Path, epochs: int = 8, seed: int = 0) -> Path:
    """Train the wide & deep trip-duration model on ``training_set`` into ``out_dir``; returns the model folder."""
    result = train_columns(trip_columns(training_set), out_dir, TrainConfig(epochs=int(epochs), seed=int(seed)),
                           data_source=f"autopilot:{training_set.pipeline}:{len(training_set)} recorded trips")
    return result.out_dir
