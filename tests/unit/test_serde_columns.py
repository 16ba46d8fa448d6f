"""Column-wise encoding writes exactly the bytes of record-by-record encoding."""

from __future__ import annotations

import math

import numpy as np
from edml.schemas.records import Prediction
from edml.schemas.serde import prediction_serde
from edml.trainer.records import TripPickup, trip_serde
from hypothesis import given, settings
from hypothesis import strategies as st

longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
doubles = st.floats(allow_nan=True, allow_infinity=True)
texts = st.text(max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(texts, doubles, longs, longs, doubles), min_size=1, max_size=40), texts, texts, texts)
def test_prediction_columns_match_record_encoding(rows, name, version, role) -> None:
    serde = prediction_serde()
    expected = [
        serde.encode(Prediction(trip_id=t, predicted_duration_s=p, model_name=name, model_version=version,
                                event_time=e, scored_at=s, latency_ms=lat, role=role))
        for t, p, e, s, lat in rows
    ]
    columns = {
        "trip_id": [r[0] for r in rows], "predicted_duration_s": np.array([r[1] for r in rows]),
        "model_name": name, "model_version": version, "event_time": np.array([r[2] for r in rows], dtype=np.int64),
        "scored_at": [r[3] for r in rows], "latency_ms": [r[4] for r in rows], "role": role,
    }
    assert serde.encode_columns(columns, len(rows)) == expected


def test_shared_values_and_decoding_back() -> None:
    serde = prediction_serde()
    encoded = serde.encode_columns({
        "trip_id": ["a", "ü" * 70, ""], "predicted_duration_s": np.array([1.5, -0.0, math.inf]),
        "model_name": "trip-duration", "model_version": "v1", "event_time": np.array([0, -1, 2**40]),
        "scored_at": 1_700_000_000_000, "latency_ms": np.zeros(3), "role": "champion",
    }, 3)
    decoded = [serde.decode(b) for b in encoded]
    assert [d.trip_id for d in decoded] == ["a", "ü" * 70, ""]
    assert [d.event_time for d in decoded] == [0, -1, 2**40]
    assert {d.scored_at for d in decoded} == {1_700_000_000_000}
    assert serde.encode_columns({}, 0) == []


def test_other_flat_schema() -> None:
    serde = trip_serde()
    trips = [TripPickup("t1", 1_700_000_000_000, 1, 265, "Queens", 6, 12.5),
             TripPickup("t2", 946_684_800_000, 132, 7, "EWR", 1, 0.0)]
    columns = {f: [getattr(t, f) for t in trips] for f in ("trip_id", "pickup_time", "pickup_zone", "dropoff_zone",
                                                            "pickup_borough", "passenger_count", "trip_distance_km")}
    assert serde.encode_columns(columns, 2) == [serde.encode(t) for t in trips]
