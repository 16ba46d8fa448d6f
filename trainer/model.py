"""The wide & deep trip-duration regressor and its SavedModel export.

* **wide**: linear weights (1-d embeddings) on two arithmetic crosses, day-of-week x hour and
  pick-up x drop-off zone, plus log distance;
* **deep**: embeddings of the two zones, hour, day of week and day of year, with passenger count,
  distance and borough, through a small MLP.

Built with ``zones=False`` it knows no place: no zone embeddings, no zone-pair cross, no borough,
and its signature takes only ``edml.trainer.kinds.DISTANCE_TIME_INPUTS`` (the taxi pipeline's fallback model).

The model predicts log(duration) (durations are skewed and heavy-tailed; errors are relative);
the exported signature returns seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from edml.trainer import features as F
from edml.trainer.kinds import DISTANCE_TIME_INPUTS, FULL_INPUTS

SIGNATURE_KEY = "serving_default"
OUTPUT_NAME = "duration_s"


@dataclass(frozen=True)
class ModelParams:
    """Sizes of the model; small on purpose (a 1024-row call should cost about a millisecond)."""

    zone_dim: int = 8
    hour_dim: int = 4
    dow_dim: int = 3
    doy_dim: int = 3
    hidden: tuple[int, ...] = (64, 32)
    wide_l2: float = 1e-4


@dataclass(frozen=True)
class Normalisation:
    """Statistics of the training data baked into the graph as constants."""

    log_distance_mean: float
    log_distance_std: float
    log_duration_mean: float

    @staticmethod
    def fit(distance_km: np.ndarray, duration_s: np.ndarray) -> Normalisation:
        """Statistics of the training rows."""
        ld = np.log1p(distance_km)
        return Normalisation(float(ld.mean()), float(ld.std() or 1.0), float(np.log(duration_s).mean()))


class WideDeep(keras.Model):
    """Raw TripPickup fields (a dict of 1-D tensors) -> predicted log(duration_s), shape [batch].

    ``zones=False``: the model reads only ``DISTANCE_TIME_INPUTS`` (see the module docstring).
    """

    def __init__(self, norm: Normalisation, params: ModelParams | None = None, zones: bool = True,
                 **kwargs: object) -> None:
        super().__init__(**kwargs)
        p = params or ModelParams()
        self.norm = norm
        self.zones = zones
        self.input_fields: tuple[str, ...] = FULL_INPUTS if zones else DISTANCE_TIME_INPUTS
        reg = keras.regularizers.L2(p.wide_l2)
        self.wide_hour_dow = keras.layers.Embedding(F.HOUR_DOW_BUCKETS, 1, embeddings_initializer="zeros")
        if zones:
            self.wide_zone_pair = keras.layers.Embedding(
                F.ZONE_PAIR_BUCKETS, 1, embeddings_initializer="zeros", embeddings_regularizer=reg
            )
        self.wide_distance = keras.layers.Dense(1, kernel_initializer="ones", use_bias=False)
        if zones:
            self.pickup_zone_emb = keras.layers.Embedding(F.ZONE_BUCKETS, p.zone_dim)
            self.dropoff_zone_emb = keras.layers.Embedding(F.ZONE_BUCKETS, p.zone_dim)
        self.hour_emb = keras.layers.Embedding(24, p.hour_dim)
        self.dow_emb = keras.layers.Embedding(7, p.dow_dim)
        # Days of the year the training data never saw keep a zero vector: no noise from them.
        self.doy_emb = keras.layers.Embedding(F.DAY_OF_YEAR_BUCKETS, p.doy_dim, embeddings_initializer="zeros")
        self.hidden = [keras.layers.Dense(units, activation="relu") for units in p.hidden]
        self.deep_out = keras.layers.Dense(1)

    def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """Predicted log(duration in seconds) for a batch of raw trips."""
        t = tf.cast(inputs["pickup_time"], tf.int64)
        hour, dow, doy = F.hour_of_day(t), F.day_of_week(t), F.day_of_year(t)
        distance = tf.maximum(tf.cast(inputs["trip_distance_km"], tf.float32), 0.0)
        log_distance = (tf.math.log1p(distance) - self.norm.log_distance_mean) / self.norm.log_distance_std
        passengers = tf.clip_by_value(tf.cast(inputs["passenger_count"], tf.float32), 0.0, 9.0) / 6.0
        log_distance_col = log_distance[:, None]
        # arithmetic crosses: convertible, unlike HashedCrossing
        wide = self.wide_hour_dow(dow * 24 + hour)
        if self.zones:
            pu, do = F.zone_index(inputs["pickup_zone"]), F.zone_index(inputs["dropoff_zone"])
            wide = wide + self.wide_zone_pair(pu * F.ZONE_BUCKETS + do)
        wide = wide + self.wide_distance(log_distance_col)
        place = [self.pickup_zone_emb(pu), self.dropoff_zone_emb(do)] if self.zones else []
        columns = [
            *place,
            self.hour_emb(hour),
            self.dow_emb(dow),
            self.doy_emb(doy),
            passengers[:, None],
            log_distance_col,
            tf.minimum(distance, 60.0)[:, None] / 10.0,
        ]
        if self.zones:
            columns.append(F.borough_one_hot(inputs["pickup_borough"]))
        deep = tf.concat(columns, axis=-1)
        for layer in self.hidden:
            deep = layer(deep)
        return tf.squeeze(wide + self.deep_out(deep), axis=-1) + self.norm.log_duration_mean


def export_saved_model(model: WideDeep, directory: Path) -> Path:
    """Write ``model`` as a SavedModel whose ``serving_default`` takes the raw TripPickup fields it reads.

    The signature's inputs are ``model.input_fields`` (every field, or distance and time only),
    each named as its field; the output is ``duration_s``. Returns the folder.
    """
    names = model.input_fields
    spec = [tf.TensorSpec([None], F.INPUT_SPECS[name], name=name) for name in names]

    def serve(*columns: tf.Tensor) -> dict[str, tf.Tensor]:
        # the signature names each argument after its TensorSpec: the field it is fed from
        return {OUTPUT_NAME: tf.exp(model(dict(zip(names, columns, strict=True)), training=False))}

    # Keras' ExportArchive tracks the model's variables without Keras' own float-typed default signature.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE_KEY, fn=serve, input_signature=spec)
    archive.write_out(str(directory), verbose=False)
    return Path(directory)
