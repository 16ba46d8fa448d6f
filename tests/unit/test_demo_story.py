"""The taxi part of ``edml demo``: the trips it streams and the malformed events it shows dead-lettered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from edml.schemas.serde import DecodeError
from edml.trainer.demo_story import TRAIN_DAYS, actual_durations, demo_phase, malformed_trips, trip_ids
from edml.trainer.generator import DAY_MS, DEFAULT_START_MS
from edml.trainer.records import trip_serde

from edml.pipelines.constraints import check_columns
from edml.pipelines.declaration import load_pipeline


def test_each_phase_is_one_day_after_the_training_days_and_new_trips() -> None:
    phase1, phase2 = demo_phase(200, 1), demo_phase(200, 2)
    for phase, trips in ((1, phase1), (2, phase2)):
        start = DEFAULT_START_MS + (TRAIN_DAYS + phase) * DAY_MS
        assert all(start <= t.pickup.pickup_time < start + DAY_MS for t in trips)
    assert not trip_ids(phase1) & trip_ids(phase2)
    assert demo_phase(200, 1) == phase1  # seeded: every run streams the same story
    actual = actual_durations(phase1 + phase2)
    assert set(actual) == trip_ids(phase1) | trip_ids(phase2)
    assert all(actual[t.pickup.trip_id] == t.dropoff.duration_s > 0 for t in phase1)


def test_the_malformed_events_are_what_the_taxi_pipeline_refuses() -> None:
    serde = trip_serde()
    bad = malformed_trips(serde)
    with pytest.raises(DecodeError):
        serde.decode(bad[b"bad-bytes"])
    trips = [serde.decode(bad[b"bad-zone"]), serde.decode(bad[b"bad-distance"])]
    assert [t.trip_id for t in trips] == ["bad-zone", "bad-distance"]

    taxi = load_pipeline("taxi", Path("/nonexistent/edml.toml"), env={"EDML_PIPELINES_DIR": "/nonexistent"})
    rows = [dataclasses.asdict(t) for t in trips]
    columns = {name: np.array([r[name] for r in rows], dtype=object if isinstance(rows[0][name], str) else None)
               for name in rows[0]}
    found = check_columns(columns, {}, taxi.constraints, len(rows))
    assert found.ok.tolist() == [False, False]
    assert found.reasons[0] == "pickup_zone 9999 is out of range 1..265"
    assert found.reasons[1].startswith("trip_distance_km -3")
