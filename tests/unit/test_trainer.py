"""The trained model: accuracy against baselines, its SavedModel contract, its output files, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from edml.trainer.predict import predict_rows

from tests.helpers.logs import noise_in, plain_env

REPO = Path(__file__).resolve().parents[2]
EDML = [sys.executable, "-m", "edml.cli"]
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"
INPUTS = {
    "pickup_time": "int64",
    "pickup_zone": "int64",
    "dropoff_zone": "int64",
    "pickup_borough": "string",
    "passenger_count": "int64",
    "trip_distance_km": "float32",
}


def _golden(model_dir: Path) -> dict:
    return json.loads((model_dir / "golden.json").read_text())


def test_model_beats_both_baselines(trained_model_dir: Path) -> None:
    m = json.loads((trained_model_dir / "metrics.json").read_text())
    assert m["mae"] <= 0.6 * m["baseline_mean_mae"]
    assert m["mae"] < m["baseline_distance_mae"]
    assert m["rmse"] < m["baseline_distance_rmse"] < m["baseline_mean_rmse"]


def test_metrics_file_has_every_field(trained_model_dir: Path) -> None:
    m = json.loads((trained_model_dir / "metrics.json").read_text())
    for key in (
        "mae",
        "rmse",
        "baseline_mean_mae",
        "baseline_distance_mae",
        "baseline_mean_rmse",
        "baseline_distance_rmse",
    ):
        assert isinstance(m[key], float) and m[key] > 0
    assert m["n_train"] > m["n_test"] > 0 and m["seed"] == 1 and m["epochs"] >= 1
    assert 0 < m["data_window_start"] < m["data_window_end"]
    assert m["trainer_params"] and all(
        isinstance(k, str) and isinstance(v, str) for k, v in m["trainer_params"].items()
    )


def test_signature_takes_raw_trip_fields_and_returns_duration(trained_model_dir: Path) -> None:
    import tensorflow as tf

    fn = tf.saved_model.load(str(trained_model_dir / "saved_model")).signatures["serving_default"]
    specs = fn.structured_input_signature[1]
    assert {name: spec.dtype.name for name, spec in specs.items()} == INPUTS
    assert all(spec.shape.as_list() == [None] for spec in specs.values())
    outputs = fn.structured_outputs
    assert list(outputs) == ["duration_s"]
    assert outputs["duration_s"].dtype == tf.float32 and outputs["duration_s"].shape.as_list() == [None]


def test_golden_outputs_are_what_the_saved_model_returns(trained_model_dir: Path) -> None:
    golden = _golden(trained_model_dir)
    assert len(golden["inputs"]["trip_id"]) == len(golden["outputs"]) == 16
    assert set(golden["inputs"]) == {"trip_id", *INPUTS}
    pred = predict_rows(trained_model_dir / "saved_model", golden["inputs"])
    assert pred.dtype == np.float32
    np.testing.assert_allclose(pred, golden["outputs"], rtol=1e-5)
    assert (pred > 30).all() and (pred < 6 * 3600).all()


def _input_exprs(columns: dict[str, list]) -> str:
    # saved_model_cli reads each value with ast.literal_eval: plain Python lists.
    return ";".join(f"{name}={columns[name]!r}" for name in INPUTS)


def test_saved_model_cli_agrees_with_predict_rows(trained_model_dir: Path, tmp_path: Path) -> None:
    columns = {k: v for k, v in _golden(trained_model_dir)["inputs"].items() if k in INPUTS}
    proc = subprocess.run(
        [str(SAVED_MODEL_CLI), "run", "--dir", str(trained_model_dir / "saved_model"), "--tag_set", "serve",
         "--signature_def", "serving_default", "--input_exprs", _input_exprs(columns), "--outdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = np.load(tmp_path / "duration_s.npy")
    ours = predict_rows(trained_model_dir / "saved_model", columns)
    assert cli.shape == ours.shape == (16,)
    np.testing.assert_allclose(cli, ours, rtol=1e-4)


def test_model_converts_to_tflite_and_agrees(trained_model_dir: Path) -> None:
    """The arithmetic crosses and int32 calendar math keep the graph convertible (no HashedCrossing, no Flex ops)."""
    import warnings

    import tensorflow as tf

    tflite = tf.lite.TFLiteConverter.from_saved_model(str(trained_model_dir / "saved_model")).convert()
    golden = _golden(trained_model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        runner = tf.lite.Interpreter(model_content=tflite).get_signature_runner("serving_default")
    columns = {name: np.asarray(golden["inputs"][name], dtype=dtype if dtype != "string" else object)
               for name, dtype in INPUTS.items()}  # fmt: skip
    out = runner(**columns)["duration_s"]
    np.testing.assert_allclose(out, golden["outputs"], rtol=1e-4)


def test_out_of_range_values_do_not_crash_the_model(trained_model_dir: Path) -> None:
    rows = {
        "pickup_time": [0, 1_704_067_200_000, -86_400_000, 4_102_444_800_000],
        "pickup_zone": [0, 266, -1, 10**9],
        "dropoff_zone": [265, 1, 999, -(10**9)],
        "pickup_borough": ["", "Atlantis", "Manhattan", "EWR"],
        "passenger_count": [0, 6, 99, -3],
        "trip_distance_km": [0.0, 1e6, -5.0, 3.0],
    }
    pred = predict_rows(trained_model_dir / "saved_model", rows)
    assert pred.shape == (4,) and np.isfinite(pred).all()


def test_a_second_model_predicts_differently(trained_model_dir: Path, trained_model_dir_v2: Path) -> None:
    rows = _golden(trained_model_dir)["inputs"]
    v1 = predict_rows(trained_model_dir / "saved_model", rows)
    v2 = predict_rows(trained_model_dir_v2 / "saved_model", rows)
    assert np.abs(v1 - v2).max() > 1.0


def test_predictions_follow_the_city(trained_model_dir: Path) -> None:
    """Longer, rush-hour and airport trips get longer predicted durations."""
    monday = int(datetime(2024, 1, 8, tzinfo=UTC).timestamp() * 1000)
    hour = 3_600_000

    def one(**over: object) -> float:
        row = {"pickup_time": monday + 11 * hour, "pickup_zone": 161, "dropoff_zone": 236,
               "pickup_borough": "Manhattan", "passenger_count": 1, "trip_distance_km": 4.0} | over  # fmt: skip
        return float(predict_rows(trained_model_dir / "saved_model", {k: [v] for k, v in row.items()})[0])

    assert one(trip_distance_km=12.0) > 1.5 * one(trip_distance_km=3.0)
    assert one(pickup_time=monday + 17 * hour) > 1.2 * one(pickup_time=monday + 3 * hour)


def test_reference_distributions(trained_model_dir: Path) -> None:
    ref = json.loads((trained_model_dir / "reference.json").read_text())
    assert {"pickup_zone", "dropoff_zone", "pickup_borough", "passenger_count", "trip_distance_km"} <= set(ref)
    for name, dist in ref.items():
        assert sum(dist["fractions"]) == pytest.approx(1.0), name
        if dist["kind"] == "numeric":
            assert len(dist["fractions"]) == len(dist["edges"]) + 1
            assert dist["edges"] == sorted(dist["edges"])
        else:
            assert dist["kind"] == "categorical" and dist["values"][-1] == "other"
            assert len(dist["values"]) == len(dist["fractions"])
    assert len(ref["trip_distance_km"]["edges"]) == 9
    assert "Manhattan" in ref["pickup_borough"]["values"]


def test_training_curve_is_a_png(trained_model_dir: Path) -> None:
    assert (trained_model_dir / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_features_match_the_calendar() -> None:
    import tensorflow as tf
    from edml.trainer.features import day_of_week, day_of_year, hour_of_day

    start = datetime(1999, 12, 30, 22, 30)
    times = [start + timedelta(hours=7 * i + 0.25) for i in range(8_000)]  # through 2000 and 2004 (leap years)
    ms = tf.constant([int(t.replace(tzinfo=UTC).timestamp() * 1000) for t in times], tf.int64)
    assert hour_of_day(ms).numpy().tolist() == [t.hour for t in times]
    assert day_of_week(ms).numpy().tolist() == [t.weekday() for t in times]
    assert day_of_year(ms).numpy().tolist() == [t.timetuple().tm_yday - 1 for t in times]


def _edml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDML, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=plain_env())


def test_training_is_deterministic_for_a_seed(trained_model_dir: Path, tmp_path: Path) -> None:
    from edml.trainer.train import train_small

    again = train_small(tmp_path / "again", seed=1)
    np.testing.assert_allclose(_golden(again.out_dir)["outputs"], _golden(trained_model_dir)["outputs"], rtol=1e-5)


def test_edml_generate_then_train(tmp_path: Path) -> None:
    data = tmp_path / "trips.avro"
    gen = _edml("generate", "--n", "3000", "--seed", "4", "--out", str(data), cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    run = _edml("train", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1", "--max-rows", "2500",
                "--quiet", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert noise_in(run.stderr) == [], run.stderr
    assert "global mean" in run.stdout and "distance" in run.stdout
    m = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert m["n_train"] + m["n_test"] == 2500 and m["epochs"] == 1
    for name in ("saved_model/saved_model.pb", "golden.json", "reference.json", "training_curve.png"):
        assert (tmp_path / "m" / name).exists(), name


def _few_trips() -> bytes:
    import io

    import fastavro
    from edml.trainer.datafiles import _rows, example_schema
    from edml.trainer.generator import generate_columns

    buf = io.BytesIO()
    fastavro.writer(buf, example_schema(), _rows(generate_columns(5, seed=1)))
    return buf.getvalue()


@pytest.mark.parametrize(
    "content",
    [None, b"", b"\x00garbage, not an avro file", "few"],
    ids=["missing", "empty", "garbage", "too-few-trips"],
)
def test_edml_train_bad_data_file_is_one_line_exit_2(tmp_path: Path, content: bytes | str | None) -> None:
    data = tmp_path / "trips.avro"
    if content is not None:
        data.write_bytes(_few_trips() if content == "few" else content)
    run = _edml("train", "--data", str(data), "--out", str(tmp_path / "m"), cwd=tmp_path)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edml: error: ") and str(data) in lines[0], run.stderr
    assert not (tmp_path / "m").exists()
