"""Pipeline declarations: the taxi pipeline as one declaration, a sensor pipeline edml has never seen,
constraints over decoded columns, the prediction schema from a real SavedModel's signature, and
bad declarations stopped with one line naming the pipeline and the field."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
from edml.model_topic.artifact import read_signature
from edml.schemas.columnar import RecordCodec
from edml.schemas.records import ModelSignature, TensorSpec
from edml.schemas.serde import parse_writer_schema, schema_fingerprint, serde_for
from edml.trainer.records import trip_serde

from edml.pipelines.constraints import Constraint, ReferenceProblem, check_columns, resolve
from edml.pipelines.declaration import (
    PipelineError,
    check_declaration,
    declared_names,
    load_pipeline,
    load_schema,
)
from edml.pipelines.predictions import prediction_schema
from edml.pipelines.signature import check_signature, signature_problems

# --- the sensor pipeline: a record type edml has never seen --------------------------------------

SENSOR_SCHEMA = {
    "type": "record", "name": "SensorReading", "namespace": "test.sensors",
    "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "read_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "temperature", "type": "float"},
        {"name": "pulses", "type": "int"},
        {"name": "site", "type": {"type": "enum", "name": "Site", "symbols": ["north", "south", "lab"]}},
        {"name": "humidity", "type": ["null", "double"], "default": None},
    ],
}
SENSOR_TOML = """
description = "sensor readings -> anomaly score and alarm"

[input]
topic = "sensor-readings"
schema = "reading.avsc"
key = "sensor_id"
event_time = "read_at"

[model]
name = "sensor-anomaly"

[inputs]
site_name = "site"          # the model calls it site_name

[constraints]
sensor_id = { max_length = 16 }
temperature = { range = [-40, 85] }
pulses = "infer"
site = { allowed = ["north", "south"] }
humidity = { required = true, range = [0, 1] }

[labels]
topic = "sensor-faults"
schema = "fault.avsc"
key = "sensor_id"
field = "faulty"
task = "binary"
"""
FAULT_SCHEMA = {"type": "record", "name": "Fault", "fields": [
    {"name": "sensor_id", "type": "string"}, {"name": "faulty", "type": "boolean"}]}


@pytest.fixture
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pipelines folder holding the sensor declaration and its schemas; no edml.toml."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    (folder / "sensors.toml").write_text(SENSOR_TOML)
    (folder / "reading.avsc").write_text(json.dumps(SENSOR_SCHEMA))
    (folder / "fault.avsc").write_text(json.dumps(FAULT_SCHEMA))
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(folder))
    monkeypatch.setenv("EDML_CONFIG", str(tmp_path / "edml.toml"))
    return folder


def _save_sensor_model(path: Path) -> Path:
    """A real SavedModel over four sensor inputs with two outputs: an anomaly score and an alarm flag."""
    import tensorflow as tf

    class Anomaly(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="temperature"),
                                      tf.TensorSpec([None], tf.int64, name="pulses"),
                                      tf.TensorSpec([None], tf.string, name="site_name"),
                                      tf.TensorSpec([None], tf.float64, name="humidity")])
        def serve(self, temperature: Any, pulses: Any, site_name: Any, humidity: Any) -> dict[str, Any]:
            score = tf.abs(temperature - 20.0) / 10.0 + tf.cast(pulses, tf.float32) / 100.0 + tf.cast(humidity,
                                                                                                    tf.float32)
            score += tf.cast(tf.equal(site_name, "lab"), tf.float32)
            return {"anomaly": score, "alarm": tf.cast(score > 2.0, tf.int64)}

    module = Anomaly()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


@pytest.fixture(scope="module")
def sensor_signature(tmp_path_factory: pytest.TempPathFactory) -> ModelSignature:
    return read_signature(_save_sensor_model(tmp_path_factory.mktemp("sensor-model") / "saved_model"))


def test_sensor_declaration_loads_and_checks(declared: Path) -> None:
    pipeline = load_pipeline("sensors")
    assert pipeline.model == "sensor-anomaly" and pipeline.input.topic == "sensor-readings"
    assert pipeline.field_for("site_name") == "site" and pipeline.field_for("pulses") == "pulses"
    assert pipeline.labels is not None and pipeline.labels.task == "binary"
    fields = check_declaration(pipeline, load_schema(pipeline, pipeline.input.schema),
                               load_schema(pipeline, pipeline.labels.schema))
    assert [f.describe() for f in fields.values()] == ["string", "long", "float", "int", "enum{north,south,lab}",
                                                      "double?"]
    assert "sensors" in declared_names() and "taxi" in declared_names()


def test_sensor_predictions_carry_both_outputs_of_a_real_savedmodel(declared: Path,
                                                                    sensor_signature: ModelSignature) -> None:
    pipeline = load_pipeline("sensors")
    fields = check_declaration(pipeline, SENSOR_SCHEMA)
    check_signature(pipeline, fields, sensor_signature)
    schema = prediction_schema(pipeline, fields["sensor_id"], sensor_signature)
    assert schema["name"] == "SensorsPrediction" and schema["namespace"] == "dev.edml.pipelines"
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert [f["name"] for f in schema["fields"]] == ["sensor_id", "alarm", "anomaly", "model_name", "model_version",
                                                    "event_time", "scored_at", "latency_ms", "role"]
    assert (types["alarm"], types["anomaly"]) == ("long", "double")
    # the generated schema writes predictions column-wise exactly as fastavro writes them
    codec = RecordCodec.from_schema(schema)
    columns = {"sensor_id": ["s-1", "s-2"], "alarm": np.array([0, 1]), "anomaly": np.array([0.25, 3.5]),
               "model_name": "sensor-anomaly", "model_version": "v1", "event_time": np.array([1, 2]),
               "scored_at": 3, "latency_ms": np.array([0.5, 0.7]), "role": "champion"}
    for i, body in enumerate(codec.write(columns, 2)):
        record = fastavro.schemaless_reader(io.BytesIO(body), parse_writer_schema(schema), None)
        assert record["alarm"] == i and record["anomaly"] == [0.25, 3.5][i] and record["sensor_id"] == f"s-{i + 1}"


def test_a_model_the_pipeline_cannot_feed_is_named_by_field(declared: Path, sensor_signature: ModelSignature) -> None:
    pipeline = load_pipeline("sensors")
    fields = check_declaration(pipeline, SENSOR_SCHEMA)
    assert signature_problems(pipeline, fields, sensor_signature) == []
    bad = dataclasses.replace(sensor_signature, inputs=[
        TensorSpec("temperature", "string", [-1]), TensorSpec("wind", "float32", [-1]),
        TensorSpec("pulses", "int64", [-1, 3]), TensorSpec("site_name", "string", [-1])])
    problems = signature_problems(pipeline, fields, bad)
    assert any(p.startswith("model input temperature is string, which field temperature (float)") for p in problems)
    assert any(p.startswith("model input wind is fed by no field") for p in problems)
    assert any(p.startswith("model input pulses has shape [-1, 3]") for p in problems)
    with pytest.raises(PipelineError) as e:
        check_signature(pipeline, fields, bad)
    assert str(e.value).startswith("pipeline sensors (") and "\n" not in str(e.value)
    # a nullable field feeding a model input must be required
    optional = dataclasses.replace(pipeline, constraints=tuple(
        dataclasses.replace(c, required=False) for c in pipeline.constraints))
    assert signature_problems(optional, fields, sensor_signature) == [
        "field humidity may be null but model input humidity cannot take null: declare humidity = "
        "{ required = true } in [constraints]"]


def _sensor_payloads(rows: list[dict[str, Any]]) -> list[bytes]:
    schema = parse_writer_schema(SENSOR_SCHEMA)
    out = []
    for r in rows:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, r)
        out.append(buf.getvalue())
    return out


def test_constraint_violations_and_inferred_ranges_name_the_field(declared: Path) -> None:
    pipeline = load_pipeline("sensors")
    fields = check_declaration(pipeline, SENSOR_SCHEMA)
    good = {"sensor_id": "s-1", "read_at": 1, "temperature": 21.5, "pulses": 40, "site": "north", "humidity": 0.5}
    rows = [good,
            {**good, "temperature": 90.0},
            {**good, "site": "lab"},
            {**good, "humidity": None},
            {**good, "pulses": 131},  # trained on 10..110: with a 10% margin up to 120
            {**good, "sensor_id": "x" * 17},
            {**good, "temperature": float("nan")},
            {**good, "pulses": 0}]  # 10 - 10 = 0 is inside the widened range
    decoded = RecordCodec.from_schema(SENSOR_SCHEMA).read(_sensor_payloads(rows))
    reference = {"pulses": {"kind": "numeric", "min": 10, "max": 110, "edges": [50.0], "fractions": [0.5, 0.5]}}
    constraints = resolve(pipeline.constraints, fields, reference)
    assert next(c for c in constraints if c.field == "pulses").range == (0, 120)
    found = check_columns(decoded.columns, decoded.nulls, constraints, len(decoded))
    assert found.ok.tolist() == [True, False, False, False, False, False, False, True]
    assert found.reasons == {
        1: "temperature 90.0 is out of range -40..85",
        2: "site 'lab' is not one of the allowed values",
        3: "humidity is required but null",
        4: "pulses 131 is out of range 0..120",
        5: "sensor_id has length 17, expected 0..16",
        6: "temperature nan is out of range -40..85",
    }


def test_inference_needs_what_the_reference_holds() -> None:
    fields = {f["name"]: f for f in SENSOR_SCHEMA["fields"]}
    specs = {s.name: s for s in RecordCodec.from_schema(SENSOR_SCHEMA).fields}
    assert fields
    with pytest.raises(ReferenceProblem, match="^field pulses: .* no numeric min and max"):
        resolve([Constraint("pulses", infer=True)], specs, {"pulses": {"kind": "numeric", "edges": [1.0]}})
    with pytest.raises(ReferenceProblem, match="^field site: .*most frequent categories"):
        resolve([Constraint("site", infer=True)], specs,
                {"site": {"kind": "categorical", "values": ["north", "other"], "fractions": [0.9, 0.1]}})
    [site] = resolve([Constraint("site", infer=True)], specs,
                     {"site": {"kind": "categorical", "fractions": {"north": 0.7, "south": 0.3}}})
    assert site.allowed == ("north", "south") and not site.infer
    [temp] = resolve([Constraint("temperature", infer=True, margin=0.5)], specs,
                     {"temperature": {"kind": "numeric", "min": 0.0, "max": 10.0}})
    assert temp.range == (-5.0, 15.0)


# --- bad declarations: one line naming the pipeline and the field ------------------------------


@pytest.mark.parametrize(("change", "says"), [
    (("sensor_id = { max_length = 16 }", "serial = { max_length = 16 }"),
     "a constraint on field serial, which the input schema does not have"),
    (("temperature = { range = [-40, 85] }", "temperature = { max_length = 3 }"),
     "field temperature is float: a length bound needs a string or bytes"),
    (("sensor_id = { max_length = 16 }", "sensor_id = { range = [0, 16] }"),
     "field sensor_id is string: a range needs a number"),
    (('site = { allowed = ["north", "south"] }', 'site = { allowed = ["north", "east"] }'),
     "field site: allowed values ['east'] are not symbols of its enum"),
    (('key = "sensor_id"', 'key = "serial"'), "[input] key field serial is not in the input schema"),
    (('event_time = "read_at"', 'event_time = "temperature"'), "[input] event_time field temperature is float"),
    (('site_name = "site"', 'site_name = "place"'), "[inputs] site_name = 'place': field place is not in the input"),
    (('field = "faulty"', 'field = "sensor_id"'), "[labels] field sensor_id is string"),
    (('task = "binary"', 'task = "ranking"'), "[labels] task 'ranking' is not one of"),
    (('topic = "sensor-readings"', 'topic = "sensor-readings"\ncolour = "red"'),
     "[input] has unknown key(s) ['colour']"),
    (('schema = "reading.avsc"', 'schema = "missing.avsc"'), "schema file"),
    (("humidity = { required = true, range = [0, 1] }", "humidity = { needed = true }"),
     "constraint on humidity: unknown key(s) ['needed']"),
])
def test_bad_declarations_stop_with_one_line(declared: Path, change: tuple[str, str], says: str) -> None:
    (declared / "sensors.toml").write_text(SENSOR_TOML.replace(*change, 1))
    with pytest.raises(PipelineError) as e:
        pipeline = load_pipeline("sensors")
        assert pipeline.labels is not None
        check_declaration(pipeline, load_schema(pipeline, pipeline.input.schema),
                          load_schema(pipeline, pipeline.labels.schema))
    message = str(e.value)
    assert message.startswith("pipeline sensors (") and "\n" not in message
    assert says in message, message


def test_declared_in_edml_toml_or_the_folder_not_both(declared: Path, tmp_path: Path) -> None:
    config = tmp_path / "edml.toml"
    table = SENSOR_TOML.replace("\n[", "\n[pipelines.plant.").replace('"reading.avsc"', '"pipelines/reading.avsc"')
    table = table.replace('"fault.avsc"', '"pipelines/fault.avsc"')
    config.write_text('bootstrap_servers = "127.0.0.1:1"\n[pipelines.plant]\n' + table)
    plant = load_pipeline("plant")
    assert plant.declared_in.endswith("[pipelines.plant]") and plant.field_for("site_name") == "site"
    check_declaration(plant, load_schema(plant, plant.input.schema))
    from edml.core.config import load_settings

    assert load_settings(config, env={}).bootstrap_servers == "127.0.0.1:1"  # settings ignore the pipelines
    config.write_text(config.read_text().replace("[pipelines.plant", "[pipelines.sensors"))
    with pytest.raises(PipelineError, match="pipeline sensors is declared twice"):
        load_pipeline("sensors")
    with pytest.raises(PipelineError, match="no pipeline 'nowhere'"):
        load_pipeline("nowhere")


# --- the taxi pipeline: today's hard-coded checks as one declaration -----------------------------

TRIP_SCHEMA = trip_serde().schema_json


@pytest.fixture
def taxi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("EDML_CONFIG", str(tmp_path / "edml.toml"))
    return load_pipeline()


def test_taxi_is_the_default_pipeline(taxi: Any) -> None:
    assert taxi.name == "taxi" and taxi.model == "trip-duration" and taxi.input.topic == "trips"
    assert taxi.labels is not None
    check_declaration(taxi, load_schema(taxi, taxi.input.schema), load_schema(taxi, taxi.labels.schema))


def test_taxi_signature_check_matches_the_gate(taxi: Any) -> None:
    fields = check_declaration(taxi, TRIP_SCHEMA)
    trip_inputs = {"pickup_time": "int64", "pickup_zone": "int64", "dropoff_zone": "int64",
                   "pickup_borough": "string", "passenger_count": "int64", "trip_distance_km": "float32"}
    good = ModelSignature(inputs=[TensorSpec(k, v, [-1]) for k, v in trip_inputs.items()],
                          outputs=[TensorSpec("duration_s", "float32", [-1])])
    assert signature_problems(taxi, fields, good) == []
    wrong = dataclasses.replace(good, inputs=[*good.inputs[:3], TensorSpec("zone", "int64", [-1]),
                                              TensorSpec("trip_distance_km", "string", [-1])])
    assert signature_problems(taxi, fields, wrong) == [
        "model input zone is fed by no field (the input schema has no field zone; map one in [inputs])",
        "model input trip_distance_km is string, which field trip_distance_km (double) cannot feed (a double feeds "
        "float32 or float64)",
    ]
    renamed = dataclasses.replace(good, outputs=[TensorSpec("minutes", "float32", [-1])])
    assert signature_problems(taxi, fields, renamed) == [
        "[outputs] predicted_duration_s = 'duration_s': the model has no output duration_s (it has ['minutes'])"]
    # the prediction record it derives is edml's Prediction schema, field for field
    schema = prediction_schema(taxi, fields["trip_id"], good)
    assert schema_fingerprint(schema) == schema_fingerprint(serde_for("Prediction").schema_json)


def test_vector_outputs_become_arrays_and_odd_shapes_are_refused(taxi: Any) -> None:
    fields = check_declaration(taxi, TRIP_SCHEMA)
    inputs = [TensorSpec("trip_distance_km", "float32", [-1])]
    vector = ModelSignature(inputs, [TensorSpec("duration_s", "float32", [-1, 1]),
                                     TensorSpec("quantiles", "float64", [-1, 3])])
    schema = prediction_schema(taxi, fields["trip_id"], vector)
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["predicted_duration_s"] == "double" and types["quantiles"] == {"type": "array", "items": "double"}
    body = RecordCodec.from_schema(schema, arrays=True).write({
        "trip_id": ["t-1"], "predicted_duration_s": np.array([600.0]), "quantiles": np.array([[300.0, 600.0, 900.0]]),
        "model_name": "trip-duration", "model_version": "v1", "event_time": [1], "scored_at": 2, "latency_ms": [0.5],
        "role": "champion"}, 1)[0]
    record = fastavro.schemaless_reader(io.BytesIO(body), parse_writer_schema(schema), None)
    assert record["quantiles"] == [300.0, 600.0, 900.0] and record["predicted_duration_s"] == 600.0
    image = ModelSignature(inputs, [TensorSpec("duration_s", "float32", [-1]),
                                    TensorSpec("heatmap", "float32", [-1, 64, 64])])
    with pytest.raises(PipelineError, match=r"model output heatmap has shape \[-1, 64, 64\]"):
        prediction_schema(taxi, fields["trip_id"], image)
    clash = ModelSignature(inputs, [TensorSpec("duration_s", "float32", [-1]), TensorSpec("role", "string", [-1])])
    with pytest.raises(PipelineError, match="model output role would be prediction field role, which is taken"):
        prediction_schema(taxi, fields["trip_id"], clash)


def test_cli_shows_the_pipeline_with_a_model(declared: Path, tmp_path: Path) -> None:
    model = _save_sensor_model(tmp_path / "model" / "saved_model").parent
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    shown = subprocess.run([sys.executable, "-m", "edml.cli", "pipelines", "show", "sensors", "--model", str(model)],
                           env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert 'topic = "sensor-readings"' in out  # the declaration as written
    assert '"name": "SensorReading"' in out  # the input schema
    assert "site_name (string) <- site (enum{north,south,lab})" in out  # the model inputs
    assert '"name": "SensorsPrediction"' in out and '"name": "anomaly"' in out  # the prediction schema
    (tmp_path / "edml.toml").write_text("")  # settings: no registry, nothing to register with
    written = subprocess.run([sys.executable, "-m", "edml.cli", "pipelines", "show", "sensors", "--model", str(model),
                              "--write"], env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    beside = declared / "sensors.prediction.avsc"  # written beside the declaration
    assert json.loads(beside.read_text())["name"] == "SensorsPrediction"
    assert f"# written to {beside}" in written.stdout
    (declared / "sensors.toml").write_text(SENSOR_TOML.replace("pulses = \"infer\"", "speed = \"infer\""))
    bad = subprocess.run([sys.executable, "-m", "edml.cli", "pipelines", "show", "sensors"], env=env,
                         capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        f"edml: error: pipeline sensors ({declared / 'sensors.toml'}): a constraint on field speed, which the input "
        "schema does not have")


def test_serve_stops_on_a_bad_declaration_before_reading_anything(declared: Path, tmp_path: Path) -> None:
    # the broker address answers nothing: a scorer that got as far as reading would fail otherwise
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDML_BOOTSTRAP_SERVERS": "127.0.0.1:1",
           "EDML_STATE_DIR": str(tmp_path / "state")}
    env.pop("EDML_CONFIG")
    (declared / "sensors.toml").write_text(SENSOR_TOML.replace('site_name = "site"', 'site_name = "place"'))
    bad = subprocess.run([sys.executable, "-m", "edml.cli", "serve", "--pipeline", "sensors", "--metrics-port", "0"],
                         env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"edml: error: pipeline sensors ({declared / 'sensors.toml'}): [inputs] site_name = 'place': field place is "
        "not in the input schema"]
