"""``edml pipelines show`` for a pipeline whose schemas are registry subjects, against a real registry (Apicurio)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from typer.testing import CliRunner

from edml.cli.root import app

READING = {
    "type": "record", "name": "MeterReading", "namespace": "test.meters",
    "fields": [
        {"name": "meter_id", "type": "string"},
        {"name": "read_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "kwh", "type": "double"},
    ],
}  # fmt: skip
OUTAGE = {"type": "record", "name": "Outage", "fields": [
    {"name": "meter_id", "type": "string"}, {"name": "out", "type": "boolean"}]}  # fmt: skip


def _declare(folder: Path, readings: str, outages: str) -> None:
    folder.mkdir()
    (folder / "meters.toml").write_text(f"""
[input]
topic = "meter-readings"
subject = "{readings}"
key = "meter_id"
event_time = "read_at"

[model]
name = "meter-outage"

[constraints]
kwh = {{ range = [0, 1000] }}

[labels]
topic = "meter-outages"
subject = "{outages}"
key = "meter_id"
field = "out"
task = "binary"
""")


def test_show_reads_the_input_and_label_schemas_from_their_subjects(
    schema_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    readings, outages = f"meters-{run}-value", f"outages-{run}-value"
    client = SchemaRegistryClient({"url": schema_registry})
    client.register_schema(readings, Schema(json.dumps(READING), "AVRO"))
    client.register_schema(outages, Schema(json.dumps(OUTAGE), "AVRO"))
    _declare(tmp_path / "pipelines", readings, outages)
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(tmp_path / "pipelines"))
    (tmp_path / "edml.toml").write_text("")  # the registry comes from the environment
    monkeypatch.setenv("EDML_CONFIG", str(tmp_path / "edml.toml"))
    monkeypatch.setenv("EDML_SCHEMA_REGISTRY_URL", schema_registry)

    shown = CliRunner().invoke(app, ["pipelines", "show", "meters"])
    assert shown.exit_code == 0, shown.output
    assert f"# input schema (registry subject {readings}), topic meter-readings" in shown.output
    assert '"name": "MeterReading"' in shown.output
    assert "kwh: " in shown.output  # the constraint, checked against the fetched schema

    # a subject the registry does not have is one line naming it, not a traceback
    _declare(tmp_path / "other", f"nothing-{run}-value", outages)
    monkeypatch.setenv("EDML_PIPELINES_DIR", str(tmp_path / "other"))
    missing = CliRunner().invoke(app, ["pipelines", "show", "meters"])
    assert missing.exit_code == 2
    line = missing.output.strip()
    assert line.startswith("edml: error: pipeline meters (") and "\n" not in line
    assert f"schema subject 'nothing-{run}-value': the registry at " in line
