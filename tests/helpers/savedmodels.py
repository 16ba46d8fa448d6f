"""Tiny real SavedModels with the trip-duration signature, and hostile variants of them.

``write_model_dir`` lays out a folder like ``edml train --out DIR``: ``saved_model/``,
``metrics.json``, ``golden.json`` and ``reference.json``. The model is arithmetic
(``base + per_km * trip_distance_km + 10 * passenger_count``) so it saves in well under a
second, yet it is a real SavedModel served through ``serving_default``.
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf
from edml.trainer.features import INPUT_SPECS

# the trainer's serving signature: the TripPickup fields but trip_id, with their dtypes
TRIP_INPUTS: dict[str, tf.DType] = INPUT_SPECS

GOLDEN_INPUTS: dict[str, list] = {
    "pickup_time": [1_700_000_000_000, 1_700_000_600_000, 1_700_001_200_000],
    "pickup_zone": [161, 237, 132],
    "dropoff_zone": [236, 140, 48],
    "pickup_borough": ["Manhattan", "Manhattan", "Queens"],
    "passenger_count": [1, 2, 1],
    "trip_distance_km": [2.5, 1.2, 18.0],
}

# kinds of model this helper writes
GOOD = "good"
NAN = "nan"  # returns NaN for every row
WRONG_SIGNATURE = "wrong-signature"  # an input is missing and another has the wrong name
WRONG_DTYPE = "wrong-dtype"  # trip_distance_km declared as a string
# faults the golden rows do not show (they hold 1-2 passengers and at most 18 km)
RAISES_FAR = "raises-far"  # raises for a batch holding a trip longer than 20 km
NAN_CROWDED = "nan-crowded"  # NaN for trips of 5 or more passengers, inf for 4
FIXED_16 = "fixed-16"  # always returns the first 16 rows: fine for batches of up to 16
TWO_COLUMNS = "two-columns"  # returns [n, 2]: the publish gate refuses it


class _TripDurationModel(tf.Module):
    def __init__(self, base: float, per_km: float, kind: str) -> None:
        super().__init__()
        self.base = tf.Variable(base, dtype=tf.float32)
        self.per_km = tf.Variable(per_km, dtype=tf.float32)
        self.kind = kind

    def predict(self, passenger_count: tf.Tensor, trip_distance_km: tf.Tensor) -> dict[str, tf.Tensor]:
        duration = self.base + self.per_km * trip_distance_km + 10.0 * tf.cast(passenger_count, tf.float32)
        if self.kind == NAN:
            duration = duration * float("nan")
        if self.kind == RAISES_FAR:
            check = tf.debugging.assert_less(trip_distance_km, 20.0, message="distance out of the model's range")
            with tf.control_dependencies([check]):
                duration = tf.identity(duration)
        if self.kind == NAN_CROWDED:
            crowd = tf.cast(passenger_count, tf.float32)
            duration = tf.where(crowd >= 5.0, float("nan"), tf.where(crowd >= 4.0, float("inf"), duration))
        if self.kind == FIXED_16:
            duration = duration[:16]
        if self.kind == TWO_COLUMNS:
            duration = tf.stack([duration, duration], axis=1)
        return {"duration_s": duration}


def _signature_function(model: _TripDurationModel, kind: str) -> tf.types.experimental.ConcreteFunction:
    specs = {name: tf.TensorSpec([None], dtype, name=name) for name, dtype in TRIP_INPUTS.items()}
    if kind == WRONG_SIGNATURE:
        del specs["pickup_borough"]
        del specs["pickup_zone"]
        specs["zone"] = tf.TensorSpec([None], tf.int64, name="zone")
    if kind == WRONG_DTYPE:
        specs["trip_distance_km"] = tf.TensorSpec([None], tf.string, name="trip_distance_km")

    def serve(**inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        distance = inputs["trip_distance_km"]
        if distance.dtype == tf.string:
            distance = tf.strings.to_number(distance, tf.float32)
        return model.predict(inputs["passenger_count"], distance)

    return tf.function(serve).get_concrete_function(**specs)


def save_model(path: Path, *, base: float = 120.0, per_km: float = 150.0, kind: str = GOOD) -> Path:
    """Save a SavedModel with the trip-duration signature (or a hostile ``kind``) at ``path``."""
    model = _TripDurationModel(base, per_km, kind)
    tf.saved_model.save(model, str(path), signatures={"serving_default": _signature_function(model, kind)})
    return path


def expected_outputs(base: float, per_km: float) -> list[float]:
    """What the GOOD model returns for ``GOLDEN_INPUTS``."""
    return [
        float(tf.constant(base, tf.float32) + tf.constant(per_km, tf.float32) * tf.constant(d, tf.float32)
              + 10.0 * float(p))
        for d, p in zip(GOLDEN_INPUTS["trip_distance_km"], GOLDEN_INPUTS["passenger_count"], strict=True)
    ]


def write_model_dir(
    out: Path,
    *,
    mae: float = 180.0,
    base: float = 120.0,
    per_km: float = 150.0,
    kind: str = GOOD,
    golden_outputs: list[float] | None = None,
) -> Path:
    """A folder shaped like ``edml train --out``: saved_model/, metrics.json, golden.json, reference.json."""
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "saved_model", base=base, per_km=per_km, kind=kind)
    metrics = {
        "mae": mae,
        "rmse": mae * 1.4,
        "baseline_mean_mae": 420.0,
        "baseline_distance_mae": 260.0,
        "rows_train": 1000,
        "data_window_start": 1_699_000_000_000,
        "data_window_end": 1_700_000_000_000,
        "trainer_params": {"epochs": "1", "batch_size": "256"},
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    outputs = golden_outputs if golden_outputs is not None else expected_outputs(base, per_km)
    (out / "golden.json").write_text(json.dumps({"inputs": GOLDEN_INPUTS, "outputs": outputs}))
    reference = {
        "trip_distance_km": {"kind": "numeric", "edges": [0.0, 2.0, 5.0, 50.0], "fractions": [0.4, 0.4, 0.2]},
        "pickup_borough": {"kind": "categorical", "fractions": {"Manhattan": 0.8, "Queens": 0.2}},
    }
    (out / "reference.json").write_text(json.dumps(reference))
    return out
