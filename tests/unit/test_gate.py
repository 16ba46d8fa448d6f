"""The publish gate's checks on signatures, golden rows and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from edml.model_topic.artifact import load_model_folder, read_model_folder, signature_of
from edml.model_topic.gate import GateRefused, check, metric_problem, signature_problems
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec

from tests.helpers.savedmodels import GOOD, NAN, write_model_dir

GOOD_INPUTS = [
    TensorSpec("dropoff_zone", "int64", [-1]),
    TensorSpec("passenger_count", "int32", [-1]),
    TensorSpec("pickup_borough", "string", [-1]),
    TensorSpec("pickup_time", "int64", [-1]),
    TensorSpec("pickup_zone", "int64", [-1]),
    TensorSpec("trip_distance_km", "float64", [-1]),
]
OUT = [TensorSpec("duration_s", "float32", [-1])]


def _record(mae: float) -> ModelRecord:
    signature = ModelSignature(GOOD_INPUTS, OUT)
    return ModelRecord("m", "v-old", "file:///x", "0" * 64, 1, signature, 0, metrics={"mae": mae})


def test_signature_fits_the_trip_schema() -> None:
    assert signature_problems(ModelSignature(GOOD_INPUTS, OUT)) == []
    with_trip_id = ModelSignature([*GOOD_INPUTS, TensorSpec("trip_id", "string", [-1])], OUT)
    assert signature_problems(with_trip_id) == [
        "unexpected inputs ['trip_id'] (inputs must be exactly the TripPickup fields but trip_id)"
    ]
    missing = ModelSignature(GOOD_INPUTS[1:], OUT)
    assert signature_problems(missing) == ["inputs missing ['dropoff_zone']"]
    wrong = ModelSignature(
        [TensorSpec(s.name, "float32" if s.name == "pickup_zone" else s.dtype, [-1, 1] if s.name == "pickup_time"
                    else s.shape) for s in GOOD_INPUTS],
        [TensorSpec("duration_s", "int64", [-1])],
    )
    assert signature_problems(wrong) == [
        "input pickup_time has shape [-1, 1], expected [-1] (a batch of scalars)",
        "input pickup_zone is float32, expected one of ['int32', 'int64']",
        "output duration_s is int64, expected a float",
    ]
    assert signature_problems(ModelSignature(GOOD_INPUTS, OUT * 2)) == ["expected one output, found 2"]


def test_metric_tolerance_is_relative_to_the_desired_model() -> None:
    assert metric_problem({"mae": 104.9}, _record(100.0), 0.05) is None
    assert metric_problem({"mae": 50.0}, _record(100.0), 0.05) is None
    assert metric_problem({"mae": 100.0}, None, 0.05) is None
    reason = metric_problem({"mae": 106.0}, _record(100.0), 0.05)
    assert reason == "mae 106.000 is 6.0% worse than v-old's 100.000 (tolerance 5.0%; --force publishes anyway)"
    assert metric_problem({"mae": 106.0}, _record(100.0), 0.10) is None


def test_check_runs_golden_rows_and_force_only_waves_metrics_through(tmp_path: Path) -> None:
    for kind, golden, expect in [
        (GOOD, None, None),
        (NAN, None, "non-finite"),
        (GOOD, [1.0, 2.0, 3.0], "3 of 3 golden outputs differ, e.g. row 0: got 505.0000, expected 1.0000"),
    ]:
        folder = write_model_dir(tmp_path / f"{kind}-{golden is None}", kind=kind, golden_outputs=golden)
        fn = load_model_folder(folder)
        sig = signature_of(fn)
        m = read_model_folder(folder, "m", "v", signature=sig)
        args = (fn, sig, m.golden_inputs, m.golden_outputs, m.metrics)
        if expect is None:
            assert check(*args, _record(100.0), force=True).forced_reason is not None
            with pytest.raises(GateRefused, match="worse than v-old"):
                check(*args, _record(100.0))
            assert check(*args, _record(1000.0)).forced_reason is None
        else:
            with pytest.raises(GateRefused, match=expect):
                check(*args, None, force=True)
