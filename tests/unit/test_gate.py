"""The publish gate's checks on signatures, golden rows and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from edml.model_topic.artifact import load_model_folder, read_model_folder, signature_of
from edml.model_topic.gate import GateRefused, check, metric_problem
from edml.schemas.records import ModelRecord, ModelSignature, TensorSpec

from edml.core.config import Settings
from edml.pipelines.bound import open_pipeline
from edml.pipelines.signature import model_problems
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


def _taxi_problems(signature: ModelSignature) -> list[str]:
    return model_problems(open_pipeline(None, Settings()), signature)


def test_signature_is_checked_against_the_pipeline() -> None:
    assert _taxi_problems(ModelSignature(GOOD_INPUTS, OUT)) == []
    # the taxi pipeline feeds any of its fields, the key too, under the field's name or a mapped one
    assert _taxi_problems(ModelSignature([*GOOD_INPUTS, TensorSpec("trip_id", "string", [-1])], OUT)) == []
    unknown = ModelSignature([*GOOD_INPUTS, TensorSpec("weather", "float32", [-1])], OUT)
    assert _taxi_problems(unknown) == [
        "model input weather is fed by no field (the input schema has no field weather; map one in [inputs])"]
    wrong = ModelSignature(
        [TensorSpec(s.name, "bool" if s.name == "pickup_zone" else s.dtype, [-1, 1] if s.name == "pickup_time"
                    else s.shape) for s in GOOD_INPUTS],
        [TensorSpec("duration_s", "float32", [-1, 40])],
    )
    problems = _taxi_problems(wrong)
    assert "model input pickup_time has shape [-1, 1], expected [-1] (one value per record)" in problems
    assert any(p.startswith("model input pickup_zone is bool, which field pickup_zone (int) cannot feed")
               for p in problems)
    assert any("model output duration_s has shape [-1, 40]" in p for p in problems)
    with pytest.raises(GateRefused, match="the pipeline cannot feed this model: model input weather"):
        check(None, unknown, {}, [], {"mae": 1.0}, None, signature_problems=_taxi_problems)


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
        (GOOD, [1.0, 2.0, 3.0], "3 of 3 golden rows differ on duration_s, e.g. row 0: got 505.0, expected 1.0"),
    ]:
        folder = write_model_dir(tmp_path / f"{kind}-{golden is None}", kind=kind, golden_outputs=golden)
        fn = load_model_folder(folder)
        sig = signature_of(fn)
        m = read_model_folder(folder, "m", "v", signature=sig)
        args = (fn, sig, m.golden_inputs, m.golden_outputs, m.metrics)
        fits = _taxi_problems
        if expect is None:
            assert check(*args, _record(100.0), signature_problems=fits, force=True).forced_reason is not None
            with pytest.raises(GateRefused, match="worse than v-old"):
                check(*args, _record(100.0), signature_problems=fits)
            assert check(*args, _record(1000.0), signature_problems=fits).forced_reason is None
        else:
            with pytest.raises(GateRefused, match=expect):
                check(*args, None, signature_problems=fits, force=True)
