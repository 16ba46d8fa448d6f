"""``--pipeline NAME``: the commands' shared way from a pipeline's name to its checked declaration and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edml.cli.commands.options import pipeline_settings_from, settings_from
from edml.core.errors import OperatorError

READING = {
    "type": "record", "name": "MeterReading",
    "fields": [
        {"name": "meter_id", "type": "string"},
        {"name": "read_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "kwh", "type": "double"},
    ],
}  # fmt: skip
METERS = """
[pipelines.meters.input]
topic = "meter-readings"
schema = "{schema}"
key = "meter_id"
event_time = "read_at"

[pipelines.meters.model]
name = "meter-load"

[pipelines.meters.constraints]
{field} = {{ range = [0, 1000] }}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An edml.toml (EDML_CONFIG) declaring the meters pipeline; other env settings cleared."""
    (tmp_path / "reading.avsc").write_text(json.dumps(READING))
    path = tmp_path / "conf" / "edml.toml"
    path.parent.mkdir()
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n' + METERS.format(schema=tmp_path / "reading.avsc",
                                                                          field="kwh"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDML_CONFIG", str(path))
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(tmp_path / "no-pipelines"))
    for name in ("EDML_STATE_DIR", "EDML_TOPIC_PREFIX", "EDML_TOPIC_TRIPS", "EDML_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_a_pipeline_declared_in_the_config_gets_its_own_topics_model_and_state(config: Path, tmp_path: Path) -> None:
    settings = pipeline_settings_from(settings_from(config, bootstrap_servers="broker:9092"), "meters")
    assert settings.pipeline == "meters"
    assert settings.topics.trips == "meter-readings"  # the input topic's role keeps its name
    assert settings.topics.predictions != "predictions"
    assert settings.model_name == "meter-load"
    assert settings.state_dir == tmp_path / "state" / "pipelines" / "meters"
    assert settings.bootstrap_servers == "broker:9092"  # flags still win


def test_without_a_name_the_default_pipeline_keeps_the_settings_topics(config: Path) -> None:
    settings = pipeline_settings_from(settings_from(config), None)
    assert settings.pipeline == "taxi"
    assert settings.topics.trips == "trips" and settings.topics.predictions == "predictions"


def test_a_bad_declaration_is_one_line_naming_the_pipeline_and_the_field(config: Path, tmp_path: Path) -> None:
    config.write_text(METERS.format(schema=tmp_path / "reading.avsc", field="volts"))
    with pytest.raises(OperatorError) as refused:
        pipeline_settings_from(settings_from(config), "meters")
    line = str(refused.value)
    assert "\n" not in line and "pipeline meters" in line and "volts" in line
    with pytest.raises(OperatorError, match="nowhere"):
        pipeline_settings_from(settings_from(config), "nowhere")
