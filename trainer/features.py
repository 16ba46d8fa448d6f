"""Feature engineering, as TensorFlow ops that live inside the model.

Everything here runs in the SavedModel, on the raw TripPickup fields: one definition for
training and serving (no skew), and only plain arithmetic, comparisons and lookups, so the
graph converts to TFLite and ONNX (no hash tables, no ``HashedCrossing``).
"""

from __future__ import annotations

import tensorflow as tf
from edml.trainer.zones import BOROUGHS, N_ZONES

# Raw model inputs: the TripPickup fields except trip_id, with their serving dtypes.
INPUT_SPECS: dict[str, tf.DType] = {
    "pickup_time": tf.int64,
    "pickup_zone": tf.int64,
    "dropoff_zone": tf.int64,
    "pickup_borough": tf.string,
    "passenger_count": tf.int64,
    "trip_distance_km": tf.float32,
}
ZONE_BUCKETS = N_ZONES + 1  # 0 holds every out-of-range id
HOUR_DOW_BUCKETS = 24 * 7
ZONE_PAIR_BUCKETS = ZONE_BUCKETS * ZONE_BUCKETS
DAY_OF_YEAR_BUCKETS = 366
BOROUGH_BUCKETS = len(BOROUGHS) + 1  # the last one: any other string

_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000


def zone_index(zone: tf.Tensor) -> tf.Tensor:
    """Zone id as an int32 embedding index; ids outside 1..265 map to bucket 0 instead of failing."""
    zone = tf.cast(zone, tf.int64)
    valid = tf.logical_and(zone >= 1, zone <= N_ZONES)
    return tf.cast(tf.where(valid, zone, tf.zeros_like(zone)), tf.int32)


# TFLite has no int64 FloorDiv, so the calendar arithmetic runs on int32: the time of day is an
# int64 FloorMod (supported) that fits int32, and the day number is exact through float32 because
# (ms - ms_of_day) is a whole number of days and float32's error (~1e5 ms) is far below half a day.
_MAX_DAY = 1_000_000  # about year 4700; garbage times are clipped into 1970..4700 instead of overflowing


def _ms_of_day(pickup_time_ms: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.math.floormod(tf.cast(pickup_time_ms, tf.int64), _MS_PER_DAY), tf.int32)


def _days_since_epoch(pickup_time_ms: tf.Tensor) -> tf.Tensor:
    ms = tf.cast(pickup_time_ms, tf.int64)
    whole_days_ms = ms - tf.math.floormod(ms, _MS_PER_DAY)
    days = tf.round(tf.cast(whole_days_ms, tf.float32) / float(_MS_PER_DAY))
    return tf.cast(tf.clip_by_value(days, 0.0, float(_MAX_DAY)), tf.int32)


def hour_of_day(pickup_time_ms: tf.Tensor) -> tf.Tensor:
    """Hour 0..23 (int32) of an epoch-ms wall-clock time."""
    return tf.math.floordiv(_ms_of_day(pickup_time_ms), _MS_PER_HOUR)


def day_of_week(pickup_time_ms: tf.Tensor) -> tf.Tensor:
    """Day of week 0..6 (int32), Monday = 0 (1970-01-01 was a Thursday); times before 1970 count as 1970-01-01."""
    return tf.math.floormod(_days_since_epoch(pickup_time_ms) + 3, 7)


def day_of_year(pickup_time_ms: tf.Tensor) -> tf.Tensor:
    """Day of year 0..365 (int32, 0 = 1 January), by civil-calendar integer arithmetic (H. Hinnant's days->civil)."""
    z = _days_since_epoch(pickup_time_ms) + 719_468
    era = tf.math.floordiv(z, 146_097)
    doe = z - era * 146_097
    yoe = tf.math.floordiv(
        doe - tf.math.floordiv(doe, 1460) + tf.math.floordiv(doe, 36_524) - tf.math.floordiv(doe, 146_096), 365
    )
    day_from_march = doe - (365 * yoe + tf.math.floordiv(yoe, 4) - tf.math.floordiv(yoe, 100))  # 0 = 1 March
    year = yoe + era * 400  # the year that holds this March..February span's March
    leap = tf.logical_or(
        tf.logical_and(tf.math.floormod(year, 4) == 0, tf.math.floormod(year, 100) != 0),
        tf.math.floormod(year, 400) == 0,
    )
    jan_feb = day_from_march >= 306  # January and February belong to the next calendar year
    return tf.where(jan_feb, day_from_march - 306, day_from_march + 59 + tf.cast(leap, tf.int32))


def borough_one_hot(borough: tf.Tensor) -> tf.Tensor:
    """One-hot of the pick-up borough over BOROUGHS plus "other", by string equality (no lookup table)."""
    known = tf.stack([tf.equal(borough, name) for name in BOROUGHS], axis=-1)
    other = tf.logical_not(tf.reduce_any(known, axis=-1, keepdims=True))
    return tf.cast(tf.concat([known, other], axis=-1), tf.float32)
