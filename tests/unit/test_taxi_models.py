"""The taxi pipeline's airport model and its distance-and-time fallback: signatures, error, publish gate, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edml.trainer.generator import generate_columns
from edml.trainer.kinds import AIRPORT, BASIC, FULL, model_kind
from edml.trainer.metrics import mae
from edml.trainer.predict import predict_rows
from edml.trainer.train import kind_rows, model_inputs
from edml.trainer.zones import AIRPORTS

from tests.helpers.logs import noise_in, plain_env

EDML = [sys.executable, "-m", "edml.cli"]
ZONE_FIELDS = {"pickup_zone", "dropoff_zone", "pickup_borough"}
BASIC_INPUTS = {"pickup_time": "int64", "passenger_count": "int64", "trip_distance_km": "float32"}


def _signature(model_dir: Path):  # noqa: ANN202 - a TF concrete function
    import tensorflow as tf

    return tf.saved_model.load(str(model_dir / "saved_model")).signatures["serving_default"]


def test_kinds_name_their_models_and_unknown_kinds_are_refused() -> None:
    assert [model_kind(k).model_name for k in ("full", "airport", "basic")] == [
        "trip-duration", "trip-duration-airport", "trip-duration-basic"]
    assert not BASIC.zones and AIRPORT.zones and FULL.zones
    from edml.trainer.features import INPUT_SPECS

    # the kinds name the inputs without TensorFlow; the features give them their dtypes: one list
    assert FULL.inputs == tuple(INPUT_SPECS) and set(BASIC.inputs) < set(INPUT_SPECS)
    with pytest.raises(ValueError, match="no model kind 'tiny': use one of full, airport, basic"):
        model_kind("tiny")


def test_the_fallback_signature_takes_no_zone_or_borough(trained_basic_model_dir: Path) -> None:
    fn = _signature(trained_basic_model_dir)
    specs = fn.structured_input_signature[1]
    assert {name: spec.dtype.name for name, spec in specs.items()} == BASIC_INPUTS
    assert list(fn.structured_outputs) == ["duration_s"]
    golden = json.loads((trained_basic_model_dir / "golden.json").read_text())
    assert set(golden["inputs"]) == {"trip_id", *BASIC_INPUTS}
    # its drift reference describes what it reads (and the target), never a zone it cannot see
    reference = json.loads((trained_basic_model_dir / "reference.json").read_text())
    assert set(reference) == {"passenger_count", "trip_distance_km", "pickup_hour", "duration_s"}
    assert json.loads((trained_basic_model_dir / "metrics.json").read_text())["trainer_params"]["kind"] == "basic"


def test_the_fallback_trains_to_a_sane_error_and_scores_trips_with_bad_zones(trained_basic_model_dir: Path) -> None:
    m = json.loads((trained_basic_model_dir / "metrics.json").read_text())
    assert m["mae"] < m["baseline_distance_mae"] and m["mae"] <= 0.6 * m["baseline_mean_mae"]
    trips = generate_columns(400, seed=11)
    rows = model_inputs(trips)
    pred = predict_rows(trained_basic_model_dir / "saved_model", rows)
    # the same trips with zones and a borough no pipeline allows: the fallback gives the same durations
    garbage = rows | {"pickup_zone": np.full(len(trips), 999), "dropoff_zone": np.full(len(trips), -4),
                      "pickup_borough": np.full(len(trips), "Atlantis", dtype=object)}
    np.testing.assert_array_equal(predict_rows(trained_basic_model_dir / "saved_model", garbage), pred)
    assert mae(trips.duration_s, pred) < 1.25 * m["mae"]  # fresh trips: about its held-out error


def test_the_fallback_passes_the_publish_gate_for_the_taxi_pipeline(trained_basic_model_dir: Path) -> None:
    from edml.model_topic.artifact import load_model_folder, read_model_folder
    from edml.model_topic.gate import check

    from edml.core.config import Settings
    from edml.pipelines.bound import open_pipeline
    from edml.pipelines.signature import model_problems

    taxi = open_pipeline(None, Settings())
    manifest = read_model_folder(trained_basic_model_dir, BASIC.model_name, "v1")
    assert {spec.name for spec in manifest.signature.inputs}.isdisjoint(ZONE_FIELDS)
    result = check(load_model_folder(trained_basic_model_dir), manifest.signature, manifest.golden_inputs,
                   manifest.golden_outputs, manifest.metrics, None,
                   signature_problems=lambda s: model_problems(taxi, s))
    assert result.compared_with is None and result.forced_reason is None


def test_the_airport_model_learns_airport_trips_only_and_is_as_good_there(
    trained_airport_model_dir: Path, trained_model_dir: Path
) -> None:
    m = json.loads((trained_airport_model_dir / "metrics.json").read_text())
    airport_trips = kind_rows(generate_columns(30_000, seed=1), AIRPORT)
    assert m["n_train"] + m["n_test"] == len(airport_trips) and 2_000 < len(airport_trips) < 6_000
    golden = json.loads((trained_airport_model_dir / "golden.json").read_text())["inputs"]
    assert all(p in AIRPORTS or d in AIRPORTS for p, d in zip(golden["pickup_zone"], golden["dropoff_zone"],
                                                                strict=True))
    assert m["mae"] < m["baseline_distance_mae"]
    # on fresh airport trips, beside the full model (20,000 trips of every kind, seed 1)
    fresh = kind_rows(generate_columns(20_000, seed=12), AIRPORT)
    rows = model_inputs(fresh)
    airport_mae = mae(fresh.duration_s, predict_rows(trained_airport_model_dir / "saved_model", rows))
    full_mae = mae(fresh.duration_s, predict_rows(trained_model_dir / "saved_model", rows))
    assert airport_mae < 1.15 * full_mae, (airport_mae, full_mae)
    assert airport_mae < 0.3 * float(np.mean(fresh.duration_s))


def _edml(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDML, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=plain_env())


def _data_file(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "trips.avro"
    gen = _edml("generate", "--n", str(n), "--seed", "4", "--out", str(data), cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    return data


def test_edml_train_kind_basic_writes_a_fallback_model(tmp_path: Path) -> None:
    data = _data_file(tmp_path, 1500)
    run = _edml("train", "--kind", "basic", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1",
                "--quiet", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert noise_in(run.stderr) == [], run.stderr
    assert "training the basic model (trip-duration-basic" in run.stdout
    assert f"edml publish --pipeline taxi-routed --model-dir {tmp_path / 'm'} --name trip-duration-basic" in run.stdout
    specs = _signature(tmp_path / "m").structured_input_signature[1]
    assert set(specs) == set(BASIC_INPUTS)


@pytest.mark.parametrize(("args", "message"), [
    (("--kind", "huge"), "edml: error: --kind: no model kind 'huge': use one of full, airport, basic"),
    (("--kind", "airport", "--max-rows", "30"), "airport trips; training the airport model needs at least 20"),
], ids=["unknown-kind", "too-few-airport-trips"])
def test_edml_train_bad_kind_is_one_line_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    data = _data_file(tmp_path, 200)
    run = _edml("train", "--data", str(data), "--out", str(tmp_path / "m"), *args, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edml: error: ") and message in lines[0], run.stderr
    assert not (tmp_path / "m").exists()
