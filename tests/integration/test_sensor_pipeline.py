"""A pipeline edml has never seen, declared only in this test's TOML, scored by `edml serve` on a real broker.

Sensor readings (a float, an int, an enum, a nullable double) scored by a SavedModel built here
with two outputs (a scalar and a vector): predictions carry both, declared and inferred
constraint violations are dead letters naming the field, and a model the pipeline cannot feed is
refused at publish and rejected by the scorer.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from edml.model_topic.artifact import pack_folder, read_model_folder, sha256_hex
from edml.model_topic.gate import GateRefused
from edml.model_topic.publisher import publish_model, publish_record, record_from_manifest
from edml.model_topic.stores import open_store
from edml.schemas.records import DeadLetter
from edml.schemas.serde import dead_letter_serde
from edml.schemas.wire import topic_serdes

from edml.core.config import Settings
from edml.kafka.clients import make_producer
from edml.kafka.reading import read_to_end
from edml.pipelines.alerts import alert_schema
from edml.pipelines.bound import BoundPipeline
from edml.pipelines.predictions import prediction_schema
from tests.helpers.pipelines import declare_pipeline
from tests.integration.scorer_process import ScorerProcess, statuses, wait_until

pytestmark = pytest.mark.kafka

SCHEMA = {
    "type": "record", "name": "SensorReading", "namespace": "test.sensors",
    "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "read_at", "type": "long"},
        {"name": "temperature_c", "type": "float"},
        {"name": "humidity_pct", "type": "int"},
        {"name": "site", "type": {"type": "enum", "name": "Site", "symbols": ["north", "south", "east"]}},
        {"name": "battery_v", "type": ["null", "double"]},
    ],
}
DECLARATION = """
description = "sensor readings -> failure risk"
[input]
topic = "sensor-readings"
schema = "sensor.avsc"
key = "sensor_id"
event_time = "read_at"
[model]
name = "sensor-health"
[inputs]
temperature = "temperature_c"   # the model's input name differs from the field's
[constraints]
humidity_pct = { range = [0, 100] }
battery_v = { required = true, range = [0, 5] }
temperature_c = "infer"          # from the model's reference: -10..40 widened by 10% -> -15..45
[alerts.risky-north]
when = ["risk >= 0.4", "site == 'north'"]
"""
TRAINED_RANGE = (-10.0, 40.0)


class SensorModel(tf.Module):
    """risk = a sigmoid of the inputs; band = [risk, 1 - risk]; ``extra`` adds an input no field feeds."""

    def __init__(self, extra: bool = False) -> None:
        super().__init__()
        specs = [tf.TensorSpec([None], tf.float32, name="temperature"), tf.TensorSpec([None], tf.int64,
                 name="humidity_pct"), tf.TensorSpec([None], tf.string, name="site"),
                 tf.TensorSpec([None], tf.float64, name="battery_v")]
        if extra:
            self.serve = tf.function(lambda temperature, humidity_pct, site, battery_v, pressure_hpa: self._serve(
                {"temperature": temperature, "humidity_pct": humidity_pct, "site": site, "battery_v": battery_v}),
                input_signature=[*specs, tf.TensorSpec([None], tf.float32, name="pressure_hpa")])
        else:
            self.serve = tf.function(lambda temperature, humidity_pct, site, battery_v: self._serve(
                {"temperature": temperature, "humidity_pct": humidity_pct, "site": site, "battery_v": battery_v}),
                input_signature=specs)

    def _serve(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        north = tf.cast(tf.equal(inputs["site"], "north"), tf.float32)
        z = (0.05 * inputs["temperature"] + 0.01 * tf.cast(inputs["humidity_pct"], tf.float32) + north
             - tf.cast(inputs["battery_v"], tf.float32))
        risk = tf.sigmoid(z)
        return {"risk": risk, "band": tf.stack([risk, 1.0 - risk], axis=1)}


def write_model(folder: Path, extra: bool = False) -> Path:
    """A model folder as the trainer writes it: SavedModel, metrics, golden rows, reference."""
    module = SensorModel(extra)
    saved = folder / "saved_model"
    # a dict-argument function is exported with one keyword per input
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve.get_concrete_function()})
    golden_in: dict[str, list[Any]] = {"temperature": [20.0, -5.0, 35.5], "humidity_pct": [40, 90, 10],
                                       "site": ["north", "east", "south"], "battery_v": [3.1, 3.9, 2.5]}
    if extra:
        golden_in["pressure_hpa"] = [1000.0, 990.0, 1010.0]
    dtypes = {"temperature": tf.float32, "humidity_pct": tf.int64, "site": tf.string, "battery_v": tf.float64,
              "pressure_hpa": tf.float32}
    out = module.serve(**{k: tf.constant(v, dtype=dtypes[k]) for k, v in golden_in.items()})
    (folder / "golden.json").write_text(json.dumps({"inputs": golden_in, "outputs": {
        "risk": out["risk"].numpy().tolist(), "band": out["band"].numpy().tolist()}}))
    (folder / "metrics.json").write_text(json.dumps({"auc": 0.9}))
    (folder / "reference.json").write_text(json.dumps({"temperature_c": {
        "kind": "numeric", "min": TRAINED_RANGE[0], "max": TRAINED_RANGE[1],
        "edges": [-10.0, 15.0, 40.0], "fractions": [0.5, 0.5]}}))
    return folder


@pytest.fixture
def sensor(settings: Settings, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, BoundPipeline, Settings]:
    """The sensor pipeline declared in a folder of this test: its settings (topics created), and the base settings."""
    s, bound = declare_pipeline(settings, tmp_path, monkeypatch, "sensor", "sensor.avsc", SCHEMA, DECLARATION)
    return s, bound, settings


def reading(i: int, **changes: Any) -> dict[str, Any]:
    """A valid reading, with ``changes``."""
    return {"sensor_id": f"s-{i:04d}", "read_at": 1_767_225_600_000 + i * 1000, "temperature_c": float(i % 40 - 5),
            "humidity_pct": 30 + i % 50, "site": ("north", "south", "east")[i % 3], "battery_v": 3.0 + (i % 10) / 10,
            **changes}


def produce(s: Settings, bound: BoundPipeline, records: list[dict[str, Any]]) -> None:
    serde = topic_serdes(s).for_schema(s.topics.trips, bound.schema)
    producer = make_producer(s)
    for r in records:
        producer.produce(s.topics.trips, key=r["sensor_id"].encode(), value=serde.encode(r))
    assert producer.flush(30) == 0


def dead(s: Settings) -> list[DeadLetter]:
    return [dead_letter_serde().decode(m.value) for m in read_to_end(s, s.topics.dead_letter)]


def test_a_declared_pipeline_scores_a_record_type_edml_never_saw(
        sensor: tuple[Settings, BoundPipeline, Settings], tmp_path: Path) -> None:
    s, bound, base = sensor
    good_model = write_model(tmp_path / "good")
    bad_model = write_model(tmp_path / "bad", extra=True)
    # a model the pipeline cannot feed never reaches the topic through the gate
    with pytest.raises(GateRefused, match="model input pressure_hpa is fed by no field"):
        publish_model(s, bad_model, "sensor-health", version="v0", pipeline=bound)
    publish_model(s, good_model, "sensor-health", version="v1", pipeline=bound)

    good = [reading(i) for i in range(200)]
    broken = [reading(900, humidity_pct=150), reading(901, battery_v=None), reading(902, temperature_c=80.0),
              reading(903, battery_v=7.5)]
    produce(s, bound, good + broken)
    signature = read_model_folder(good_model, "sensor-health", "v1").signature
    pred_serde = topic_serdes(s).for_schema(s.topics.predictions, prediction_schema(bound.pipeline, bound.key,
                                                                                    signature))
    scorer = ScorerProcess(base, args=["--pipeline", "sensor"]).start()  # edml derives the pipeline's topics
    try:
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(good) and len(dead(s)) >= len(broken),
                   120, message="scorer did not score every reading")
        # a hand-written record (no gate) of the model the pipeline cannot feed: the scorer rejects it
        manifest = dataclasses.replace(read_model_folder(bad_model, "sensor-health", "v2"), version="v2")
        data = pack_folder(bad_model / "saved_model", manifest)
        uri = open_store(s.artifact_store_uri).put("sensor-health", "v2", data)
        publish_record(s, record_from_manifest(manifest, uri, sha256_hex(data), len(data)))
        wait_until(lambda: any(st.version == "v2" and st.status == "rejected" for st in statuses(s)), 60,
                   message=scorer.log())
        produce(s, bound, [reading(i) for i in range(300, 320)])
        wait_until(lambda: len(read_to_end(s, s.topics.predictions)) >= len(good) + 20, 60, message=scorer.log())
    finally:
        scorer.stop()

    preds = [pred_serde.decode(m.value) for m in read_to_end(s, s.topics.predictions)]
    alert_serde = topic_serdes(s).for_schema(s.topics.prediction_alerts, alert_schema(pred_serde.schema_json))
    alerts = [(m.key, alert_serde.decode(m.value)) for m in read_to_end(s, s.topics.prediction_alerts)]
    letters = {d.key.decode(): d for d in dead(s)}
    rejected = next(st for st in statuses(s) if st.version == "v2" and st.status == "rejected")
    print(f"[sensor] sent={len(good) + len(broken) + 20} predictions={len(preds)} dead_letters={len(letters)}: "
          + "; ".join(f"{k} {d.error_kind} {d.message}" for k, d in sorted(letters.items()))
          + f" | v2 rejected: {rejected.reason}")
    assert len(preds) == len(good) + 20 and {p["model_version"] for p in preds} == {"v1"}
    expected = SensorModel()._serve({k: tf.constant(v) for k, v in {
        "temperature": np.array([r["temperature_c"] for r in good], np.float32),
        "humidity_pct": np.array([r["humidity_pct"] for r in good], np.int64),
        "site": np.array([r["site"] for r in good]), "battery_v": np.array([r["battery_v"] for r in good])}.items()})
    by_key = {p["sensor_id"]: p for p in preds}
    for i, r in enumerate(good):
        p = by_key[r["sensor_id"]]
        assert p["event_time"] == r["read_at"] and p["role"] == "champion"
        assert p["risk"] == pytest.approx(float(expected["risk"][i]), rel=1e-5)
        assert p["band"] == pytest.approx(expected["band"][i].numpy().tolist(), rel=1e-5)
    # every prediction the rule holds for has exactly one alert, with the rule's name; no other has one
    fired = sorted(p["sensor_id"] for p in preds if p["risk"] >= 0.4 and
                   next(r for r in good + [reading(i) for i in range(300, 320)]
                        if r["sensor_id"] == p["sensor_id"])["site"] == "north")
    print(f"[sensor] alerts={len(alerts)} of {len(preds)} predictions")
    assert 0 < len(fired) < len(preds)
    assert sorted(a["sensor_id"] for _, a in alerts) == fired
    assert all(a["rule"] == "risky-north" and key == a["sensor_id"].encode() and a == {**by_key[a["sensor_id"]],
               "rule": "risky-north"} for key, a in alerts)
    assert set(letters) == {"s-0900", "s-0901", "s-0902", "s-0903"}
    assert letters["s-0900"].message == "humidity_pct 150 is out of range 0..100"
    assert letters["s-0901"].message == "battery_v is required but null"
    assert letters["s-0903"].message == "battery_v 7.5 is out of range 0..5"
    # the inferred range is the model's: its dead letter names the model, the field and the range
    assert letters["s-0902"].message == "sensor-health v1: temperature_c 80.0 is out of range -15..45"
    assert all(d.error_kind == "out-of-range" for d in letters.values())
    assert letters["s-0902"].value == topic_serdes(s).for_schema(s.topics.trips, bound.schema).encode(broken[2])
    assert "cannot feed this model: model input pressure_hpa is fed by no field" in rejected.reason
