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


def test_slowed_phases_take_longer_than_the_same_trips_before() -> None:
    from edml.trainer.demo_story import SLOW_FROM_PHASE, SLOWDOWN, slowed_phase
    from edml.trainer.generator import generate_trips

    slowed = slowed_phase(300, SLOW_FROM_PHASE + 1)
    start = DEFAULT_START_MS + (TRAIN_DAYS + SLOW_FROM_PHASE + 1) * DAY_MS
    same_day_before = generate_trips(300, seed=100 + SLOW_FROM_PHASE + 1, start_ms=start, span_days=1)
    assert [t.pickup for t in slowed] == [t.pickup for t in same_day_before]  # same pick-ups, slower traffic
    ratios = np.array([s.dropoff.duration_s / b.dropoff.duration_s for s, b in zip(slowed, same_day_before,
                                                                                      strict=True)])
    # the moving part of every trip is 1 + SLOWDOWN times longer; its fixed part (waiting at the kerb) is not
    assert (ratios > 1).all() and 1.5 < ratios.mean() <= 1 + SLOWDOWN


def test_the_demo_autopilot_declaration_is_the_taxi_pipeline_with_its_own_autopilot_table(tmp_path: Path) -> None:
    from edml.trainer.demo_story import declare_demo_autopilot

    folder = declare_demo_autopilot(tmp_path / "pipelines")
    demo = load_pipeline("taxi", env={"EDML_PIPELINES_DIR": str(folder)})
    built_in = load_pipeline("taxi", env={"EDML_PIPELINES_DIR": str(tmp_path / "none")})
    same = {"autopilot": built_in.autopilot, "declared_in": built_in.declared_in, "text": built_in.text}
    assert dataclasses.replace(demo, **same) == built_in
    assert demo.autopilot is not None and built_in.autopilot is not None
    assert demo.autopilot.error_threshold is None  # only the drift alert triggers in the act
    assert demo.autopilot.cooldown_ms < built_in.autopilot.cooldown_ms
    assert demo.autopilot.trainer == "edml.trainer.from_set:train_trips"
