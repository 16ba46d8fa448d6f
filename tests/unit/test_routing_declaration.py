"""Declaring several models in one pipeline: routes, fallbacks, optional models and ensembles, each mistake one line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest
from edml.schemas.columnar import columnar_writer
from edml.schemas.records import ModelSignature, TensorSpec
from edml.schemas.serde import parse_writer_schema

from edml.pipelines.declaration import PipelineError, check_declaration, load_pipeline, load_schema
from edml.pipelines.predictions import LINEAGE, prediction_schema
from tests.unit.test_pipelines import FAULT_SCHEMA, SENSOR_SCHEMA, SENSOR_TOML

ROUTED = SENSOR_TOML.replace('[model]\nname = "sensor-anomaly"\n', '''[model]
name = "sensor-anomaly"
fallback = "sensor-basic"

[models.sensor-lab]
fallback = "sensor-basic"
[models.sensor-basic]
optional = true

[routing]
fields = ["site"]
[[routing.route]]
model = "sensor-lab"
values = ["lab"]
[[routing.route]]
model = "sensor-mean"
values = ["south"]

[ensembles.sensor-mean]
members = ["sensor-anomaly", "sensor-lab"]
combine = "weighted"
weights = [0.7, 0.3]
''')


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pipelines folder holding the routed sensor declaration and its schemas."""
    out = tmp_path / "pipelines"
    out.mkdir()
    (out / "sensors.toml").write_text(ROUTED)
    (out / "reading.avsc").write_text(json.dumps(SENSOR_SCHEMA))
    (out / "fault.avsc").write_text(json.dumps(FAULT_SCHEMA))
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(out))
    monkeypatch.setenv("EDML_CONFIG", str(tmp_path / "edml.toml"))
    return out


def _checked(folder: Path, text: str) -> None:
    (folder / "sensors.toml").write_text(text)
    pipeline = load_pipeline("sensors")
    assert pipeline.labels is not None
    check_declaration(pipeline, load_schema(pipeline, pipeline.input.schema),
                      load_schema(pipeline, pipeline.labels.schema))


def test_a_routed_declaration_lists_every_model_route_fallback_and_ensemble(folder: Path) -> None:
    _checked(folder, ROUTED)
    p = load_pipeline("sensors")
    assert p.models == ("sensor-anomaly", "sensor-lab", "sensor-basic")
    assert p.fallbacks == {"sensor-anomaly": "sensor-basic", "sensor-lab": "sensor-basic"}
    assert p.optional == ("sensor-basic",)
    assert p.routing is not None and p.routing.fields == ("site",)
    assert p.default_target == "sensor-anomaly" and p.targets == ("sensor-anomaly", "sensor-lab", "sensor-mean")
    assert p.required_models == ("sensor-anomaly", "sensor-lab")  # the optional fallback is not waited for
    ens = p.ensembles["sensor-mean"]
    assert (ens.members, ens.combine, ens.weights) == (("sensor-anomaly", "sensor-lab"), "weighted", (0.7, 0.3))
    assert p.routed


def test_model_names_and_an_ensemble_as_the_model(folder: Path) -> None:
    plain = SENSOR_TOML.replace('name = "sensor-anomaly"', 'names = ["sensor-anomaly", "sensor-b"]')
    _checked(folder, plain)
    p = load_pipeline("sensors")
    assert p.models == ("sensor-anomaly", "sensor-b") and not p.routed and p.required_models == ("sensor-anomaly",)
    as_ensemble = SENSOR_TOML.replace('name = "sensor-anomaly"\n', '''name = "both"
[models.m1]
[models.m2]
[ensembles.both]
members = ["m1", "m2"]
''')
    _checked(folder, as_ensemble)
    p = load_pipeline("sensors")
    assert p.models == ("m1", "m2") and p.default_target == "both" and p.required_models == ("m1", "m2")


@pytest.mark.parametrize(("change", "says"), [
    (('values = ["lab"]', 'values = ["lab"]\ncolour = 1'), "has unknown key(s) ['colour']"),
    (('model = "sensor-lab"', 'model = "sensor-x"'), "[[routing.route]] 1: model sensor-x is not a model or an "
                                                     "ensemble"),
    (('fallback = "sensor-basic"\n\n', 'fallback = "sensor-z"\n\n'), "fallback of sensor-anomaly: sensor-z is not a "
                                                                     "model of this pipeline"),
    (("optional = true", 'optional = true\nfallback = "sensor-anomaly"'),
     "the fallbacks make a cycle sensor-anomaly -> sensor-basic -> sensor-anomaly"),
    (("optional = true", 'fallback = "sensor-basic"'),
     "the fallbacks make a cycle sensor-anomaly -> sensor-basic -> sensor-basic"),
    (("weights = [0.7, 0.3]", "weights = [0.7]"), "weights has 1 numbers for 2 members"),
    (("weights = [0.7, 0.3]", "weights = [0.7, -0.3]"), "weights must be >= 0 with a positive sum"),
    (("weights = [0.7, 0.3]", ""), "needs weights = [...]"),
    (('combine = "weighted"', 'combine = "mean"'), "weights are only for combine = \"weighted\""),
    (('combine = "weighted"', 'combine = "vote"'), "combine 'vote' is not one of"),
    (('members = ["sensor-anomaly", "sensor-lab"]', 'members = ["sensor-anomaly", "sensor-q"]'),
     "[ensembles.sensor-mean] member sensor-q is not a model of this pipeline"),
    (('members = ["sensor-anomaly", "sensor-lab"]', 'members = ["sensor-anomaly"]'), "at least two model names"),
    (('fields = ["site"]', 'fields = ["place"]'), "[routing] field place is not in the input schema"),
    (('fields = ["site"]', 'fields = ["temperature"]\ndefault = "sensor-lab"'),
     "value 'lab' cannot equal field temperature (float)"),
    (('values = ["lab"]', 'values = ["moon"]'), "value 'moon' is not a symbol of field site's enum"),
    (('fields = ["site"]', 'fields = ["pulses"]'), "value 'lab' cannot equal field pulses (int)"),
    (('fields = ["site"]', 'fields = ["site"]\ndefault = "nowhere"'), "[routing] default nowhere is not"),
    (('fields = ["site"]', 'fields = ["site"]\ndefault = "sensor-basic"'),
     "the default route's model sensor-basic cannot be optional"),
    (('combine = "weighted"\nweights = [0.7, 0.3]', 'combine = "most-confident"'), None),  # binary labels: fine
    (('task = "binary"', 'task = "regression"'), "combine = \"most-confident\" is for binary classification"),
])
def test_bad_routing_declarations_stop_with_one_line(folder: Path, change: tuple[str, str], says: str | None) -> None:
    text = ROUTED.replace(*change, 1)
    if change[1] == 'task = "regression"':  # most-confident, on a pipeline whose task is not binary
        text = text.replace('combine = "weighted"\nweights = [0.7, 0.3]', 'combine = "most-confident"')
    if says is None:
        _checked(folder, text)
        return
    with pytest.raises(PipelineError) as e:
        _checked(folder, text)
    message = str(e.value)
    assert message.startswith("pipeline sensors (") and "\n" not in message
    assert says in message, message


SIGNATURE = ModelSignature(inputs=(TensorSpec("temperature", "float32", (-1,)),),
                           outputs=(TensorSpec("score", "float32", (-1,)),))


def test_the_prediction_record_gains_fallback_and_member_lineage_only_when_declared(folder: Path) -> None:
    (folder / "sensors.toml").write_text(SENSOR_TOML)
    from edml.pipelines.bound import bind_pipeline

    plain = bind_pipeline(load_pipeline("sensors"))
    names = [f["name"] for f in prediction_schema(plain.pipeline, plain.key, SIGNATURE)["fields"]]
    assert names == ["sensor_id", "score", *(f["name"] for f in LINEAGE)]
    (folder / "sensors.toml").write_text(ROUTED)
    routed = bind_pipeline(load_pipeline("sensors"))
    schema = prediction_schema(routed.pipeline, routed.key, SIGNATURE)
    assert [f["name"] for f in schema["fields"]][-2:] == ["fallback_reason", "members"]
    # the column writer writes both (a constant list of members, a reason per row) as fastavro does
    parsed = parse_writer_schema(schema)  # logical types as their underlying type
    writer = columnar_writer(schema, b"")
    assert writer is not None
    columns = {"sensor_id": ["a", "b"], "score": [0.5, 0.25], "model_name": "m", "model_version": "v1",
               "event_time": 1, "scored_at": 2, "latency_ms": 1.0, "role": "fallback",
               "fallback_reason": ["pulses 9 is out of range", None], "members": ["m1@v1", "m2@v3"]}
    written = writer.write(columns, 2)
    assert [fastavro.schemaless_reader(io.BytesIO(b), parsed) for b in written] == [
        {**{k: (v[i] if isinstance(v, list) and k != "members" else v) for k, v in columns.items()}}
        for i in range(2)]


def test_an_autopilot_on_a_pipeline_of_several_models_is_refused_in_one_line(folder: Path) -> None:
    (folder / "sensors.toml").write_text(ROUTED + '\n[autopilot]\ntrainer = "my.trainers:train"\n')
    with pytest.raises(PipelineError) as refused:
        load_pipeline("sensors")
    assert "\n" not in str(refused.value)
    assert "pipeline sensors" in str(refused.value) and "[autopilot] retrains the one model" in str(refused.value)
    (folder / "sensors.toml").write_text(SENSOR_TOML + '\n[autopilot]\ntrainer = "my.trainers:train"\n')
    assert load_pipeline("sensors").autopilot is not None  # one model: fine
